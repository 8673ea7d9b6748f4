//! A deterministic simulator of many SWIM cores in one thread.
//!
//! Every node is a real [`Swim`] core. Time is virtual (milliseconds); one event
//! queue, ordered by `(time, insertion sequence)`, holds datagram deliveries,
//! timers and node starts. The network is a seeded RNG: each datagram is encoded
//! with [`Datagram::encode`] when sent (its size is checked against the datagram
//! budget, including the transport envelope's [`HEADER_LEN`]), may be lost with
//! probability `loss`, arrives after a delay drawn from `delay_ms`, and is decoded
//! again on delivery. Faults:
//!
//! - **partition**: nodes in different groups cannot reach each other;
//! - **isolate**: all traffic to and from one node is dropped;
//! - **crash**: the node stops; its queued timers are discarded as stale (every
//!   process has an epoch, raised by a crash or a restart) and datagrams to it
//!   are dropped;
//! - **restart**: a new core with the same name and a higher generation, started
//!   through its introducers;
//! - **slow**: for a window, every datagram delivered to the node and every timer
//!   of the node is handled `extra_ms` late — an overloaded process whose event
//!   loop is `extra_ms` behind. Events stay in order: when the window ends, the
//!   backlog drains before anything newer is handled.
//!
//! The same seed gives the same run, bit for bit. Every assertion made here names
//! the seed; tests should do the same.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use swimkv::config::SwimConfig;
use swimkv::membership::message::{Body, Datagram};
use swimkv::membership::{Effect, Event, State, Swim, Timer, Update};
use swimkv::transport::wire::HEADER_LEN;

/// The name of node `i`: an opaque `host:port` string.
pub fn node_name(i: usize) -> String {
    format!("10.0.{}.{}:7946", i / 256, i % 256)
}

/// What kind of SWIM message a datagram carries (for traffic accounting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Direct probe.
    Ping,
    /// Probe answer (direct or relayed).
    Ack,
    /// Indirect probe request.
    PingReq,
    /// Lifeguard nack.
    Nack,
    /// Join request.
    Join,
    /// Full-state chunk (join answer, push-pull, reconnect, leave).
    Sync,
    /// Gossip tick (only while news waits).
    Gossip,
    /// Urgent news (leave, refutation, death, suspicion told to its suspect).
    Broadcast,
}

impl Kind {
    /// Every kind, in index order.
    pub const ALL: [Kind; 8] = [
        Kind::Ping,
        Kind::Ack,
        Kind::PingReq,
        Kind::Nack,
        Kind::Join,
        Kind::Sync,
        Kind::Gossip,
        Kind::Broadcast,
    ];

    /// The kind of a message body.
    pub fn of(body: &Body) -> Kind {
        match body {
            Body::Ping { .. } => Kind::Ping,
            Body::Ack { .. } => Kind::Ack,
            Body::PingReq { .. } => Kind::PingReq,
            Body::Nack { .. } => Kind::Nack,
            Body::Join => Kind::Join,
            Body::Sync { .. } => Kind::Sync,
            Body::Gossip => Kind::Gossip,
            Body::Broadcast { .. } => Kind::Broadcast,
        }
    }

    /// Index into [`Traffic::by_kind`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Datagrams and bytes (envelope included) sent by one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams sent.
    pub datagrams: u64,
    /// Bytes sent, transport envelope included.
    pub bytes: u64,
    /// Datagrams sent, by [`Kind::index`].
    pub by_kind: [u64; 8],
    /// Bytes sent, envelope included, by [`Kind::index`].
    pub bytes_by_kind: [u64; 8],
}

impl Traffic {
    /// Adds another node's traffic.
    pub fn add(&mut self, other: &Traffic) {
        self.datagrams += other.datagrams;
        self.bytes += other.bytes;
        for k in 0..Kind::ALL.len() {
            self.by_kind[k] += other.by_kind[k];
            self.bytes_by_kind[k] += other.bytes_by_kind[k];
        }
    }

    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        let mut by_kind = [0; 8];
        let mut bytes_by_kind = [0; 8];
        for k in 0..Kind::ALL.len() {
            by_kind[k] = self.by_kind[k] - earlier.by_kind[k];
            bytes_by_kind[k] = self.bytes_by_kind[k] - earlier.bytes_by_kind[k];
        }
        Traffic {
            datagrams: self.datagrams - earlier.datagrams,
            bytes: self.bytes - earlier.bytes,
            by_kind,
            bytes_by_kind,
        }
    }
}

/// A membership event a node published, and when.
#[derive(Clone, Debug)]
pub struct Notice {
    /// Virtual time in milliseconds.
    pub at_ms: u64,
    /// The node that published it.
    pub observer: usize,
    /// The event.
    pub event: Event,
}

#[derive(Clone, Copy, Debug)]
struct Slow {
    from_ms: u64,
    until_ms: u64,
    extra_ms: u64,
}

/// One simulated process.
pub struct SimNode {
    /// The node's name.
    pub name: String,
    /// Its core (the last one, when crashed).
    pub swim: Swim,
    /// False once crashed (until restarted).
    pub up: bool,
    /// The generation of the current core.
    pub generation: u64,
    /// Introducers it starts (and restarts) with.
    pub introducers: Vec<String>,
    /// Traffic sent, over all its processes.
    pub sent: Traffic,
    epoch: u64,
    slow: Option<Slow>,
    /// When the last postponed event of this node is handled (keeps FIFO order).
    backlog_until: u64,
}

impl SimNode {
    fn slow_extra(&self, now: u64) -> Option<u64> {
        self.slow
            .filter(|s| s.from_ms <= now && now < s.until_ms && s.extra_ms > 0)
            .map(|s| s.extra_ms)
    }
}

enum Action {
    Deliver {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    },
    Fire {
        node: usize,
        epoch: u64,
        timer: Timer,
    },
    Start {
        node: usize,
        epoch: u64,
    },
}

impl Action {
    fn node(&self) -> usize {
        match self {
            Action::Deliver { to, .. } => *to,
            Action::Fire { node, .. } | Action::Start { node, .. } => *node,
        }
    }
}

struct Queued {
    at: u64,
    seq: u64,
    postponed: bool,
    action: Action,
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

/// Network counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    /// Datagrams handed to a core.
    pub delivered: u64,
    /// Datagrams lost to random loss.
    pub lost: u64,
    /// Datagrams dropped by a partition or an isolation.
    pub blocked: u64,
    /// Datagrams to a crashed node.
    pub to_down: u64,
    /// Datagrams to a name no node has.
    pub to_unknown: u64,
    /// The largest datagram sent, envelope included.
    pub max_wire_bytes: usize,
}

/// The simulated cluster and network.
pub struct Sim {
    /// The seed of this run (print it in every assertion).
    pub seed: u64,
    /// The SWIM configuration of every node (and of nodes restarted later).
    pub config: SwimConfig,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Inclusive range of one-way delays, in milliseconds.
    pub delay_ms: (u64, u64),
    /// Record `Joined` notices too (off by default: they are n² at start).
    pub record_joins: bool,
    /// The nodes, by index.
    pub nodes: Vec<SimNode>,
    /// Every notice recorded, in time order.
    pub notices: Vec<Notice>,
    /// Network counters.
    pub net: NetStats,
    /// Nodes whose every datagram (sent and handled) is printed, for debugging.
    pub trace: BTreeSet<usize>,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    index: HashMap<String, usize>,
    net_rng: StdRng,
    group: Vec<u32>,
    isolated: BTreeSet<usize>,
    scratch: Vec<Effect>,
}

fn mix(mut z: u64) -> u64 {
    // SplitMix64 finaliser: independent-looking seeds from (seed, node, generation).
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Sim {
    /// `n` nodes (not started) with `config`, a loss-free network with 1-5 ms delays.
    pub fn new(seed: u64, n: usize, config: SwimConfig) -> Sim {
        let mut sim = Sim {
            seed,
            config,
            loss: 0.0,
            delay_ms: (1, 5),
            record_joins: false,
            nodes: Vec::with_capacity(n),
            notices: Vec::new(),
            net: NetStats::default(),
            trace: BTreeSet::new(),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            index: HashMap::new(),
            net_rng: StdRng::seed_from_u64(mix(seed)),
            group: Vec::new(),
            isolated: BTreeSet::new(),
            scratch: Vec::new(),
        };
        for i in 0..n {
            let name = node_name(i);
            let swim = sim.core(i, &name, 1);
            sim.index.insert(name.clone(), i);
            sim.group.push(0);
            sim.nodes.push(SimNode {
                name,
                swim,
                up: false,
                generation: 1,
                introducers: Vec::new(),
                sent: Traffic::default(),
                epoch: 0,
                slow: None,
                backlog_until: 0,
            });
        }
        sim
    }

    /// `n` nodes, node 0 the introducer of all others: node 0 starts now and node
    /// `i` at `now + i * spread_ms / n`.
    pub fn cluster(seed: u64, n: usize, config: SwimConfig, spread_ms: u64) -> Sim {
        let mut sim = Sim::new(seed, n, config);
        let intro = vec![node_name(0)];
        for i in 0..n {
            let introducers = if i == 0 { Vec::new() } else { intro.clone() };
            sim.start_at(i, i as u64 * spread_ms / n.max(1) as u64, introducers);
        }
        sim
    }

    fn core(&self, i: usize, name: &str, generation: u64) -> Swim {
        let rng = StdRng::seed_from_u64(mix(self.seed ^ mix((i as u64) << 16 | generation)));
        let budget = self.config.max_datagram_bytes - HEADER_LEN;
        Swim::new(
            name.to_string(),
            generation,
            7000 + (i % 50_000) as u16,
            self.config.clone(),
            budget,
            rng,
        )
    }

    /// Virtual time now, in milliseconds.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The protocol period, in milliseconds.
    pub fn period_ms(&self) -> u64 {
        self.config.protocol_period_ms
    }

    /// Number of nodes (up or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn push(&mut self, at: u64, postponed: bool, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            postponed,
            action,
        }));
    }

    /// Starts node `i` at virtual time `at_ms` (>= now) with `introducers`.
    pub fn start_at(&mut self, i: usize, at_ms: u64, introducers: Vec<String>) {
        let node = &mut self.nodes[i];
        node.introducers = introducers;
        node.up = true;
        let epoch = node.epoch;
        self.push(at_ms.max(self.now), false, Action::Start { node: i, epoch });
    }

    /// Crashes node `i`: it handles nothing more, its pending timers go stale.
    pub fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.up = false;
        node.epoch += 1;
        node.slow = None;
        node.backlog_until = 0;
    }

    /// Stops node `i` keeping its data and place (SIGTERM of a durable node): it
    /// announces `stopped` now, then handles nothing more.
    pub fn stop(&mut self, i: usize) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.scratch);
        self.nodes[i].swim.stop(now, &mut out);
        self.carry_out(i, &mut out);
        self.scratch = out;
        self.crash(i);
    }

    /// Node `i` has its data (what a real node's stabilizer reports once its
    /// handoff is done): it stops announcing itself as pending.
    pub fn mark_synced(&mut self, i: usize) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.scratch);
        self.nodes[i].swim.mark_synced(now, &mut out);
        self.carry_out(i, &mut out);
        self.scratch = out;
    }

    /// Tells node `observer` that `target` looks unreachable (as a reset peer
    /// connection does in the real node).
    pub fn hint_unreachable(&mut self, observer: usize, target: usize) {
        let now = self.now;
        let name = self.nodes[target].name.clone();
        self.nodes[observer].swim.hint_unreachable(now, &name);
    }

    /// Restarts node `i` now as a new process with a higher generation; it joins
    /// through the introducers it was started with. Returns the new generation.
    pub fn restart(&mut self, i: usize) -> u64 {
        let generation = self.nodes[i].generation + 1;
        let name = self.nodes[i].name.clone();
        let swim = self.core(i, &name, generation);
        let node = &mut self.nodes[i];
        node.swim = swim;
        node.generation = generation;
        node.epoch += 1;
        node.slow = None;
        node.backlog_until = 0;
        let introducers = node.introducers.clone();
        self.start_at(i, self.now, introducers);
        generation
    }

    /// Puts `side` in a partition of its own: it cannot reach the rest, nor they it.
    pub fn partition(&mut self, side: &[usize]) {
        for &i in side {
            self.group[i] = 1;
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
    }

    /// Drops all traffic to and from node `i` (`on = false` restores it).
    pub fn isolate(&mut self, i: usize, on: bool) {
        if on {
            self.isolated.insert(i);
        } else {
            self.isolated.remove(&i);
        }
    }

    /// From now for `for_ms`, node `i` handles every datagram and timer `extra_ms` late.
    pub fn slow(&mut self, i: usize, extra_ms: u64, for_ms: u64) {
        self.nodes[i].slow = Some(Slow {
            from_ms: self.now,
            until_ms: self.now + for_ms,
            extra_ms,
        });
    }

    fn link_ok(&self, from: usize, to: usize) -> bool {
        self.group[from] == self.group[to]
            && !self.isolated.contains(&from)
            && !self.isolated.contains(&to)
    }

    /// Runs every event up to and including `t_ms`; afterwards `now() == t_ms`.
    pub fn run_until(&mut self, t_ms: u64) {
        while let Some(Reverse(top)) = self.queue.peek() {
            if top.at > t_ms {
                break;
            }
            let Some(Reverse(q)) = self.queue.pop() else {
                break;
            };
            self.now = q.at;
            self.handle(q);
        }
        self.now = self.now.max(t_ms);
    }

    /// Runs for `ms` of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        self.run_until(self.now + ms);
    }

    /// Runs in steps of `step_ms` until `done` holds (checked after every step)
    /// or `deadline_ms` passes; returns the time it first held.
    pub fn run_until_true(
        &mut self,
        deadline_ms: u64,
        step_ms: u64,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<u64> {
        if done(self) {
            return Some(self.now);
        }
        while self.now < deadline_ms {
            let next = (self.now + step_ms.max(1)).min(deadline_ms);
            self.run_until(next);
            if done(self) {
                return Some(self.now);
            }
        }
        None
    }

    fn handle(&mut self, q: Queued) {
        let i = q.action.node();
        if !q.postponed {
            let node = &mut self.nodes[i];
            let extra = node.slow_extra(self.now).unwrap_or(0);
            let at = (self.now + extra).max(node.backlog_until);
            if at > self.now {
                node.backlog_until = at;
                self.push(at, true, q.action);
                return;
            }
        }
        let mut out = std::mem::take(&mut self.scratch);
        let now = self.now;
        match q.action {
            Action::Deliver { from, to, bytes } => {
                if !self.nodes[to].up {
                    self.net.to_down += 1;
                } else if !self.link_ok(from, to) {
                    self.net.blocked += 1;
                } else {
                    let d = Datagram::decode(&bytes).unwrap_or_else(|_| {
                        panic!(
                            "seed {}: a datagram from {} did not decode",
                            self.seed, self.nodes[from].name
                        )
                    });
                    self.net.delivered += 1;
                    if self.trace.contains(&to) || self.trace.contains(&from) {
                        println!("{now} {from} -> {to} handled: {d:?}");
                    }
                    self.nodes[to].swim.on_datagram(now, d, &mut out);
                }
            }
            Action::Fire { node, epoch, timer } => {
                let n = &mut self.nodes[node];
                if n.up && n.epoch == epoch {
                    n.swim.on_timer(now, timer, &mut out);
                }
            }
            Action::Start { node, epoch } => {
                let spare = self.core(node, "", 0);
                let n = &mut self.nodes[node];
                if n.up && n.epoch == epoch {
                    let introducers = n.introducers.clone();
                    if !introducers.is_empty() {
                        // A joiner holds no data: a pending replica, as a real one is.
                        let swim = std::mem::replace(&mut n.swim, spare);
                        let store = swim.me().store;
                        n.swim = swim.with_store(store, true);
                    }
                    n.swim.start(now, introducers, &mut out);
                }
            }
        }
        self.carry_out(i, &mut out);
        self.scratch = out;
    }

    fn carry_out(&mut self, i: usize, out: &mut Vec<Effect>) {
        let now = self.now;
        for effect in out.drain(..) {
            match effect {
                Effect::Send { to, datagram } => {
                    let kind = Kind::of(&datagram.body);
                    let bytes = datagram.encode();
                    let wire = bytes.len() + HEADER_LEN;
                    assert!(
                        wire <= self.config.max_datagram_bytes,
                        "seed {}: {} sent a {wire}-byte {kind:?} datagram with {} updates, over the {}-byte limit",
                        self.seed,
                        self.nodes[i].name,
                        datagram.gossip.len(),
                        self.config.max_datagram_bytes
                    );
                    self.net.max_wire_bytes = self.net.max_wire_bytes.max(wire);
                    if self.trace.contains(&i)
                        || self.index.get(&to).is_some_and(|j| self.trace.contains(j))
                    {
                        println!("{now} {i} -> {to} sent: {datagram:?}");
                    }
                    let sent = &mut self.nodes[i].sent;
                    sent.datagrams += 1;
                    sent.bytes += wire as u64;
                    sent.by_kind[kind.index()] += 1;
                    sent.bytes_by_kind[kind.index()] += wire as u64;
                    let Some(&j) = self.index.get(&to) else {
                        self.net.to_unknown += 1;
                        continue;
                    };
                    if !self.link_ok(i, j) {
                        self.net.blocked += 1;
                        continue;
                    }
                    if self.loss > 0.0 && self.net_rng.gen_bool(self.loss) {
                        self.net.lost += 1;
                        continue;
                    }
                    let (lo, hi) = self.delay_ms;
                    let delay = self.net_rng.gen_range(lo..=hi.max(lo));
                    self.push(
                        now + delay,
                        false,
                        Action::Deliver {
                            from: i,
                            to: j,
                            bytes,
                        },
                    );
                }
                Effect::Schedule { after_ms, timer } => {
                    let epoch = self.nodes[i].epoch;
                    self.push(
                        now + after_ms,
                        false,
                        Action::Fire {
                            node: i,
                            epoch,
                            timer,
                        },
                    );
                }
                Effect::Notify(event) => {
                    if self.record_joins || !matches!(event, Event::Joined(_)) {
                        self.notices.push(Notice {
                            at_ms: now,
                            observer: i,
                            event,
                        });
                    }
                }
            }
        }
    }

    // ---- views -------------------------------------------------------------

    /// What node `observer` holds about node `target` (its own update if equal).
    pub fn view(&self, observer: usize, target: usize) -> Option<&Update> {
        let o = &self.nodes[observer].swim;
        if observer == target {
            return Some(o.me());
        }
        let name = &self.nodes[target].name;
        o.members()
            .find(|m| &m.update.name == name)
            .map(|m| &m.update)
    }

    /// The state node `observer` holds node `target` in.
    pub fn state(&self, observer: usize, target: usize) -> Option<State> {
        self.view(observer, target).map(|u| u.state)
    }

    /// How many nodes `observer` holds alive, itself included.
    pub fn alive_seen(&self, observer: usize) -> usize {
        1 + self.nodes[observer]
            .swim
            .members()
            .filter(|m| m.state() == State::Alive)
            .count()
    }

    /// How many of `targets` node `observer` holds in `state`.
    pub fn count_in_state(
        &self,
        observer: usize,
        targets: &BTreeSet<usize>,
        state: State,
    ) -> usize {
        let names: BTreeSet<&str> = targets
            .iter()
            .map(|&t| self.nodes[t].name.as_str())
            .collect();
        let mut n = self.nodes[observer]
            .swim
            .members()
            .filter(|m| m.state() == state && names.contains(m.update.name.as_str()))
            .count();
        if targets.contains(&observer) && self.nodes[observer].swim.me().state == state {
            n += 1;
        }
        n
    }

    /// Indices of the nodes that are up.
    pub fn up_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up)
            .collect()
    }

    /// True when every up node holds every up node alive and nothing else alive.
    pub fn converged(&self) -> bool {
        let up = self.up_nodes();
        up.iter().all(|&i| self.alive_seen(i) == up.len())
    }

    /// The total traffic sent by all nodes.
    pub fn total_traffic(&self) -> Traffic {
        let mut t = Traffic::default();
        for n in &self.nodes {
            t.add(&n.sent);
        }
        t
    }

    /// `Died` notices about node `target`, as `(time, observer)`.
    pub fn deaths_of(&self, target: usize) -> Vec<(u64, usize)> {
        let name = &self.nodes[target].name;
        self.notices
            .iter()
            .filter(|n| matches!(&n.event, Event::Died(u) if &u.name == name))
            .map(|n| (n.at_ms, n.observer))
            .collect()
    }

    /// Every `Died` notice, as `(time, observer, target name)`.
    pub fn all_deaths(&self) -> Vec<(u64, usize, String)> {
        self.notices
            .iter()
            .filter_map(|n| match &n.event {
                Event::Died(u) => Some((n.at_ms, n.observer, u.name.clone())),
                _ => None,
            })
            .collect()
    }
}
