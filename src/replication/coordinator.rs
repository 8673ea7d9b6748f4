//! The quorum coordinator: one client request fanned out to N replicas.
//!
//! Any node coordinates any key. A write is stamped with a version from this
//! node's hybrid logical clock, sent to every replica of the key's preference
//! list, and succeeds at W acks; a read asks the replicas and answers at R
//! responses with the newest version, then sends that version to the replicas
//! that answered stale or missing (read repair), late answers included. A request
//! that has not reached its quorum when its timeout fires fails with the counts.
//!
//! **A write acknowledged after another one wins.** A replica holding a newer
//! version of the key refuses a write (`Stale`) instead of merging it; a refusal
//! is never an ack: the coordinator advances its clock past the refused version
//! and writes again, at most [`MAX_WRITE_ATTEMPTS`] times. Because write quorums
//! intersect, a write that starts after another was acknowledged meets it in at
//! least one replica and ends up with the higher version. A version more than
//! `max_ahead_ms` ahead of this node's wall clock is never observed (a fast clock
//! elsewhere cannot drag this clock into the future).
//!
//! **Conditional writes** (create-only, or over one exact version) first read at
//! the read quorum, check the condition against the newest version, then write
//! with that version as the one the replicas must not have seen superseded; any
//! refusal answers "precondition failed" and is never retried.
//!
//! While the ring is in transition (a member joined, failed or came back without
//! its data, and the data has not been handed off everywhere yet), a request has
//! two [`Group`]s: the new preference list and the live part of the settled one.
//! It must reach its quorum in **every** group (a joint quorum). A replica that
//! answers a read "not authoritative" counts as failed, and a spare is asked.
//!
//! Invariants: a request is reported successful only after `needed` distinct
//! replicas of each group acknowledged the same attempt; every operation gets
//! exactly one [`Outcome`]; an operation is forgotten once every replica of its
//! last attempt answered or its timeout fired. Pure: time comes in as arguments;
//! the shell routes [`Effect::Send`] (to itself or a peer) and schedules the
//! timeout.

mod op;
#[cfg(test)]
mod tests;

use super::message::{PutCheck, ReplicaRequest, ReplicaResponse};
use crate::storage::hlc::{millis_of, Hlc};
use crate::storage::{Record, Version};
use bytes::Bytes;
use op::Op;
use std::collections::HashMap;

/// Identifies one client operation at its coordinator.
pub type OpId = u64;

/// Attempts of one unconditional write (the first and its retries after refusals).
pub const MAX_WRITE_ATTEMPTS: u32 = 4;

/// What the coordinator asks the shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send a request to a replica (possibly this node); answer with `on_response`
    /// passing `op` and `attempt` back.
    Send {
        /// The operation the answer belongs to.
        op: OpId,
        /// Which attempt of the operation (answers to an earlier one are ignored).
        attempt: u32,
        /// Replica name.
        to: String,
        /// The request.
        request: ReplicaRequest,
    },
    /// Send a repair write whose answer nobody waits for.
    Repair {
        /// Replica name.
        to: String,
        /// The write.
        request: ReplicaRequest,
    },
    /// The client's answer.
    Reply {
        /// The operation answered.
        op: OpId,
        /// Its outcome.
        outcome: Outcome,
    },
}

/// How a client operation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A read reached its quorum; the newest record (a tombstone, an expired value
    /// or none means 404).
    Read(Option<Record>),
    /// A write reached its quorum.
    Written {
        /// The version written.
        version: Version,
        /// Acks received so far (at least the quorum).
        acks: usize,
    },
    /// The quorum was not reached in time.
    Unavailable {
        /// Answers needed.
        needed: usize,
        /// Answers received.
        succeeded: usize,
        /// Replicas that failed or refused.
        failed: usize,
        /// Replicas asked.
        replicas: usize,
    },
    /// A conditional write's condition did not hold.
    PreconditionFailed {
        /// The newest version found: the current ETag (`None`: the key is absent).
        current: Option<Version>,
    },
    /// Never produced by the coordinator: the shell refuses a write while this
    /// node's clock is off from most of its peers' clocks.
    ClockSkewed,
    /// Never produced by the coordinator: the shell refuses requests until this
    /// node has joined and seen its view settle.
    NotJoined,
    /// Never produced by the coordinator: the shell refuses a write while the
    /// clock mark that bounds this node's versions is not on disk.
    StorageUnavailable,
}

/// What a conditional write requires of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `If-None-Match: *`: the key is absent (never written, deleted or expired).
    Absent,
    /// `If-Match: "<version>"`: the key's newest version is exactly this live value.
    Matches(Version),
}

/// A client write: the value (`None` deletes), its expiry and its condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSpec {
    /// The value, or `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Wall-clock milliseconds at which the value expires.
    pub expires_ms: Option<u64>,
    /// A condition checked against a quorum read first.
    pub condition: Option<Condition>,
}

impl WriteSpec {
    /// An unconditional write of `value` (`None` deletes) that never expires.
    pub fn plain(value: Option<Bytes>) -> WriteSpec {
        WriteSpec {
            value,
            expires_ms: None,
            condition: None,
        }
    }
}

/// A set of replicas that must reach its own quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Replicas to ask.
    pub replicas: Vec<String>,
    /// Successful answers needed from them.
    pub needed: usize,
}

impl Group {
    /// A group of `replicas` needing `needed` answers.
    pub fn new(replicas: Vec<String>, needed: usize) -> Group {
        Group { replicas, needed }
    }
}

/// Counters of what the coordinator did beyond the first attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorStats {
    /// Writes sent again after a replica refused them as stale.
    pub stale_retries: u64,
    /// Versions seen in answers that were too far ahead of this clock to observe.
    pub not_observed: u64,
    /// Conditional writes answered "precondition failed".
    pub precondition_failed: u64,
}

/// The state of every operation this node coordinates, and its clock.
#[derive(Debug)]
pub struct Coordinator {
    ops: HashMap<OpId, Op>,
    next: OpId,
    hlc: Hlc,
    max_ahead_ms: u64,
    stats: CoordinatorStats,
}

impl Coordinator {
    /// A coordinator whose versions carry the tiebreak `node`, never observing a
    /// version more than `max_ahead_ms` ahead of the wall clock it is given.
    pub fn new(node: u64, max_ahead_ms: u64) -> Coordinator {
        Coordinator {
            ops: HashMap::new(),
            next: 0,
            hlc: Hlc::new(node),
            max_ahead_ms,
            stats: CoordinatorStats::default(),
        }
    }

    /// Moves the clock past `ms` Unix milliseconds (a mark of a previous run of
    /// this node), so that no version it issues is lower than one issued before.
    pub fn start_past(&mut self, ms: u64) {
        if ms > 0 {
            self.hlc.observe(Version {
                ts: crate::storage::hlc::pack(ms, 0),
                node: 0,
            });
        }
    }

    /// Operations still tracked (awaiting answers or their timeout).
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// What the coordinator did beyond first attempts.
    pub fn stats(&self) -> CoordinatorStats {
        self.stats
    }

    /// Moves this node's clock past `seen`, unless `seen` is more than the
    /// bound ahead of the wall clock `now_ms` (then it is ignored and counted).
    pub fn observe(&mut self, seen: Version, now_ms: u64) -> bool {
        if millis_of(seen.ts) > now_ms.saturating_add(self.max_ahead_ms) {
            self.stats.not_observed += 1;
            return false;
        }
        self.hlc.observe(seen);
        true
    }

    fn allocate(&mut self) -> OpId {
        self.next += 1;
        self.next
    }

    /// Starts a read of `key`, answered once every group reached its quorum.
    ///
    /// With a single group, only its first `needed` replicas are asked at first
    /// (the shell lists this node first); the others are spares, asked when a
    /// replica fails or when the shell calls [`Coordinator::on_slow`] (speculative
    /// retry). During a transition every replica of both groups is asked.
    pub fn read(&mut self, key: &str, groups: &[Group], out: &mut Vec<Effect>) -> OpId {
        let op = self.allocate();
        let state = Op::read(key, groups, None);
        self.start(op, state, out);
        op
    }

    /// Starts a write, answered once every group reached its quorum: at once for
    /// an unconditional write, after a quorum read for a conditional one.
    pub fn write(
        &mut self,
        key: &str,
        spec: WriteSpec,
        groups: &[Group],
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> OpId {
        let op = self.allocate();
        let state = match spec.condition {
            Some(_) => Op::read(key, groups, Some(spec)),
            None => {
                let record = self.stamp(&spec, now_ms);
                Op::write(key, record, PutCheck::Newer, groups)
            }
        };
        self.start(op, state, out);
        op
    }

    fn stamp(&mut self, spec: &WriteSpec, now_ms: u64) -> Record {
        let version = self.hlc.tick(now_ms);
        let record = match &spec.value {
            Some(v) => Record::value(version, v.clone()),
            None => Record::tombstone(version),
        };
        record.expiring(spec.expires_ms)
    }

    fn start(&mut self, op: OpId, state: Op, out: &mut Vec<Effect>) {
        if state.targets.is_empty() || state.impossible() {
            out.push(Effect::Reply {
                op,
                outcome: state.unavailable(),
            });
            return;
        }
        state.send_all(op, out);
        self.ops.insert(op, state);
    }

    /// The shell's speculative-retry delay passed: ask the spare replicas of a read
    /// that has not been answered yet.
    pub fn on_slow(&mut self, op: OpId, out: &mut Vec<Effect>) {
        if let Some(state) = self.ops.get_mut(&op) {
            if !state.replied {
                while let Some(to) = state.spares.pop() {
                    state.ask_spare(op, to, out);
                }
            }
        }
    }

    /// A replica answered attempt `attempt` of `op` at wall-clock `now_ms` (or
    /// the shell reports that it could not be reached).
    pub fn on_response(
        &mut self,
        op: OpId,
        attempt: u32,
        from: &str,
        response: ReplicaResponse,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let observed = match &response {
            ReplicaResponse::Read(Some(r)) => Some(r.version),
            ReplicaResponse::Stale(v) | ReplicaResponse::Conflict(v) => Some(*v),
            _ => None,
        };
        let observed = observed.map(|v| self.observe(v, now_ms));
        let Some(state) = self.ops.get_mut(&op) else {
            return; // late answer of a finished operation
        };
        if state.attempt != attempt || state.answered.iter().any(|a| a == from) {
            return; // an earlier attempt's answer, or a duplicate
        }
        state.answered.push(from.to_string());
        match response {
            ReplicaResponse::Stale(_) if state.is_write() && !state.replied => {
                state.count(from, false);
                if observed == Some(true) && state.attempt + 1 < MAX_WRITE_ATTEMPTS {
                    // The clock is now past the refused version: write again.
                    self.stats.stale_retries += 1;
                    let spec = state.spec();
                    let record = self.stamp(&spec, now_ms);
                    if let Some(state) = self.ops.get_mut(&op) {
                        state.restart_write(record, PutCheck::Newer);
                        state.send_all(op, out);
                    }
                    return;
                }
            }
            ReplicaResponse::Conflict(held) if state.is_write() && !state.replied => {
                state.replied = true;
                self.stats.precondition_failed += 1;
                out.push(Effect::Reply {
                    op,
                    outcome: Outcome::PreconditionFailed {
                        current: Some(held),
                    },
                });
            }
            response => state.on_answer(op, from, response, out),
        }
        let Some(state) = self.ops.get_mut(&op) else {
            return;
        };
        if let Some(spec) = state.conditional_ready() {
            self.begin_conditional_write(op, spec, now_ms, out);
            return;
        }
        if let Some(state) = self.ops.get_mut(&op) {
            state.finish(op, out);
            if state.done() {
                self.ops.remove(&op);
            }
        }
    }

    /// A conditional write's read reached its quorum: check the condition against
    /// the newest version, then write over it (or answer 412).
    fn begin_conditional_write(
        &mut self,
        op: OpId,
        spec: WriteSpec,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let Some(state) = self.ops.get_mut(&op) else {
            return;
        };
        let newest = state.newest().cloned();
        let holds = spec
            .condition
            .is_none_or(|c| condition_holds(c, newest.as_ref(), now_ms));
        if !holds {
            state.replied = true;
            self.stats.precondition_failed += 1;
            let current = newest.filter(|r| r.is_live(now_ms)).map(|r| r.version);
            out.push(Effect::Reply {
                op,
                outcome: Outcome::PreconditionFailed { current },
            });
            self.ops.remove(&op);
            return;
        }
        let expected = newest.map(|r| r.version);
        if let Some(v) = expected {
            self.observe(v, now_ms);
        }
        let record = self.stamp(&spec, now_ms);
        if let Some(state) = self.ops.get_mut(&op) {
            state.restart_write(record, PutCheck::Expect(expected));
            if state.impossible() {
                state.replied = true;
                out.push(Effect::Reply {
                    op,
                    outcome: state.unavailable(),
                });
                self.ops.remove(&op);
                return;
            }
            state.send_all(op, out);
        }
    }

    /// The operation's timeout fired: fail it if it has not been answered; forget it.
    pub fn on_timeout(&mut self, op: OpId, out: &mut Vec<Effect>) {
        if let Some(state) = self.ops.remove(&op) {
            if !state.replied {
                out.push(Effect::Reply {
                    op,
                    outcome: state.unavailable(),
                });
            }
        }
    }
}

/// True when `condition` holds for a key whose newest record is `newest`, at
/// wall-clock `now_ms` (a tombstone or an expired value is absent).
pub fn condition_holds(condition: Condition, newest: Option<&Record>, now_ms: u64) -> bool {
    let live = newest.filter(|r| r.is_live(now_ms));
    match condition {
        Condition::Absent => live.is_none(),
        Condition::Matches(v) => live.is_some_and(|r| r.version == v),
    }
}
