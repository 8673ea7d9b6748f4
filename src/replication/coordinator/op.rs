//! One coordinated operation: its phase (read, or write of one attempt), its
//! replica groups and what each replica answered.
//!
//! Invariant: only answers to the current attempt are counted, each replica at
//! most once; `replied` turns true exactly once. Pure.

use super::{Effect, Group, OpId, Outcome, WriteSpec};
use crate::replication::message::{PutCheck, ReplicaRequest, ReplicaResponse};
use crate::storage::Record;

#[derive(Debug)]
pub(super) enum Phase {
    Read {
        key: String,
        answers: Vec<(String, Option<Record>)>,
        newest: Option<Record>,
        /// A conditional write waiting for this read.
        then: Option<WriteSpec>,
    },
    Write {
        key: String,
        record: Record,
        check: PutCheck,
        acks: usize,
    },
}

#[derive(Debug)]
pub(super) struct GroupState {
    group: Group,
    succeeded: usize,
    failed: usize,
}

#[derive(Debug)]
pub(super) struct Op {
    pub(super) phase: Phase,
    groups: Vec<GroupState>,
    pub(super) targets: Vec<String>,
    pub(super) answered: Vec<String>,
    pub(super) replied: bool,
    /// Replicas not asked yet (reads ask only as many as they need at first).
    pub(super) spares: Vec<String>,
    pub(super) attempt: u32,
}

fn union(groups: &[Group]) -> Vec<String> {
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

impl Op {
    fn new(phase: Phase, groups: &[Group]) -> Op {
        Op {
            phase,
            groups: groups
                .iter()
                .map(|g| GroupState {
                    group: g.clone(),
                    succeeded: 0,
                    failed: 0,
                })
                .collect(),
            targets: union(groups),
            answered: Vec::new(),
            replied: false,
            spares: Vec::new(),
            attempt: 0,
        }
    }

    /// A read; with a single group only its first `needed` replicas are asked at first.
    pub(super) fn read(key: &str, groups: &[Group], then: Option<WriteSpec>) -> Op {
        let phase = Phase::Read {
            key: key.to_string(),
            answers: Vec::new(),
            newest: None,
            then,
        };
        let mut op = Op::new(phase, groups);
        if let [only] = groups {
            let first = only.needed.min(op.targets.len());
            op.spares = op.targets.split_off(first);
        }
        op
    }

    /// The first attempt of a write of `record` to every replica of every group.
    pub(super) fn write(key: &str, record: Record, check: PutCheck, groups: &[Group]) -> Op {
        let phase = Phase::Write {
            key: key.to_string(),
            record,
            check,
            acks: 0,
        };
        Op::new(phase, groups)
    }

    /// Starts the next attempt: a write of `record` to every replica, counts reset.
    pub(super) fn restart_write(&mut self, record: Record, check: PutCheck) {
        let key = match &self.phase {
            Phase::Read { key, .. } | Phase::Write { key, .. } => key.clone(),
        };
        self.phase = Phase::Write {
            key,
            record,
            check,
            acks: 0,
        };
        self.attempt += 1;
        for g in &mut self.groups {
            g.succeeded = 0;
            g.failed = 0;
        }
        let all: Vec<Group> = self.groups.iter().map(|g| g.group.clone()).collect();
        self.targets = union(&all);
        self.spares.clear();
        self.answered.clear();
    }

    pub(super) fn is_write(&self) -> bool {
        matches!(self.phase, Phase::Write { .. })
    }

    /// The value and expiry being written (to stamp a retry with a new version).
    pub(super) fn spec(&self) -> WriteSpec {
        match &self.phase {
            Phase::Write { record, .. } => WriteSpec {
                value: record.value.clone(),
                expires_ms: record.expires_ms,
                condition: None,
            },
            Phase::Read { then, .. } => then.clone().unwrap_or(WriteSpec::plain(None)),
        }
    }

    /// The newest record a read found so far.
    pub(super) fn newest(&self) -> Option<&Record> {
        match &self.phase {
            Phase::Read { newest, .. } => newest.as_ref(),
            Phase::Write { .. } => None,
        }
    }

    fn request(&self) -> ReplicaRequest {
        match &self.phase {
            Phase::Read { key, .. } => ReplicaRequest::Read {
                key: key.clone(),
                expect: None,
            },
            Phase::Write {
                key, record, check, ..
            } => ReplicaRequest::Put {
                key: key.clone(),
                record: record.clone(),
                check: *check,
            },
        }
    }

    pub(super) fn send_all(&self, op: OpId, out: &mut Vec<Effect>) {
        let request = self.request();
        for to in &self.targets {
            out.push(Effect::Send {
                op,
                attempt: self.attempt,
                to: to.clone(),
                request: request.clone(),
            });
        }
    }

    pub(super) fn ask_spare(&mut self, op: OpId, to: String, out: &mut Vec<Effect>) {
        out.push(Effect::Send {
            op,
            attempt: self.attempt,
            to: to.clone(),
            request: self.request(),
        });
        self.targets.push(to);
    }

    pub(super) fn count(&mut self, from: &str, ok: bool) {
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

    pub(super) fn impossible(&self) -> bool {
        self.groups
            .iter()
            .any(|g| g.group.replicas.len().saturating_sub(g.failed) < g.group.needed)
    }

    pub(super) fn unavailable(&self) -> Outcome {
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

    /// Counts an answer of the current attempt (refusals and errors as failures),
    /// keeps the newest record a read saw and repairs late stale answers.
    pub(super) fn on_answer(
        &mut self,
        op: OpId,
        from: &str,
        response: ReplicaResponse,
        out: &mut Vec<Effect>,
    ) {
        let replied = self.replied;
        let ok = match (&mut self.phase, response) {
            (
                Phase::Read {
                    key,
                    answers,
                    newest,
                    ..
                },
                ReplicaResponse::Read(record),
            ) => {
                if Record::newest([newest.as_ref(), record.as_ref()]) != newest.as_ref() {
                    *newest = record.clone();
                    if replied {
                        // A late answer is newer than what the others hold: repair them.
                        for (name, _) in answers.iter() {
                            repair(out, name, key, newest);
                        }
                    }
                } else if replied
                    && record.as_ref().map(|r| r.version) != newest.as_ref().map(|r| r.version)
                {
                    repair(out, from, key, newest);
                }
                answers.push((from.to_string(), record));
                true
            }
            (Phase::Write { acks, .. }, ReplicaResponse::Written) => {
                *acks += 1;
                true
            }
            _ => false,
        };
        self.count(from, ok);
        if !ok && !self.replied && !self.spares.is_empty() {
            let to = self.spares.remove(0);
            self.ask_spare(op, to, out);
        }
    }

    /// The write a conditional read was waiting for, once the read reached its quorum.
    pub(super) fn conditional_ready(&mut self) -> Option<WriteSpec> {
        if self.replied || !self.reached() {
            return None;
        }
        match &mut self.phase {
            Phase::Read { then, .. } => then.take(),
            Phase::Write { .. } => None,
        }
    }

    /// Answers the client once the quorum is reached (with read repairs) or can no
    /// longer be reached.
    pub(super) fn finish(&mut self, op: OpId, out: &mut Vec<Effect>) {
        if self.replied {
            return;
        }
        if self.reached() {
            self.replied = true;
            match &self.phase {
                Phase::Read {
                    answers,
                    newest,
                    key,
                    ..
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
                Phase::Write { record, acks, .. } => out.push(Effect::Reply {
                    op,
                    outcome: Outcome::Written {
                        version: record.version,
                        acks: *acks,
                    },
                }),
            }
        } else if self.impossible() {
            // Too many failures: the quorum can no longer be reached, fail fast.
            self.replied = true;
            out.push(Effect::Reply {
                op,
                outcome: self.unavailable(),
            });
        }
    }

    /// True once the client was answered and every replica asked answered.
    pub(super) fn done(&self) -> bool {
        self.replied && self.answered.len() >= self.targets.len()
    }
}
