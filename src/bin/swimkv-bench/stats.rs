//! Outcome counters: per operation type ([`OpStats`]) and per connection
//! ([`ConnStats`]), merged across connections for the report.
//!
//! Invariants: an operation is counted once, as `ok` (2xx) or under exactly one
//! [`ErrorKind`] (a non-2xx status or a transport failure); every operation that got an
//! HTTP response, whatever its status, has its latency recorded, transport failures have
//! none. Merging is associative and commutative except for `protocol_error` and
//! `server_error`, which keep
//! the first one seen in merge order. `ConnStats::by_op` is indexed by `Op as usize`.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::histogram::Histogram;
use crate::http::ErrorKind;

/// Outcome counters of one operation type.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpStats {
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<ErrorKind, u64>,
    /// Latency of every operation that got an HTTP response.
    pub(crate) latency: Histogram,
}

impl OpStats {
    /// Records one outcome.
    pub(crate) fn record(&mut self, result: Result<u16, ErrorKind>, micros: u64) {
        match result {
            Ok(status) if (200..300).contains(&status) => {
                self.ok += 1;
                self.latency.record(micros);
            }
            Ok(status) => {
                *self.errors.entry(ErrorKind::Status(status)).or_default() += 1;
                self.latency.record(micros);
            }
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    pub(crate) fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    pub(crate) fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        self.latency.merge(&other.latency);
    }
}

/// Everything one connection measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnStats {
    pub(crate) by_op: [OpStats; 3],
    /// Preload writes: ok count and errors (no latency).
    pub(crate) preload_ok: u64,
    pub(crate) preload_errors: BTreeMap<ErrorKind, u64>,
    /// Connections opened after the first one.
    pub(crate) reconnects: u64,
    /// Completion time of the last measured operation.
    pub(crate) last_completion: Option<Instant>,
    pub(crate) protocol_error: Option<String>,
    /// The first 5xx answer seen (status and the start of its body).
    pub(crate) server_error: Option<String>,
}

impl ConnStats {
    pub(crate) fn merge(&mut self, other: &ConnStats) {
        for (a, b) in self.by_op.iter_mut().zip(&other.by_op) {
            a.merge(b);
        }
        self.preload_ok += other.preload_ok;
        for (k, v) in &other.preload_errors {
            *self.preload_errors.entry(*k).or_default() += v;
        }
        self.reconnects += other.reconnects;
        self.last_completion = self.last_completion.max(other.last_completion);
        if self.protocol_error.is_none() {
            self.protocol_error.clone_from(&other.protocol_error);
        }
        if self.server_error.is_none() {
            self.server_error.clone_from(&other.server_error);
        }
    }
}
