//! Runs the whole benchmark: starts `--threads` OS threads, each with a current-thread
//! tokio runtime driving a contiguous share of the connection tasks, drives the phases
//! from a small runtime on the calling thread, then merges every connection's statistics
//! into a [`Report`].
//!
//! Invariants: connection `i` runs on thread `t` with `t * connections / threads <= i <
//! (t + 1) * connections / threads`, so every connection index runs exactly once. The
//! measured duration is the orchestrator's measured phase, except in `--ops` mode where it
//! ends at the last completed operation. A worker that cannot start, a task that panics or
//! a thread that cannot be spawned makes the run an error (exit 1) rather than a partial
//! report; request errors never do.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::cli::Config;
use crate::connection::run_connection;
use crate::orchestrate::{orchestrate, Timeline};
use crate::shared::{Phase, Shared};
use crate::stats::ConnStats;

/// The merged results of a run.
pub(crate) struct Report {
    pub(crate) stats: ConnStats,
    pub(crate) timeline: Timeline,
    /// In `--ops` mode, measured time ends at the last completion.
    pub(crate) duration: Duration,
}

/// Runs the whole benchmark.
pub(crate) fn run(cfg: Config) -> Result<Report, String> {
    let cfg = Arc::new(cfg);
    let (shared, phase_rx) = Shared::new(cfg.connections);
    let shared = Arc::new(shared);
    let orchestrator = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;

    let mut workers = Vec::new();
    for t in 0..cfg.threads {
        let range = (t * cfg.connections / cfg.threads)..((t + 1) * cfg.connections / cfg.threads);
        let (cfg2, shared2, rx) = (Arc::clone(&cfg), Arc::clone(&shared), phase_rx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || run_worker(range.clone(), cfg2, shared2, rx));
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => {
                shared.set_phase(Phase::Done);
                return Err(format!("cannot spawn a worker thread: {e}"));
            }
        }
    }
    drop(phase_rx);

    let timeline = orchestrator.block_on(orchestrate(&cfg, &shared));

    let mut stats = ConnStats::default();
    for handle in workers {
        match handle.join() {
            Ok(Ok(list)) => list.iter().for_each(|s| stats.merge(s)),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a worker thread panicked".into()),
        }
    }
    // In --ops mode the measured phase ends with the last completed operation.
    let duration = match (cfg.duration, timeline.measure_start, stats.last_completion) {
        (None, Some(start), Some(last)) => last.saturating_duration_since(start),
        _ => timeline.measured,
    };
    Ok(Report {
        stats,
        timeline,
        duration,
    })
}

/// Runs the connections `range` on a current-thread runtime on this OS thread.
fn run_worker(
    range: std::ops::Range<usize>,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    phase_rx: watch::Receiver<Phase>,
) -> Result<Vec<ConnStats>, String> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            // Do not leave the orchestrator waiting for connections that never start.
            shared
                .preload_pending
                .fetch_sub(range.len(), Ordering::AcqRel);
            shared.running.fetch_sub(range.len(), Ordering::AcqRel);
            return Err(format!("cannot start a tokio runtime: {e}"));
        }
    };
    runtime.block_on(async move {
        let mut set = JoinSet::new();
        for index in range {
            set.spawn(run_connection(
                index,
                Arc::clone(&cfg),
                Arc::clone(&shared),
                phase_rx.clone(),
            ));
        }
        let mut all = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(stats) => all.push(stats),
                Err(e) => return Err(format!("connection task failed: {e}")),
            }
        }
        Ok(all)
    })
}
