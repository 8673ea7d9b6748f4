//! The RingActor: rebuilds the ring when the set of live members changes.
//!
//! It publishes an immutable [`RingSnapshot`] to subscribers. Invariant: the epoch
//! grows by one exactly when the set of live members or a member's store changes,
//! so two snapshots with the same epoch hold the same ring; a change of anything
//! else the snapshot carries (pending replicas, the cluster size) is published
//! with the same epoch.

use super::snapshot::RingSnapshot;
use crate::membership::actor::MembershipChanged;
use crate::membership::member::LiveMember;
use crate::metrics::Metrics;
use actix::prelude::*;

/// Sent to subscribers with every new snapshot.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct RingChanged {
    /// The ring and what is known of its members.
    pub snapshot: RingSnapshot,
    /// This node started alone and was then merged into an existing cluster.
    pub merged: bool,
}

/// Asks for the current ring.
#[derive(Message)]
#[rtype(result = "RingSnapshot")]
pub struct GetRing;

/// Owns the current ring.
pub struct RingActor {
    current: RingSnapshot,
    live: Vec<LiveMember>,
    stopped: Vec<LiveMember>,
    members_not_left: usize,
    dead: Vec<(String, u64)>,
    merged: bool,
    joined: bool,
    vnodes: u32,
    subscribers: Vec<Recipient<RingChanged>>,
    metrics: Metrics,
}

fn identities(live: &[LiveMember]) -> Vec<(&str, u64)> {
    live.iter().map(|m| (m.name.as_str(), m.store)).collect()
}

impl RingActor {
    /// An actor whose first ring holds only `me`.
    pub fn new(
        me: LiveMember,
        vnodes: u32,
        subscribers: Vec<Recipient<RingChanged>>,
        metrics: Metrics,
    ) -> RingActor {
        let live = vec![me];
        RingActor {
            current: RingSnapshot::new(1, &live, vnodes, 1).joined(false),
            live,
            stopped: Vec::new(),
            members_not_left: 1,
            dead: Vec::new(),
            merged: false,
            joined: false,
            vnodes,
            subscribers,
            metrics,
        }
    }

    /// The same actor for a node that came back with its data: its first ring
    /// is the one it left, with the members its directory recorded as stopped
    /// (on the ring, down until they answer) and dead, and it is joined.
    pub fn restored(mut self, stopped: Vec<LiveMember>, dead: Vec<(String, u64)>) -> RingActor {
        let mut on_ring: Vec<LiveMember> = self.live.iter().chain(&stopped).cloned().collect();
        on_ring.sort();
        self.members_not_left = on_ring.len() + dead.len();
        self.current = RingSnapshot::new(1, &on_ring, self.vnodes, self.members_not_left)
            .with_dead(dead.clone())
            .with_stopped(stopped.iter().map(|m| m.name.clone()).collect());
        self.stopped = stopped;
        self.dead = dead;
        self.joined = true;
        self
    }

    fn notify(&self) {
        for s in &self.subscribers {
            s.do_send(RingChanged {
                snapshot: self.current.clone(),
                merged: self.merged,
            });
        }
    }
}

impl Actor for RingActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.metrics
            .ring_epoch
            .set(self.current.ring.epoch() as i64);
        self.notify();
    }
}

impl Handler<MembershipChanged> for RingActor {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, _: &mut Context<Self>) {
        if msg.live == self.live
            && msg.stopped == self.stopped
            && msg.members_not_left == self.members_not_left
            && msg.dead == self.dead
            && msg.merged == self.merged
            && msg.joined == self.joined
        {
            return;
        }
        // Stopped members keep their place: the ring holds them with the live ones.
        let mut on_ring: Vec<LiveMember> = msg.live.iter().chain(&msg.stopped).cloned().collect();
        on_ring.sort();
        let mut before: Vec<LiveMember> = self.live.iter().chain(&self.stopped).cloned().collect();
        before.sort();
        let mut epoch = self.current.ring.epoch();
        if identities(&on_ring) != identities(&before) {
            epoch += 1;
            log::info!("ring epoch {epoch}: {} members", on_ring.len());
        }
        self.live = msg.live;
        self.stopped = msg.stopped;
        self.members_not_left = msg.members_not_left;
        self.dead = msg.dead;
        self.merged = msg.merged;
        self.joined = msg.joined;
        self.current = RingSnapshot::new(epoch, &on_ring, self.vnodes, self.members_not_left)
            .with_dead(self.dead.clone())
            .with_stopped(self.stopped.iter().map(|m| m.name.clone()).collect())
            .joined(self.joined);
        self.metrics.ring_epoch.set(epoch as i64);
        self.notify();
    }
}

impl Handler<GetRing> for RingActor {
    type Result = MessageResult<GetRing>;

    fn handle(&mut self, _: GetRing, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.current.clone())
    }
}
