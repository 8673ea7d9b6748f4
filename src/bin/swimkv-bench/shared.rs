//! The run phases and the state shared by the orchestrator and every connection task.
//!
//! Invariants: the phase only moves forward (preload → warmup → measure → done; warmup is
//! skipped when `--warmup 0s`, and an interruption jumps to done) and only the
//! orchestrator moves it, except that `run` forces done when a worker thread cannot be
//! spawned. [`Shared::set_phase`] updates the atomic (read on every operation) and the
//! watch channel (awaited at the end of the preload) together. `preload_pending` and
//! `running` start at the number of connections and every connection task decrements
//! each exactly once on its way out (a worker whose runtime failed decrements for all its
//! tasks), which is what the orchestrator waits on (`Acquire`). The ticket, preload and
//! progress counters only need atomicity, so they are `Relaxed`.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use tokio::sync::watch;

/// Run phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    Preload = 0,
    Warmup = 1,
    Measure = 2,
    Done = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Preload,
            1 => Phase::Warmup,
            2 => Phase::Measure,
            _ => Phase::Done,
        }
    }
}

/// State shared by the orchestrator and every connection task.
pub(crate) struct Shared {
    phase: AtomicU8,
    /// Wakes connection tasks waiting for the end of the preload phase.
    phase_tx: watch::Sender<Phase>,
    /// Next key index to preload.
    pub(crate) preload_next: AtomicU64,
    /// Connections that have not finished their preload/connect step.
    pub(crate) preload_pending: AtomicUsize,
    /// Connection tasks still running.
    pub(crate) running: AtomicUsize,
    /// Measured operations claimed so far (`--ops` mode).
    pub(crate) tickets: AtomicU64,
    /// Completed operations (any phase), for progress lines.
    pub(crate) progress_ops: AtomicU64,
    /// Failed operations (any phase), for progress lines.
    pub(crate) progress_errors: AtomicU64,
}

impl Shared {
    /// Fresh state for `connections` connection tasks, in the preload phase; the receiver
    /// is the one every connection task clones to wait for the end of the preload.
    pub(crate) fn new(connections: usize) -> (Self, watch::Receiver<Phase>) {
        let (phase_tx, phase_rx) = watch::channel(Phase::Preload);
        let shared = Shared {
            phase: AtomicU8::new(Phase::Preload as u8),
            phase_tx,
            preload_next: AtomicU64::new(0),
            preload_pending: AtomicUsize::new(connections),
            running: AtomicUsize::new(connections),
            tickets: AtomicU64::new(0),
            progress_ops: AtomicU64::new(0),
            progress_errors: AtomicU64::new(0),
        };
        (shared, phase_rx)
    }

    /// The current phase.
    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves to `phase` and wakes the connection tasks waiting on the watch channel.
    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
        self.phase_tx.send_replace(phase);
    }
}
