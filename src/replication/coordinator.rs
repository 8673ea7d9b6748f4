//! The quorum coordinator: one client request fanned out to N replicas.
//!
//! Any node coordinates any key. A write is sent to every replica of the key's
//! preference list and succeeds at W acks; a read asks every replica and answers at
//! R responses with the newest version, then sends that version to the replicas that
//! answered stale or missing (read repair), late answers included. A request that
//! has not reached its quorum when its timeout fires fails with the counts.
//!
//! While the ring is in transition (a member joined or failed and the data has not
//! been handed off everywhere yet), a request has two [`Group`]s: the new
//! preference list and the live part of the settled one. It must reach its quorum
//! in **every** group (a joint quorum), so a read always meets a replica that holds
//! every acknowledged write, whichever ring that write was made under.
//!
//! Invariants: a request is reported successful only after `needed` distinct
//! replicas of each group answered; every operation gets exactly one [`Outcome`];
//! an operation is forgotten once every replica answered or its timeout fired.
//! Pure: the shell routes [`Effect::Send`] (to itself or a peer) and schedules the
//! timeout.

use super::message::{ReplicaRequest, ReplicaResponse};
use crate::storage::{Record, Version};
use std::collections::HashMap;

/// Identifies one client operation at its coordinator.
pub type OpId = u64;

/// What the coordinator asks the shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send a request to a replica (possibly this node); answer with `on_response`.
    Send {
        /// The operation the answer belongs to.
        op: OpId,
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
    /// A read reached its quorum; the newest record (a tombstone or none means 404).
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
}

#[derive(Debug)]
enum Kind {
    Read {
        key: String,
        answers: Vec<(String, Option<Record>)>,
        newest: Option<Record>,
    },
    Write {
        version: Version,
        acks: usize,
    },
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

#[derive(Debug)]
struct GroupState {
    group: Group,
    succeeded: usize,
    failed: usize,
}

#[derive(Debug)]
struct Op {
    kind: Kind,
    groups: Vec<GroupState>,
    targets: usize,
    answered: Vec<String>,
    replied: bool,
    /// Replicas not asked yet (reads ask only as many as they need at first).
    spares: Vec<String>,
    request: Option<ReplicaRequest>,
}

impl Op {
    fn count(&mut self, from: &str, ok: bool) {
        for g in &mut self.groups {
            if g.group.replicas.iter().any(|r| r == from) {
                if ok {
                    g.succeeded += 1;
                } else {
                    g.failed += 1;
                }
            }
        }
    }

    fn reached(&self) -> bool {
        self.groups.iter().all(|g| g.succeeded >= g.group.needed)
    }

    fn impossible(&self) -> bool {
        self.groups
            .iter()
            .any(|g| g.group.replicas.len().saturating_sub(g.failed) < g.group.needed)
    }

    fn unavailable(&self) -> Outcome {
        // Report the group that cannot make it, else the first one still short.
        let g = self
            .groups
            .iter()
            .find(|g| g.group.replicas.len().saturating_sub(g.failed) < g.group.needed)
            .or_else(|| self.groups.iter().find(|g| g.succeeded < g.group.needed))
            .or(self.groups.first());
        match g {
            Some(g) => Outcome::Unavailable {
                needed: g.group.needed,
                succeeded: g.succeeded,
                failed: g.failed,
                replicas: g.group.replicas.len(),
            },
            None => Outcome::Unavailable {
                needed: 1,
                succeeded: 0,
                failed: 0,
                replicas: 0,
            },
        }
    }
}

fn targets_of(groups: &[Group]) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for g in groups {
        for r in &g.replicas {
            if !all.contains(r) {
                all.push(r.clone());
            }
        }
    }
    all
}

fn op_state(kind: Kind, groups: &[Group]) -> (Op, Vec<String>) {
    let targets = targets_of(groups);
    let op = Op {
        kind,
        groups: groups
            .iter()
            .map(|g| GroupState {
                group: g.clone(),
                succeeded: 0,
                failed: 0,
            })
            .collect(),
        targets: targets.len(),
        answered: Vec::with_capacity(targets.len()),
        replied: false,
        spares: Vec::new(),
        request: None,
    };
    (op, targets)
}

/// The state of every operation this node coordinates.
#[derive(Debug, Default)]
pub struct Coordinator {
    ops: HashMap<OpId, Op>,
    next: OpId,
}

impl Coordinator {
    /// No operation in flight.
    pub fn new() -> Coordinator {
        Coordinator::default()
    }

    /// Operations still tracked (awaiting answers or their timeout).
    pub fn in_flight(&self) -> usize {
        self.ops.len()
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
        let kind = Kind::Read {
            key: key.to_string(),
            answers: Vec::new(),
            newest: None,
        };
        let (mut state, mut targets) = op_state(kind, groups);
        let request = ReplicaRequest::Read {
            key: key.to_string(),
        };
        if let [only] = groups {
            let first = only.needed.min(targets.len());
            state.spares = targets.split_off(first);
            state.targets = targets.len();
            state.request = Some(request.clone());
        }
        self.start(op, state, &targets, request, out);
        op
    }

    /// The shell's speculative-retry delay passed: ask the spare replicas of a read
    /// that has not been answered yet.
    pub fn on_slow(&mut self, op: OpId, out: &mut Vec<Effect>) {
        if let Some(state) = self.ops.get_mut(&op) {
            if !state.replied {
                while let Some(to) = state.spares.pop() {
                    ask_spare(state, op, to, out);
                }
            }
        }
    }

    /// Starts a write of `record`, answered once every group reached its quorum.
    pub fn write(
        &mut self,
        key: &str,
        record: Record,
        groups: &[Group],
        out: &mut Vec<Effect>,
    ) -> OpId {
        let op = self.allocate();
        let kind = Kind::Write {
            version: record.version,
            acks: 0,
        };
        let (state, targets) = op_state(kind, groups);
        let request = ReplicaRequest::Write {
            key: key.to_string(),
            record,
        };
        self.start(op, state, &targets, request, out);
        op
    }

    fn start(
        &mut self,
        op: OpId,
        state: Op,
        targets: &[String],
        request: ReplicaRequest,
        out: &mut Vec<Effect>,
    ) {
        if targets.is_empty() || state.impossible() {
            out.push(Effect::Reply {
                op,
                outcome: state.unavailable(),
            });
            return;
        }
        for to in targets {
            out.push(Effect::Send {
                op,
                to: to.clone(),
                request: request.clone(),
            });
        }
        self.ops.insert(op, state);
    }

    /// A replica answered (or the shell reports that it could not be reached).
    pub fn on_response(
        &mut self,
        op: OpId,
        from: &str,
        response: ReplicaResponse,
        out: &mut Vec<Effect>,
    ) {
        let Some(state) = self.ops.get_mut(&op) else {
            return; // late answer of a finished operation
        };
        if state.answered.iter().any(|a| a == from) {
            return; // duplicate
        }
        state.answered.push(from.to_string());
        let ok = matches!(
            (&state.kind, &response),
            (Kind::Read { .. }, ReplicaResponse::Read(_))
                | (Kind::Write { .. }, ReplicaResponse::Written)
        );
        state.count(from, ok);
        match (&mut state.kind, response) {
            (
                Kind::Read {
                    answers,
                    newest,
                    key,
                },
                ReplicaResponse::Read(record),
            ) => {
                if Record::newest([newest.as_ref(), record.as_ref()]) != newest.as_ref() {
                    *newest = record.clone();
                    if state.replied {
                        // A late answer is newer than what the others hold: repair them.
                        for (name, _) in answers.iter() {
                            repair(out, name, key, newest);
                        }
                    }
                } else if state.replied
                    && record.as_ref().map(|r| r.version) != newest.as_ref().map(|r| r.version)
                {
                    repair(out, from, key, newest);
                }
                answers.push((from.to_string(), record));
            }
            (Kind::Write { acks, .. }, ReplicaResponse::Written) => *acks += 1,
            _ => {}
        }
        if !state.replied && state.reached() {
            state.replied = true;
            match &state.kind {
                Kind::Read {
                    answers,
                    newest,
                    key,
                } => {
                    out.push(Effect::Reply {
                        op,
                        outcome: Outcome::Read(newest.clone()),
                    });
                    let newest_version = newest.as_ref().map(|r| r.version);
                    for (name, rec) in answers.iter() {
                        if rec.as_ref().map(|r| r.version) != newest_version {
                            repair(out, name, key, newest);
                        }
                    }
                }
                Kind::Write { version, acks } => out.push(Effect::Reply {
                    op,
                    outcome: Outcome::Written {
                        version: *version,
                        acks: *acks,
                    },
                }),
            }
        }
        if !ok && !state.replied && !state.spares.is_empty() {
            let to = state.spares.remove(0);
            ask_spare(state, op, to, out);
        }
        if !state.replied && state.impossible() {
            // Too many failures: the quorum can no longer be reached, fail fast.
            state.replied = true;
            out.push(Effect::Reply {
                op,
                outcome: state.unavailable(),
            });
        }
        if state.answered.len() >= state.targets {
            self.ops.remove(&op);
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

fn ask_spare(state: &mut Op, op: OpId, to: String, out: &mut Vec<Effect>) {
    if let Some(request) = &state.request {
        state.targets += 1;
        out.push(Effect::Send {
            op,
            to,
            request: request.clone(),
        });
    }
}

fn repair(out: &mut Vec<Effect>, to: &str, key: &str, newest: &Option<Record>) {
    if let Some(record) = newest {
        out.push(Effect::Repair {
            to: to.to_string(),
            request: ReplicaRequest::Write {
                key: key.to_string(),
                record: record.clone(),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    fn rec(ts: u64, v: &'static str) -> Record {
        Record::value(Version { ts, node: 1 }, Bytes::from_static(v.as_bytes()))
    }

    fn replies(out: &[Effect]) -> Vec<&Outcome> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Reply { outcome, .. } => Some(outcome),
                _ => None,
            })
            .collect()
    }

    fn repairs(out: &[Effect]) -> Vec<&str> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Repair { to, .. } => Some(to.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_write_is_sent_to_every_replica_and_answered_at_w_acks() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let op = c.write("k", rec(5, "v"), &[Group::new(names(3), 2)], &mut out);
        assert_eq!(
            out.iter()
                .filter(|e| matches!(e, Effect::Send { .. }))
                .count(),
            3
        );
        out.clear();
        c.on_response(op, "n0", ReplicaResponse::Written, &mut out);
        assert!(replies(&out).is_empty(), "one ack of two must not answer");
        c.on_response(op, "n1", ReplicaResponse::Written, &mut out);
        assert_eq!(
            replies(&out),
            [&Outcome::Written {
                version: rec(5, "v").version,
                acks: 2
            }]
        );
        out.clear();
        c.on_response(op, "n2", ReplicaResponse::Written, &mut out);
        assert!(replies(&out).is_empty(), "exactly one answer per operation");
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn duplicate_acks_from_one_replica_do_not_make_a_quorum() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let op = c.write("k", rec(5, "v"), &[Group::new(names(3), 2)], &mut out);
        out.clear();
        c.on_response(op, "n0", ReplicaResponse::Written, &mut out);
        c.on_response(op, "n0", ReplicaResponse::Written, &mut out);
        assert!(replies(&out).is_empty());
    }

    #[test]
    fn a_timeout_before_the_quorum_answers_unavailable_with_counts() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let op = c.write("k", rec(5, "v"), &[Group::new(names(3), 2)], &mut out);
        c.on_response(op, "n0", ReplicaResponse::Written, &mut out);
        out.clear();
        c.on_timeout(op, &mut out);
        assert_eq!(
            replies(&out),
            [&Outcome::Unavailable {
                needed: 2,
                succeeded: 1,
                failed: 0,
                replicas: 3
            }]
        );
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn failures_that_make_the_quorum_impossible_answer_at_once() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let op = c.read("k", &[Group::new(names(3), 2)], &mut out);
        out.clear();
        c.on_response(op, "n0", ReplicaResponse::Error("down".into()), &mut out);
        assert!(replies(&out).is_empty());
        c.on_response(op, "n1", ReplicaResponse::Error("down".into()), &mut out);
        assert_eq!(
            replies(&out),
            [&Outcome::Unavailable {
                needed: 2,
                succeeded: 0,
                failed: 2,
                replicas: 3
            }]
        );
    }

    fn sends(out: &[Effect]) -> Vec<&str> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Send { to, .. } => Some(to.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_read_asks_only_r_replicas_and_a_failure_brings_in_a_spare() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let op = c.read("k", &[Group::new(names(3), 2)], &mut out);
        assert_eq!(sends(&out), ["n0", "n1"]);
        out.clear();
        c.on_response(op, "n1", ReplicaResponse::Error("down".into()), &mut out);
        assert_eq!(sends(&out), ["n2"]);
        assert!(
            replies(&out).is_empty(),
            "the spare can still make the quorum"
        );
        c.on_response(op, "n0", ReplicaResponse::Read(Some(rec(1, "v"))), &mut out);
        c.on_response(op, "n2", ReplicaResponse::Read(Some(rec(1, "v"))), &mut out);
        assert_eq!(replies(&out), [&Outcome::Read(Some(rec(1, "v")))]);
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn a_slow_read_asks_its_spares() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let op = c.read("k", &[Group::new(names(3), 2)], &mut out);
        c.on_response(op, "n0", ReplicaResponse::Read(None), &mut out);
        out.clear();
        c.on_slow(op, &mut out);
        assert_eq!(sends(&out), ["n2"]);
        c.on_response(op, "n2", ReplicaResponse::Read(Some(rec(4, "v"))), &mut out);
        assert_eq!(replies(&out), [&Outcome::Read(Some(rec(4, "v")))]);
        assert_eq!(repairs(&out), ["n0"]);
    }

    #[test]
    fn a_read_answers_the_newest_version_and_repairs_stale_and_missing_replicas() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let op = c.read("k", &[Group::new(names(3), 2)], &mut out);
        c.on_slow(op, &mut out); // ask every replica
        out.clear();
        c.on_response(
            op,
            "n0",
            ReplicaResponse::Read(Some(rec(1, "old"))),
            &mut out,
        );
        c.on_response(
            op,
            "n1",
            ReplicaResponse::Read(Some(rec(9, "new"))),
            &mut out,
        );
        assert_eq!(replies(&out), [&Outcome::Read(Some(rec(9, "new")))]);
        assert_eq!(repairs(&out), ["n0"]);
        out.clear();
        c.on_response(op, "n2", ReplicaResponse::Read(None), &mut out);
        assert_eq!(
            repairs(&out),
            ["n2"],
            "a late missing replica is repaired too"
        );
    }

    #[test]
    fn a_late_newer_answer_repairs_the_replicas_that_answered_before() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let op = c.read("k", &[Group::new(names(3), 1)], &mut out);
        c.on_slow(op, &mut out);
        c.on_response(op, "n0", ReplicaResponse::Read(None), &mut out);
        out.clear();
        c.on_response(op, "n1", ReplicaResponse::Read(Some(rec(3, "v"))), &mut out);
        assert_eq!(repairs(&out), ["n0"]);
        assert!(replies(&out).is_empty());
    }

    #[test]
    fn a_read_of_a_missing_key_answers_none_without_repairs() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let op = c.read("k", &[Group::new(names(2), 2)], &mut out);
        out.clear();
        c.on_response(op, "n0", ReplicaResponse::Read(None), &mut out);
        c.on_response(op, "n1", ReplicaResponse::Read(None), &mut out);
        assert_eq!(replies(&out), [&Outcome::Read(None)]);
        assert!(repairs(&out).is_empty());
    }

    #[test]
    fn during_a_transition_a_write_needs_a_quorum_in_both_groups() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let new = Group::new(vec!["b".into(), "c".into(), "d".into()], 2);
        let settled = Group::new(vec!["b".into(), "c".into()], 2);
        let op = c.write("k", rec(5, "v"), &[new, settled], &mut out);
        let sends = out
            .iter()
            .filter(|e| matches!(e, Effect::Send { .. }))
            .count();
        assert_eq!(sends, 3, "each replica is asked once");
        out.clear();
        c.on_response(op, "d", ReplicaResponse::Written, &mut out);
        c.on_response(op, "b", ReplicaResponse::Written, &mut out);
        assert!(
            replies(&out).is_empty(),
            "two acks of the new list but one of the settled list"
        );
        c.on_response(op, "c", ReplicaResponse::Written, &mut out);
        assert_eq!(replies(&out).len(), 1);
    }

    #[test]
    fn a_group_that_can_no_longer_reach_its_quorum_fails_the_request_at_once() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        let new = Group::new(vec!["c".into(), "d".into(), "e".into()], 2);
        let settled = Group::new(vec!["c".into()], 2); // two of its three members are dead
        c.read("k", &[new, settled], &mut out);
        assert_eq!(
            replies(&out),
            [&Outcome::Unavailable {
                needed: 2,
                succeeded: 0,
                failed: 0,
                replicas: 1
            }]
        );
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn no_replicas_answers_unavailable_at_once() {
        let mut c = Coordinator::new();
        let mut out = Vec::new();
        c.read("k", &[Group::new(vec![], 1)], &mut out);
        assert_eq!(replies(&out).len(), 1);
        assert_eq!(c.in_flight(), 0);
    }
}
