//! What a replica holds for a key, without the value: its version and whether it
//! is a tombstone, cached for recently written keys so that a write need not
//! read its key back from a durable engine first.
//!
//! [`HeldCache`] is a bounded two-generation map (an approximate LRU): lookups
//! look in the young generation, then the old one (promoting the entry); when
//! the young one fills, it becomes the old one and the previous old one is
//! dropped. Invariant: an entry, absence included, equals what the engine holds
//! for its key; the replica updates it after every write that succeeded and
//! never otherwise. Pure.

use super::key::StoreKey;
use super::record::{Record, Version};
use std::collections::HashMap;

/// The version of a stored record and whether it is a tombstone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// Its version.
    pub version: Version,
    /// It is a tombstone.
    pub tombstone: bool,
}

impl Held {
    /// What `record` is.
    pub fn of(record: &Record) -> Held {
        Held {
            version: record.version,
            tombstone: record.is_tombstone(),
        }
    }
}

/// Recently written keys and what the engine holds for them (`None`: nothing).
#[derive(Clone, Debug, Default)]
pub struct HeldCache {
    young: HashMap<StoreKey, Option<Held>>,
    old: HashMap<StoreKey, Option<Held>>,
    capacity: usize,
}

impl HeldCache {
    /// A cache of about `capacity` to `2 * capacity` keys (0: caches nothing).
    pub fn new(capacity: usize) -> HeldCache {
        HeldCache {
            capacity,
            ..HeldCache::default()
        }
    }

    /// What is known of `at`: `Some(held)` when cached (`held` is `None` for a
    /// key the engine does not hold), `None` when not cached.
    pub fn get(&mut self, at: &StoreKey) -> Option<Option<Held>> {
        if let Some(h) = self.young.get(at) {
            return Some(*h);
        }
        let h = self.old.remove(at)?;
        self.put(at.clone(), h);
        Some(h)
    }

    /// Records what the engine holds for `at` now.
    pub fn put(&mut self, at: StoreKey, held: Option<Held>) {
        if self.capacity == 0 {
            return;
        }
        if self.young.len() >= self.capacity && !self.young.contains_key(&at) {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&at);
        self.young.insert(at, held);
    }

    /// Keys cached.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(ts: u64) -> Option<Held> {
        Some(Held {
            version: Version { ts, node: 1 },
            tombstone: false,
        })
    }

    #[test]
    fn entries_are_found_until_two_generations_passed_and_the_size_is_bounded() {
        let mut c = HeldCache::new(2);
        let k = |s: &str| StoreKey::of(s);
        c.put(k("a"), held(1));
        c.put(k("b"), None);
        assert_eq!(c.get(&k("a")), Some(held(1)));
        assert_eq!(c.get(&k("b")), Some(None), "absence is cached too");
        c.put(k("c"), held(3)); // young {c}, old {a, b}
        assert_eq!(
            c.get(&k("a")),
            Some(held(1)),
            "promoted from the old generation"
        );
        c.put(k("d"), held(4));
        c.put(k("e"), held(5));
        assert!(c.len() <= 4);
        assert_eq!(c.get(&k("zzz")), None, "never cached");
        c.put(k("a"), held(9));
        assert_eq!(c.get(&k("a")), Some(held(9)), "the newest entry wins");
        let mut off = HeldCache::new(0);
        off.put(k("a"), held(1));
        assert!(off.is_empty());
    }
}
