//! The in-memory store: a sorted map from key to its newest record.
//!
//! Invariant: for every key the map holds the merge of every record ever applied to
//! it (until a tombstone older than the grace period is collected). Sorted order
//! makes paging (`/cluster/local`) and range digests deterministic. Pure.

use super::record::Record;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Keys and their newest records.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    map: BTreeMap<String, Record>,
    live: usize,
}

/// What [`MemoryStore::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The record was newer and is now stored.
    Stored,
    /// The store already held this or a newer version.
    Stale,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The newest record of `key`, tombstones included.
    pub fn get(&self, key: &str) -> Option<&Record> {
        self.map.get(key)
    }

    /// Merges `record` into the stored record of `key`.
    pub fn apply(&mut self, key: &str, record: Record) -> Applied {
        match self.map.get_mut(key) {
            Some(cur) if cur.version >= record.version => Applied::Stale,
            Some(cur) => {
                self.live = self.live + usize::from(!record.is_tombstone())
                    - usize::from(!cur.is_tombstone());
                *cur = record;
                Applied::Stored
            }
            None => {
                self.live += usize::from(!record.is_tombstone());
                self.map.insert(key.to_string(), record);
                Applied::Stored
            }
        }
    }

    /// Removes `key` only if its stored version is still `version` (a handoff that
    /// raced a newer write keeps the newer write).
    pub fn remove_if_version(&mut self, key: &str, version: super::record::Version) -> bool {
        match self.map.get(key) {
            Some(cur) if cur.version == version => {
                self.live -= usize::from(!cur.is_tombstone());
                self.map.remove(key);
                true
            }
            _ => false,
        }
    }

    /// Up to `limit` keys strictly after `after` (from the start when `None`), in order.
    pub fn page(&self, after: Option<&str>, limit: usize) -> Vec<(String, Record)> {
        let start = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Unbounded,
        };
        self.map
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }

    /// Every key and record, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Record)> {
        self.map.iter()
    }

    /// Turns every value expired at wall-clock `now_ms` into a tombstone of the
    /// same version (it reads, merges and repairs exactly as before, without its
    /// bytes); returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let mut expired = 0;
        for r in self.map.values_mut() {
            if r.value.is_some() && r.is_expired(now_ms) {
                *r = Record::tombstone(r.version);
                expired += 1;
            }
        }
        self.live -= expired;
        expired
    }

    /// Drops tombstones whose HLC milliseconds are older than `cutoff_ms`; returns how many.
    pub fn collect_tombstones(&mut self, cutoff_ms: u64) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, r| !(r.is_tombstone() && super::hlc::millis_of(r.version.ts) < cutoff_ms));
        before - self.map.len()
    }

    /// Number of keys held, tombstones included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Number of keys whose newest record is a live value.
    pub fn live_len(&self) -> usize {
        self.live
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::Version;
    use super::*;
    use bytes::Bytes;

    fn v(ts: u64) -> Version {
        Version { ts, node: 1 }
    }

    #[test]
    fn an_older_record_never_overwrites_a_newer_one() {
        let mut s = MemoryStore::new();
        assert_eq!(
            s.apply("k", Record::value(v(2), Bytes::from_static(b"new"))),
            Applied::Stored
        );
        assert_eq!(
            s.apply("k", Record::value(v(1), Bytes::from_static(b"old"))),
            Applied::Stale
        );
        assert_eq!(
            s.get("k").and_then(|r| r.value.clone()),
            Some(Bytes::from_static(b"new"))
        );
    }

    #[test]
    fn tombstones_count_as_keys_but_not_as_live_keys() {
        let mut s = MemoryStore::new();
        s.apply("a", Record::value(v(1), Bytes::from_static(b"x")));
        s.apply("b", Record::value(v(1), Bytes::from_static(b"y")));
        s.apply("a", Record::tombstone(v(2)));
        assert_eq!((s.len(), s.live_len()), (2, 1));
        s.apply("a", Record::value(v(3), Bytes::from_static(b"z")));
        assert_eq!((s.len(), s.live_len()), (2, 2));
    }

    #[test]
    fn pages_walk_every_key_once_in_order() {
        let mut s = MemoryStore::new();
        for k in ["d", "a", "c", "b", "e"] {
            s.apply(k, Record::value(v(1), Bytes::new()));
        }
        let first = s.page(None, 2);
        let second = s.page(Some(&first[1].0), 2);
        let third = s.page(Some(&second[1].0), 2);
        let keys: Vec<_> = first
            .iter()
            .chain(&second)
            .chain(&third)
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn only_old_tombstones_are_collected() {
        let mut s = MemoryStore::new();
        s.apply(
            "old",
            Record::tombstone(Version {
                ts: super::super::hlc::pack(100, 0),
                node: 1,
            }),
        );
        s.apply(
            "new",
            Record::tombstone(Version {
                ts: super::super::hlc::pack(900, 0),
                node: 1,
            }),
        );
        s.apply(
            "live",
            Record::value(
                Version {
                    ts: super::super::hlc::pack(1, 0),
                    node: 1,
                },
                Bytes::new(),
            ),
        );
        assert_eq!(s.collect_tombstones(500), 1);
        assert!(s.get("old").is_none() && s.get("new").is_some() && s.get("live").is_some());
    }

    #[test]
    fn expired_values_become_tombstones_of_the_same_version() {
        let mut s = MemoryStore::new();
        s.apply(
            "t",
            Record::value(v(1), Bytes::from_static(b"x")).expiring(Some(100)),
        );
        s.apply("p", Record::value(v(1), Bytes::from_static(b"y")));
        assert_eq!(s.expire(99), 0);
        assert_eq!(s.expire(100), 1);
        assert_eq!(s.get("t"), Some(&Record::tombstone(v(1))));
        assert_eq!((s.len(), s.live_len()), (2, 1));
        assert_eq!(s.expire(1_000), 0, "already a tombstone");
    }

    #[test]
    fn remove_if_version_keeps_a_newer_write() {
        let mut s = MemoryStore::new();
        s.apply("k", Record::value(v(1), Bytes::new()));
        s.apply("k", Record::value(v(2), Bytes::new()));
        assert!(!s.remove_if_version("k", v(1)));
        assert!(s.remove_if_version("k", v(2)));
        assert!(s.is_empty());
    }
}
