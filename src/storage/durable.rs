//! The durable engine: fjall, an embedded log-structured merge tree with a
//! write-ahead journal, ordered range scans and batches across keyspaces.
//!
//! Two keyspaces: `records` (key: [`StoreKey::encode`], token first, so a token
//! range is one contiguous scan; value: the postcard-encoded [`Record`]) and
//! `hints` (key: [`HintKey::encode`]; value: the postcard-encoded [`Hint`]).
//! Journal writes are persisted by hand: [`Engine::write`] puts a batch in the
//! journal's buffer, [`Engine::persist`] hands the buffer to the operating system
//! (what an acknowledgement waits for), and the [`Syncer`] fsyncs it.
//!
//! Why fjall: pure Rust (it builds without a C++ toolchain, unlike RocksDB),
//! sorted keys with range scans and atomic cross-keyspace batches (which a
//! hash-indexed log does not give), a journal with group-commit control
//! (buffered writes, explicit flush and fsync), and an LSM's cheap writes for a
//! write-heavy store (redb and LMDB are copy-on-write B-trees: every commit
//! rewrites a path of pages and fsyncs, and LMDB needs C and a fixed map size).
//! The version is pinned exactly in Cargo.toml: fjall's on-disk format is
//! versioned by its major release, and a data directory must open with the
//! same code that wrote it.
//!
//! Invariants: nothing here panics on what the disk holds (undecodable entries
//! are [`StorageError::Corrupt`]); after a failed journal write fjall refuses
//! every later write (it "poisons" itself), which we answer as
//! [`StorageError::Failed`].

use super::engine::{Change, Engine, StorageError, Syncer};
use super::hints::{Hint, HintKey};
use super::key::StoreKey;
use super::record::Record;
use crate::ring::hash::Token;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

/// Tunables of the durable engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurableOptions {
    /// Block cache, in bytes.
    pub cache_bytes: u64,
    /// Largest memtable before it is flushed to a table, in bytes.
    pub memtable_bytes: u64,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            cache_bytes: 32 * 1024 * 1024,
            memtable_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Records and hints in fjall.
pub struct FjallEngine {
    db: Database,
    records: Keyspace,
    hints: Keyspace,
}

impl std::fmt::Debug for FjallEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FjallEngine")
    }
}

/// An fjall error as a storage error of the right kind.
pub fn storage_error(e: fjall::Error) -> StorageError {
    fn io(e: &std::io::Error) -> StorageError {
        if e.kind() == std::io::ErrorKind::StorageFull {
            StorageError::Full(e.to_string())
        } else {
            StorageError::Io(e.to_string())
        }
    }
    match &e {
        fjall::Error::Io(inner) => io(inner),
        fjall::Error::Storage(fjall::LsmError::Io(inner)) => io(inner),
        fjall::Error::Poisoned => StorageError::Failed(
            "an earlier write failed and the engine refuses writes until the node restarts".into(),
        ),
        fjall::Error::Locked => StorageError::Io("the engine is locked by another process".into()),
        fjall::Error::Storage(_)
        | fjall::Error::JournalRecovery(_)
        | fjall::Error::InvalidVersion(_)
        | fjall::Error::Decompress(_)
        | fjall::Error::InvalidTrailer
        | fjall::Error::InvalidTag(_)
        | fjall::Error::Unrecoverable => StorageError::Corrupt(format!("{e:?}")),
        _ => StorageError::Failed(format!("{e:?}")),
    }
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("undecodable {what}"))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_allocvec(value).map_err(|e| StorageError::Failed(format!("encode: {e}")))
}

fn bound_of<T>(b: Bound<T>, encode: impl Fn(&T) -> Vec<u8>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(encode(&k)),
        Bound::Excluded(k) => Bound::Excluded(encode(&k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl FjallEngine {
    /// Opens (or creates) the engine in directory `path`.
    pub fn open(path: &Path, options: DurableOptions) -> Result<FjallEngine, StorageError> {
        let db = Database::builder(path)
            .cache_size(options.cache_bytes)
            .worker_threads(1)
            .max_journaling_size(64 * 1024 * 1024)
            .open()
            .map_err(storage_error)?;
        let opts = move || {
            KeyspaceCreateOptions::default()
                .manual_journal_persist(true)
                .max_memtable_size(options.memtable_bytes)
        };
        let records = db.keyspace("records", opts).map_err(storage_error)?;
        let hints = db.keyspace("hints", opts).map_err(storage_error)?;
        Ok(FjallEngine { db, records, hints })
    }
}

impl Engine for FjallEngine {
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StorageError> {
        match self.records.get(key.encode()).map_err(storage_error)? {
            None => Ok(None),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|_| corrupt("record")),
        }
    }

    fn write(&mut self, changes: Vec<Change>) -> Result<(), StorageError> {
        let mut batch = self.db.batch();
        for change in changes {
            match change {
                Change::Put(k, r) => batch.insert(&self.records, k.encode(), encode(&r)?),
                Change::Remove(k) => batch.remove(&self.records, k.encode()),
                Change::PutHint(k, h) => batch.insert(&self.hints, k.encode(), encode(&h)?),
                Change::RemoveHint(k) => batch.remove(&self.hints, k.encode()),
            }
        }
        batch.commit().map_err(storage_error)
    }

    fn scan(
        &self,
        start: Bound<StoreKey>,
        last: Token,
        limit: usize,
    ) -> Result<Vec<(StoreKey, Record)>, StorageError> {
        let start = bound_of(start, StoreKey::encode);
        let end = match last.checked_add(1) {
            Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for guard in self.records.range::<Vec<u8>, _>((start, end)).take(limit) {
            let (k, v) = guard.into_inner().map_err(storage_error)?;
            let key = StoreKey::decode(&k).ok_or_else(|| corrupt("key"))?;
            let record = postcard::from_bytes(&v).map_err(|_| corrupt("record"))?;
            out.push((key, record));
        }
        Ok(out)
    }

    fn scan_hints(
        &self,
        start: Bound<HintKey>,
        limit: usize,
    ) -> Result<Vec<(HintKey, Hint)>, StorageError> {
        let start = bound_of(start, HintKey::encode);
        let mut out = Vec::new();
        for guard in self
            .hints
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .take(limit)
        {
            let (k, v) = guard.into_inner().map_err(storage_error)?;
            let key = HintKey::decode(&k).ok_or_else(|| corrupt("hint key"))?;
            let hint = postcard::from_bytes(&v).map_err(|_| corrupt("hint"))?;
            out.push((key, hint));
        }
        Ok(out)
    }

    fn persist(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::Buffer).map_err(storage_error)
    }

    fn syncer(&self) -> Option<Syncer> {
        let db = self.db.clone();
        Some(Syncer(Arc::new(move || {
            db.persist(PersistMode::SyncData).map_err(storage_error)
        })))
    }

    fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }
}
