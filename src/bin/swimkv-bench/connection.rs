//! One connection task: the loop that owns a [`Client`] and a [`Workload`], preloads
//! its share of the keys, waits for the end of the preload phase, then issues
//! operations until the run is done, recording measured ones: back to back (closed
//! loop), or each at its due time with `--rate` ([`Pacer`]: open loop, latency from the
//! due time when the server held the request up).
//!
//! Invariants: the RNG seed depends only on (`--seed`, connection index), and the value
//! bytes are drawn from it before any request, so request sequences are reproducible.
//! Preload keys are claimed from one shared counter, so each key is written once across
//! all connections. A measured operation counts only if it both started and completed
//! inside the measure phase — in `--ops` mode every operation holding one of the first
//! `--ops` tickets counts instead, and no other measured operation is started. Only HTTP
//! responses (any status) get a latency. After a failed connect the loop sleeps 10 ms
//! instead of spinning.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::cli::Config;
use crate::http::{Client, ErrorKind};
use crate::pacing::{latency_start, Pacer};
use crate::shared::{Phase, Shared};
use crate::stats::ConnStats;
use crate::workload::{splitmix64, Op, Workload};

/// One connection's closed loop: preload share, then warmup and measured operations.
pub(crate) async fn run_connection(
    index: usize,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    mut phase_rx: watch::Receiver<Phase>,
) -> ConnStats {
    let (addr, host) = cfg.targets[index % cfg.targets.len()].clone();
    let mut client = Client::new(addr, host, cfg.path_prefix.clone(), cfg.timeout)
        .with_secure(cfg.secure.clone());
    let mut rng = SmallRng::seed_from_u64(splitmix64(cfg.seed ^ splitmix64(index as u64)));
    let value: Vec<u8> = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(cfg.value_size)
        .collect();
    let mut workload = Workload {
        rng,
        mix: cfg.mix,
        keys: cfg.keys,
        zipf: cfg.zipf,
        subset: cfg
            .key_subsets
            .as_ref()
            .map(|s| Arc::clone(&s[index % s.len()])),
    };
    let mut stats = ConnStats::default();

    // Connect eagerly so the measured phase does not pay for it, then preload.
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let _ = client.ensure_connected(deadline).await;
    if cfg.preload {
        loop {
            if shared.phase() == Phase::Done {
                break;
            }
            let key = shared.preload_next.fetch_add(1, Ordering::Relaxed);
            if key >= cfg.keys {
                break;
            }
            client.build_request(Op::Put, key, &value);
            let result = client.execute().await;
            if cfg.progress {
                shared.progress_ops.fetch_add(1, Ordering::Relaxed);
            }
            match result {
                Ok(status) if (200..300).contains(&status) => stats.preload_ok += 1,
                Ok(status) => {
                    *stats
                        .preload_errors
                        .entry(ErrorKind::Status(status))
                        .or_default() += 1;
                }
                Err(kind) => {
                    *stats.preload_errors.entry(kind).or_default() += 1;
                    connect_backoff(kind).await;
                }
            }
        }
    }
    shared.preload_pending.fetch_sub(1, Ordering::AcqRel);
    if phase_rx.wait_for(|p| *p != Phase::Preload).await.is_err() {
        shared.running.fetch_sub(1, Ordering::AcqRel);
        return stats;
    }

    let ops_limit = cfg.ops;
    let mut pacer = cfg
        .rate
        .map(|rate| Pacer::new(Instant::now(), rate, index, cfg.connections));
    // When the previous operation completed (the connection became free).
    let mut free_at = Instant::now();
    loop {
        let due = pacer.as_mut().map(Pacer::due);
        if let Some(due) = due.filter(|d| *d > Instant::now()) {
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {}
                _ = phase_rx.wait_for(|p| *p == Phase::Done) => {}
            }
        }
        let phase = shared.phase();
        if phase == Phase::Done {
            break;
        }
        let measured = phase == Phase::Measure;
        if let (true, Some(limit)) = (measured, ops_limit) {
            if shared.tickets.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }
        let (op, key) = workload.next();
        client.build_request(op, key, &value);
        let sent = Instant::now();
        let started = due.map_or(sent, |due| latency_start(due, free_at, sent));
        let result = client.execute().await;
        let finished = Instant::now();
        free_at = finished;
        if cfg.progress {
            shared.progress_ops.fetch_add(1, Ordering::Relaxed);
            if !matches!(result, Ok(s) if (200..300).contains(&s)) {
                shared.progress_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Count operations that started and completed inside the measured phase
        // (in --ops mode every claimed operation counts).
        if measured && (ops_limit.is_some() || shared.phase() == Phase::Measure) {
            let micros =
                u64::try_from(finished.duration_since(started).as_micros()).unwrap_or(u64::MAX);
            stats.by_op[op as usize].record(result, micros);
            stats.last_completion = Some(finished);
        }
        if let Err(kind) = result {
            connect_backoff(kind).await;
        }
    }
    stats.reconnects = client.connects.saturating_sub(1);
    stats.protocol_error = client.protocol_error.take();
    stats.server_error = client.server_error.take();
    shared.running.fetch_sub(1, Ordering::AcqRel);
    stats
}

/// After a failed connect, pause 10 ms so a dead target does not turn the closed loop
/// into a busy loop of refused connections.
async fn connect_backoff(kind: ErrorKind) {
    if matches!(
        kind,
        ErrorKind::ConnectRefused | ErrorKind::ConnectError | ErrorKind::ConnectTimeout
    ) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
