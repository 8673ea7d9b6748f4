//! Placement: which replicas a coordinator asks for a key, and how many answers
//! it needs from each group of them.
//!
//! - The replication factor in effect is N, or the number of members that have
//!   not left when that is smaller (dead and unreachable members count: a member
//!   that sees every other member dead still needs W copies, and answers 503).
//! - The **current group** is the key's preference list on the current ring (live
//!   members only: a sloppy quorum), this node first and pending replicas last.
//! - During a transition, the **settled group** is the live part of the key's list
//!   on the settled ring: members on the current ring with the same store, or
//!   with a new store once they are no longer pending (back without their data,
//!   and since caught up). It needs its quorum too (a joint quorum), so a read
//!   never takes a newcomer's "missing" for an answer and a write lands where
//!   reads of the settled ring look.
//! - After a partition heals (or two clusters merge), the members that came back
//!   holding data (on the current ring, absent from the settled one, not pending)
//!   held writes of their own: a read also needs, from the key's list on a ring
//!   of those members (and of the members of that side that are dead again),
//!   enough live answers to meet any write acknowledged there (list length + 1 −
//!   W), or it is a 503.
//! - A ring left by a change that lost W or more replicas of some key at once
//!   haunts reads of that key (see `haunted.rs`).
//!
//! Invariant: every group's need is computed from the replication factor in
//! effect, never from how many replicas happen to be live. Pure.

use super::coordinator::Group;
use super::haunted::{kept, kept_strictly, lost_too_many};
use super::quorum::{effective_n, needed, Consistency};
use crate::ring::hash::token;
use crate::ring::ownership::Ownership;
use crate::ring::ring::Ring;
use crate::ring::snapshot::RingSnapshot;
use std::sync::Arc;

/// Where keys live now: the current ring and, during a transition, the settled one.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The current ring and what is known of its members.
    pub current: RingSnapshot,
    /// The settled ring while a transition is under way.
    pub previous: Option<Arc<Ring>>,
    /// The ring of the members that came back holding data, while a transition
    /// that brought them back is under way.
    pub returning: Option<Arc<Ring>>,
    /// Rings left by changes that lost too many replicas of some keys at once.
    pub haunted: Vec<Arc<Ring>>,
    /// This node may coordinate: it joined and has since seen its view settle
    /// (every member reported its handoff for the ring), so it knows where the
    /// data is; a process that has just started has no history of rings.
    pub serving: bool,
}

/// What a request needs to know of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quorums {
    /// Replication factor N.
    pub n: usize,
    /// Read quorum R.
    pub r: usize,
    /// Write quorum W.
    pub w: usize,
}

impl Placement {
    /// A placement on `current` alone (no transition).
    pub fn settled(current: RingSnapshot) -> Placement {
        Placement {
            current,
            previous: None,
            returning: None,
            haunted: Vec::new(),
            serving: true,
        }
    }

    /// The replication factor in effect for `n`.
    pub fn effective_n(&self, n: usize) -> usize {
        effective_n(n, self.current.members_not_left)
    }

    /// What `me` owns at replication factor `n`: the keys it is a replica of
    /// on the current ring, the settled one, the returning one or a haunted one.
    pub fn ownership(&self, me: &str, n: usize) -> Ownership {
        let rings = std::iter::once(self.current.ring.clone())
            .chain(self.previous.iter().cloned())
            .chain(self.returning.iter().cloned())
            .chain(self.haunted.iter().cloned())
            .collect();
        Ownership::new(me, self.effective_n(n), rings)
    }

    /// The store generation a coordinator expects of `member` (`None` if unknown).
    pub fn expect(&self, member: &str) -> Option<u64> {
        self.current.ring.store_of(member)
    }

    /// The groups a read (`write == false`) or write of `key` at `level` must
    /// reach, as coordinated by `me`.
    pub fn groups(
        &self,
        me: &str,
        key: &str,
        level: Consistency,
        q: Quorums,
        write: bool,
    ) -> Vec<Group> {
        let n = self.effective_n(q.n);
        let configured = if write { q.w } else { q.r };
        let need = needed(level, configured, n);
        let t = token(key.as_bytes());
        let ring = &self.current.ring;
        let mut current: Vec<String> = ring
            .preference_list(t, n)
            .into_iter()
            .map(str::to_string)
            .collect();
        // This node first (a read asks the first R replicas before the others),
        // then the others, pending replicas last (they answer reads "not
        // authoritative" anyway).
        current.sort_by_key(|m| (*m != me, self.current.is_pending(m)));
        let mut groups = vec![Group::new(current.clone(), need)];
        if let Some(previous) = &self.previous {
            let settled = previous.preference_list(t, n);
            // A settled replica still counts with its store, or with a new one
            // once it is no longer pending (it came back empty and has since
            // received its handoff).
            // ... unless the key lost W or more of its settled replicas:
            // then only those with their very store count (the others may have
            // caught up from survivors that never held the key).
            let strict = lost_too_many(&settled, previous, ring, q.w);
            let kept = |m: &str| {
                if strict {
                    kept_strictly(previous, ring, m)
                } else {
                    kept(previous, ring, &self.current.pending, m)
                }
            };
            if settled
                .iter()
                .any(|m| !(kept(m) && current.iter().any(|c| c == m)))
            {
                // Quorums on the settled ring were made of min(n, its size) replicas.
                let settled_n = n.min(previous.len().max(1));
                let live: Vec<String> = settled
                    .into_iter()
                    .filter(|m| kept(m))
                    .map(str::to_string)
                    .collect();
                groups.push(Group::new(live, needed(level, configured, settled_n)));
            }
        }
        if !write && level != Consistency::One {
            for h in &self.haunted {
                let list = h.preference_list(t, n);
                if lost_too_many(&list, h, ring, q.w) {
                    // Too many of its replicas are gone: the survivors must answer.
                    let live: Vec<String> = list
                        .into_iter()
                        .filter(|m| kept_strictly(h, ring, m))
                        .map(str::to_string)
                        .collect();
                    let haunted_n = n.min(h.len().max(1));
                    groups.push(Group::new(live, needed(level, configured, haunted_n)));
                }
            }
        }
        if let (Some(returning), false, false) = (&self.returning, write, level == Consistency::One)
        {
            let list = returning.preference_list(t, n);
            // Enough of them to meet any write acknowledged on that ring; those
            // that are dead again count against it.
            let w = needed(Consistency::Quorum, q.w, n);
            let meet = (list.len() + 1).saturating_sub(w);
            let live: Vec<String> = list
                .into_iter()
                .filter(|m| ring.store_of(m).is_some())
                .map(str::to_string)
                .collect();
            if meet > 0 {
                groups.push(Group::new(live, meet));
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::member::LiveMember;

    const Q: Quorums = Quorums { n: 3, r: 2, w: 2 };

    fn live(names: &[&str], pending: &[&str]) -> Vec<LiveMember> {
        names
            .iter()
            .map(|n| LiveMember {
                name: n.to_string(),
                peer_addr: format!("{n}:1"),
                store: 1,
                pending: pending.contains(n),
            })
            .collect()
    }

    fn snapshot(names: &[&str], pending: &[&str], not_left: usize) -> RingSnapshot {
        RingSnapshot::new(1, &live(names, pending), 16, not_left)
    }

    fn key_of(ring: &Ring, with: &str) -> String {
        (0..)
            .map(|i| format!("k{i}"))
            .find(|k| ring.locate(k.as_bytes(), 3).contains(&with))
            .expect("a key")
    }

    #[test]
    fn a_member_that_sees_every_other_member_dead_still_needs_w_copies() {
        let p = Placement::settled(snapshot(&["a"], &[], 3));
        let g = p.groups("a", "k", Consistency::Quorum, Q, true);
        assert_eq!(g, [Group::new(vec!["a".into()], 2)], "needs 2 of 1: a 503");
        assert_eq!(p.effective_n(3), 3);
        let alone = Placement::settled(snapshot(&["a"], &[], 1));
        let g = alone.groups("a", "k", Consistency::Quorum, Q, true);
        assert_eq!(
            g,
            [Group::new(vec!["a".into()], 1)],
            "a first node alone serves"
        );
    }

    #[test]
    fn this_node_comes_first_and_pending_replicas_last() {
        let s = snapshot(&["a", "b", "c", "d"], &["b"], 4);
        let k = key_of(&s.ring, "b");
        let list: Vec<String> = s
            .ring
            .locate(k.as_bytes(), 3)
            .iter()
            .map(|m| m.to_string())
            .collect();
        let p = Placement::settled(s);
        let me = list.iter().find(|m| *m != "b").expect("another").clone();
        let g = p.groups(&me, &k, Consistency::Quorum, Q, false);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].replicas[0], me);
        assert_eq!(g[0].replicas.last().map(String::as_str), Some("b"));
    }

    #[test]
    fn a_member_back_without_its_data_is_left_out_of_the_settled_group() {
        let s = snapshot(&["a", "b", "c", "d"], &["b"], 4);
        let k = key_of(&s.ring, "b");
        let previous = Arc::new(s.ring.with_store("b", 0));
        let p = Placement {
            current: s,
            previous: Some(previous),
            returning: None,
            haunted: Vec::new(),
            serving: true,
        };
        let g = p.groups("a", &k, Consistency::Quorum, Q, false);
        assert_eq!(g.len(), 2);
        assert!(g[0].replicas.contains(&"b".to_string()));
        assert!(!g[1].replicas.contains(&"b".to_string()));
        assert_eq!((g[1].replicas.len(), g[1].needed), (2, 2));
    }

    #[test]
    fn after_a_heal_a_read_also_meets_the_writes_of_the_side_that_came_back() {
        let all = snapshot(&["a", "b", "c", "x", "y"], &[], 5);
        let mine = Arc::new(Ring::with_stores(
            1,
            ["a", "b", "c"].map(|m| (m.to_string(), 1)),
            16,
        ));
        let theirs = Arc::new(Ring::with_stores(
            1,
            [("x".to_string(), 1), ("y".to_string(), 1)],
            16,
        ));
        let p = Placement {
            current: all,
            previous: Some(mine),
            returning: Some(theirs),
            haunted: Vec::new(),
            serving: true,
        };
        let g = p.groups("a", "some key", Consistency::Quorum, Q, false);
        let back = g.last().expect("groups");
        assert_eq!(back.replicas.len(), 2);
        assert_eq!(
            back.needed, 1,
            "x and y acknowledged with both: one of them will do"
        );
        assert!(p
            .groups("a", "some key", Consistency::Quorum, Q, true)
            .iter()
            .all(|g| g.replicas.len() != 2 || g.needed != 1));
        assert_eq!(
            p.groups("a", "some key", Consistency::One, Q, false).len(),
            2
        );
    }
}
