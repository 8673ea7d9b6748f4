//! A ring snapshot: the ring of the live members with what coordinators and
//! stabilizers need to know about them besides placement.
//!
//! Invariant: immutable once built; `ring` holds exactly the names of the members
//! it was built of (live ones, and stopped ones keeping their place), each with
//! its store generation, and `peers` their peer RPC addresses. Pure.

use super::ring::Ring;
use crate::membership::member::LiveMember;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// An immutable ring and what is known of its members.
#[derive(Clone, Debug)]
pub struct RingSnapshot {
    /// The ring.
    pub ring: Arc<Ring>,
    /// Peer RPC address of every ring member, by name.
    pub peers: Arc<BTreeMap<String, String>>,
    /// Ring members that are pending replicas (still receiving their handoff).
    pub pending: Arc<BTreeSet<String>>,
    /// Members that have not left, dead and unreachable ones included: what the
    /// replication factor in effect is capped by.
    pub members_not_left: usize,
    /// Members known to be dead (not left), with their store generations.
    pub dead: Arc<Vec<(String, u64)>>,
    /// This node has joined its cluster (before, the ring holds this node only).
    pub joined: bool,
    /// Ring members that stopped, keeping their data and place: down, not asked.
    pub stopped: Arc<BTreeSet<String>>,
}

impl RingSnapshot {
    /// A ring of the given live members at `epoch`, with `vnodes` virtual nodes
    /// each, in a cluster of `members_not_left` members that have not left.
    pub fn new(
        epoch: u64,
        live: &[LiveMember],
        vnodes: u32,
        members_not_left: usize,
    ) -> RingSnapshot {
        let ring = Ring::with_stores(
            epoch,
            live.iter().map(|m| (m.name.clone(), m.store)),
            vnodes,
        );
        let peers = live
            .iter()
            .map(|m| (m.name.clone(), m.peer_addr.clone()))
            .collect();
        let pending = live
            .iter()
            .filter(|m| m.pending)
            .map(|m| m.name.clone())
            .collect();
        RingSnapshot {
            ring: Arc::new(ring),
            peers: Arc::new(peers),
            pending: Arc::new(pending),
            members_not_left: members_not_left.max(live.len()),
            dead: Arc::new(Vec::new()),
            joined: true,
            stopped: Arc::new(BTreeSet::new()),
        }
    }

    /// The same snapshot, knowing these ring members to be stopped.
    pub fn with_stopped(mut self, stopped: BTreeSet<String>) -> RingSnapshot {
        self.stopped = Arc::new(stopped);
        self
    }

    /// The same snapshot, `joined` or not.
    pub fn joined(mut self, joined: bool) -> RingSnapshot {
        self.joined = joined;
        self
    }

    /// The same snapshot, knowing these members to be dead.
    pub fn with_dead(mut self, dead: Vec<(String, u64)>) -> RingSnapshot {
        self.dead = Arc::new(dead);
        self
    }

    /// The ring of every member not known to have left: the live ones with their
    /// stores, and the dead ones with theirs (`me` with `me_store`).
    pub fn all_members(&self, me: &str, me_store: u64) -> Ring {
        let live = self
            .ring
            .identities()
            .map(|(m, s)| (m.to_string(), if m == me { me_store } else { s }));
        let dead = self.dead.iter().cloned();
        Ring::with_stores(self.ring.epoch(), live.chain(dead), self.ring.vnodes())
    }

    /// True when `member` is a pending replica.
    pub fn is_pending(&self, member: &str) -> bool {
        self.pending.contains(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(name: &str, store: u64, pending: bool) -> LiveMember {
        LiveMember {
            name: name.into(),
            peer_addr: format!("{name}-rpc"),
            store,
            pending,
        }
    }

    #[test]
    fn a_snapshot_carries_stores_peers_pending_members_and_the_cluster_size() {
        let s = RingSnapshot::new(3, &[live("b", 2, true), live("a", 1, false)], 8, 5);
        assert_eq!(s.ring.members(), ["a", "b"]);
        assert_eq!(
            (s.ring.store_of("a"), s.ring.store_of("b")),
            (Some(1), Some(2))
        );
        assert_eq!(s.peers.get("b").map(String::as_str), Some("b-rpc"));
        assert!(s.is_pending("b") && !s.is_pending("a"));
        assert_eq!(s.members_not_left, 5);
        assert_eq!(
            RingSnapshot::new(1, &[live("a", 1, false)], 8, 0).members_not_left,
            1
        );
    }
}
