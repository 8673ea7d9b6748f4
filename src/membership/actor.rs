//! The MembershipActor: the thin shell around the SWIM core.
//!
//! It owns the UDP socket and the core, feeds the core datagrams and timers with
//! the time since start, carries out the effects (send, schedule, notify) and
//! publishes [`MembershipChanged`] to subscribers. Every second it reads the
//! core's clock-offset estimates into metrics and tells the coordinator whether
//! this node's clock is off from most of its peers' ([`ClockStatus`]). It keeps
//! the `joined` flag the HTTP handlers read: a node is joined once it applied
//! another member's full state, or, for a first node (no introducers) that no
//! member of an existing cluster contacted, once `first_node_wait_ms` passed. Invariant: the core only ever sees decoded
//! datagrams; anything undecodable is counted and dropped here.

use super::member::{LiveMember, State, Update};
use super::message::Datagram;
use super::swim::{Effect, Event, Swim};
use crate::metrics::{Metrics, PeerLabels, StateLabels};
use crate::transport::udp::{self, Inbound, UdpCounters};
use crate::transport::wire::Seal;
use actix::prelude::*;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;

/// How often a peer whose clock is beyond the bound is logged again.
const CLOCK_LOG_EVERY: Duration = Duration::from_secs(60);

/// Sent to subscribers after every membership change.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct MembershipChanged {
    /// What changed.
    pub event: Event,
    /// Every live member (alive or suspect), this node included, sorted by name.
    pub live: Vec<LiveMember>,
    /// Members that have not left, dead ones included.
    pub members_not_left: usize,
    /// Members known to be dead (not left), with their store generations.
    pub dead: Vec<(String, u64)>,
    /// Members that stopped keeping their data and their place on the ring
    /// (down, not probed), sorted by name.
    pub stopped: Vec<LiveMember>,
    /// This node started alone and was then merged into an existing cluster.
    pub merged: bool,
    /// This node has joined (before, `live` holds this node only).
    pub joined: bool,
}

/// SWIM's verdict on this node's clock, sent to the coordinator when it changes.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ClockStatus {
    /// This clock is more than the bound away from most peers' clocks.
    pub skewed: bool,
}

/// This node's handoff completed: stop announcing it as a pending replica.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct MarkSynced;

/// One member as shown by `GET /cluster/members`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemberView {
    /// Member name (`host:port`).
    pub id: String,
    /// HTTP and UDP address.
    pub addr: String,
    /// Peer RPC address.
    pub peer_addr: String,
    /// alive, suspect, dead or left.
    pub state: State,
    /// Incarnation number.
    pub incarnation: u64,
    /// Generation (start time in ms).
    pub generation: u64,
    /// Generation of the member's store (older than `generation` when the member
    /// kept its data across a restart).
    pub store: u64,
    /// The member is still receiving its handoff.
    pub pending: bool,
    /// Unix milliseconds of the last state change.
    pub last_change_ms: u64,
    /// True for the node answering.
    pub local: bool,
}

/// Every member known to this node.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MembersView {
    /// This node's name.
    pub node: String,
    /// Lifeguard local health score of this node.
    pub local_health: u32,
    /// This node is part of a cluster (see the module docs).
    pub joined: bool,
    /// Members that have not left, dead ones included.
    pub members_not_left: usize,
    /// Members, this node included, sorted by id.
    pub members: Vec<MemberView>,
}

/// Asks for the member list.
#[derive(Message)]
#[rtype(result = "MembersView")]
pub struct GetMembers;

/// The peer RPC connection to `peer_addr` was refused or broke: probe the member
/// behind it next (a hint, never a verdict).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerUnreachable {
    /// The member's peer RPC address (`host:peer_port`).
    pub peer_addr: String,
}

/// Leave gracefully: announce `left` and stop probing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

/// Stop keeping the data and the place on the ring: announce `stopped`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stopping;

/// What the shell needs besides the core and its socket.
pub struct MembershipLinks {
    /// Introducers (seeds) to join through.
    pub introducers: Vec<String>,
    /// Told of every membership change.
    pub subscribers: Vec<Recipient<MembershipChanged>>,
    /// Told when this node's clock goes off from its peers' or back.
    pub clock: Option<Recipient<ClockStatus>>,
    /// Set once this node is part of a cluster (read by the HTTP handlers).
    pub joined: Arc<AtomicBool>,
    /// The clock bound, in milliseconds.
    pub max_clock_offset_ms: u64,
}

/// How long a host name's resolution is used before it is resolved again.
pub const HOSTNAME_TTL: Duration = Duration::from_secs(5);

/// Owns the UDP socket and the SWIM core.
pub struct MembershipActor {
    swim: Swim,
    std_socket: Option<std::net::UdpSocket>,
    socket: Option<Arc<UdpSocket>>,
    seal: Seal,
    started: Instant,
    started_unix_ms: u64,
    links: MembershipLinks,
    addrs: HashMap<String, (SocketAddr, Option<Instant>)>,
    counters: Arc<UdpCounters>,
    metrics: Metrics,
    reported: super::swim::Stats,
    skewed: bool,
    clock_logged: HashMap<String, Instant>,
    swim_wait_ms: u64,
    out: Vec<Effect>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MembershipActor {
    /// A shell around `swim` that talks over `socket`. The socket is registered with
    /// the runtime of the arbiter the actor starts on, so the actor may run on an
    /// arbiter of its own (away from request traffic).
    pub fn new(
        swim: Swim,
        socket: std::net::UdpSocket,
        seal: Seal,
        links: MembershipLinks,
        counters: Arc<UdpCounters>,
        metrics: Metrics,
    ) -> MembershipActor {
        let started_unix_ms = unix_ms();
        let swim = swim.with_wall_base(started_unix_ms);
        MembershipActor {
            swim_wait_ms: swim.config().first_node_wait_ms,
            swim,
            std_socket: Some(socket),
            socket: None,
            seal,
            started: Instant::now(),
            started_unix_ms,
            links,
            addrs: HashMap::new(),
            counters,
            metrics,
            reported: Default::default(),
            skewed: false,
            clock_logged: HashMap::new(),
            out: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The address of member or seed `name`: an IP address as it is, a host
    /// name resolved again once its last resolution is [`HOSTNAME_TTL`] old, so
    /// that a container that comes back with a new address, or a seed whose DNS
    /// entry appears late, is reached at its current one.
    fn resolve(&mut self, name: &str) -> Option<SocketAddr> {
        let now = Instant::now();
        if let Some((addr, expires)) = self.addrs.get(name) {
            if expires.is_none_or(|at| now < at) {
                return Some(*addr);
            }
        }
        let (addr, expires) = match name.parse::<SocketAddr>() {
            Ok(addr) => (addr, None),
            Err(_) => {
                let resolved = name.to_socket_addrs().ok().and_then(|mut it| it.next());
                match resolved {
                    Some(addr) => (addr, Some(now + HOSTNAME_TTL)),
                    None => {
                        self.addrs.remove(name);
                        return None;
                    }
                }
            }
        };
        self.addrs.insert(name.to_string(), (addr, expires));
        Some(addr)
    }

    /// The live members, this node included; before it joined, this node only
    /// (a node with a partial view of its cluster must not act on it).
    fn live(&self) -> Vec<LiveMember> {
        if !self.joined() {
            return vec![LiveMember::of(self.swim.me())];
        }
        // A stopping node keeps itself on its ring to the end: were it to drop
        // itself, its last moments would hand its keys to members that do not
        // own them.
        let me = self.swim.me();
        let mut live: Vec<LiveMember> = std::iter::once(me)
            .filter(|u| u.state.is_live() || u.state == State::Stopped)
            .chain(
                self.swim
                    .members()
                    .map(|m| &m.update)
                    .filter(|u| u.state.is_live()),
            )
            .map(LiveMember::of)
            .collect();
        live.sort();
        live
    }

    /// Part of a cluster: see the module docs.
    fn joined(&self) -> bool {
        self.swim.joined(self.now())
    }

    fn publish(&self, event: Event) {
        let joined = self.joined();
        let msg = MembershipChanged {
            event,
            live: self.live(),
            members_not_left: if joined {
                self.swim.members_not_left()
            } else {
                1
            },
            dead: if joined {
                self.swim.dead_members()
            } else {
                Vec::new()
            },
            stopped: if joined {
                let mut stopped: Vec<LiveMember> =
                    self.swim.stopped_members().map(LiveMember::of).collect();
                stopped.sort();
                stopped
            } else {
                Vec::new()
            },
            merged: self.swim.merged(),
            joined,
        };
        for s in &self.links.subscribers {
            s.do_send(msg.clone());
        }
    }

    fn run_effects(&mut self, ctx: &mut Context<Self>) {
        let effects = std::mem::take(&mut self.out);
        for effect in effects {
            match effect {
                Effect::Send { to, datagram } => match (self.resolve(&to), &self.socket) {
                    (Some(addr), Some(socket)) => {
                        udp::send(socket, &self.seal, addr, &datagram.encode(), &self.counters)
                    }
                    _ => {
                        log::debug!("cannot resolve {to}");
                        self.counters.send_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Effect::Schedule { after_ms, timer } => {
                    ctx.run_later(Duration::from_millis(after_ms), move |act, ctx| {
                        let now = act.now();
                        let mut out = std::mem::take(&mut act.out);
                        act.swim.on_timer(now, timer, &mut out);
                        act.out = out;
                        act.run_effects(ctx);
                    });
                }
                Effect::Notify(event) => {
                    match &event {
                        Event::Died(u)
                        | Event::Left(u)
                        | Event::Suspected(u)
                        | Event::Stopped(u) => {
                            log::info!(
                                "member {} is {} (incarnation {})",
                                u.name,
                                u.state,
                                u.incarnation
                            )
                        }
                        Event::Joined(u) | Event::Recovered(u) => {
                            log::info!("member {} is {}", u.name, u.state)
                        }
                        Event::Updated(u) => log::info!(
                            "member {} is {}",
                            u.name,
                            if u.pending {
                                "a pending replica"
                            } else {
                                "an authority on its keys"
                            }
                        ),
                    }
                    self.publish(event);
                }
            }
        }
        let joined = self.joined();
        if joined && !self.links.joined.swap(true, Ordering::Relaxed) {
            // The view is the cluster's now: publish it.
            self.publish(Event::Updated(self.swim.me().clone()));
        }
        self.update_metrics();
    }

    fn update_metrics(&mut self) {
        let s = self.swim.stats().clone();
        let m = &self.metrics;
        m.probes.inc_by(s.probes - self.reported.probes);
        m.ping_reqs.inc_by(s.ping_reqs - self.reported.ping_reqs);
        m.suspicions.inc_by(s.suspicions - self.reported.suspicions);
        m.deaths.inc_by(s.deaths - self.reported.deaths);
        m.refutations
            .inc_by(s.refutations - self.reported.refutations);
        self.reported = s;
        m.gossip_backlog.set(self.swim.gossip_backlog() as i64);
        m.local_health.set(i64::from(self.swim.health()));
        let mut counts = [0i64; 5];
        let mut pending = 0;
        for u in std::iter::once(self.swim.me()).chain(self.swim.members().map(|m| &m.update)) {
            counts[u.state as usize] += 1;
            pending += i64::from(u.pending && u.state.is_live());
        }
        m.pending_members.set(pending);
        for (state, n) in [
            State::Alive,
            State::Suspect,
            State::Stopped,
            State::Dead,
            State::Left,
        ]
        .into_iter()
        .zip(counts)
        {
            m.members
                .get_or_create(&StateLabels {
                    state: state.as_str(),
                })
                .set(n);
        }
    }

    /// Reads the clock-offset estimates into metrics, logs peers beyond the
    /// bound (once a minute each) and tells the coordinator when this node's
    /// own clock turns out to be the odd one.
    fn watch_clock(&mut self) {
        let wall = self.swim.wall_ms();
        let max = self.links.max_clock_offset_ms;
        let offsets: Vec<(String, i64)> = self
            .swim
            .clock()
            .offsets(wall)
            .into_iter()
            .map(|(p, o)| (p.to_string(), o))
            .collect();
        for (peer, offset) in &offsets {
            self.metrics
                .clock_offset
                .get_or_create(&PeerLabels { peer: peer.clone() })
                .set(*offset as f64 / 1000.0);
            if offset.unsigned_abs() > max {
                let due = self
                    .clock_logged
                    .get(peer)
                    .is_none_or(|at| at.elapsed() >= CLOCK_LOG_EVERY);
                if due {
                    log::warn!(
                        "the clock of {peer} is {offset} ms off this node's (bound {max} ms)"
                    );
                    self.clock_logged.insert(peer.clone(), Instant::now());
                }
            }
        }
        let live = self
            .swim
            .members()
            .filter(|m| m.update.state.is_live())
            .map(|m| m.update.name.as_str());
        let skewed = self.swim.clock().skewed(max, wall, live);
        if skewed != self.skewed {
            self.skewed = skewed;
            if let Some(c) = &self.links.clock {
                c.do_send(ClockStatus { skewed });
            }
        }
    }
}

impl Actor for MembershipActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        let socket = self
            .std_socket
            .take()
            .map(|s| s.set_nonblocking(true).and_then(|_| UdpSocket::from_std(s)));
        let socket = match socket {
            Some(Ok(s)) => Arc::new(s),
            Some(Err(e)) => {
                log::error!("cannot use the SWIM socket: {e}");
                System::current().stop();
                return;
            }
            None => return,
        };
        self.socket = Some(socket.clone());
        let recv = udp::receive_loop(
            socket,
            self.seal.clone(),
            ctx.address().recipient(),
            self.counters.clone(),
        );
        ctx.spawn(actix::fut::wrap_future(recv));
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.swim
            .start(now, self.links.introducers.clone(), &mut out);
        self.out = out;
        self.run_effects(ctx);
        self.publish(Event::Joined(self.swim.me().clone()));
        ctx.run_interval(Duration::from_secs(1), |act, _| act.watch_clock());
        let wait = Duration::from_millis(self.swim_wait_ms);
        ctx.run_later(wait + Duration::from_millis(1), |act, ctx| {
            act.run_effects(ctx)
        });
    }
}

impl Handler<Inbound> for MembershipActor {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        let Ok(datagram) = Datagram::decode(&msg.payload) else {
            self.counters.refuse("decode");
            return;
        };
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.swim.on_datagram(now, datagram, &mut out);
        self.out = out;
        self.run_effects(ctx);
    }
}

impl Handler<GetMembers> for MembershipActor {
    type Result = MessageResult<GetMembers>;

    fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Self::Result {
        let me = self.swim.me().clone();
        let base = self.started_unix_ms;
        let view = |u: &Update, changed: u64, local: bool| MemberView {
            id: u.name.clone(),
            addr: u.name.clone(),
            peer_addr: LiveMember::of(u).peer_addr,
            state: u.state,
            incarnation: u.incarnation,
            generation: u.generation,
            store: u.store,
            pending: u.pending,
            last_change_ms: base + changed,
            local,
        };
        let mut members: Vec<MemberView> = self
            .swim
            .members()
            .map(|m| view(&m.update, m.last_change_ms, false))
            .collect();
        members.push(view(&me, 0, true));
        members.sort_by(|a, b| a.id.cmp(&b.id));
        MessageResult(MembersView {
            node: me.name.clone(),
            local_health: self.swim.health(),
            joined: self.joined(),
            members_not_left: self.swim.members_not_left(),
            members,
        })
    }
}

impl Handler<PeerUnreachable> for MembershipActor {
    type Result = ();

    fn handle(&mut self, msg: PeerUnreachable, _: &mut Context<Self>) {
        let name = self
            .swim
            .members()
            .find(|m| LiveMember::of(&m.update).peer_addr == msg.peer_addr)
            .map(|m| m.update.name.clone());
        if let Some(name) = name {
            let now = self.now();
            self.swim.hint_unreachable(now, &name);
        }
    }
}

impl Handler<MarkSynced> for MembershipActor {
    type Result = ();

    fn handle(&mut self, _: MarkSynced, ctx: &mut Context<Self>) {
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.swim.mark_synced(now, &mut out);
        self.out = out;
        self.run_effects(ctx);
    }
}

impl Handler<Stopping> for MembershipActor {
    type Result = ();

    fn handle(&mut self, _: Stopping, ctx: &mut Context<Self>) {
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.swim.stop(now, &mut out);
        self.out = out;
        self.run_effects(ctx);
    }
}

impl Handler<Leave> for MembershipActor {
    type Result = ();

    fn handle(&mut self, _: Leave, ctx: &mut Context<Self>) {
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.swim.leave(now, &mut out);
        self.out = out;
        self.run_effects(ctx);
    }
}
