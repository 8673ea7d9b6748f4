//! Rings that still haunt reads: where a ring change lost more replicas of some
//! keys than a write quorum can spare.
//!
//! A key acknowledged at W of its replicas survives the loss of W − 1 of them:
//! one of the survivors holds it and hands it to the replicas that take over. A
//! ring change that removes W or more members of some key's preference list at
//! once (a partition that cuts a majority away, two crashes before the first was
//! re-replicated) may leave no survivor holding the key. Settling such a
//! change would turn "unavailable" into "not found". So the ring before it is
//! kept as *haunted*: a read of a key that lost too many of its replicas on that
//! ring needs a quorum of the survivors too, and answers 503 when there are not
//! enough of them, until the lost members come back (with their data, or empty
//! and caught up) or leave.
//!
//! A key's list haunts while some of its members are *absent* (off the ring:
//! dead, cut off) and the absent ones together with the ones that came back
//! empty (another store) could hold every copy of a write (W of them, or the
//! whole list when shorter). An absent member may come back with the only copy;
//! once none is absent, what is lost is lost and the ring stops haunting.
//! Survivors are the members with their very store: a member that came back
//! empty and caught up since caught up from survivors only. Pure.

use crate::ring::ring::Ring;
use std::collections::BTreeSet;

/// At most this many haunted rings are kept (the oldest goes first).
pub const MAX_HAUNTED: usize = 4;

/// True when member `m` of `old` still holds its copies on `current`, for the
/// settled group of an ordinary transition: with the same store, or with a new
/// one once it is no longer pending (it received its handoff).
pub fn kept(old: &Ring, current: &Ring, pending: &BTreeSet<String>, m: &str) -> bool {
    old.same_store(current, m) || (current.store_of(m).is_some() && !pending.contains(m))
}

/// True when member `m` of `old` is on `current` with the very store it had: a
/// survivor.
pub fn kept_strictly(old: &Ring, current: &Ring, m: &str) -> bool {
    old.same_store(current, m)
}

/// True when `list` (a preference list on `old`) haunts on `current`: some of
/// its members are absent, and the absent and the restarted ones could hold
/// every copy of a write acknowledged at `w`.
pub fn lost_too_many(list: &[&str], old: &Ring, current: &Ring, w: usize) -> bool {
    let absent = list
        .iter()
        .filter(|m| current.store_of(m).is_none())
        .count();
    let restarted = list
        .iter()
        .filter(|m| current.store_of(m).is_some() && !kept_strictly(old, current, m))
        .count();
    absent > 0 && absent + restarted >= w.min(list.len()).max(1)
}

/// True when some key's preference list (of `n`) on `old` haunts on `current`.
pub fn haunts(old: &Ring, current: &Ring, n: usize, w: usize) -> bool {
    let mut positions: Vec<u64> = old.vnode_entries().map(|(t, _)| t).collect();
    positions.dedup();
    positions
        .into_iter()
        .any(|t| lost_too_many(&old.preference_list(t, n), old, current, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(members: &[&str]) -> Ring {
        Ring::with_stores(1, members.iter().map(|m| (m.to_string(), 1)), 16)
    }

    #[test]
    fn losing_one_member_of_five_haunts_nothing_but_losing_three_does() {
        let five = ring(&["a", "b", "c", "d", "e"]);
        assert!(!haunts(&five, &ring(&["a", "b", "c", "d"]), 3, 2));
        assert!(
            haunts(&five, &ring(&["a", "b"]), 3, 2),
            "a 2|3 partition's minority"
        );
        assert!(!haunts(&five, &five, 3, 2));
    }

    #[test]
    fn members_back_empty_haunt_while_another_is_absent_and_not_once_all_are_back() {
        let five = ring(&["a", "b", "c", "d", "e"]);
        let one_back_one_absent = ring(&["a", "b", "c", "d"]).with_store("d", 2);
        assert!(
            haunts(&five, &one_back_one_absent, 3, 2),
            "e may hold what d lost"
        );
        let both_back = five.with_store("d", 2).with_store("e", 2);
        assert!(!haunts(&five, &both_back, 3, 2), "nobody to wait for");
        let none = BTreeSet::new();
        let pending: BTreeSet<String> = ["d"].map(String::from).into();
        assert!(kept(&five, &both_back, &none, "d") && !kept(&five, &both_back, &pending, "d"));
        assert!(!kept_strictly(&five, &both_back, "d") && kept_strictly(&five, &both_back, "a"));
    }

    #[test]
    fn a_list_may_lose_fewer_members_than_the_write_quorum() {
        let three = ring(&["a", "b", "c"]);
        let l = ["a", "b", "c"];
        assert!(!lost_too_many(&l, &three, &three, 2));
        assert!(
            !lost_too_many(&l, &three, &ring(&["b", "c"]), 2),
            "one absent of three"
        );
        assert!(lost_too_many(&l, &three, &ring(&["c"]), 2), "two absent");
        assert!(lost_too_many(
            &l,
            &three,
            &ring(&["b", "c"]).with_store("b", 9),
            2
        ));
        assert!(
            lost_too_many(&l, &three, &ring(&["b", "c"]), 1),
            "W=1: one copy may be all"
        );
        assert!(
            !lost_too_many(&l, &three, &ring(&["c"]), 3),
            "W=3 spares two"
        );
        let two = ring(&["a", "b"]);
        assert!(
            !lost_too_many(&["a", "b"], &two, &ring(&["b"]), 2),
            "both of two hold every write"
        );
        assert!(lost_too_many(&["a", "b"], &two, &ring(&["z"]), 2));
    }
}
