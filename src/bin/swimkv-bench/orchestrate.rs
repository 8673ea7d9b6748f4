//! The orchestrator: drives the phases from the main thread (wait for every connection's
//! preload/connect step, warm up, measure), prints `--progress` lines once a second on
//! stderr, handles Ctrl-C, and records what it observed in a [`Timeline`].
//!
//! Invariants: it always ends by setting the phase to done, whatever the path
//! (completion, deadline or Ctrl-C), so every connection task stops. The measure phase
//! ends at its deadline (`--duration`) or when every connection task has finished
//! (`--ops`). Ctrl-C ends the run early with `interrupted` set; what was measured so far is
//! still reported. It checks its conditions at least every 10 ms, on its own thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::Config;
use crate::shared::{Phase, Shared};

/// What the orchestrator observed.
pub(crate) struct Timeline {
    pub(crate) preload: Option<Duration>,
    /// When the measured phase began (`None` if it never did).
    pub(crate) measure_start: Option<Instant>,
    pub(crate) measured: Duration,
    pub(crate) interrupted: bool,
    /// CPU seconds the `--cpu-pids` processes used during the measured phase.
    pub(crate) server_cpu_s: Option<f64>,
    /// CPU seconds this load generator used during the measured phase.
    pub(crate) client_cpu_s: Option<f64>,
}

/// Prints a progress line once per second while waiting.
struct Progress {
    enabled: bool,
    started: Instant,
    next: Instant,
    last_ops: u64,
    last_errors: u64,
    last_at: Instant,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Progress {
            enabled,
            started: now,
            next: now + Duration::from_secs(1),
            last_ops: 0,
            last_errors: 0,
            last_at: now,
        }
    }

    /// Prints a line if a second has passed.
    fn tick(&mut self, shared: &Shared, cfg: &Config) {
        let now = Instant::now();
        if !self.enabled || now < self.next {
            return;
        }
        let ops = shared.progress_ops.load(Ordering::Relaxed);
        let errors = shared.progress_errors.load(Ordering::Relaxed);
        let secs = now.duration_since(self.last_at).as_secs_f64().max(1e-9);
        let phase = shared.phase();
        let detail = match phase {
            Phase::Preload => format!(
                ", preloaded {}/{}",
                shared.preload_next.load(Ordering::Relaxed).min(cfg.keys),
                cfg.keys
            ),
            Phase::Measure => match cfg.ops {
                Some(limit) => format!(
                    ", {}/{limit} ops",
                    shared.tickets.load(Ordering::Relaxed).min(limit)
                ),
                None => String::new(),
            },
            Phase::Warmup | Phase::Done => String::new(),
        };
        eprintln!(
            "[{:6.1}s] {:<7} {:>10.0} ops/s {:>8.0} err/s{detail}",
            now.duration_since(self.started).as_secs_f64(),
            format!("{phase:?}").to_lowercase(),
            (ops - self.last_ops) as f64 / secs,
            (errors - self.last_errors) as f64 / secs,
        );
        self.last_ops = ops;
        self.last_errors = errors;
        self.last_at = now;
        while self.next <= now {
            self.next += Duration::from_secs(1);
        }
    }
}

/// Waits until `done()` holds or `deadline` passes; false if interrupted by Ctrl-C.
async fn wait_until(
    shared: &Shared,
    cfg: &Config,
    progress: &mut Progress,
    interrupted: &AtomicBool,
    deadline: Option<Instant>,
    done: impl Fn() -> bool,
) -> bool {
    loop {
        if interrupted.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if done() || deadline.is_some_and(|d| now >= d) {
            return true;
        }
        progress.tick(shared, cfg);
        let mut wake = now + Duration::from_millis(10);
        if let Some(d) = deadline {
            wake = wake.min(d);
        }
        tokio::time::sleep_until(wake.into()).await;
    }
}

/// Drives the phases from the main thread.
pub(crate) async fn orchestrate(cfg: &Config, shared: &Shared) -> Timeline {
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        });
    }
    let mut progress = Progress::new(cfg.progress);
    let mut timeline = Timeline {
        preload: None,
        measure_start: None,
        measured: Duration::ZERO,
        interrupted: false,
        server_cpu_s: None,
        client_cpu_s: None,
    };

    let preload_start = Instant::now();
    let all_ready = || shared.preload_pending.load(Ordering::Acquire) == 0;
    if !wait_until(shared, cfg, &mut progress, &interrupted, None, all_ready).await {
        timeline.interrupted = true;
        shared.set_phase(Phase::Done);
        return timeline;
    }
    if cfg.preload {
        timeline.preload = Some(preload_start.elapsed());
    }

    if !cfg.warmup.is_zero() {
        shared.set_phase(Phase::Warmup);
        let until = Some(Instant::now() + cfg.warmup);
        if !wait_until(shared, cfg, &mut progress, &interrupted, until, || false).await {
            timeline.interrupted = true;
            shared.set_phase(Phase::Done);
            return timeline;
        }
    }

    shared.set_phase(Phase::Measure);
    let cpu_start = crate::cpu::cpu_seconds(&cfg.cpu_pids);
    let me = [std::process::id()];
    let client_start = crate::cpu::cpu_seconds(&me);
    let start = Instant::now();
    timeline.measure_start = Some(start);
    let (deadline, all_done): (Option<Instant>, Box<dyn Fn() -> bool>) = match cfg.duration {
        Some(d) => (Some(start + d), Box::new(|| false)),
        None => (
            None,
            Box::new(|| shared.running.load(Ordering::Acquire) == 0),
        ),
    };
    timeline.interrupted =
        !wait_until(shared, cfg, &mut progress, &interrupted, deadline, all_done).await;
    shared.set_phase(Phase::Done);
    timeline.measured = start.elapsed();
    timeline.server_cpu_s = cpu_start
        .zip(crate::cpu::cpu_seconds(&cfg.cpu_pids))
        .map(|(a, b)| (b - a).max(0.0));
    timeline.client_cpu_s = client_start
        .zip(crate::cpu::cpu_seconds(&me))
        .map(|(a, b)| (b - a).max(0.0));
    timeline
}
