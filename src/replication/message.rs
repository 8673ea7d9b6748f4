//! Replica messages: what a coordinator asks a replica and what it answers.
//!
//! These travel inside peer RPC frames (postcard-encoded); the transport never
//! looks inside them. Invariant: every request has exactly one response.

use crate::storage::Record;
use serde::{Deserialize, Serialize};

/// A request from a coordinator (or a stabilizer) to one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaRequest {
    /// Return the record of a key.
    Read {
        /// The key.
        key: String,
    },
    /// Merge a record into the replica's store.
    Write {
        /// The key.
        key: String,
        /// The record to merge.
        record: Record,
    },
    /// Merge a batch of records (handoff, re-replication, anti-entropy repair).
    WriteBatch {
        /// Keys and records.
        records: Vec<(String, Record)>,
    },
}

/// A replica's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaResponse {
    /// The record of the key read, or `None` when the replica has none.
    Read(Option<Record>),
    /// The write (or batch) was merged.
    Written,
    /// The replica refused or failed.
    Error(String),
}
