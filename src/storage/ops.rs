//! Replica operations: what a coordinator, a stabilizer or a peer asks of a
//! replica's store, and what it answers. [`crate::storage::replica::Replica`]
//! serves them.
//!
//! These travel inside peer RPC frames (postcard-encoded); the transport never
//! looks inside them. Invariants: every request has exactly one response; a
//! client write ([`ReplicaRequest::Put`]) is refused, never merged, when the
//! replica holds a newer version, while repair, handoff and hints
//! ([`ReplicaRequest::Write`], [`ReplicaRequest::WriteBatch`]) only ever merge.
//! Pure.

use super::memory::MemoryStore;
use super::record::{Record, Version};
use crate::ring::hash::{token, Token};
use serde::{Deserialize, Serialize};

/// What a client write ([`ReplicaRequest::Put`]) asks the replica to check first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutCheck {
    /// Unconditional: refuse with [`ReplicaResponse::Stale`] when the replica holds
    /// a version newer than the one written (the coordinator then writes again
    /// with a version past it).
    Newer,
    /// Conditional: refuse with [`ReplicaResponse::Conflict`] when the replica
    /// holds a version newer than the one the coordinator's quorum read found
    /// (`None`: nothing at all); never retried.
    Expect(Option<Version>),
}

/// A request from a coordinator (or a stabilizer) to one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaRequest {
    /// Return the record of a key.
    Read {
        /// The key.
        key: String,
        /// The store generation the coordinator expects this replica to have:
        /// a replica whose store is another one (it came back without its data)
        /// answers [`ReplicaResponse::NotAuthoritative`].
        expect: Option<u64>,
    },
    /// A client write: store `record` unless `check` refuses it.
    Put {
        /// The key.
        key: String,
        /// The record to store.
        record: Record,
        /// What to check first.
        check: PutCheck,
    },
    /// Merge a record into the replica's store (read repair).
    Write {
        /// The key.
        key: String,
        /// The record to merge.
        record: Record,
    },
    /// Merge a batch of records (handoff, re-replication, anti-entropy repair, hints).
    WriteBatch {
        /// Keys and records.
        records: Vec<(String, Record)>,
    },
    /// Return the records of these keys (those the replica has).
    ReadBatch {
        /// The keys.
        keys: Vec<String>,
    },
    /// Anti-entropy: a hash of `(key, version)` per bucket over the keys in `ranges`.
    Digest {
        /// Sorted token ranges `(start, end]`.
        ranges: Vec<(Token, Token)>,
        /// Number of buckets (a key's bucket is its token modulo this).
        buckets: u32,
    },
    /// Anti-entropy: the versions of the keys in `ranges` falling in `wanted` buckets.
    Versions {
        /// Sorted token ranges `(start, end]`.
        ranges: Vec<(Token, Token)>,
        /// Number of buckets.
        buckets: u32,
        /// The buckets whose keys are wanted.
        wanted: Vec<u32>,
    },
    /// Stabilization: `from` finished handing off its data for the ring `fingerprint`.
    Synced {
        /// The member reporting.
        from: String,
        /// The ring's fingerprint.
        fingerprint: u64,
        /// The members (with stores) of every ring that haunts `from`'s reads.
        haunted: Vec<Vec<(String, u64)>>,
    },
}

impl ReplicaRequest {
    /// True for requests that change the store.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            ReplicaRequest::Put { .. }
                | ReplicaRequest::Write { .. }
                | ReplicaRequest::WriteBatch { .. }
        )
    }
}

/// A replica's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaResponse {
    /// The record of the key read, or `None` when the replica has none.
    Read(Option<Record>),
    /// The write (or batch) was stored or merged.
    Written,
    /// A client write refused: the replica holds this newer version of the key.
    Stale(Version),
    /// A conditional write refused: the replica holds this version (or
    /// tombstone), newer than the one the write expected to replace.
    Conflict(Version),
    /// A read refused: this replica is still receiving its handoff, or its store
    /// is not the one the coordinator expected; it is no authority on the key.
    NotAuthoritative,
    /// Records of a batch read.
    Records(Vec<(String, Record)>),
    /// Bucket hashes of a digest.
    Digest(Vec<u64>),
    /// Keys and versions.
    Versions(Vec<(String, Version)>),
    /// The replica refused or failed.
    Error(String),
}

/// Most buckets a digest (and a versions request) uses; more are clamped to this.
pub const MAX_DIGEST_BUCKETS: u32 = 65_536;

/// True when `t` lies in one of `ranges` (sorted by start, each `(start, end]`;
/// a range starting at 0 also holds 0, the other half of a split wrapping range).
pub fn in_ranges(ranges: &[(Token, Token)], t: Token) -> bool {
    let i = ranges.partition_point(|(s, _)| *s < t);
    (i > 0 && t <= ranges[i - 1].1) || (t == 0 && ranges.first().is_some_and(|(s, _)| *s == 0))
}

fn item_hash(key: &str, version: Version) -> u64 {
    let mut bytes = Vec::with_capacity(key.len() + 16);
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&version.ts.to_be_bytes());
    bytes.extend_from_slice(&version.node.to_be_bytes());
    token(&bytes)
}

/// The keys of `store` in `ranges`, with their tokens.
fn keys_in<'a>(
    store: &'a MemoryStore,
    ranges: &'a [(Token, Token)],
) -> impl Iterator<Item = (Token, &'a String, &'a Record)> + 'a {
    store.iter().filter_map(move |(k, r)| {
        let t = token(k.as_bytes());
        in_ranges(ranges, t).then_some((t, k, r))
    })
}

/// Anti-entropy digest: for each of `buckets` buckets (clamped to
/// [`MAX_DIGEST_BUCKETS`]), the XOR of the hashes of `(key, version)` of the keys
/// of `store` in `ranges` whose token falls in that bucket.
pub fn digest(store: &MemoryStore, ranges: &[(Token, Token)], buckets: u32) -> Vec<u64> {
    let buckets = buckets.clamp(1, MAX_DIGEST_BUCKETS);
    let mut digest = vec![0u64; buckets as usize];
    for (t, k, r) in keys_in(store, ranges) {
        digest[(t % u64::from(buckets)) as usize] ^= item_hash(k, r.version);
    }
    digest
}

/// Anti-entropy: the versions of the keys of `store` in `ranges` whose bucket
/// (as [`digest`] numbers them) is one of `wanted`.
pub fn versions(
    store: &MemoryStore,
    ranges: &[(Token, Token)],
    buckets: u32,
    wanted: &[u32],
) -> Vec<(String, Version)> {
    // The digest's clamp, so bucket numbers mean the same in both; a bitmap, so
    // a long `wanted` list costs its length, not times the keys.
    let buckets = buckets.clamp(1, MAX_DIGEST_BUCKETS);
    let mut want = vec![false; buckets as usize];
    for &b in wanted {
        if let Some(w) = want.get_mut(b as usize) {
            *w = true;
        }
    }
    let buckets = u64::from(buckets);
    keys_in(store, ranges)
        .filter(|(t, _, _)| want[(t % buckets) as usize])
        .map(|(_, k, r)| (k.clone(), r.version))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn store(items: &[(&str, u64)]) -> MemoryStore {
        let mut s = MemoryStore::new();
        for (k, ts) in items {
            s.apply(k, Record::value(Version { ts: *ts, node: 1 }, Bytes::new()));
        }
        s
    }

    const ALL: [(Token, Token); 1] = [(0, Token::MAX)];

    #[test]
    fn equal_stores_have_equal_digests_and_a_stale_key_changes_one_bucket() {
        let a = store(&[("x", 1), ("y", 2), ("z", 3)]);
        let mut b = store(&[("z", 3), ("y", 2), ("x", 1)]);
        assert_eq!(digest(&a, &ALL, 16), digest(&b, &ALL, 16));
        b.apply("y", Record::tombstone(Version { ts: 9, node: 1 }));
        let (da, db) = (digest(&a, &ALL, 16), digest(&b, &ALL, 16));
        assert_eq!(da.iter().zip(&db).filter(|(x, y)| x != y).count(), 1);
    }

    #[test]
    fn versions_list_only_keys_of_the_wanted_buckets_and_ranges() {
        let s = store(&[("x", 1), ("y", 2), ("z", 3)]);
        let all: Vec<u32> = (0..4).collect();
        assert_eq!(versions(&s, &ALL, 4, &all).len(), 3);
        assert!(versions(&s, &[], 4, &all).is_empty());
    }

    #[test]
    fn versions_bucket_keys_as_the_digest_does_past_the_bucket_clamp() {
        // Found writing the rpc_frame fuzz target: Digest clamped the bucket count
        // and Versions did not, so past 65,536 buckets they disagreed on which
        // bucket a key is in and anti-entropy asked for the wrong keys.
        let s = store(&[("x", 1), ("y", 2), ("z", 3)]);
        let d = digest(&s, &ALL, 100_000);
        let wanted: Vec<u32> = (0..d.len() as u32)
            .filter(|&i| d[i as usize] != 0)
            .collect();
        assert_eq!(
            versions(&s, &ALL, 100_000, &wanted).len(),
            3,
            "every key is in a non-empty digest bucket"
        );
    }

    #[test]
    fn versions_take_repeated_and_out_of_range_buckets() {
        let s = store(&[("x", 1), ("y", 2), ("z", 3)]);
        let mut wanted = vec![u32::MAX, 7, 7, 7];
        wanted.extend(0..4);
        wanted.extend(std::iter::repeat_n(3, 100_000));
        assert_eq!(versions(&s, &ALL, 4, &wanted).len(), 3);
    }

    #[test]
    fn only_put_write_and_write_batch_change_the_store() {
        let put = ReplicaRequest::Put {
            key: "k".into(),
            record: Record::tombstone(Version::default()),
            check: PutCheck::Newer,
        };
        let read = ReplicaRequest::Read {
            key: "k".into(),
            expect: None,
        };
        assert!(put.writes() && !read.writes());
    }
}
