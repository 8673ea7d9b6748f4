//! The SWIM failure detector and membership protocol with Lifeguard, as a pure core.
//!
//! One member is probed per protocol period in a shuffled round-robin order; a
//! member hinted unreachable from outside (a refused or broken peer connection)
//! may take every other period's probe, at most once per round-robin cycle. A
//! probe that gets no ack within the probe timeout is retried indirectly through k
//! helpers (ping-req), who answer with a nack when the target stays silent. A probe
//! still unanswered when the next period starts makes the target suspect; a suspect
//! is declared dead when its suspicion timeout — long at first, shorter with every
//! independent confirmation (another member whose own probe of the suspect failed;
//! members merely relaying the news do not count) — expires without a refutation.
//! With Lifeguard the accuser tells the suspect at once, and a node that refutes
//! sends its refutation straight to several members. Membership news rides on
//! every datagram (see `gossip.rs`); joins and a slow periodic push-pull exchange
//! full state in datagram-sized chunks; dead members and introducers are contacted
//! now and then so that healed partitions merge.
//!
//! A full-state sync never kills: a `dead` entry in it is merged as `suspect`, so
//! the member can refute it (memberlist's state merge); gossiped deaths act as
//! before. Members keep contacting their seeds (introducers): a seed that is not
//! live gets a join every protocol period and a live one a push-pull every
//! reconnect interval, and a datagram from a process this node does not know yet
//! (an unknown member, or a newer generation of a known one) is answered with a
//! push-pull, so a first node that came back alone is merged back into its
//! cluster. A node started without introducers that has seen no other member is
//! a *founder*; if the first member it hears of already holds data (is not
//! pending), it was merged into an existing cluster and becomes pending itself.
//! A founder serves (is joined) only once its `first_node_wait_ms` is over and
//! no existing cluster merged it, even when new joiners reached it first; they
//! ask it again every period until it answers as joined.
//!
//! Pings and acks carry wall-clock times, from which each node estimates its
//! peers' clock offsets (`clock.rs`).
//!
//! The core is split by concern: `swim/probe.rs` (probing and its verdicts),
//! `swim/apply.rs` (applying news, refutation, suspicion timeouts),
//! `swim/receive.rs` (handling datagrams), `swim/contact.rs` (seeds, reconnects,
//! merges) and `swim/send.rs` (datagrams, piggybacking, state chunks, broadcasts).
//!
//! Invariants: every datagram produced fits the datagram budget; every timer is
//! plain data and is ignored when it no longer matches the state it was set for;
//! only this node ever raises its own incarnation. Pure: time is passed in, the RNG
//! is seeded at construction, and effects are returned, never performed.

use super::clock::ClockWatch;
use super::gossip::{retransmit_limit, Gossip};
use super::member::{Member, State, Update};
use super::message::{update_size, Body, Datagram};
use super::suspicion;
use crate::config::SwimConfig;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod apply;
mod contact;
mod probe;
mod receive;
mod send;

/// A timer, as data. The core recognises stale timers when they fire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Start the next protocol period.
    Protocol {
        /// Round the timer was set for.
        round: u64,
    },
    /// The direct probe's ack is late: ask helpers.
    ProbeTimeout {
        /// Probe sequence number.
        seq: u64,
    },
    /// As a ping-req helper, the target did not ack in time: nack the origin.
    RelayTimeout {
        /// This node's sequence number for the relayed ping.
        seq: u64,
    },
    /// A suspicion may have expired.
    Suspicion {
        /// The suspect.
        name: String,
        /// The suspect's generation when suspected.
        generation: u64,
        /// The suspect's incarnation when suspected.
        incarnation: u64,
    },
    /// Exchange full state with a random member.
    PushPull,
    /// Send waiting gossip to a few random members.
    Gossip,
    /// Re-join through introducers when alone; contact a dead member; forget old ones.
    Reconnect,
    /// Retry a join that got no answer.
    JoinRetry {
        /// Attempt number.
        attempt: u32,
    },
}

/// A change of a member as seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new member, or a new generation of a known one.
    Joined(Update),
    /// A member became suspect.
    Suspected(Update),
    /// A suspect or dead member is alive again (refuted).
    Recovered(Update),
    /// A member stopped, keeping its place on the ring.
    Stopped(Update),
    /// A member was declared dead.
    Died(Update),
    /// A member left gracefully.
    Left(Update),
    /// A member's details changed without a change of state (it became or
    /// stopped being a pending replica, or moved its peer port).
    Updated(Update),
}

impl Event {
    /// The update behind the event.
    pub fn update(&self) -> &Update {
        match self {
            Event::Joined(u)
            | Event::Suspected(u)
            | Event::Recovered(u)
            | Event::Stopped(u)
            | Event::Died(u)
            | Event::Left(u)
            | Event::Updated(u) => u,
        }
    }
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send a datagram to the member (or introducer) named `to`.
    Send {
        /// `host:port` to send to.
        to: String,
        /// The datagram.
        datagram: Datagram,
    },
    /// Call [`Swim::on_timer`] with `timer` after `after_ms`.
    Schedule {
        /// Delay in milliseconds.
        after_ms: u64,
        /// The timer.
        timer: Timer,
    },
    /// Tell subscribers.
    Notify(Event),
}

/// Counters of protocol activity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Direct probes sent.
    pub probes: u64,
    /// Ping-req requests sent.
    pub ping_reqs: u64,
    /// Nacks received.
    pub nacks: u64,
    /// Members this node suspected itself.
    pub suspicions: u64,
    /// Members this node declared dead.
    pub deaths: u64,
    /// Times this node refuted a suspicion about itself.
    pub refutations: u64,
    /// Datagrams produced.
    pub datagrams: u64,
}

#[derive(Debug)]
struct Probe {
    seq: u64,
    target: String,
    acked: bool,
    expected_nacks: u32,
    nacks: u32,
    /// Helpers that nacked: each failed to reach the target too.
    nackers: Vec<String>,
}

#[derive(Debug)]
struct Relay {
    origin: String,
    origin_seq: u64,
}

#[derive(Debug)]
struct Suspicion {
    generation: u64,
    incarnation: u64,
    started_ms: u64,
    confirmations: BTreeSet<String>,
    deadline_ms: u64,
}

/// Room in a datagram for anything but the gossip list (sender, body, list length).
const LIST_OVERHEAD: usize = 4;

/// One node's SWIM state machine.
pub struct Swim {
    me: Update,
    config: SwimConfig,
    payload_budget: usize,
    rng: StdRng,
    members: BTreeMap<String, Member>,
    gossip: Gossip,
    probe_order: Vec<String>,
    probe_index: usize,
    /// Members hinted unreachable, probed before the round-robin continues.
    hinted: Vec<String>,
    /// The round in which each member was last probed because of a hint.
    hint_probed: HashMap<String, u64>,
    /// Whether the current probe's target came from `hinted`.
    probe_was_hinted: bool,
    seq: u64,
    round: u64,
    probe: Option<Probe>,
    relays: HashMap<u64, Relay>,
    suspicions: HashMap<String, Suspicion>,
    health: u32,
    introducers: Vec<String>,
    now: u64,
    stats: Stats,
    leaving: bool,
    /// Wall clock (Unix ms) at `now == 0`.
    wall_base: u64,
    clock: ClockWatch,
    /// Started without introducers.
    founder: bool,
    /// Some other live member was known at some point.
    seen_others: bool,
    /// A full-state sync from a joined member was applied.
    got_state: bool,
    /// A founder whose first member was a new, pending joiner: it formed a cluster.
    formed: bool,
    /// The members a founder first knew as pending joiners, until its wait is
    /// over: when one of them is done joining it is no sign of another cluster.
    joiners: BTreeSet<String>,
    /// When `start` ran.
    started_ms: u64,
    /// A founder merged into an existing cluster: it holds data the cluster lacks.
    merged: bool,
    /// Processes (name, generation) this node sent its state to unasked.
    contacted: HashMap<String, u64>,
    /// Dead members forgotten (reclaimed) without having left: they still count
    /// for the replication factor in effect.
    departed: BTreeSet<String>,
    /// Came back with its data (a durable restart): part of its cluster at once.
    restored: bool,
}

impl Swim {
    /// A node named `name` (its `host:port`), started at generation `generation`,
    /// whose datagram payloads may use `payload_budget` bytes.
    pub fn new(
        name: String,
        generation: u64,
        peer_port: u16,
        config: SwimConfig,
        payload_budget: usize,
        rng: StdRng,
    ) -> Swim {
        Swim {
            me: Update {
                name,
                generation,
                incarnation: 0,
                state: State::Alive,
                peer_port,
                accuser: None,
                store: generation,
                pending: false,
            },
            config,
            payload_budget,
            rng,
            members: BTreeMap::new(),
            gossip: Gossip::new(),
            probe_order: Vec::new(),
            probe_index: 0,
            hinted: Vec::new(),
            hint_probed: HashMap::new(),
            probe_was_hinted: false,
            seq: 0,
            round: 0,
            probe: None,
            relays: HashMap::new(),
            suspicions: HashMap::new(),
            health: 0,
            introducers: Vec::new(),
            now: 0,
            stats: Stats::default(),
            leaving: false,
            wall_base: 0,
            clock: ClockWatch::new(),
            founder: false,
            seen_others: false,
            got_state: false,
            formed: false,
            joiners: BTreeSet::new(),
            started_ms: 0,
            merged: false,
            contacted: HashMap::new(),
            departed: BTreeSet::new(),
            restored: false,
        }
    }

    /// The same node remembering `members` `(name, store, peer port, dead)` from
    /// its data directory at generation 0 (any news of them supersedes that):
    /// those that were on the ring as stopped (they keep their place, so the ring
    /// this node starts with is the one it left, and nothing is re-streamed when
    /// they answer), the others as dead; all count for the replication factor in
    /// effect and are contacted every period until they answer. When `restored`
    /// (it comes back with its data), it is joined at once: a whole cluster
    /// restarting must not wait for a member that has already joined.
    pub fn remembering(mut self, members: Vec<(String, u64, u16, bool)>, restored: bool) -> Swim {
        for (name, store, peer_port, dead) in members {
            if name == self.me.name {
                continue;
            }
            let update = Update {
                name: name.clone(),
                generation: 0,
                incarnation: 0,
                state: if dead { State::Dead } else { State::Stopped },
                peer_port,
                accuser: None,
                store,
                pending: false,
            };
            self.members.insert(
                name,
                Member {
                    update,
                    last_change_ms: 0,
                },
            );
        }
        self.restored = restored;
        self
    }

    /// The same node with the store generation `store` (the generation when it
    /// started without data) and, when `pending`, announced as a pending replica.
    pub fn with_store(mut self, store: u64, pending: bool) -> Swim {
        self.me.store = store;
        self.me.pending = pending;
        self
    }

    /// The same node with wall clock `wall_base` (Unix ms) at time 0: pings and
    /// acks carry `wall_base + now`.
    pub fn with_wall_base(mut self, wall_base: u64) -> Swim {
        self.wall_base = wall_base;
        self
    }

    /// The SWIM settings.
    pub fn config(&self) -> &SwimConfig {
        &self.config
    }

    /// This node's wall clock (Unix ms) now.
    pub fn wall_ms(&self) -> u64 {
        self.wall_base.saturating_add(self.now)
    }

    /// The clock offsets of peers estimated so far.
    pub fn clock(&self) -> &ClockWatch {
        &self.clock
    }

    /// This node's handoff completed: it stops announcing itself as pending.
    pub fn mark_synced(&mut self, now: u64, out: &mut Vec<Effect>) {
        self.now = now;
        if self.me.pending && !self.leaving {
            self.me.pending = false;
            self.me.incarnation = self.me.incarnation.saturating_add(1);
            self.gossip.enqueue(self.me.clone(), true);
            out.push(Effect::Notify(Event::Updated(self.me.clone())));
        }
    }

    /// True once this node has known another live member.
    pub fn seen_others(&self) -> bool {
        self.seen_others
    }

    /// True when this node started without introducers (the first node of a cluster).
    pub fn founder(&self) -> bool {
        self.founder
    }

    /// True once this node is part of a cluster and may coordinate requests: it
    /// applied the full state of a member that was itself joined (knowing one
    /// member from a join is not enough, nor is the state of a process that has
    /// just restarted), or it came back with its data; or, at `now`, it is a
    /// first node whose `first_node_wait_ms` is over and that no member of an
    /// existing cluster reached in the meantime: it serves alone, or with the
    /// new joiners that found it (it formed a cluster). A first node does not
    /// serve before its wait is over even when new joiners reach it first: an
    /// in-memory first node restarted with its first command may hear from a
    /// new joiner before its old cluster reaches it, and it must not answer 404
    /// for the old cluster's keys meanwhile (the lifecycle simulator found it).
    pub fn joined(&self, now: u64) -> bool {
        self.restored
            || self.got_state
            || (self.founder
                && !self.merged
                && (self.formed || !self.seen_others)
                && now.saturating_sub(self.started_ms) >= self.config.first_node_wait_ms)
    }

    /// True when this node, started without introducers, was merged into an
    /// existing cluster: the keys it took while alone must be pushed to it.
    pub fn merged(&self) -> bool {
        self.merged
    }

    /// Members that stopped keeping their place on the ring, by name.
    pub fn stopped_members(&self) -> impl Iterator<Item = &Update> {
        self.members
            .values()
            .filter(|m| m.state() == State::Stopped)
            .map(|m| &m.update)
    }

    /// Members known to be dead (not left), with their store generations, by name.
    pub fn dead_members(&self) -> Vec<(String, u64)> {
        self.members
            .values()
            .filter(|m| m.state() == State::Dead)
            .map(|m| (m.update.name.clone(), m.update.store))
            .collect()
    }

    /// Members that have not left, this node and dead members included (those
    /// forgotten after `dead_reclaim_ms` too): what caps the replication factor.
    pub fn members_not_left(&self) -> usize {
        let known = self
            .members
            .values()
            .filter(|m| m.state() != State::Left)
            .count();
        1 + known + self.departed.len()
    }

    /// This node's own update (name, generation, incarnation, state).
    pub fn me(&self) -> &Update {
        &self.me
    }

    /// Every other member this node knows, in name order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Number of live members (alive or suspect), this node included.
    pub fn live_count(&self) -> usize {
        1 + self
            .members
            .values()
            .filter(|m| m.state().is_live())
            .count()
    }

    /// The Lifeguard local health score (0 = healthy).
    pub fn health(&self) -> u32 {
        self.health
    }

    /// Updates waiting to be gossiped.
    pub fn gossip_backlog(&self) -> usize {
        self.gossip.len()
    }

    /// Protocol counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn multiplier(&self) -> u64 {
        if self.config.lifeguard {
            u64::from(self.health) + 1
        } else {
            1
        }
    }

    fn adjust_health(&mut self, delta: i64) {
        if !self.config.lifeguard {
            return;
        }
        let max = i64::from(self.config.max_local_health.saturating_sub(1));
        self.health = (i64::from(self.health) + delta).clamp(0, max) as u32;
    }

    /// Starts the protocol at `now`, joining through `introducers` (may be empty).
    pub fn start(&mut self, now: u64, introducers: Vec<String>, out: &mut Vec<Effect>) {
        self.now = now;
        self.introducers = introducers
            .into_iter()
            .filter(|i| *i != self.me.name)
            .collect();
        self.founder = self.introducers.is_empty();
        self.started_ms = now;
        let first = self.rng.gen_range(0..self.config.protocol_period_ms.max(1));
        out.push(Effect::Schedule {
            after_ms: first,
            timer: Timer::Protocol { round: 0 },
        });
        // A first push-pull a few periods after the start fills what the join
        // answer missed (a lost chunk); later ones follow at the slow interval,
        // jittered so that the cluster's exchanges do not all fire together.
        let period = self.config.protocol_period_ms.max(1);
        let first_sync = 3 * period + self.rng.gen_range(0..period);
        out.push(Effect::Schedule {
            after_ms: first_sync.min(self.config.push_pull_interval_ms),
            timer: Timer::PushPull,
        });
        out.push(Effect::Schedule {
            after_ms: self.config.gossip_interval_ms,
            timer: Timer::Gossip,
        });
        out.push(Effect::Schedule {
            after_ms: self.config.reconnect_interval_ms,
            timer: Timer::Reconnect,
        });
        // Announce itself (a new generation supersedes an old one): its own pings and
        // acks spread the news along with the introducer's.
        self.gossip.enqueue(self.me.clone(), true);
        if !self.introducers.is_empty() {
            self.send_join(out);
            out.push(Effect::Schedule {
                after_ms: self.join_backoff(1),
                timer: Timer::JoinRetry { attempt: 1 },
            });
        }
    }

    fn join_backoff(&self, attempt: u32) -> u64 {
        let base = (self.config.protocol_period_ms / 4).max(1);
        base.saturating_mul(1u64 << attempt.min(10))
            .min(self.config.reconnect_interval_ms)
    }

    fn send_join(&mut self, out: &mut Vec<Effect>) {
        for to in self.introducers.clone() {
            self.send(out, to, Body::Join);
        }
    }

    /// Stops, keeping its data and its place: announces `stopped` to several
    /// members and stops refuting (the next process of this node supersedes it).
    pub fn stop(&mut self, now: u64, out: &mut Vec<Effect>) {
        self.now = now;
        self.leaving = true;
        self.me.incarnation += 1;
        self.me.state = State::Stopped;
        self.broadcast(self.me.clone(), out);
    }

    /// Leaves gracefully: announces `left` to several members and stops refuting.
    pub fn leave(&mut self, now: u64, out: &mut Vec<Effect>) {
        self.now = now;
        self.leaving = true;
        self.me.incarnation += 1;
        self.me.state = State::Left;
        self.broadcast(self.me.clone(), out);
    }

    fn live_names(&self) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.state().is_live())
            .map(|m| m.update.name.clone())
            .collect()
    }

    /// A timer fired at `now`.
    pub fn on_timer(&mut self, now: u64, timer: Timer, out: &mut Vec<Effect>) {
        self.now = now;
        match timer {
            Timer::Protocol { round } if round == self.round => self.protocol_period(out),
            Timer::Protocol { .. } => {}
            Timer::ProbeTimeout { seq } => self.probe_timeout(seq, out),
            Timer::RelayTimeout { seq } => {
                if let Some(relay) = self.relays.remove(&seq) {
                    if self.config.lifeguard {
                        self.send(
                            out,
                            relay.origin,
                            Body::Nack {
                                seq: relay.origin_seq,
                            },
                        );
                    }
                }
            }
            Timer::Suspicion {
                name,
                generation,
                incarnation,
            } => self.suspicion_timer(&name, generation, incarnation, out),
            Timer::Gossip => {
                // Spread waiting news faster than one probe per period carries it
                // (memberlist's gossip interval); nothing is sent when none waits, so
                // the steady-state message rate stays one probe per period. Without
                // Lifeguard the node runs plain SWIM: piggybacked dissemination only.
                if self.config.lifeguard && !self.gossip.is_empty() && !self.leaving {
                    let mut live = self.live_names();
                    live.shuffle(&mut self.rng);
                    for to in live.into_iter().take(self.config.gossip_fanout) {
                        self.send(out, to, Body::Gossip);
                    }
                }
                out.push(Effect::Schedule {
                    after_ms: self.config.gossip_interval_ms,
                    timer: Timer::Gossip,
                });
            }
            Timer::PushPull => {
                let live = self.live_names();
                if let Some(to) = live.choose(&mut self.rng).cloned() {
                    self.send_state(out, to, true);
                }
                let chunks = self.state_chunks().len().max(1) as u64;
                let interval = self.config.push_pull_interval_ms.saturating_mul(chunks);
                let jitter = self.rng.gen_range(0..=interval / 4);
                out.push(Effect::Schedule {
                    after_ms: interval - interval / 8 + jitter,
                    timer: Timer::PushPull,
                });
            }
            Timer::Reconnect => self.reconnect(out),
            Timer::JoinRetry { attempt } => {
                if self.live_count() == 1 && !self.leaving {
                    self.send_join(out);
                    out.push(Effect::Schedule {
                        after_ms: self.join_backoff(attempt + 1),
                        timer: Timer::JoinRetry {
                            attempt: attempt + 1,
                        },
                    });
                }
            }
        }
    }

    /// Something outside SWIM (a peer connection reset or refused) suggests that
    /// member `name` is gone: probe it at the next protocol period instead of
    /// waiting for its turn in the round-robin. The hint never suspects anyone by
    /// itself; the probe, ping-req round and suspicion run as for any member.
    pub fn hint_unreachable(&mut self, now: u64, name: &str) {
        self.now = now;
        if !self.leaving {
            self.probe_next(name);
        }
    }
}
