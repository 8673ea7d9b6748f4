//! Ownership: whether this node is a replica of a key on any ring it knows of —
//! the current ring and, during a transition, the settled ring, the ring of the
//! members that came back after a heal and the haunted rings.
//!
//! A replica that holds no record of a key it does not own answers reads "not
//! authoritative" instead of "missing" (see `storage/replica.rs`): a
//! coordinator whose view is behind — a node cut off by a partition, back with
//! the settled ring of before it and not yet knowing the members that joined
//! meanwhile — would otherwise count the "missing" of members that rightly
//! dropped the key once it moved to those members, and answer 404 for a key
//! that exists (the lifecycle simulator found it). A replica with the same view
//! as its coordinator is asked only for keys it owns, so this costs nothing in
//! a settled cluster.
//!
//! Invariant: a node owns a key on a ring exactly when it is on the key's
//! preference list of that ring, of the replication factor in effect. Pure.

use super::hash::token;
use super::ring::Ring;
use std::sync::Arc;

/// The rings a node owns keys on.
#[derive(Clone, Debug)]
pub struct Ownership {
    me: String,
    n: usize,
    rings: Vec<Arc<Ring>>,
}

impl Ownership {
    /// Node `me` owning, on each of `rings`, the keys whose preference list of
    /// `n` replicas holds it.
    pub fn new(me: &str, n: usize, rings: Vec<Arc<Ring>>) -> Ownership {
        Ownership {
            me: me.to_string(),
            n,
            rings,
        }
    }

    /// True when this node is a replica of `key` on one of its rings.
    pub fn owns(&self, key: &str) -> bool {
        let t = token(key.as_bytes());
        self.rings
            .iter()
            .any(|r| r.preference_list(t, self.n).contains(&self.me.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(names: &[&str]) -> Arc<Ring> {
        let members: Vec<(String, u64)> = names.iter().map(|n| (n.to_string(), 1)).collect();
        Arc::new(Ring::with_stores(1, members, 16))
    }

    #[test]
    fn a_node_owns_exactly_the_keys_whose_preference_list_holds_it_on_some_ring() {
        let current = ring(&["a", "b", "c", "d", "e"]);
        let only_current = Ownership::new("a", 2, vec![current.clone()]);
        let mut owned = 0;
        for i in 0..200 {
            let key = format!("k{i}");
            let list = current.locate(key.as_bytes(), 2);
            assert_eq!(only_current.owns(&key), list.contains(&"a"), "{key}");
            owned += usize::from(list.contains(&"a"));
        }
        assert!(owned > 0 && owned < 200, "a owns {owned} of 200 keys");
        // On a ring of two members with n = 2, every key is a's as well.
        let both = Ownership::new("a", 2, vec![current, ring(&["a", "b"])]);
        assert!((0..200).all(|i| both.owns(&format!("k{i}"))));
        // A node on none of the rings owns nothing.
        let stranger = Ownership::new("z", 2, vec![ring(&["a", "b", "c"])]);
        assert!(!(0..200).any(|i| stranger.owns(&format!("k{i}"))));
    }
}
