//! The storage engine seam: what a replica needs of the place its records live.
//!
//! Two engines implement it: [`crate::storage::memory::MemoryStore`] (the
//! simulators and `--in-memory`) and [`crate::storage::durable::FjallEngine`]
//! (fjall on disk). The engine stores bytes faithfully and nothing more: every
//! rule about versions (last writer wins, refusals, tombstones, digests) lives
//! in [`crate::storage::replica::Replica`], above it, so both engines behave
//! alike by construction; one conformance suite (`conformance.rs`) holds them to
//! that.
//!
//! Invariants: a [`Engine::write`] applies all its changes or none; scans return
//! records in [`StoreKey`] order; nothing panics on what the disk holds (a
//! record that does not decode is a [`StorageError::Corrupt`]).

use super::hints::{Hint, HintKey};
use super::key::StoreKey;
use super::record::Record;
use crate::ring::hash::Token;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

/// Why the engine failed. Every kind is answered as a replica error, never
/// acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// The disk is full.
    Full(String),
    /// An I/O error.
    Io(String),
    /// What the disk holds does not decode (a corrupt file or record).
    Corrupt(String),
    /// The engine refuses to go on (an earlier write failed).
    Failed(String),
}

impl StorageError {
    /// The metric label of this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            StorageError::Full(_) => "disk_full",
            StorageError::Io(_) => "io",
            StorageError::Corrupt(_) => "corrupt",
            StorageError::Failed(_) => "failed",
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Full(m) => write!(f, "disk full: {m}"),
            StorageError::Io(m) => write!(f, "I/O error: {m}"),
            StorageError::Corrupt(m) => write!(f, "corrupt data: {m}"),
            StorageError::Failed(m) => write!(f, "storage failed: {m}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// One change of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Store `record` at the key (replacing what is there).
    Put(StoreKey, Record),
    /// Remove the key.
    Remove(StoreKey),
    /// Store a hint.
    PutHint(HintKey, Hint),
    /// Remove a hint.
    RemoveHint(HintKey),
}

/// Makes every write so far survive a power failure (an fsync); callable from
/// any thread, so the fsync runs off the thread that serves requests.
#[derive(Clone)]
pub struct Syncer(pub Arc<dyn Fn() -> Result<(), StorageError> + Send + Sync>);

impl Syncer {
    /// Runs the fsync.
    pub fn sync(&self) -> Result<(), StorageError> {
        (self.0)()
    }
}

impl fmt::Debug for Syncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Syncer")
    }
}

/// Where a replica's records and hints live.
#[cfg_attr(test, mockall::automock)]
pub trait Engine: Send {
    /// The record stored at `key`.
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StorageError>;

    /// Applies `changes` in order, all or none.
    fn write(&mut self, changes: Vec<Change>) -> Result<(), StorageError>;

    /// Up to `limit` records from `start` on, in order, whose token is at most `last`.
    fn scan(
        &self,
        start: Bound<StoreKey>,
        last: Token,
        limit: usize,
    ) -> Result<Vec<(StoreKey, Record)>, StorageError>;

    /// Up to `limit` hints from `start` on, in order.
    fn scan_hints(
        &self,
        start: Bound<HintKey>,
        limit: usize,
    ) -> Result<Vec<(HintKey, Hint)>, StorageError>;

    /// Hands every write so far to the operating system, so that it survives the
    /// process being killed (a no-op for an engine without a journal).
    fn persist(&self) -> Result<(), StorageError>;

    /// The engine's fsync, for a thread of its own; `None` when there is nothing
    /// to sync (in memory).
    fn syncer(&self) -> Option<Syncer>;

    /// Bytes the engine occupies on disk.
    fn disk_bytes(&self) -> u64;
}

impl<E: Engine + ?Sized> Engine for Box<E> {
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StorageError> {
        (**self).get(key)
    }

    fn write(&mut self, changes: Vec<Change>) -> Result<(), StorageError> {
        (**self).write(changes)
    }

    fn scan(
        &self,
        start: Bound<StoreKey>,
        last: Token,
        limit: usize,
    ) -> Result<Vec<(StoreKey, Record)>, StorageError> {
        (**self).scan(start, last, limit)
    }

    fn scan_hints(
        &self,
        start: Bound<HintKey>,
        limit: usize,
    ) -> Result<Vec<(HintKey, Hint)>, StorageError> {
        (**self).scan_hints(start, limit)
    }

    fn persist(&self) -> Result<(), StorageError> {
        (**self).persist()
    }

    fn syncer(&self) -> Option<Syncer> {
        (**self).syncer()
    }

    fn disk_bytes(&self) -> u64 {
        (**self).disk_bytes()
    }
}
