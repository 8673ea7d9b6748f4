//! The RingActor: rebuilds the ring when the set of live members changes.
//!
//! It publishes an immutable [`RingSnapshot`] with a new epoch to subscribers.
//! Invariant: the epoch grows by one exactly when the member set changes, so two
//! snapshots with the same epoch hold the same ring.

use super::ring::Ring;
use crate::membership::actor::{LiveMember, MembershipChanged};
use crate::metrics::Metrics;
use actix::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An immutable ring and the peer address of each of its members.
#[derive(Clone, Debug)]
pub struct RingSnapshot {
    /// The ring.
    pub ring: Arc<Ring>,
    /// Peer RPC address of every ring member, by name.
    pub peers: Arc<BTreeMap<String, String>>,
}

impl RingSnapshot {
    /// A ring of the given live members.
    pub fn new(epoch: u64, live: &[LiveMember], vnodes: u32) -> RingSnapshot {
        let ring = Ring::new(epoch, live.iter().map(|m| m.name.clone()), vnodes);
        let peers = live
            .iter()
            .map(|m| (m.name.clone(), m.peer_addr.clone()))
            .collect();
        RingSnapshot {
            ring: Arc::new(ring),
            peers: Arc::new(peers),
        }
    }
}

/// Sent to subscribers with every new ring.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct RingChanged(pub RingSnapshot);

/// Asks for the current ring.
#[derive(Message)]
#[rtype(result = "RingSnapshot")]
pub struct GetRing;

/// Owns the current ring.
pub struct RingActor {
    current: RingSnapshot,
    live: Vec<LiveMember>,
    vnodes: u32,
    subscribers: Vec<Recipient<RingChanged>>,
    metrics: Metrics,
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
            current: RingSnapshot::new(1, &live, vnodes),
            live,
            vnodes,
            subscribers,
            metrics,
        }
    }
}

impl Actor for RingActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.metrics
            .ring_epoch
            .set(self.current.ring.epoch() as i64);
        for s in &self.subscribers {
            s.do_send(RingChanged(self.current.clone()));
        }
    }
}

impl Handler<MembershipChanged> for RingActor {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, _: &mut Context<Self>) {
        if msg.live == self.live {
            return;
        }
        self.live = msg.live;
        let epoch = self.current.ring.epoch() + 1;
        self.current = RingSnapshot::new(epoch, &self.live, self.vnodes);
        self.metrics.ring_epoch.set(epoch as i64);
        log::info!("ring epoch {epoch}: {} members", self.live.len());
        for s in &self.subscribers {
            s.do_send(RingChanged(self.current.clone()));
        }
    }
}

impl Handler<GetRing> for RingActor {
    type Result = MessageResult<GetRing>;

    fn handle(&mut self, _: GetRing, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.current.clone())
    }
}
