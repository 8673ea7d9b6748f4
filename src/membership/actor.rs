//! The MembershipActor: the thin shell around the SWIM core.
//!
//! It owns the UDP socket and the core, feeds the core datagrams and timers with
//! the time since start, carries out the effects (send, schedule, notify) and
//! publishes [`MembershipChanged`] to subscribers. Invariant: the core only ever
//! sees decoded datagrams; anything undecodable is counted and dropped here.

use super::member::{State, Update};
use super::message::Datagram;
use super::swim::{Effect, Event, Swim};
use crate::metrics::{Metrics, StateLabels};
use crate::transport::udp::{self, Inbound, UdpCounters};
use crate::transport::wire::Seal;
use actix::prelude::*;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;

/// A live member and where its replica traffic goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveMember {
    /// Member name (`host:port`).
    pub name: String,
    /// Peer RPC address (`host:peer_port`).
    pub peer_addr: String,
}

/// Sent to subscribers after every membership change.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct MembershipChanged {
    /// What changed.
    pub event: Event,
    /// Every live member (alive or suspect), this node included, sorted by name.
    pub live: Vec<LiveMember>,
}

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

/// Owns the UDP socket and the SWIM core.
pub struct MembershipActor {
    swim: Swim,
    std_socket: Option<std::net::UdpSocket>,
    socket: Option<Arc<UdpSocket>>,
    seal: Seal,
    started: Instant,
    started_unix_ms: u64,
    introducers: Vec<String>,
    subscribers: Vec<Recipient<MembershipChanged>>,
    addrs: HashMap<String, SocketAddr>,
    counters: Arc<UdpCounters>,
    metrics: Metrics,
    reported: super::swim::Stats,
    out: Vec<Effect>,
}

fn peer_addr(update: &Update) -> String {
    let host = update
        .name
        .rsplit_once(':')
        .map_or(update.name.as_str(), |(h, _)| h);
    format!("{host}:{}", update.peer_port)
}

impl MembershipActor {
    /// A shell around `swim` that talks over `socket`. The socket is registered with
    /// the runtime of the arbiter the actor starts on, so the actor may run on an
    /// arbiter of its own (away from request traffic).
    pub fn new(
        swim: Swim,
        socket: std::net::UdpSocket,
        seal: Seal,
        introducers: Vec<String>,
        subscribers: Vec<Recipient<MembershipChanged>>,
        counters: Arc<UdpCounters>,
        metrics: Metrics,
    ) -> MembershipActor {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        MembershipActor {
            swim,
            std_socket: Some(socket),
            socket: None,
            seal,
            started: Instant::now(),
            started_unix_ms,
            introducers,
            subscribers,
            addrs: HashMap::new(),
            counters,
            metrics,
            reported: Default::default(),
            out: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn resolve(&mut self, name: &str) -> Option<SocketAddr> {
        if let Some(a) = self.addrs.get(name) {
            return Some(*a);
        }
        let addr = name
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| name.to_socket_addrs().ok().and_then(|mut it| it.next()))?;
        self.addrs.insert(name.to_string(), addr);
        Some(addr)
    }

    fn live(&self) -> Vec<LiveMember> {
        let mut live: Vec<LiveMember> = std::iter::once(self.swim.me())
            .chain(self.swim.members().map(|m| &m.update))
            .filter(|u| u.state.is_live())
            .map(|u| LiveMember {
                name: u.name.clone(),
                peer_addr: peer_addr(u),
            })
            .collect();
        live.sort();
        live
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
                        self.counters
                            .send_dropped
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
                        Event::Died(u) | Event::Left(u) | Event::Suspected(u) => {
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
                    }
                    let msg = MembershipChanged {
                        event,
                        live: self.live(),
                    };
                    for s in &self.subscribers {
                        s.do_send(msg.clone());
                    }
                }
            }
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
        let mut counts = [0i64; 4];
        for u in std::iter::once(self.swim.me()).chain(self.swim.members().map(|m| &m.update)) {
            counts[u.state as usize] += 1;
        }
        for (state, n) in [State::Alive, State::Suspect, State::Dead, State::Left]
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
            self.seal,
            ctx.address().recipient(),
            self.counters.clone(),
        );
        ctx.spawn(actix::fut::wrap_future(recv));
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.swim.start(now, self.introducers.clone(), &mut out);
        self.out = out;
        self.run_effects(ctx);
        let msg = MembershipChanged {
            event: Event::Joined(self.swim.me().clone()),
            live: self.live(),
        };
        for s in &self.subscribers {
            s.do_send(msg.clone());
        }
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
            peer_addr: peer_addr(u),
            state: u.state,
            incarnation: u.incarnation,
            generation: u.generation,
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
            .find(|m| peer_addr(&m.update) == msg.peer_addr)
            .map(|m| m.update.name.clone());
        if let Some(name) = name {
            let now = self.now();
            self.swim.hint_unreachable(now, &name);
        }
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
