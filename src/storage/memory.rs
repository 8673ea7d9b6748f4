//! The in-memory engine: sorted maps from [`StoreKey`] to record and from
//! [`HintKey`] to hint. What the simulators and `--in-memory` nodes use.
//!
//! Invariant: it holds exactly what was written to it, in [`StoreKey`] order
//! (token, then key), like the durable engine; it never fails. Pure.

use super::engine::{Change, Engine, StorageError, Syncer};
use super::hints::{Hint, HintKey};
use super::key::StoreKey;
use super::record::Record;
use crate::ring::hash::Token;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Records and hints in memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    records: BTreeMap<StoreKey, Record>,
    hints: BTreeMap<HintKey, Hint>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl Engine for MemoryStore {
    fn get(&self, key: &StoreKey) -> Result<Option<Record>, StorageError> {
        Ok(self.records.get(key).cloned())
    }

    fn write(&mut self, changes: Vec<Change>) -> Result<(), StorageError> {
        for change in changes {
            match change {
                Change::Put(k, r) => {
                    self.records.insert(k, r);
                }
                Change::Remove(k) => {
                    self.records.remove(&k);
                }
                Change::PutHint(k, h) => {
                    self.hints.insert(k, h);
                }
                Change::RemoveHint(k) => {
                    self.hints.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        start: Bound<StoreKey>,
        last: Token,
        limit: usize,
    ) -> Result<Vec<(StoreKey, Record)>, StorageError> {
        Ok(self
            .records
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| k.token <= last)
            .take(limit)
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect())
    }

    fn scan_hints(
        &self,
        start: Bound<HintKey>,
        limit: usize,
    ) -> Result<Vec<(HintKey, Hint)>, StorageError> {
        Ok(self
            .hints
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect())
    }

    fn persist(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn syncer(&self) -> Option<Syncer> {
        None
    }

    fn disk_bytes(&self) -> u64 {
        0
    }
}
