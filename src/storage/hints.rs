//! Hinted handoff's log: writes a replica missed, kept in the engine until that
//! replica is back, or until they expire.
//!
//! A hint is stored under `(member, sequence)`, so one member's hints are one
//! contiguous scan in the order they were made. [`HintLog`] keeps the backlog
//! per member in memory (rebuilt from the engine when a node starts) and bounds
//! the total. Invariants: the backlog counts exactly the hints the engine holds
//! (it changes only after the engine's write succeeded); sequence numbers only
//! grow, across restarts too. Pure: the engine and the clock are arguments.

use super::engine::{Change, Engine, StorageError};
use super::record::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Where a hint is stored: the member it is for, then its sequence number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HintKey {
    /// The member that missed the write.
    pub to: String,
    /// Order of the hints of one member.
    pub seq: u64,
}

impl HintKey {
    /// The byte encoding: the member's name, a 0 byte, 8 big-endian sequence
    /// bytes; byte order is `HintKey` order for names without a 0 byte (the only
    /// ones stored).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.to.len() + 9);
        out.extend_from_slice(self.to.as_bytes());
        out.push(0);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Decodes [`HintKey::encode`]'s bytes; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<HintKey> {
        let (rest, seq) = bytes.split_last_chunk::<8>()?;
        let (zero, to) = rest.split_last()?;
        (*zero == 0).then_some(())?;
        Some(HintKey {
            to: String::from_utf8(to.to_vec()).ok()?,
            seq: u64::from_be_bytes(*seq),
        })
    }
}

/// A write a member missed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    /// The key.
    pub key: String,
    /// The record the member should have.
    pub record: Record,
    /// Wall-clock milliseconds when the hint was made (hints expire).
    pub created_ms: u64,
}

/// The hint backlog of one node.
#[derive(Clone, Debug, Default)]
pub struct HintLog {
    backlog: BTreeMap<String, usize>,
    total: usize,
    next_seq: u64,
    max: usize,
}

/// Hints scanned per engine call.
const PAGE: usize = 1_024;

impl HintLog {
    /// The log of the hints `engine` holds, keeping at most `max`.
    pub fn open<E: Engine + ?Sized>(engine: &E, max: usize) -> Result<HintLog, StorageError> {
        let mut log = HintLog {
            max,
            ..HintLog::default()
        };
        let mut start = Bound::Unbounded;
        loop {
            let page = engine.scan_hints(start, PAGE)?;
            let Some((last, _)) = page.last() else {
                return Ok(log);
            };
            start = Bound::Excluded(last.clone());
            for (key, _) in &page {
                *log.backlog.entry(key.to.clone()).or_default() += 1;
                log.total += 1;
                log.next_seq = log.next_seq.max(key.seq + 1);
            }
        }
    }

    /// Hints held, per member.
    pub fn backlog(&self) -> &BTreeMap<String, usize> {
        &self.backlog
    }

    /// Hints held in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Stores hints `(member, key, record)` made at `now_ms`; returns how many
    /// were stored (the rest did not fit under the bound, or named a member no
    /// hint can be stored for).
    pub fn store<E: Engine + ?Sized>(
        &mut self,
        engine: &mut E,
        hints: Vec<(String, String, Record)>,
        now_ms: u64,
    ) -> Result<usize, StorageError> {
        let room = self.max.saturating_sub(self.total);
        let mut changes = Vec::new();
        let mut added: BTreeMap<String, usize> = BTreeMap::new();
        let mut seq = self.next_seq;
        for (to, key, record) in hints.into_iter().take(room) {
            if to.contains('\0') {
                continue;
            }
            *added.entry(to.clone()).or_default() += 1;
            changes.push(Change::PutHint(
                HintKey { to, seq },
                Hint {
                    key,
                    record,
                    created_ms: now_ms,
                },
            ));
            seq += 1;
        }
        let stored = changes.len();
        if stored > 0 {
            engine.write(changes)?;
        }
        self.next_seq = seq;
        self.total += stored;
        for (to, n) in added {
            *self.backlog.entry(to).or_default() += n;
        }
        Ok(stored)
    }

    /// Up to `limit` of the oldest hints for `to`.
    pub fn oldest<E: Engine + ?Sized>(
        &self,
        engine: &E,
        to: &str,
        limit: usize,
    ) -> Result<Vec<(HintKey, Hint)>, StorageError> {
        if !self.backlog.contains_key(to) {
            return Ok(Vec::new());
        }
        let start = Bound::Included(HintKey {
            to: to.to_string(),
            seq: 0,
        });
        let mut page = engine.scan_hints(start, limit)?;
        page.retain(|(k, _)| k.to == to);
        Ok(page)
    }

    /// Removes delivered (or expired) hints; keys already gone (delivered twice)
    /// are skipped.
    pub fn remove<E: Engine + ?Sized>(
        &mut self,
        engine: &mut E,
        keys: Vec<HintKey>,
    ) -> Result<(), StorageError> {
        let mut held = std::collections::BTreeSet::new();
        for k in keys {
            let found = engine.scan_hints(Bound::Included(k.clone()), 1)?;
            if found.first().is_some_and(|(f, _)| *f == k) {
                held.insert(k);
            }
        }
        if held.is_empty() {
            return Ok(());
        }
        let mut removed: BTreeMap<String, usize> = BTreeMap::new();
        for k in &held {
            *removed.entry(k.to.clone()).or_default() += 1;
        }
        engine.write(held.into_iter().map(Change::RemoveHint).collect())?;
        for (to, n) in removed {
            if let Some(count) = self.backlog.get_mut(&to) {
                let n = n.min(*count);
                *count -= n;
                self.total -= n;
                if *count == 0 {
                    self.backlog.remove(&to);
                }
            }
        }
        Ok(())
    }

    /// Removes every hint made before `cutoff_ms`; returns how many.
    pub fn expire<E: Engine + ?Sized>(
        &mut self,
        engine: &mut E,
        cutoff_ms: u64,
    ) -> Result<usize, StorageError> {
        if self.total == 0 {
            return Ok(0);
        }
        let mut expired = Vec::new();
        let mut start = Bound::Unbounded;
        loop {
            let page = engine.scan_hints(start, PAGE)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            start = Bound::Excluded(last.clone());
            expired.extend(
                page.into_iter()
                    .filter(|(_, h)| h.created_ms < cutoff_ms)
                    .map(|(k, _)| k),
            );
        }
        let n = expired.len();
        self.remove(engine, expired)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_keys_encode_in_order_and_decode_back() {
        let a = HintKey {
            to: "a".into(),
            seq: 300,
        };
        let b = HintKey {
            to: "a\u{1}".into(),
            seq: 1,
        };
        let c = HintKey {
            to: "b".into(),
            seq: 0,
        };
        assert!(a.encode() < b.encode() && b.encode() < c.encode());
        assert!(a < b && b < c);
        for k in [a, b, c] {
            assert_eq!(HintKey::decode(&k.encode()), Some(k));
        }
        assert_eq!(HintKey::decode(b"short"), None);
        assert_eq!(HintKey::decode(&[b'x', 1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
