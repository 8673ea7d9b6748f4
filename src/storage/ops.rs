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

use super::record::{Record, Version};
use crate::ring::hash::Token;
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
        /// Number of buckets, rounded down to a power of two (at most 65,536): a
        /// key's bucket is the top bits of its token.
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

/// True when `t` lies in one of `ranges` (sorted by start, each `(start, end]`;
/// a range starting at 0 also holds 0, the other half of a split wrapping range).
pub fn in_ranges(ranges: &[(Token, Token)], t: Token) -> bool {
    let i = ranges.partition_point(|(s, _)| *s < t);
    (i > 0 && t <= ranges[i - 1].1) || (t == 0 && ranges.first().is_some_and(|(s, _)| *s == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

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
