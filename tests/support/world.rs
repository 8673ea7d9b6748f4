//! A deterministic simulator of whole swimkv nodes in one thread.
//!
//! Every node runs the real cores the actors wrap: [`Swim`] (membership), a
//! [`RingSnapshot`] rebuilt from its live members as the ring actor does, the
//! [`Stabilizer`] (handoff walks, transitions, authority, leave), a
//! [`Coordinator`] with the real [`Placement`], and a [`Replica`]. This module
//! is the shells: it carries out the cores' effects over a seeded network with
//! virtual time, exactly as `membership/actor.rs`, `ring/actor.rs`,
//! `replication/stabilizer.rs`, `replication/actor.rs` and `storage/actor.rs`
//! do (hints and anti-entropy, which only ever merge, are left out).
//!
//! - SWIM datagrams may be lost (`udp_loss`) and arrive after a random delay.
//! - Peer RPC is reliable between running nodes on the same side: a call to a
//!   node that is down fails at once (connection refused), a call across a
//!   partition fails when the request timeout passes.
//! - A crash ends a process: its timers, pending calls and client operations
//!   vanish (an operation never answered is indeterminate). A restart starts a new
//!   process (a higher generation) with an empty store, or with the old store
//!   (a durable node), joining through the introducers given.
//! - A partition cuts SWIM and RPC between two sides.
//!
//! The world also checks, on every acknowledgement, that the version written was
//! stored by at least W distinct replicas; violations are collected, with the
//! seed, in [`World::violations`].

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use swimkv::config::{StabilizeConfig, SwimConfig};
use swimkv::membership::message::Datagram;
use swimkv::membership::{Effect as SwimEffect, LiveMember, Swim, Timer};
use swimkv::replication::coordinator::{
    Coordinator, Effect as CoordEffect, OpId, Outcome, WriteSpec,
};
use swimkv::replication::handoff::WalkEffect;
use swimkv::replication::message::{ReplicaRequest, ReplicaResponse};
use swimkv::replication::placement::{Placement, Quorums};
use swimkv::replication::quorum::Consistency;
use swimkv::replication::stabilization::{StabilizeEffect, Stabilizer};
use swimkv::ring::RingSnapshot;
use swimkv::storage::{Record, Replica, Version};
use swimkv::transport::wire::HEADER_LEN;

/// Virtual time 0 on the wall clock (ms since 1970).
pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// The settings of every simulated node.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    /// SWIM timings.
    pub swim: SwimConfig,
    /// Stabilization settings.
    pub stabilize: StabilizeConfig,
    /// N, R, W.
    pub quorums: Quorums,
    /// How long a coordinator waits for replicas, and a call across a partition
    /// takes to fail.
    pub request_timeout_ms: u64,
    /// Speculative retry of reads.
    pub speculative_ms: u64,
    /// Probability that a SWIM datagram is lost.
    pub udp_loss: f64,
    /// One-way delays, inclusive, in milliseconds.
    pub delay_ms: (u64, u64),
    /// Virtual nodes per member.
    pub vnodes: u32,
    /// A rule broken on purpose, to show the checker catches it.
    pub broken: Broken,
}

/// A rule of the real system the world breaks on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// Every rule holds.
    Nothing,
    /// Pending replicas answer reads as authorities, and replicas ignore the
    /// store generation a coordinator expects.
    PendingIsAuthority,
    /// Coordinators use the current preference list only: no settled group
    /// during transitions, no returning or haunted rings.
    NoJointQuorum,
    /// No haunted rings.
    NoHaunting,
    /// No returning ring after a heal.
    NoReturning,
    /// A process coordinates as soon as it has joined, before its view settled.
    ServeEarly,
    /// Replicas answer "missing" for keys they do not own (as for keys they do).
    NoOwnership,
}

impl Default for WorldConfig {
    fn default() -> Self {
        let stabilize = StabilizeConfig {
            batch_keys: 64,
            ..StabilizeConfig::default()
        };
        WorldConfig {
            swim: SwimConfig::default(),
            stabilize,
            quorums: Quorums { n: 3, r: 2, w: 2 },
            request_timeout_ms: 500,
            speculative_ms: 50,
            udp_loss: 0.01,
            delay_ms: (1, 4),
            vnodes: 16,
            broken: Broken::Nothing,
        }
    }
}

/// What a finished client operation was.
#[derive(Clone, Debug)]
pub struct Done {
    /// The coordinator.
    pub node: usize,
    /// The coordinator's process epoch.
    pub epoch: u64,
    /// The operation id at that coordinator.
    pub op: OpId,
    /// When it was answered.
    pub at: u64,
    /// How.
    pub outcome: Outcome,
}

/// One running process.
pub struct Process {
    /// Incremented at every start; events of another epoch are stale.
    pub epoch: u64,
    /// The SWIM core.
    pub swim: Swim,
    /// The last snapshot handed to the stabilizer.
    pub snapshot: RingSnapshot,
    live: Vec<LiveMember>,
    members_not_left: usize,
    dead: Vec<(String, u64)>,
    merged: bool,
    /// The stabilizer core.
    pub stab: Stabilizer,
    /// The placement the coordinator uses.
    pub placement: Option<Placement>,
    /// The coordinator core.
    pub coord: Coordinator,
    /// The replica.
    pub replica: Replica,
    /// Started at (virtual ms).
    pub started: u64,
    /// Leaving gracefully.
    pub leaving: bool,
    /// Exits once the leave announced itself.
    pub exiting: bool,
}

/// One node (a name), running or not.
pub struct Node {
    /// Its name.
    pub name: String,
    /// The running process, if any.
    pub process: Option<Process>,
    /// The replica of the last process, kept for a restart with its data.
    pub last_replica: Option<Replica>,
    /// The last process was a pending replica when it ended.
    pub last_pending: bool,
    /// Epochs started so far.
    pub epochs: u64,
    /// Partition side.
    pub side: u32,
}

enum Call {
    Replica {
        op: Option<(OpId, u32)>,
        request: ReplicaRequest,
    },
    Push {
        walk: u64,
        records: Vec<(String, Record)>,
    },
    Synced {
        fingerprint: u64,
        haunted: Vec<Vec<(String, u64)>>,
    },
}

enum Reply {
    Replica {
        op: OpId,
        attempt: u32,
        response: ReplicaResponse,
    },
    Pushed {
        walk: u64,
        ok: bool,
        count: u64,
    },
}

enum Ev {
    Datagram {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    },
    SwimTimer {
        node: usize,
        epoch: u64,
        timer: Timer,
    },
    StabTick {
        node: usize,
        epoch: u64,
    },
    WalkPage {
        node: usize,
        epoch: u64,
        walk: u64,
        after: Option<String>,
        limit: usize,
    },
    Rpc {
        from: usize,
        from_epoch: u64,
        to: usize,
        call: Call,
    },
    RpcReply {
        from: usize,
        to: usize,
        to_epoch: u64,
        reply: Reply,
    },
    OpTimeout {
        node: usize,
        epoch: u64,
        op: OpId,
    },
    OpSlow {
        node: usize,
        epoch: u64,
        op: OpId,
    },
    Exit {
        node: usize,
        epoch: u64,
    },
    Hook(u64),
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
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The simulated cluster.
pub struct World {
    /// The seed of this run.
    pub seed: u64,
    /// Settings.
    pub config: WorldConfig,
    /// Every node ever started, by index.
    pub nodes: Vec<Node>,
    /// Client operations answered since the driver last drained them.
    pub done: Vec<Done>,
    /// Rule violations seen by the world itself (acks below W).
    pub violations: Vec<String>,
    /// Reads answered "not authoritative", over all replicas.
    pub not_authoritative: u64,
    /// Print every request about this key, with the groups it was sent to.
    pub trace_key: Option<String>,
    /// Every process start: (node, virtual time).
    pub starts: Vec<(usize, u64)>,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    rng: StdRng,
    index: HashMap<String, usize>,
    /// (coordinator, epoch, op) -> version -> replicas that stored it.
    stored: HashMap<(usize, u64, OpId), HashMap<Version, BTreeSet<usize>>>,
}

/// The name of node `i`.
pub fn node_name(i: usize) -> String {
    format!("10.0.0.{}:7000", i + 1)
}

impl World {
    /// A world of no nodes yet.
    pub fn new(seed: u64, config: WorldConfig) -> World {
        World {
            seed,
            config,
            nodes: Vec::new(),
            done: Vec::new(),
            violations: Vec::new(),
            not_authoritative: 0,
            trace_key: std::env::var("SWIMKV_SIM_TRACE_KEY").ok(),
            starts: Vec::new(),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            rng: StdRng::seed_from_u64(mix(seed)),
            index: HashMap::new(),
            stored: HashMap::new(),
        }
    }

    /// Virtual time now.
    pub fn now(&self) -> u64 {
        self.now
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        }));
    }

    /// Calls the driver back with `id` at `at`.
    pub fn hook(&mut self, at: u64, id: u64) {
        self.push(at, Ev::Hook(id));
    }

    fn delay(&mut self) -> u64 {
        let (lo, hi) = self.config.delay_ms;
        self.rng.gen_range(lo..=hi.max(lo))
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.nodes[a].side == self.nodes[b].side
    }

    /// True when node `i` runs.
    pub fn up(&self, i: usize) -> bool {
        self.nodes[i].process.as_ref().is_some_and(|p| !p.exiting)
    }

    /// Nodes that run.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.up(i)).collect()
    }

    /// The running process of node `i`.
    pub fn process(&self, i: usize) -> Option<&Process> {
        self.nodes[i].process.as_ref()
    }

    /// True when node `i` runs and would serve `/d/` (the joined flag of the
    /// membership actor).
    pub fn joined(&self, i: usize) -> bool {
        self.process(i).is_some_and(|p| p.swim.joined(self.now))
    }

    /// True when node `i` runs and is a pending replica.
    pub fn pending(&self, i: usize) -> bool {
        self.process(i).is_some_and(|p| p.swim.me().pending)
    }

    /// Adds a node (not started); returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let name = node_name(i);
        self.index.insert(name.clone(), i);
        self.nodes.push(Node {
            name,
            process: None,
            last_replica: None,
            last_pending: false,
            epochs: 0,
            side: 0,
        });
        i
    }

    /// Starts node `i` joining through `introducers` (names), with its last
    /// store (`keep_data`) or an empty one.
    pub fn start(&mut self, i: usize, introducers: Vec<String>, keep_data: bool) {
        let cfg = self.config.clone();
        self.starts.push((i, self.now));
        let node = &mut self.nodes[i];
        node.epochs += 1;
        let epoch = node.epochs;
        let generation = epoch * 1_000_000 + self.now;
        let kept = if keep_data {
            node.last_replica.take()
        } else {
            None
        };
        let fresh = kept.is_none();
        // A new process opens a new replica over the store it kept: a leave
        // under way, or the rings it owned keys on, end with the process.
        let mut replica = match kept {
            Some(old) => {
                let store = old.store_gen();
                Replica::open(old.into_engine(), store, 500).expect("in memory")
            }
            None => Replica::new(generation, 500),
        };
        let store = replica.store_gen();
        // A store kept across a crash stays pending if it was: its handoff is
        // not complete (a durable node remembers this in its data directory).
        let pending = (fresh && !introducers.is_empty()) || (!fresh && node.last_pending);
        replica.set_authoritative(!pending);
        let name = node.name.clone();
        let rng = StdRng::seed_from_u64(mix(self.seed ^ mix((i as u64) << 20 | epoch)));
        let budget = cfg.swim.max_datagram_bytes - HEADER_LEN;
        let swim = Swim::new(
            name.clone(),
            generation,
            7000,
            cfg.swim.clone(),
            budget,
            rng,
        )
        .with_store(store, pending)
        .with_wall_base(EPOCH_MS + self.now);
        let me = LiveMember::of(swim.me());
        let live = vec![me];
        let snapshot = RingSnapshot::new(1, &live, cfg.vnodes, 1).joined(false);
        let tiebreak = swimkv::replication::actor::node_tiebreak(&name);
        node.process = Some(Process {
            epoch,
            swim,
            snapshot: snapshot.clone(),
            live,
            members_not_left: 1,
            dead: Vec::new(),
            merged: false,
            stab: Stabilizer::new(name, cfg.quorums.n, cfg.quorums.w, cfg.stabilize.clone()),
            placement: None,
            coord: Coordinator::new(tiebreak, 500),
            replica,
            started: self.now,
            leaving: false,
            exiting: false,
        });
        let now = self.now;
        let mut out = Vec::new();
        if let Some(p) = self.nodes[i].process.as_mut() {
            p.swim.start(now, introducers, &mut out);
        }
        self.swim_effects(i, out);
        let mut s = Vec::new();
        if let Some(p) = self.nodes[i].process.as_mut() {
            p.stab.on_ring(snapshot, false, now, &mut s);
        }
        self.stab_effects(i, s);
        self.push(now + 1_000, Ev::StabTick { node: i, epoch });
    }

    /// Crashes node `i`: its process ends at once.
    pub fn crash(&mut self, i: usize) {
        if let Some(p) = self.nodes[i].process.take() {
            self.nodes[i].last_pending = p.swim.me().pending;
            self.nodes[i].last_replica = Some(p.replica);
        }
    }

    /// Starts a graceful leave of node `i` (the process exits once it announced it).
    pub fn leave(&mut self, i: usize) {
        let mut out = Vec::new();
        if let Some(p) = self.nodes[i].process.as_mut() {
            if p.leaving {
                return;
            }
            p.leaving = true;
            p.stab.leave(false, &mut out);
        }
        self.stab_effects(i, out);
    }

    /// Cuts the network between the nodes of `side` and the others.
    pub fn partition(&mut self, side: &BTreeSet<usize>) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.side = u32::from(side.contains(&i));
        }
    }

    /// Removes the partition.
    pub fn heal(&mut self) {
        self.nodes.iter_mut().for_each(|n| n.side = 0);
    }

    /// True while a partition is cut.
    pub fn partitioned(&self) -> bool {
        self.nodes.iter().any(|n| n.side != 0)
    }

    /// A client request to node `i`: a read (`write: None`) or a write of
    /// `value` (`Some(None)` deletes). `None` when the node does not run or has
    /// not joined (it answers 503 at once).
    pub fn client(
        &mut self,
        i: usize,
        key: &str,
        write: Option<Option<Bytes>>,
    ) -> Option<(u64, OpId)> {
        let early = self.config.broken == Broken::ServeEarly;
        if !self.up(i)
            || !self.joined(i)
            || !(early || self.process(i).is_some_and(|p| p.stab.serving()))
        {
            return None;
        }
        let me = self.nodes[i].name.clone();
        let now = self.now;
        let q = self.config.quorums;
        let p = self.nodes[i].process.as_mut()?;
        let groups = match &p.placement {
            Some(pl) => pl.groups(&me, key, Consistency::Quorum, q, write.is_some()),
            None => Vec::new(),
        };
        if self.trace_key.as_deref() == Some(key) {
            let ring = p.placement.as_ref().map(|pl| {
                (
                    pl.current
                        .ring
                        .identities()
                        .map(|(m, s)| format!("{}:{s}", &m[7..9]))
                        .collect::<Vec<_>>(),
                    pl.previous.as_ref().map(|r| {
                        r.identities()
                            .map(|(m, s)| format!("{}:{s}", &m[7..9]))
                            .collect::<Vec<_>>()
                    }),
                    pl.haunted.len(),
                )
            });
            println!(
                "t={now} n{i} {} {key}: groups {groups:?} ring {ring:?}",
                if write.is_some() { "writes" } else { "reads" }
            );
        }
        let mut out = Vec::new();
        let op = match write {
            Some(value) => p.coord.write(
                key,
                WriteSpec::plain(value),
                &groups,
                EPOCH_MS + now,
                &mut out,
            ),
            None => p.coord.read(key, &groups, &mut out),
        };
        let epoch = p.epoch;
        let timeout = self.config.request_timeout_ms;
        let slow = self.config.speculative_ms;
        self.push(now + timeout, Ev::OpTimeout { node: i, epoch, op });
        self.push(now + slow, Ev::OpSlow { node: i, epoch, op });
        self.coord_effects(i, out);
        Some((epoch, op))
    }

    /// Runs every event up to `t`, handing hooks to `driver`.
    pub fn run_until(&mut self, t: u64, driver: &mut dyn FnMut(&mut World, u64)) {
        while let Some(Reverse(top)) = self.queue.peek() {
            if top.at > t {
                break;
            }
            let Some(Reverse(q)) = self.queue.pop() else {
                break;
            };
            self.now = q.at;
            if let Ev::Hook(id) = q.ev {
                driver(self, id);
            } else {
                self.handle(q.ev);
            }
        }
        self.now = self.now.max(t);
    }

    fn epoch_of(&self, i: usize) -> Option<u64> {
        self.process(i).map(|p| p.epoch)
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Hook(_) => {}
            Ev::Datagram { from, to, bytes } => {
                if !self.up(to) || !self.linked(from, to) {
                    return;
                }
                let Ok(d) = Datagram::decode(&bytes) else {
                    self.violations
                        .push(format!("seed {}: undecodable datagram", self.seed));
                    return;
                };
                let mut out = Vec::new();
                if let Some(p) = self.nodes[to].process.as_mut() {
                    p.swim.on_datagram(now, d, &mut out);
                }
                self.swim_effects(to, out);
            }
            Ev::SwimTimer { node, epoch, timer } => {
                if self.epoch_of(node) != Some(epoch) {
                    return;
                }
                let mut out = Vec::new();
                if let Some(p) = self.nodes[node].process.as_mut() {
                    p.swim.on_timer(now, timer, &mut out);
                }
                self.swim_effects(node, out);
            }
            Ev::StabTick { node, epoch } => {
                if self.epoch_of(node) != Some(epoch) {
                    return;
                }
                let mut out = Vec::new();
                if let Some(p) = self.nodes[node].process.as_mut() {
                    p.stab.on_tick(now, &mut out);
                }
                self.stab_effects(node, out);
                self.ring_changed(node);
                self.push(now + 1_000, Ev::StabTick { node, epoch });
            }
            Ev::WalkPage {
                node,
                epoch,
                walk,
                after,
                limit,
            } => {
                if self.epoch_of(node) != Some(epoch) {
                    return;
                }
                let mut out = Vec::new();
                if let Some(p) = self.nodes[node].process.as_mut() {
                    let page = p.replica.page(after.as_deref(), limit).expect("in memory");
                    p.stab.on_page(walk, page, &mut out);
                }
                self.stab_effects(node, out);
            }
            Ev::Rpc {
                from,
                from_epoch,
                to,
                call,
            } => self.serve(from, from_epoch, to, call),
            Ev::RpcReply {
                from,
                to,
                to_epoch,
                reply,
            } => {
                if self.epoch_of(to) != Some(to_epoch) {
                    return;
                }
                let from_name = self.nodes[from].name.clone();
                match reply {
                    Reply::Replica {
                        op,
                        attempt,
                        response,
                    } => {
                        let mut out = Vec::new();
                        if let Some(p) = self.nodes[to].process.as_mut() {
                            p.coord.on_response(
                                op,
                                attempt,
                                &from_name,
                                response,
                                EPOCH_MS + now,
                                &mut out,
                            );
                        }
                        self.coord_effects(to, out);
                    }
                    Reply::Pushed { walk, ok, count } => {
                        let mut out = Vec::new();
                        if let Some(p) = self.nodes[to].process.as_mut() {
                            p.stab.on_pushed(walk, &from_name, ok, count, &mut out);
                        }
                        self.stab_effects(to, out);
                    }
                }
            }
            Ev::OpTimeout { node, epoch, .. } | Ev::OpSlow { node, epoch, .. }
                if self.epoch_of(node) != Some(epoch) => {}
            Ev::OpTimeout { node, op, .. } => {
                let mut out = Vec::new();
                if let Some(p) = self.nodes[node].process.as_mut() {
                    p.coord.on_timeout(op, &mut out);
                }
                self.coord_effects(node, out);
            }
            Ev::OpSlow { node, op, .. } => {
                let mut out = Vec::new();
                if let Some(p) = self.nodes[node].process.as_mut() {
                    p.coord.on_slow(op, &mut out);
                }
                self.coord_effects(node, out);
            }
            Ev::Exit { node, epoch } => {
                if self.epoch_of(node) == Some(epoch) {
                    self.crash(node);
                    // A node that left has handed its data off: nothing to keep.
                    self.nodes[node].last_replica = None;
                }
            }
        }
    }

    /// Sends a peer RPC: delivered after a delay; a call that cannot reach a
    /// running process on the same side fails (at once when the peer is down, on
    /// timeout across a partition).
    fn rpc(&mut self, from: usize, to: usize, call: Call) {
        let Some(from_epoch) = self.epoch_of(from) else {
            return;
        };
        let delay = if from == to { 0 } else { self.delay() };
        self.push(
            self.now + delay,
            Ev::Rpc {
                from,
                from_epoch,
                to,
                call,
            },
        );
    }

    fn fail_call(&mut self, from: usize, from_epoch: u64, to: usize, call: Call, after: u64) {
        let reply = match call {
            Call::Replica {
                op: Some((op, attempt)),
                ..
            } => Reply::Replica {
                op,
                attempt,
                response: ReplicaResponse::Error("unreachable".into()),
            },
            Call::Push { walk, records } => Reply::Pushed {
                walk,
                ok: false,
                count: records.len() as u64,
            },
            _ => return,
        };
        self.push(
            self.now + after,
            Ev::RpcReply {
                from: to,
                to: from,
                to_epoch: from_epoch,
                reply,
            },
        );
    }

    fn serve(&mut self, from: usize, from_epoch: u64, to: usize, call: Call) {
        if !self.linked(from, to) {
            let t = self.config.request_timeout_ms;
            return self.fail_call(from, from_epoch, to, call, t);
        }
        if self.nodes[to].process.is_none() {
            // Connection refused: the real RPC client hints SWIM to probe the
            // member next (a hint, never a verdict).
            let name = self.nodes[to].name.clone();
            let now = self.now;
            if let Some(p) = self.nodes[from].process.as_mut() {
                p.swim.hint_unreachable(now, &name);
            }
            let d = self.delay();
            return self.fail_call(from, from_epoch, to, call, d);
        }
        let now = self.now;
        let wall = EPOCH_MS + now;
        let broken = self.config.broken == Broken::PendingIsAuthority;
        let reply = match call {
            Call::Synced {
                fingerprint,
                haunted,
            } => {
                let from_name = self.nodes[from].name.clone();
                let mut out = Vec::new();
                let trace =
                    self.trace_key.is_some() && std::env::var_os("SWIMKV_SIM_TRACE_SYNC").is_some();
                if let Some(p) = self.nodes[to].process.as_mut() {
                    p.stab.on_synced(&from_name, fingerprint, haunted, &mut out);
                    if trace {
                        println!(
                            "t={now} n{to} synced from n{from} ({fingerprint:x}): waiting for {:?}",
                            p.stab
                                .waiting_for()
                                .iter()
                                .map(|m| m[7..9].to_string())
                                .collect::<Vec<_>>()
                        );
                    }
                }
                self.stab_effects(to, out);
                return;
            }
            Call::Push { walk, records } => {
                let count = records.len() as u64;
                if let Some(k) = &self.trace_key {
                    if let Some((_, r)) = records.iter().find(|(key, _)| key == k) {
                        println!("t={now} n{to} handed {k} at {} by n{from}", r.version);
                    }
                }
                let Some(p) = self.nodes[to].process.as_mut() else {
                    return;
                };
                let response = p
                    .replica
                    .serve(ReplicaRequest::WriteBatch { records }, wall);
                let ok = response == ReplicaResponse::Written;
                if !ok
                    && self.trace_key.is_some()
                    && std::env::var_os("SWIMKV_SIM_TRACE_SYNC").is_some()
                {
                    println!("t={now} n{to} refused a push from n{from}: {response:?}");
                }
                Reply::Pushed { walk, ok, count }
            }
            Call::Replica { op, mut request } => {
                if broken {
                    if let ReplicaRequest::Read { expect, .. } = &mut request {
                        *expect = None;
                    }
                }
                let version = match &request {
                    ReplicaRequest::Put { record, .. } => Some(record.version),
                    _ => None,
                };
                let call_key = match &request {
                    ReplicaRequest::Put { key, .. } => key.clone(),
                    _ => String::new(),
                };
                let Some(p) = self.nodes[to].process.as_mut() else {
                    return;
                };
                let response = p.replica.serve(request, wall);
                if response == ReplicaResponse::NotAuthoritative {
                    self.not_authoritative += 1;
                }
                let Some((op, attempt)) = op else {
                    return; // a read repair nobody waits for
                };
                if let (Some(v), ReplicaResponse::Written, Some(k)) =
                    (version, &response, &self.trace_key)
                {
                    if format!("{:?}", call_key) == format!("{k:?}") {
                        println!("t={now} n{to} stored {k} at {v} for n{from}");
                    }
                }
                if let (Some(v), ReplicaResponse::Written) = (version, &response) {
                    self.stored
                        .entry((from, from_epoch, op))
                        .or_default()
                        .entry(v)
                        .or_default()
                        .insert(to);
                }
                Reply::Replica {
                    op,
                    attempt,
                    response,
                }
            }
        };
        let d = if from == to { 0 } else { self.delay() };
        self.push(
            now + d,
            Ev::RpcReply {
                from: to,
                to: from,
                to_epoch: from_epoch,
                reply,
            },
        );
    }

    fn swim_effects(&mut self, i: usize, out: Vec<SwimEffect>) {
        // The joined flag can change without an event (a joined member's state
        // arrived, the first node's wait ended): look at the view every time.
        let mut changed = true;
        for effect in out {
            match effect {
                SwimEffect::Send { to, datagram } => {
                    let Some(&j) = self.index.get(&to) else {
                        continue;
                    };
                    if self.config.udp_loss > 0.0 && self.rng.gen_bool(self.config.udp_loss) {
                        continue;
                    }
                    let bytes = datagram.encode();
                    let d = self.delay();
                    self.push(
                        self.now + d,
                        Ev::Datagram {
                            from: i,
                            to: j,
                            bytes,
                        },
                    );
                }
                SwimEffect::Schedule { after_ms, timer } => {
                    if let Some(epoch) = self.epoch_of(i) {
                        self.push(
                            self.now + after_ms,
                            Ev::SwimTimer {
                                node: i,
                                epoch,
                                timer,
                            },
                        );
                    }
                }
                SwimEffect::Notify(_) => changed = true,
            }
        }
        if changed {
            self.ring_changed(i);
        }
    }

    /// The ring actor's rule: a new snapshot when the live members, the cluster
    /// size or the merge flag changed (a new epoch when identities changed).
    fn ring_changed(&mut self, i: usize) {
        let now = self.now;
        let vnodes = self.config.vnodes;
        let mut out = Vec::new();
        let Some(p) = self.nodes[i].process.as_mut() else {
            return;
        };
        // As the membership actor: before it joined, a node publishes itself only.
        let joined = p.swim.joined(now);
        let mut live: Vec<LiveMember> = std::iter::once(p.swim.me())
            .chain(p.swim.members().map(|m| &m.update))
            .filter(|u| u.state.is_live() && (joined || u.name == p.swim.me().name))
            .map(LiveMember::of)
            .collect();
        live.sort();
        let not_left = if joined { p.swim.members_not_left() } else { 1 };
        let merged = p.swim.merged();
        let dead = if joined {
            p.swim.dead_members()
        } else {
            Vec::new()
        };
        if live == p.live
            && not_left == p.members_not_left
            && merged == p.merged
            && dead == p.dead
            && joined == p.snapshot.joined
        {
            return;
        }
        let ids = |l: &[LiveMember]| {
            l.iter()
                .map(|m| (m.name.clone(), m.store))
                .collect::<Vec<_>>()
        };
        let mut epoch = p.snapshot.ring.epoch();
        if ids(&live) != ids(&p.live) {
            epoch += 1;
        }
        p.live = live;
        p.members_not_left = not_left;
        p.merged = merged;
        p.dead = dead;
        p.snapshot = RingSnapshot::new(epoch, &p.live, vnodes, not_left)
            .with_dead(p.dead.clone())
            .joined(joined);
        p.stab.on_ring(p.snapshot.clone(), merged, now, &mut out);
        self.stab_effects(i, out);
    }

    fn stab_effects(&mut self, i: usize, out: Vec<StabilizeEffect>) {
        for effect in out {
            let Some(epoch) = self.epoch_of(i) else {
                return;
            };
            match effect {
                StabilizeEffect::Publish(mut pl) => {
                    if self.config.broken != Broken::NoOwnership {
                        let n = self.config.quorums.n;
                        let name = self.nodes[i].name.clone();
                        if let Some(p) = self.nodes[i].process.as_mut() {
                            p.replica.set_ownership(pl.ownership(&name, n));
                        }
                    }
                    match self.config.broken {
                        Broken::NoJointQuorum => {
                            pl.previous = None;
                            pl.returning = None;
                            pl.haunted.clear();
                        }
                        Broken::NoHaunting => pl.haunted.clear(),
                        Broken::NoReturning => pl.returning = None,
                        _ => {}
                    }
                    if self.trace_key.is_some()
                        && std::env::var("SWIMKV_SIM_TRACE_NODE").ok() == Some(i.to_string())
                    {
                        let short = |r: &swimkv::ring::ring::Ring| {
                            r.identities()
                                .map(|(m, _)| m[7..9].to_string())
                                .collect::<Vec<_>>()
                                .join(",")
                        };
                        let waiting = self.nodes[i]
                            .process
                            .as_ref()
                            .map(|p| p.stab.waiting_for())
                            .unwrap_or_default()
                            .iter()
                            .map(|m| m[7..9].to_string())
                            .collect::<Vec<_>>()
                            .join(",");
                        println!(
                            "t={} n{i} placement current [{}] previous {:?} returning {:?} haunted {:?} waiting for [{waiting}]",
                            self.now,
                            short(&pl.current.ring),
                            pl.previous.as_deref().map(short),
                            pl.returning.as_deref().map(short),
                            pl.haunted.iter().map(|h| short(h)).collect::<Vec<_>>()
                        );
                    }
                    if let Some(p) = self.nodes[i].process.as_mut() {
                        p.placement = Some(pl);
                    }
                }
                StabilizeEffect::Walk { walk, effect } => match effect {
                    WalkEffect::ReadPage {
                        after,
                        limit,
                        delay_ms,
                    } => {
                        self.push(
                            self.now + delay_ms.max(1),
                            Ev::WalkPage {
                                node: i,
                                epoch,
                                walk,
                                after,
                                limit,
                            },
                        );
                    }
                    WalkEffect::Push { to, records } => {
                        if let Some(&j) = self.index.get(&to) {
                            self.rpc(i, j, Call::Push { walk, records });
                        }
                    }
                    WalkEffect::Drop(keys) => {
                        if let Some(k) = &self.trace_key {
                            if keys.iter().any(|(key, _)| key == k) {
                                println!("t={} n{i} drops {k}", self.now);
                            }
                        }
                        if let Some(p) = self.nodes[i].process.as_mut() {
                            p.replica.remove_if_versions(keys).expect("in memory");
                        }
                    }
                    WalkEffect::Done(_) => {}
                },
                StabilizeEffect::AnnounceSynced {
                    fingerprint,
                    to,
                    haunted,
                } => {
                    for (name, _) in to {
                        if let Some(&j) = self.index.get(&name) {
                            let call = Call::Synced {
                                fingerprint,
                                haunted: haunted.clone(),
                            };
                            self.rpc(i, j, call);
                        }
                    }
                }
                StabilizeEffect::Authority(a) => {
                    let broken = self.config.broken == Broken::PendingIsAuthority;
                    if let Some(p) = self.nodes[i].process.as_mut() {
                        p.replica.set_authoritative(a || broken);
                    }
                }
                StabilizeEffect::MarkSynced => {
                    let now = self.now;
                    let mut out = Vec::new();
                    if let Some(p) = self.nodes[i].process.as_mut() {
                        p.swim.mark_synced(now, &mut out);
                    }
                    self.swim_effects(i, out);
                }
                StabilizeEffect::SetLeaving(on) => {
                    if let Some(p) = self.nodes[i].process.as_mut() {
                        p.replica.set_leaving(on);
                    }
                }
                // A leave given up: the node stays a member.
                StabilizeEffect::LeaveDone(Err(why)) => {
                    if self.trace_key.is_some() {
                        println!("t={} n{i} leave given up: {why}", self.now);
                    }
                    if let Some(p) = self.nodes[i].process.as_mut() {
                        p.leaving = false;
                    }
                }
                StabilizeEffect::LeaveDone(Ok(handed)) => {
                    let now = self.now;
                    if self.trace_key.is_some() {
                        println!("t={now} n{i} left, {handed} keys handed off");
                    }
                    let mut out = Vec::new();
                    if let Some(p) = self.nodes[i].process.as_mut() {
                        p.swim.leave(now, &mut out);
                    }
                    self.swim_effects(i, out);
                    self.push(now + 500, Ev::Exit { node: i, epoch });
                }
            }
        }
    }

    fn coord_effects(&mut self, i: usize, out: Vec<CoordEffect>) {
        let Some(epoch) = self.epoch_of(i) else {
            return;
        };
        for effect in out {
            match effect {
                CoordEffect::Send {
                    op,
                    attempt,
                    to,
                    mut request,
                } => {
                    let Some(&j) = self.index.get(&to) else {
                        continue;
                    };
                    if let ReplicaRequest::Read { expect, .. } = &mut request {
                        *expect = self
                            .process(i)
                            .and_then(|p| p.placement.as_ref())
                            .and_then(|pl| pl.expect(&to));
                    }
                    self.rpc(
                        i,
                        j,
                        Call::Replica {
                            op: Some((op, attempt)),
                            request,
                        },
                    );
                }
                CoordEffect::Repair { to, request } => {
                    if let Some(&j) = self.index.get(&to) {
                        self.rpc(i, j, Call::Replica { op: None, request });
                    }
                }
                CoordEffect::Reply { op, outcome } => {
                    if let Outcome::Written { version, .. } = &outcome {
                        let copies = self
                            .stored
                            .get(&(i, epoch, op))
                            .and_then(|m| m.get(version))
                            .map_or(0, BTreeSet::len);
                        if copies < self.config.quorums.w {
                            self.violations.push(format!(
                                "seed {}: t={} n{i} acknowledged {version} with {copies} copies (W={})",
                                self.seed, self.now, self.config.quorums.w
                            ));
                        }
                    }
                    self.stored.remove(&(i, epoch, op));
                    self.done.push(Done {
                        node: i,
                        epoch,
                        op,
                        at: self.now,
                        outcome,
                    });
                }
            }
        }
    }

    /// What every running node holds, key by key (for failure messages).
    pub fn holders(&self, key: &str) -> BTreeMap<usize, Option<Record>> {
        self.running()
            .into_iter()
            .filter_map(|i| {
                self.process(i)
                    .map(|p| (i, p.replica.get(key).expect("in memory")))
            })
            .collect()
    }
}
