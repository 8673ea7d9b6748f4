//! Rebalancing: where each local key must go when the ring changes, and when a
//! ring change is settled.
//!
//! Every node compares the *settled* ring (the last one whose handoff every member
//! reported complete) with the *current* one. Members are compared by identity:
//! a name with the same store generation on both rings still holds its copies; a
//! member that came back without its data (same name, new store generation) is a
//! newcomer in every list it is in. A key this node holds is pushed to the
//! members that are new in the key's preference list; if this node is no longer
//! in the list, the key is pushed to the whole new list and dropped locally once
//! they all acknowledged. A [`Transition`] tracks which members finished their
//! handoff for the current ring; until all did, coordinators use joint quorums
//! over the settled and the current preference lists (see `coordinator.rs`).
//!
//! A node that came back without its data is *pending*: its settled ring is the
//! current ring with itself as it was before ([`FORMER_STORE`]), so its own
//! coordinator counts on the other replicas exactly as the rest of the cluster
//! does, until every member reported its handoff for the current ring.
//!
//! Invariants: a key is only ever dropped after a push to its entire new
//! preference list was acknowledged (and, see `stabilization.rs`, only once the
//! ring it went to settled); each newcomer in a list hears from N − W + 1 holders
//! where that many are live (one of them holds every write acknowledged at W);
//! the settled ring only moves forward to a ring
//! every one of whose members reported its handoff complete, or after a timeout;
//! a pending node alone on its ring stays pending. Pure.

use super::haunted::{haunts, MAX_HAUNTED};
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

/// The store generation a pending node gives itself on its settled ring: the data
/// it held before it came back, which no member can count on.
pub const FORMER_STORE: u64 = u64::MAX;

/// The plan for a key with token `token` held by `me`, moving from `settled` to
/// `current`. `pushers` holders stream the key to each member that is new in its
/// preference list, where that many are live: every live member that drops out of
/// the list (it must hand off before dropping anyway), then the first members of
/// the old list that stay. A write acknowledged by W of N replicas may have
/// missed N − W of them (a hint not yet delivered), so with `pushers` = N − W + 1
/// at least one pusher holds it; with 1, one holder streams each key.
/// A copy held by a member in neither list is pushed to the whole new list. A
/// member counts as the same on both rings only with the same store generation.
/// `push_own`: this node holds data the others may lack although it is new on the
/// ring (a first node that served alone, merged into an existing cluster): its
/// keys go to the rest of their lists too.
pub fn plan_key(
    me: &str,
    token: Token,
    settled: &Ring,
    current: &Ring,
    n: usize,
    pushers: usize,
    push_own: bool,
) -> KeyPlan {
    let new = current.preference_list(token, n);
    let old = settled.preference_list(token, n);
    // A member of the old list still holds its copies only with the same store.
    let kept = |m: &str| settled.same_store(current, m);
    let in_new = new.contains(&me);
    // This node held its copies unless it came back without its data (pending:
    // FORMER_STORE on the settled ring, or another store on the current one).
    let mine = settled.store_of(me);
    let in_old = old.contains(&me)
        && mine != Some(FORMER_STORE)
        && current.store_of(me).is_none_or(|s| Some(s) == mine);
    let fresh = || -> Vec<String> {
        new.iter()
            .filter(|m| !(old.contains(m) && kept(m)))
            .map(|m| m.to_string())
            .collect()
    };
    let leavers: Vec<&str> = old
        .iter()
        .copied()
        .filter(|m| kept(m) && !new.contains(m))
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
            let stayers = pushers.saturating_sub(leavers.len());
            let pusher = old
                .iter()
                .filter(|m| new.contains(m) && kept(m))
                .take(stayers)
                .any(|m| *m == me);
            KeyPlan {
                push_to: if pusher { fresh() } else { Vec::new() },
                drop_local: false,
            }
        }
        (false, true) => KeyPlan {
            push_to: if push_own {
                new.iter()
                    .filter(|m| **m != me)
                    .map(|m| m.to_string())
                    .collect()
            } else {
                Vec::new()
            },
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

/// A ring's identity independent of any node's epoch numbering: a hash of its
/// members and their store generations.
pub fn fingerprint(ring: &Ring) -> u64 {
    let mut text = String::new();
    for (member, store) in ring.identities() {
        text.push_str(member);
        text.push('#');
        text.push_str(&store.to_string());
        text.push(',');
    }
    token(text.as_bytes()) ^ u64::from(ring.vnodes())
}

/// Which ring is settled, and who finished handing off for the current one.
#[derive(Clone, Debug)]
pub struct Transition {
    settled: Arc<Ring>,
    current: Arc<Ring>,
    synced: BTreeSet<String>,
    changed_ms: u64,
    timeout_ms: u64,
    /// This node, while it is a pending replica (it came back without its data).
    pending: Option<String>,
    /// Members of the current ring that are pending replicas.
    pending_members: BTreeSet<String>,
    /// N and W: a ring change that loses W replicas of some key makes the ring
    /// it left haunt reads (N = 0: never).
    quorum: (usize, usize),
    /// Rings left behind by changes that lost too many replicas of some keys
    /// (see `haunted.rs`), newest last.
    haunted: Vec<Arc<Ring>>,
    /// The ring of every member known when this process started (dead ones
    /// included): whatever happened before, this node did not see it settle.
    start_haunt: Option<Arc<Ring>>,
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
            pending: None,
            pending_members: BTreeSet::new(),
            quorum: (0, 0),
            haunted: Vec::new(),
            start_haunt: None,
        }
    }

    /// Until this process saw a transition settle, it cannot know that the
    /// replicas of dead members were handed over: `all` (every member it knows,
    /// dead ones included) haunts reads where it lost too many of a key's replicas.
    pub fn haunt_from_start(&mut self, all: Ring) {
        self.start_haunt = Some(Arc::new(all));
        self.still_haunting();
    }

    /// Rings whose keys may have lost every replica holding them keep haunting
    /// reads: N and W decide which (a key may lose W - 1 of its N replicas).
    pub fn with_quorum(mut self, n: usize, w: usize) -> Transition {
        self.quorum = (n, w);
        self
    }

    fn add_haunted(&mut self, ring: Arc<Ring>) {
        let same = |h: &Arc<Ring>| h.identities().eq(ring.identities());
        if self.haunted.iter().any(same) {
            return;
        }
        if self.haunted.len() == MAX_HAUNTED {
            self.haunted.remove(0);
        }
        self.haunted.push(ring);
    }

    /// Rings another member reports as haunting: adopted if they haunt here too
    /// (a member that joined after the change learns of it this way).
    pub fn adopt_haunted(&mut self, rings: Vec<Ring>) {
        for ring in rings {
            self.keep_haunting(Arc::new(ring));
        }
    }

    /// `ring` haunts reads from now on if it lost too many of some key's
    /// replicas on the current ring.
    pub fn keep_haunting(&mut self, ring: Arc<Ring>) {
        let (n, w) = self.quorum;
        if n > 0 && haunts(&ring, &self.current, n, w) {
            self.add_haunted(ring);
        }
    }

    /// The rings that still haunt reads, newest last.
    pub fn haunted(&self) -> Vec<Arc<Ring>> {
        self.start_haunt
            .iter()
            .chain(&self.haunted)
            .cloned()
            .collect()
    }

    fn still_haunting(&mut self) {
        let (n, w) = self.quorum;
        let (current, pending) = (&self.current, &self.pending_members);
        let _ = pending;
        let keep = |h: &Arc<Ring>| n > 0 && haunts(h, current, n, w);
        self.haunted.retain(keep);
        if !self.start_haunt.as_ref().is_some_and(keep) {
            self.start_haunt = None;
        }
    }

    /// Starts with `me` pending on `ring`: its settled ring is `ring` with `me`
    /// holding [`FORMER_STORE`], until every member reported its handoff.
    pub fn pending(ring: Arc<Ring>, me: &str, timeout_ms: u64, now_ms: u64) -> Transition {
        let mut t = Transition::new(ring, timeout_ms);
        t.become_pending(me, now_ms);
        t
    }

    /// `me` turns out to hold less than the cluster (a first node that served alone
    /// was merged into an existing cluster): pending from now on.
    pub fn become_pending(&mut self, me: &str, now_ms: u64) {
        self.pending = Some(me.to_string());
        self.settled = Arc::new(self.current.with_store(me, FORMER_STORE));
        self.synced.clear();
        self.changed_ms = now_ms;
    }

    /// True while this node is a pending replica.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
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

    /// A new current ring, whose pending replicas are `pending`. Returns true
    /// when it differs from the previous current ring.
    pub fn on_ring(&mut self, ring: Arc<Ring>, pending: &BTreeSet<String>, now_ms: u64) -> bool {
        let changed = fingerprint(&ring) != fingerprint(&self.current);
        // A transition cut short: members may already have handed keys off to
        // the ring being replaced, so copies are where it put them. Where the new
        // ring loses too many of that ring's replicas of a key, it haunts reads
        // like a settled one (a partition right after a heal).
        let cut_short = changed && self.previous().is_some();
        let replaced = self.current.clone();
        if let Some(me) = &self.pending {
            self.settled = Arc::new(ring.with_store(me, FORMER_STORE));
        }
        self.current = ring;
        if cut_short {
            self.keep_haunting(replaced);
        }
        self.pending_members = pending.clone();
        self.still_haunting();
        if changed {
            self.synced.clear();
            self.changed_ms = now_ms;
        }
        changed
    }

    fn settle(&mut self) {
        let (n, w) = self.quorum;
        if n > 0 && haunts(&self.settled, &self.current, n, w) {
            let settled = self.settled.clone();
            self.add_haunted(settled);
        }
        self.settled = self.current.clone();
        self.pending = None;
        self.still_haunting();
    }

    /// A pending node alone on its ring has nobody to receive its data from.
    fn alone_and_pending(&self) -> bool {
        self.pending.is_some() && self.current.len() <= 1
    }

    /// Member `from` finished its handoff for the ring with `print`. Returns true
    /// when this settles the transition.
    pub fn on_synced(&mut self, from: &str, print: u64) -> bool {
        if print != fingerprint(&self.current) || self.previous().is_none() {
            return false;
        }
        self.synced.insert(from.to_string());
        if !self.alone_and_pending()
            && self
                .current
                .members()
                .iter()
                .all(|m| self.synced.contains(m))
        {
            self.settle();
            return true;
        }
        false
    }

    /// Time passes. Returns true when the timeout settles the transition.
    pub fn on_tick(&mut self, now_ms: u64) -> bool {
        if self.previous().is_some()
            && !self.alone_and_pending()
            && now_ms.saturating_sub(self.changed_ms) >= self.timeout_ms
        {
            self.settle();
            return true;
        }
        false
    }

    /// Members of the current ring that have not reported their handoff yet.
    pub fn waiting_for(&self) -> Vec<&str> {
        self.current
            .members()
            .iter()
            .filter(|m| !self.synced.contains(*m))
            .map(String::as_str)
            .collect()
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
            for to in plan_key(me, t, old, new, 3, 1, false).push_to {
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
    fn with_n_minus_w_plus_one_pushers_each_newcomer_hears_from_that_many_holders() {
        // N=3, W=2: a write may have missed one replica (its hint not delivered
        // yet), so each newcomer gets every key from two holders where two live.
        let five = ring(1, &["a", "b", "c", "d", "e"]);
        let cases = [
            (ring(0, &["a", "b", "c", "d"]), five.clone()),
            (five.clone(), ring(2, &["a", "b", "c", "e"])),
            (five.clone(), ring(2, &["a", "c", "e"])),
            (ring(0, &["a", "b", "c"]), five.clone()),
        ];
        let mut doubled = 0;
        for (ci, (old, new)) in cases.iter().enumerate() {
            for i in 0..2_000 {
                let t = token(format!("key-{i}").as_bytes());
                let (o, n) = (old.preference_list(t, 3), new.preference_list(t, 3));
                let live: Vec<&str> = o
                    .iter()
                    .copied()
                    .filter(|m| new.members().iter().any(|x| x == m))
                    .collect();
                for newcomer in n.iter().filter(|m| !o.contains(m)) {
                    let mut from: Vec<&str> = live
                        .iter()
                        .copied()
                        .filter(|me| {
                            plan_key(me, t, old, new, 3, 2, false)
                                .push_to
                                .iter()
                                .any(|to| to == newcomer)
                        })
                        .collect();
                    from.dedup();
                    assert!(
                        from.len() >= live.len().min(2),
                        "case {ci}: {newcomer} hears from {from:?} of {live:?}"
                    );
                    doubled += usize::from(from.len() >= 2);
                }
            }
        }
        assert!(doubled > 1_000, "the cases exercise two pushers: {doubled}");
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
                let plan = plan_key(me, t, &old, &new, 3, 1, false);
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
        let plan = plan_key(stray, t, &r, &r, 3, 1, false);
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
            assert_eq!(
                plan_key(me, t, &r, &r, 3, 1, false).push_to,
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn a_transition_settles_when_every_member_synced() {
        let mut tr = Transition::new(Arc::new(ring(1, &["a", "b"])), 60_000);
        assert!(tr.previous().is_none());
        let next = Arc::new(ring(2, &["a", "b", "c"]));
        let print = fingerprint(&next);
        assert!(tr.on_ring(next, &BTreeSet::new(), 10));
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
        tr.on_ring(Arc::new(ring(2, &["a", "b"])), &BTreeSet::new(), 1);
        tr.on_synced("a", fingerprint(tr.current()));
        tr.on_ring(Arc::new(ring(3, &["a"])), &BTreeSet::new(), 2);
        assert_eq!(
            tr.previous().map(|r| fingerprint(r)),
            Some(fingerprint(&first))
        );
    }

    #[test]
    fn a_transition_that_never_settles_times_out() {
        let mut tr = Transition::new(Arc::new(ring(1, &["a"])), 1_000);
        tr.on_ring(Arc::new(ring(2, &["a", "b"])), &BTreeSet::new(), 100);
        assert!(!tr.on_tick(1_000));
        assert!(tr.on_tick(1_100));
        assert!(tr.previous().is_none());
    }

    #[test]
    fn a_member_back_without_its_data_gets_each_of_its_keys_from_exactly_one_holder() {
        let five = Ring::with_stores(1, ["a", "b", "c", "d", "e"].map(|m| (m.to_string(), 1)), 16);
        let restarted = five.with_store("b", 2);
        let mut received = 0;
        for i in 0..2_000 {
            let key = format!("key-{i}");
            let t = token(key.as_bytes());
            let list = five.preference_list(t, 3);
            let mut got = Vec::new();
            for me in &list {
                // b is running again, but as a new, empty store: it sends nothing.
                for to in plan_key(me, t, &five, &restarted, 3, 1, false).push_to {
                    got.push(to);
                }
            }
            if list.contains(&"b") {
                assert_eq!(got, ["b"], "{key}: {list:?}");
                received += 1;
            } else {
                assert!(got.is_empty(), "{key}: {got:?}");
            }
        }
        assert!(received > 0);
    }

    #[test]
    fn a_first_node_merged_into_a_cluster_pushes_its_own_keys_to_the_rest_of_their_lists() {
        let cluster = Ring::with_stores(1, ["a", "b", "c", "d"].map(|m| (m.to_string(), 1)), 16);
        let settled = cluster.with_store("a", FORMER_STORE);
        let t = (0..)
            .map(|i| token(format!("k{i}").as_bytes()))
            .find(|t| cluster.preference_list(*t, 3).contains(&"a"))
            .expect("a key of a");
        let plan = plan_key("a", t, &settled, &cluster, 3, 1, true);
        let mut want: Vec<String> = cluster
            .preference_list(t, 3)
            .into_iter()
            .filter(|m| *m != "a")
            .map(str::to_string)
            .collect();
        want.sort();
        let mut got = plan.push_to.clone();
        got.sort();
        assert_eq!(got, want);
        assert!(!plan.drop_local);
        assert!(plan_key("a", t, &settled, &cluster, 3, 1, false)
            .push_to
            .is_empty());
    }

    #[test]
    fn a_pending_node_settles_only_when_every_member_of_a_real_ring_synced() {
        let alone = Arc::new(Ring::with_stores(1, [("a".to_string(), 7)], 16));
        let mut tr = Transition::pending(alone.clone(), "a", 1_000, 0);
        assert!(tr.is_pending() && tr.previous().is_some());
        assert!(
            !tr.on_synced("a", fingerprint(&alone)),
            "alone: nobody handed anything over"
        );
        assert!(!tr.on_tick(5_000), "alone: no timeout either");
        let joined = Arc::new(Ring::with_stores(
            2,
            [
                ("a".to_string(), 7),
                ("b".to_string(), 1),
                ("c".to_string(), 1),
            ],
            16,
        ));
        assert!(tr.on_ring(joined.clone(), &BTreeSet::new(), 6_000));
        let settled = tr.previous().expect("still in transition").clone();
        assert_eq!(settled.store_of("a"), Some(FORMER_STORE));
        assert_eq!(settled.store_of("b"), Some(1));
        let print = fingerprint(&joined);
        assert!(!tr.on_synced("a", print) && !tr.on_synced("b", print));
        assert!(tr.on_synced("c", print));
        assert!(!tr.is_pending() && tr.previous().is_none());
    }

    #[test]
    fn a_restarted_member_changes_the_fingerprint_and_a_same_store_restart_does_not() {
        let a = Ring::with_stores(1, [("a".to_string(), 1), ("b".to_string(), 1)], 16);
        assert_ne!(fingerprint(&a), fingerprint(&a.with_store("a", 2)));
        assert_eq!(fingerprint(&a), fingerprint(&a.with_store("a", 1)));
    }

    #[test]
    fn a_change_that_lost_a_majority_keeps_the_old_ring_haunting_until_it_is_back() {
        let five = Arc::new(Ring::with_stores(
            1,
            ["a", "b", "c", "d", "e"].map(|m| (m.to_string(), 1)),
            16,
        ));
        let minority = Arc::new(Ring::with_stores(
            2,
            [("a".to_string(), 1), ("b".to_string(), 1)],
            16,
        ));
        let none = BTreeSet::new();
        let mut tr = Transition::new(five.clone(), 60_000).with_quorum(3, 2);
        tr.on_ring(minority.clone(), &none, 1);
        assert!(
            tr.on_synced("a", fingerprint(&minority)) || tr.on_synced("b", fingerprint(&minority))
        );
        assert_eq!(tr.haunted().len(), 1, "the five-member ring haunts reads");
        tr.on_ring(five.clone(), &none, 2);
        assert!(tr.haunted().is_empty(), "the lost members are back");
        // Losing one member of five is what replication is for: nothing haunts.
        let mut tr = Transition::new(five, 60_000).with_quorum(3, 2);
        let four = Arc::new(Ring::with_stores(
            2,
            ["a", "b", "c", "d"].map(|m| (m.to_string(), 1)),
            16,
        ));
        tr.on_ring(four.clone(), &none, 1);
        for m in ["a", "b", "c", "d"] {
            tr.on_synced(m, fingerprint(&four));
        }
        assert!(tr.previous().is_none() && tr.haunted().is_empty());
    }
}
