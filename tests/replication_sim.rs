//! Quorum replication under a deterministic simulated network, checked against
//! its history.
//!
//! Five nodes `n0`..`n4`, each a real [`MemoryStore`], [`Coordinator`] and
//! [`Hlc`], on one fixed ring (N=3). Replica requests and answers travel through
//! a seeded event queue over virtual time (milliseconds, no sleeps, no runtime)
//! with a 1–10 ms delay, random loss, one partition window and one crash per run.
//! Three clients issue reads and writes of unique values over 20 keys through a
//! random live coordinator and the simulation records every operation's
//! invocation and completion. The checks:
//!
//! 1. no write is acknowledged before its record reached W replica stores;
//! 2. a successful read returns a value some write put there, and at least the
//!    version of every write acknowledged before the read was invoked (no stale
//!    read after an acknowledgement, which R + W > N must give under any loss,
//!    partition or crash);
//! 3. after the faults heal, a quorum read of every key returns at least its
//!    newest acknowledged write (every acknowledged write is read back unless
//!    overwritten).
//!
//! Out of scope: membership changes (the ring never changes, so there is a single
//! replica group per key and no handoff) and crashes that lose data. A crash here
//! is a process pause: the node answers nothing while down, keeps its store, and
//! its coordinator's timers fire when it resumes. Messages to a node that is down
//! are lost, as are messages between the two sides of a partition.
//!
//! A failing run names its seed in every assertion. To replay one seed:
//! `SWIMKV_SIM_SEED=7 cargo test --test replication_sim -- --nocapture`; to soak
//! over more seeds: `SWIMKV_SIM_SEEDS=200 cargo test --release --test replication_sim`.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use support::seeds;
use swimkv::replication::coordinator::{Coordinator, Effect, Group, Outcome};
use swimkv::replication::message::{ReplicaRequest, ReplicaResponse};
use swimkv::replication::quorum::{needed, Consistency};
use swimkv::ring::ring::Ring;
use swimkv::storage::hlc::Hlc;
use swimkv::storage::ops::serve;
use swimkv::storage::{MemoryStore, Record, Version};

const NODES: usize = 5;
const N: usize = 3;
const KEYS: usize = 20;
const CLIENTS: usize = 3;
const TIMEOUT_MS: u64 = 200;
const SLOW_MS: u64 = 50;

#[derive(Clone, Copy, Debug)]
struct Config {
    r: usize,
    w: usize,
    loss: f64,
    ops: usize,
}

#[derive(Debug)]
enum Ev {
    /// A client issues its next operation.
    Client(usize),
    /// A replica request (`op` is `None` for a read repair nobody waits for).
    Request {
        from: usize,
        to: usize,
        op: Option<u64>,
        request: ReplicaRequest,
    },
    /// A replica's answer to a coordinator.
    Response {
        from: usize,
        to: usize,
        op: u64,
        response: ReplicaResponse,
    },
    Timeout {
        node: usize,
        op: u64,
    },
    Slow {
        node: usize,
        op: u64,
    },
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the heap pops the earliest event first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One partition window and one crash (a pause that keeps the store).
#[derive(Debug)]
struct Faults {
    partition: (u64, u64),
    side: [bool; NODES],
    crash: (u64, u64),
    crashed: usize,
}

impl Faults {
    fn random(rng: &mut StdRng) -> Faults {
        let start = rng.gen_range(500..6_000);
        let partition = (start, start + rng.gen_range(500..3_000));
        let mut side = [false; NODES];
        for _ in 0..rng.gen_range(1..=2) {
            side[rng.gen_range(0..NODES)] = true;
        }
        let start = rng.gen_range(500..8_000);
        Faults {
            partition,
            side,
            crash: (start, start + rng.gen_range(300..3_000)),
            crashed: rng.gen_range(0..NODES),
        }
    }
}

#[derive(Clone, Debug)]
enum Kind {
    Read,
    Write { version: Version, value: Bytes },
}

#[derive(Clone, Debug)]
struct Entry {
    /// `None` for the final check reads.
    client: Option<usize>,
    invoke: u64,
    complete: Option<u64>,
    key: usize,
    kind: Kind,
    outcome: Option<Outcome>,
}

#[derive(Debug, Default)]
struct Report {
    ops: usize,
    writes_acked: usize,
    reads_ok: usize,
    unavailable: usize,
    stale_reads: usize,
    violations: Vec<String>,
}

struct Sim {
    seed: u64,
    cfg: Config,
    rng: StdRng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Queued>,
    names: Vec<String>,
    ring: Ring,
    stores: Vec<MemoryStore>,
    coords: Vec<Coordinator>,
    hlcs: Vec<Hlc>,
    faults: Faults,
    healed: bool,
    /// (coordinator, op) -> history index.
    pending: HashMap<(usize, u64), usize>,
    /// (coordinator, write op) -> replicas whose store served the write.
    applied: HashMap<(usize, u64), BTreeSet<usize>>,
    history: Vec<Entry>,
    issued: [usize; CLIENTS],
    violations: Vec<String>,
}

fn key_name(k: usize) -> String {
    format!("key-{k}")
}

impl Sim {
    fn new(seed: u64, cfg: Config) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let names: Vec<String> = (0..NODES).map(|i| format!("n{i}")).collect();
        let faults = Faults::random(&mut rng);
        let mut sim = Sim {
            seed,
            cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            ring: Ring::new(1, names.clone(), 64),
            names,
            stores: (0..NODES).map(|_| MemoryStore::new()).collect(),
            coords: (0..NODES).map(|_| Coordinator::new()).collect(),
            hlcs: (0..NODES).map(|i| Hlc::new(i as u64 + 1)).collect(),
            faults,
            healed: false,
            pending: HashMap::new(),
            applied: HashMap::new(),
            history: Vec::new(),
            issued: [0; CLIENTS],
            violations: Vec::new(),
        };
        for c in 0..CLIENTS {
            let at = sim.rng.gen_range(0..20);
            sim.push(at, Ev::Client(c));
        }
        sim
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn up(&self, node: usize) -> bool {
        let (from, to) = self.faults.crash;
        self.healed || node != self.faults.crashed || self.now < from || self.now >= to
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        let (from, to) = self.faults.partition;
        self.healed
            || a == b
            || self.now < from
            || self.now >= to
            || self.faults.side[a] == self.faults.side[b]
    }

    /// Sends a message: lost at random (between distinct nodes), else queued with
    /// a delay; partitions and crashes are judged when it arrives.
    fn send(&mut self, from: usize, to: usize, ev: Ev) {
        if from != to && !self.healed && self.rng.gen_bool(self.cfg.loss) {
            return;
        }
        let delay = if from == to {
            1
        } else {
            self.rng.gen_range(1..=10)
        };
        self.push(self.now + delay, ev);
    }

    fn groups(&self, node: usize, key: &str, configured: usize) -> Vec<Group> {
        let mut replicas: Vec<String> = self
            .ring
            .locate(key.as_bytes(), N)
            .into_iter()
            .map(str::to_string)
            .collect();
        // This node first, as the replication actor orders them.
        if let Some(i) = replicas.iter().position(|m| *m == self.names[node]) {
            replicas[..=i].rotate_right(1);
        }
        let need = needed(Consistency::Quorum, configured, replicas.len());
        vec![Group::new(replicas, need)]
    }

    fn index(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).unwrap()
    }

    /// Starts an operation at coordinator `node` and records it in the history.
    fn start(&mut self, node: usize, client: Option<usize>, key: usize, write: Option<Bytes>) {
        let name = key_name(key);
        let mut out = Vec::new();
        let (op, kind) = match write {
            Some(value) => {
                let version = self.hlcs[node].tick(self.now);
                let record = Record::value(version, value.clone());
                let groups = self.groups(node, &name, self.cfg.w);
                let op = self.coords[node].write(&name, record, &groups, &mut out);
                (op, Kind::Write { version, value })
            }
            None => {
                let groups = self.groups(node, &name, self.cfg.r);
                let op = self.coords[node].read(&name, &groups, &mut out);
                self.push(self.now + SLOW_MS, Ev::Slow { node, op });
                (op, Kind::Read)
            }
        };
        self.pending.insert((node, op), self.history.len());
        self.history.push(Entry {
            client,
            invoke: self.now,
            complete: None,
            key,
            kind,
            outcome: None,
        });
        self.push(self.now + TIMEOUT_MS, Ev::Timeout { node, op });
        self.effects(node, out);
    }

    fn client_op(&mut self, client: usize) {
        if self.issued[client] >= self.cfg.ops / CLIENTS {
            return;
        }
        let i = self.issued[client];
        self.issued[client] += 1;
        let live: Vec<usize> = (0..NODES).filter(|&n| self.up(n)).collect();
        let node = live[self.rng.gen_range(0..live.len())];
        let key = self.rng.gen_range(0..KEYS);
        let write = self
            .rng
            .gen_bool(0.5)
            .then(|| Bytes::from(format!("c{client}-{i}")));
        self.start(node, Some(client), key, write);
    }

    fn effects(&mut self, node: usize, out: Vec<Effect>) {
        for effect in out {
            match effect {
                Effect::Send { op, to, request } => {
                    let to = self.index(&to);
                    let ev = Ev::Request {
                        from: node,
                        to,
                        op: Some(op),
                        request,
                    };
                    self.send(node, to, ev);
                }
                Effect::Repair { to, request } => {
                    let to = self.index(&to);
                    let ev = Ev::Request {
                        from: node,
                        to,
                        op: None,
                        request,
                    };
                    self.send(node, to, ev);
                }
                Effect::Reply { op, outcome } => self.reply(node, op, outcome),
            }
        }
    }

    fn reply(&mut self, node: usize, op: u64, outcome: Outcome) {
        let seed = self.seed;
        let Some(idx) = self.pending.remove(&(node, op)) else {
            self.violations.push(format!(
                "seed {seed}: a second reply (or a reply of an unknown op) {op} at n{node}: {outcome:?}"
            ));
            return;
        };
        let applied = self.applied.remove(&(node, op)).unwrap_or_default();
        let entry = &mut self.history[idx];
        entry.complete = Some(self.now);
        if let Outcome::Written { version, .. } = &outcome {
            match &entry.kind {
                Kind::Write { version: v, .. } if v == version => {
                    if applied.len() < self.cfg.w {
                        self.violations.push(format!(
                            "seed {seed}: write {version:?} of key-{} acknowledged at t={} having reached only {applied:?} (W={})",
                            entry.key, self.now, self.cfg.w
                        ));
                    }
                }
                other => self.violations.push(format!(
                    "seed {seed}: op {op} at n{node} answered Written {version:?} for {other:?}"
                )),
            }
        }
        if matches!(
            (&entry.kind, &outcome),
            (Kind::Write { .. }, Outcome::Read(_))
        ) {
            self.violations.push(format!(
                "seed {seed}: a write answered as a read: {outcome:?}"
            ));
        }
        entry.outcome = Some(outcome);
        if let Some(client) = entry.client {
            let think = self.rng.gen_range(0..=20);
            self.push(self.now + think, Ev::Client(client));
        }
    }

    /// Runs one event; false when the queue is empty.
    fn step(&mut self) -> bool {
        let Some(q) = self.queue.pop() else {
            return false;
        };
        self.now = q.at;
        match q.ev {
            Ev::Client(c) => self.client_op(c),
            Ev::Request {
                from,
                to,
                op,
                request,
            } => {
                if !self.up(to) || !self.linked(from, to) {
                    return true;
                }
                if let (Some(op), ReplicaRequest::Write { .. }) = (op, &request) {
                    self.applied.entry((from, op)).or_default().insert(to);
                }
                let response = serve(&mut self.stores[to], request);
                if let Some(op) = op {
                    let ev = Ev::Response {
                        from: to,
                        to: from,
                        op,
                        response,
                    };
                    self.send(to, from, ev);
                }
            }
            Ev::Response {
                from,
                to,
                op,
                response,
            } => {
                if !self.up(to) || !self.linked(from, to) {
                    return true;
                }
                if let ReplicaResponse::Read(Some(r)) = &response {
                    self.hlcs[to].observe(r.version);
                }
                let mut out = Vec::new();
                let from = self.names[from].clone();
                self.coords[to].on_response(op, &from, response, &mut out);
                self.effects(to, out);
            }
            Ev::Timeout { node, op } | Ev::Slow { node, op } if !self.up(node) => {
                // A paused process handles its timers when it resumes.
                let ev = match q.ev {
                    Ev::Timeout { .. } => Ev::Timeout { node, op },
                    _ => Ev::Slow { node, op },
                };
                self.push(self.faults.crash.1, ev);
            }
            Ev::Timeout { node, op } => {
                let mut out = Vec::new();
                self.coords[node].on_timeout(op, &mut out);
                self.effects(node, out);
            }
            Ev::Slow { node, op } => {
                let mut out = Vec::new();
                self.coords[node].on_slow(op, &mut out);
                self.effects(node, out);
            }
        }
        true
    }

    fn run(mut self) -> Report {
        let seed = self.seed;
        while self.step() {}
        let workload_end = self.now;
        // Heal every fault, stop losing messages, let repairs and timers settle.
        self.healed = true;
        while self.step() {}
        for (i, c) in self.coords.iter().enumerate() {
            assert_eq!(
                c.in_flight(),
                0,
                "seed {seed}: n{i} still tracks operations"
            );
        }
        // Final quorum reads of every key, each through a random node.
        let finals = self.history.len();
        for key in 0..KEYS {
            let node = self.rng.gen_range(0..NODES);
            self.start(node, None, key, None);
            while self.step() {}
        }
        assert!(
            self.pending.is_empty(),
            "seed {seed}: operations never answered: {:?}",
            self.pending
        );
        let mut report = self.check(finals);
        println!(
            "seed {seed:>3}: {} ops ({} writes acked, {} reads ok, {} unavailable) over {workload_end} ms; \
             partition {:?} of {:?}, n{} down {:?}; {} violations",
            report.ops,
            report.writes_acked,
            report.reads_ok,
            report.unavailable,
            self.faults.partition,
            self.faults.side,
            self.faults.crashed,
            self.faults.crash,
            report.violations.len()
        );
        report.violations.splice(0..0, self.violations);
        report
    }

    /// Checks the history; `finals` is the index of the first final read.
    fn check(&self, finals: usize) -> Report {
        let seed = self.seed;
        let mut report = Report::default();
        let mut written: HashMap<Version, (usize, Bytes)> = HashMap::new();
        // Acknowledged writes per key: (complete time, version).
        let mut acked: Vec<Vec<(u64, Version)>> = vec![Vec::new(); KEYS];
        for e in &self.history {
            if let Kind::Write { version, value } = &e.kind {
                written.insert(*version, (e.key, value.clone()));
                if let (Some(Outcome::Written { .. }), Some(t)) = (&e.outcome, e.complete) {
                    acked[e.key].push((t, *version));
                }
            }
        }
        for (i, e) in self.history.iter().enumerate() {
            let workload = i < finals;
            if workload {
                report.ops += 1;
            }
            match &e.outcome {
                Some(Outcome::Unavailable { .. }) if workload => report.unavailable += 1,
                Some(Outcome::Unavailable { .. }) => report.violations.push(format!(
                    "seed {seed}: final read of key-{} unavailable with every fault healed",
                    e.key
                )),
                Some(Outcome::Written { .. }) => report.writes_acked += 1,
                Some(Outcome::Read(got)) => {
                    if workload {
                        report.reads_ok += 1;
                    }
                    if let Some(r) = got {
                        let origin = written.get(&r.version);
                        if origin != Some(&(e.key, r.value.clone().unwrap_or_default())) {
                            report.violations.push(format!(
                                "seed {seed}: read of key-{} returned {r:?}, which no write of that key put there (origin {origin:?})",
                                e.key
                            ));
                        }
                    }
                    // Final reads must see every acknowledged write; the others every
                    // write acknowledged before they were invoked.
                    let floor = acked[e.key]
                        .iter()
                        .filter(|(t, _)| !workload || *t < e.invoke)
                        .map(|(_, v)| *v)
                        .max();
                    let seen = got.as_ref().map(|r| r.version);
                    if seen < floor {
                        report.stale_reads += 1;
                        report.violations.push(format!(
                            "seed {seed}: {} read of key-{} invoked at t={} returned {seen:?}, older than the acknowledged {floor:?}",
                            if workload { "a" } else { "the final" },
                            e.key,
                            e.invoke
                        ));
                    }
                }
                None => report
                    .violations
                    .push(format!("seed {seed}: operation {e:?} never completed")),
            }
        }
        report
    }
}

fn simulate(seed: u64, cfg: Config) -> Report {
    Sim::new(seed, cfg).run()
}

const QUORUM: Config = Config {
    r: 2,
    w: 2,
    loss: 0.05,
    ops: 2_001,
};

#[test]
fn quorum_reads_and_writes_keep_every_acknowledged_write_under_loss_partitions_and_crashes() {
    let mut totals = Report::default();
    for seed in seeds(20) {
        let report = simulate(seed, QUORUM);
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {} violations, first ones:\n{}",
            report.violations.len(),
            report.violations[..report.violations.len().min(10)].join("\n")
        );
        assert!(
            report.writes_acked > 0 && report.reads_ok > 0,
            "seed {seed}: the workload did nothing: {report:?}"
        );
        totals.ops += report.ops;
        totals.writes_acked += report.writes_acked;
        totals.reads_ok += report.reads_ok;
        totals.unavailable += report.unavailable;
    }
    println!("total: {totals:?}");
    assert!(
        totals.unavailable > 0,
        "the faults never made a quorum unreachable: the simulation is too gentle"
    );
}

#[test]
fn the_history_check_catches_stale_reads_when_r_plus_w_does_not_exceed_n() {
    // R = W = 1 gives no overlap: the same faults must produce a stale read in
    // some seed, or the checks above prove nothing.
    let sloppy = Config {
        r: 1,
        w: 1,
        ..QUORUM
    };
    let stale: usize = seeds(20)
        .into_iter()
        .map(|seed| simulate(seed, sloppy).stale_reads)
        .sum();
    assert!(
        stale > 0,
        "no stale read found with R=W=1 over the seeds {:?}",
        seeds(20)
    );
}
