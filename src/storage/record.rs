//! Records: a value or a tombstone, stamped with a version, and an optional expiry.
//!
//! Invariant: [`Record::merge`] keeps the record with the higher version, so merging
//! is commutative, associative and idempotent (a join on a total order), which is
//! what lets replicas, read repair and handoff apply records in any order. An
//! expiry (TTL) is part of the record its write made: an expired value is ordered
//! by its version like any record, and reads as absent, exactly as a tombstone of
//! that version would; so repair and handoff can never bring an expired value back.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A last-writer-wins version: an HLC timestamp, then the writer's node id as tiebreak.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    /// Hybrid logical clock timestamp (48-bit ms, 16-bit counter).
    pub ts: u64,
    /// Id of the node that wrote it (tiebreak).
    pub node: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{:016x}", self.ts, self.node)
    }
}

impl std::str::FromStr for Version {
    type Err = ();
    fn from_str(s: &str) -> Result<Version, ()> {
        let (ts, node) = s.split_once('-').ok_or(())?;
        Ok(Version {
            ts: u64::from_str_radix(ts, 16).map_err(|_| ())?,
            node: u64::from_str_radix(node, 16).map_err(|_| ())?,
        })
    }
}

/// A stored value (or the tombstone of a delete) with its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The version that orders this record against others of the same key.
    pub version: Version,
    /// The value bytes, or `None` for a tombstone.
    pub value: Option<Bytes>,
    /// Wall-clock milliseconds (of the writing coordinator) from which the value
    /// reads as absent; `None` for a value that never expires.
    pub expires_ms: Option<u64>,
}

impl Record {
    /// A live value.
    pub fn value(version: Version, value: Bytes) -> Record {
        Record {
            version,
            value: Some(value),
            expires_ms: None,
        }
    }

    /// The same record, expiring at `expires_ms` (wall-clock milliseconds).
    pub fn expiring(mut self, expires_ms: Option<u64>) -> Record {
        self.expires_ms = expires_ms;
        self
    }

    /// A tombstone.
    pub fn tombstone(version: Version) -> Record {
        Record {
            version,
            value: None,
            expires_ms: None,
        }
    }

    /// True for the tombstone of a delete.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// True when the record's expiry has passed at wall-clock `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| e <= now_ms)
    }

    /// True for a value that reads as present at wall-clock `now_ms`: neither a
    /// tombstone nor expired.
    pub fn is_live(&self, now_ms: u64) -> bool {
        !self.is_tombstone() && !self.is_expired(now_ms)
    }

    /// The newer of two records of the same key.
    pub fn merge(a: Record, b: Record) -> Record {
        if b.version > a.version {
            b
        } else {
            a
        }
    }

    /// The newest of optional records (missing counts as oldest).
    pub fn newest<'a>(records: impl IntoIterator<Item = Option<&'a Record>>) -> Option<&'a Record> {
        records.into_iter().flatten().max_by_key(|r| r.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn random_record(rng: &mut StdRng) -> Record {
        let version = Version {
            ts: rng.gen_range(0..50),
            node: rng.gen_range(0..3),
        };
        if rng.gen_bool(0.3) {
            Record::tombstone(version)
        } else {
            Record::value(
                version,
                Bytes::from(vec![rng.gen::<u8>(); rng.gen_range(0..4)]),
            )
        }
    }

    #[test]
    fn merge_is_commutative_associative_and_idempotent_over_random_pairs() {
        for seed in 0..2_000u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let (a, b, c) = (
                random_record(&mut rng),
                random_record(&mut rng),
                random_record(&mut rng),
            );
            // Equal versions carry equal contents in the system (one writer per version).
            if a.version == b.version || b.version == c.version || a.version == c.version {
                continue;
            }
            let ab = Record::merge(a.clone(), b.clone());
            assert_eq!(ab, Record::merge(b.clone(), a.clone()), "seed {seed}");
            assert_eq!(ab, Record::merge(ab.clone(), ab.clone()), "seed {seed}");
            assert_eq!(ab, Record::merge(ab.clone(), b.clone()), "seed {seed}");
            assert_eq!(
                Record::merge(ab, c.clone()),
                Record::merge(a, Record::merge(b, c)),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn the_higher_version_wins_and_node_id_breaks_ties() {
        let old = Record::value(Version { ts: 5, node: 9 }, Bytes::from_static(b"old"));
        let new = Record::tombstone(Version { ts: 6, node: 1 });
        assert_eq!(Record::merge(old.clone(), new.clone()), new);
        let tie = Record::value(Version { ts: 5, node: 10 }, Bytes::from_static(b"tie"));
        assert_eq!(Record::merge(old, tie.clone()), tie);
    }

    #[test]
    fn an_expired_value_reads_as_absent_and_still_wins_over_older_versions() {
        let old = Record::value(Version { ts: 5, node: 1 }, Bytes::from_static(b"old"));
        let ttl = Record::value(Version { ts: 6, node: 1 }, Bytes::from_static(b"t"))
            .expiring(Some(1_000));
        assert!(ttl.is_live(999) && !ttl.is_live(1_000) && ttl.is_expired(1_000));
        assert_eq!(Record::merge(old.clone(), ttl.clone()), ttl);
        assert_eq!(Record::merge(ttl.clone(), old), ttl);
        assert!(!Record::tombstone(Version { ts: 1, node: 1 }).is_live(0));
    }

    #[test]
    fn versions_print_and_parse_back() {
        let v = Version {
            ts: 0x1234,
            node: 0xabcdef,
        };
        assert_eq!(v.to_string().parse::<Version>(), Ok(v));
        assert!("nonsense".parse::<Version>().is_err());
    }
}
