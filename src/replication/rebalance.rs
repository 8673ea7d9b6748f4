//! Rebalancing: where each local key must go when the ring changes, and when a
//! ring change is settled.
//!
//! Every node compares the *settled* ring (the last one whose handoff every member
//! reported complete) with the *current* one. A key it holds is pushed to the
//! members that are new in the key's preference list; if this node is no longer in
//! the list, the key is pushed to the whole new list and dropped locally once they
//! all acknowledged. A [`Transition`] tracks which members finished their handoff
//! for the current ring; until all did, coordinators use joint quorums over the
//! settled and the current preference lists (see `coordinator.rs`).
//!
//! Invariants: a key is only ever dropped after a push to its entire new
//! preference list was acknowledged; the settled ring only moves forward to a ring
//! every one of whose members reported its handoff complete, or after a timeout.
//! Pure.

use crate::ring::hash::{token, Token};
use crate::ring::ring::Ring;
#[cfg(test)]
use crate::storage::ops::in_ranges;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What to do with one local key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPlan {
    /// Members to push the key to.
    pub push_to: Vec<String>,
    /// Drop the local copy once every push was acknowledged.
    pub drop_local: bool,
}

/// The plan for a key with token `token` held by `me`, moving from `settled` to
/// `current`. Exactly one holder streams the key to each member that is new in its
/// preference list: a live member that drops out of the list (it must hand off
/// before dropping anyway), or else the first member of the old list that stays.
/// A copy held by a member in neither list is pushed to the whole new list.
pub fn plan_key(me: &str, token: Token, settled: &Ring, current: &Ring, n: usize) -> KeyPlan {
    let new = current.preference_list(token, n);
    let old = settled.preference_list(token, n);
    let in_new = new.contains(&me);
    let in_old = old.contains(&me);
    let fresh = || -> Vec<String> {
        new.iter()
            .filter(|m| !old.contains(m))
            .map(|m| m.to_string())
            .collect()
    };
    let alive = |m: &&str| current.members().iter().any(|c| c == m);
    let leavers: Vec<&str> = old
        .iter()
        .copied()
        .filter(alive)
        .filter(|m| !new.contains(m))
        .collect();
    match (in_old, in_new) {
        (true, false) => KeyPlan {
            push_to: fresh(),
            drop_local: true,
        },
        (false, false) => KeyPlan {
            push_to: new.iter().map(|m| m.to_string()).collect(),
            drop_local: true,
        },
        (true, true) => {
            let pusher = leavers.is_empty() && old.iter().find(|m| new.contains(m)) == Some(&me);
            KeyPlan {
                push_to: if pusher { fresh() } else { Vec::new() },
                drop_local: false,
            }
        }
        (false, true) => KeyPlan {
            push_to: Vec::new(),
            drop_local: false,
        },
    }
}

/// The token ranges `(start, end]` whose preference lists hold both `a` and `b`,
/// split so that no range wraps, sorted by start.
pub fn shared_ranges(ring: &Ring, a: &str, b: &str, n: usize) -> Vec<(Token, Token)> {
    let entries: Vec<Token> = ring.vnode_entries().map(|(t, _)| t).collect();
    let mut out = Vec::new();
    for (i, &end) in entries.iter().enumerate() {
        let start = if i == 0 {
            entries[entries.len() - 1]
        } else {
            entries[i - 1]
        };
        if start == end {
            continue;
        }
        let list = ring.preference_list(end, n);
        if !(list.contains(&a) && list.contains(&b)) {
            continue;
        }
        if start < end {
            out.push((start, end));
        } else {
            // The wrapping range (start, MAX] + [0, end].
            out.push((start, Token::MAX));
            out.push((0, end));
        }
    }
    out.sort_unstable();
    out
}

/// A ring's identity independent of any node's epoch numbering: a hash of its members.
pub fn fingerprint(ring: &Ring) -> u64 {
    token(ring.members().join(",").as_bytes()) ^ u64::from(ring.vnodes())
}

/// Which ring is settled, and who finished handing off for the current one.
#[derive(Clone, Debug)]
pub struct Transition {
    settled: Arc<Ring>,
    current: Arc<Ring>,
    synced: BTreeSet<String>,
    changed_ms: u64,
    timeout_ms: u64,
}

impl Transition {
    /// Starts settled on `ring`; a transition not settled after `timeout_ms` is
    /// declared settled anyway (a member that never reports must not block forever).
    pub fn new(ring: Arc<Ring>, timeout_ms: u64) -> Transition {
        Transition {
            settled: ring.clone(),
            current: ring,
            synced: BTreeSet::new(),
            changed_ms: 0,
            timeout_ms,
        }
    }

    /// The ring in use.
    pub fn current(&self) -> &Arc<Ring> {
        &self.current
    }

    /// The last settled ring.
    pub fn settled(&self) -> &Arc<Ring> {
        &self.settled
    }

    /// The settled ring while a transition is under way.
    pub fn previous(&self) -> Option<&Arc<Ring>> {
        (fingerprint(&self.settled) != fingerprint(&self.current)).then_some(&self.settled)
    }

    /// A new current ring. Returns true when it differs from the previous current ring.
    pub fn on_ring(&mut self, ring: Arc<Ring>, now_ms: u64) -> bool {
        if fingerprint(&ring) == fingerprint(&self.current) {
            self.current = ring;
            return false;
        }
        self.current = ring;
        self.synced.clear();
        self.changed_ms = now_ms;
        true
    }

    /// Member `from` finished its handoff for the ring with `print`. Returns true
    /// when this settles the transition.
    pub fn on_synced(&mut self, from: &str, print: u64) -> bool {
        if print != fingerprint(&self.current) || self.previous().is_none() {
            return false;
        }
        self.synced.insert(from.to_string());
        if self
            .current
            .members()
            .iter()
            .all(|m| self.synced.contains(m))
        {
            self.settled = self.current.clone();
            return true;
        }
        false
    }

    /// Time passes. Returns true when the timeout settles the transition.
    pub fn on_tick(&mut self, now_ms: u64) -> bool {
        if self.previous().is_some() && now_ms.saturating_sub(self.changed_ms) >= self.timeout_ms {
            self.settled = self.current.clone();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::hash::token;

    fn ring(epoch: u64, members: &[&str]) -> Ring {
        Ring::new(epoch, members.iter().map(|m| m.to_string()), 16)
    }

    /// For every key: who pushes it where, over all holders of the old list.
    fn pushes(old: &Ring, new: &Ring, key: &str) -> Vec<(String, String)> {
        let t = token(key.as_bytes());
        let mut out = Vec::new();
        for me in old.preference_list(t, 3) {
            if !new.members().iter().any(|m| m == me) {
                continue; // dead: not running
            }
            for to in plan_key(me, t, old, new, 3).push_to {
                out.push((me.to_string(), to));
            }
        }
        out
    }

    #[test]
    fn every_member_new_in_a_list_receives_the_key_exactly_once() {
        let five = ring(1, &["a", "b", "c", "d", "e"]);
        let cases = [
            (ring(0, &["a", "b", "c", "d"]), five.clone()), // join
            (five.clone(), ring(2, &["a", "b", "c", "e"])), // death or leave
            (five.clone(), ring(2, &["a", "c", "e"])),      // two deaths
            (
                ring(0, &["a", "b", "c"]),
                ring(2, &["a", "b", "c", "d", "e"]),
            ), // two joins
        ];
        for (ci, (old, new)) in cases.iter().enumerate() {
            for i in 0..2_000 {
                let key = format!("key-{i}");
                let t = token(key.as_bytes());
                let (o, n) = (old.preference_list(t, 3), new.preference_list(t, 3));
                let mut got: Vec<String> = pushes(old, new, &key)
                    .into_iter()
                    .map(|(_, to)| to)
                    .collect();
                got.sort();
                let mut want: Vec<String> = n
                    .iter()
                    .filter(|m| !o.contains(m))
                    .map(|m| m.to_string())
                    .collect();
                want.sort();
                let live = |m: &str| new.members().iter().any(|x| x == m);
                let leavers = o.iter().filter(|m| live(m) && !n.contains(m)).count();
                if !o.iter().any(|m| live(m)) {
                    continue; // every old holder is gone: nothing can be pushed
                }
                if leavers > 1 {
                    // Each live leaver hands off before dropping: duplicates, never gaps.
                    got.dedup();
                }
                assert_eq!(got, want, "case {ci}, {key}: old {o:?} new {n:?}");
            }
        }
    }

    #[test]
    fn a_member_that_leaves_a_list_hands_off_to_the_newcomers_and_drops() {
        let old = ring(1, &["a", "b", "c", "d"]);
        let new = ring(2, &["a", "b", "c", "d", "e"]);
        let mut dropped = 0;
        for i in 0..2_000 {
            let t = token(format!("key-{i}").as_bytes());
            let (o, n) = (old.preference_list(t, 3), new.preference_list(t, 3));
            for me in o.iter().filter(|m| !n.contains(m)) {
                let plan = plan_key(me, t, &old, &new, 3);
                assert!(plan.drop_local);
                assert_eq!(plan.push_to, vec!["e".to_string()]);
                dropped += 1;
            }
        }
        assert!(dropped > 0);
    }

    #[test]
    fn a_stray_copy_goes_to_the_whole_list_and_is_dropped() {
        let r = ring(1, &["a", "b", "c", "d", "e"]);
        let t = token(b"k");
        let list = r.preference_list(t, 3);
        let stray = ["a", "b", "c", "d", "e"]
            .into_iter()
            .find(|m| !list.contains(m))
            .expect("a member outside");
        let plan = plan_key(stray, t, &r, &r, 3);
        assert!(plan.drop_local);
        assert_eq!(plan.push_to.len(), 3);
    }

    #[test]
    fn shared_ranges_hold_exactly_the_tokens_both_members_replicate() {
        let r = ring(1, &["a", "b", "c", "d", "e"]);
        let ranges = shared_ranges(&r, "a", "c", 3);
        for i in 0..5_000 {
            let t = token(format!("key-{i}").as_bytes());
            let list = r.preference_list(t, 3);
            let both = list.contains(&"a") && list.contains(&"c");
            assert_eq!(in_ranges(&ranges, t), both, "key-{i}");
        }
    }

    #[test]
    fn an_unchanged_ring_moves_nothing() {
        let r = ring(1, &["a", "b", "c"]);
        let t = token(b"k");
        for me in ["a", "b", "c"] {
            assert_eq!(plan_key(me, t, &r, &r, 3).push_to, Vec::<String>::new());
        }
    }

    #[test]
    fn a_transition_settles_when_every_member_synced() {
        let mut tr = Transition::new(Arc::new(ring(1, &["a", "b"])), 60_000);
        assert!(tr.previous().is_none());
        let next = Arc::new(ring(2, &["a", "b", "c"]));
        let print = fingerprint(&next);
        assert!(tr.on_ring(next, 10));
        assert!(tr.previous().is_some());
        assert!(!tr.on_synced("a", print));
        assert!(
            !tr.on_synced("b", 12345),
            "a report for another ring does not count"
        );
        assert!(!tr.on_synced("b", print));
        assert!(tr.on_synced("c", print));
        assert!(tr.previous().is_none());
    }

    #[test]
    fn a_new_ring_mid_transition_keeps_the_old_settled_ring() {
        let first = Arc::new(ring(1, &["a", "b", "c"]));
        let mut tr = Transition::new(first.clone(), 60_000);
        tr.on_ring(Arc::new(ring(2, &["a", "b"])), 1);
        tr.on_synced("a", fingerprint(tr.current()));
        tr.on_ring(Arc::new(ring(3, &["a"])), 2);
        assert_eq!(
            tr.previous().map(|r| fingerprint(r)),
            Some(fingerprint(&first))
        );
    }

    #[test]
    fn a_transition_that_never_settles_times_out() {
        let mut tr = Transition::new(Arc::new(ring(1, &["a"])), 1_000);
        tr.on_ring(Arc::new(ring(2, &["a", "b"])), 100);
        assert!(!tr.on_tick(1_000));
        assert!(tr.on_tick(1_100));
        assert!(tr.previous().is_none());
    }
}
