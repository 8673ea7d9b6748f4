//! The replica: one node's store and the rules it applies to every replica request.
//!
//! - **Authority.** A replica that came back without its data (a restart of an
//!   in-memory node, a new or wiped data directory, a rejoin after leaving) is
//!   *pending* until its handoff completed: it answers reads with
//!   [`ReplicaResponse::NotAuthoritative`] instead of "missing", and so does a
//!   replica whose store generation is not the one the coordinator expected (the
//!   coordinator's view predates a restart: a restarted node keeps its address),
//!   and so does a replica asked for a key it holds no record of and does not
//!   own on any ring it knows (the coordinator's view is behind its own: see
//!   `ring/ownership.rs`).
//!   Writes are always stored: a copy a pending replica acknowledges is a copy.
//! - **Real-time order.** A client write ([`ReplicaRequest::Put`]) is refused, not
//!   merged, when the store holds a newer version, so the coordinator learns of it
//!   and writes again past it; a conditional write is refused when the store holds
//!   a version newer than the one expected. Repair, handoff and hints merge.
//! - **Bounded clocks.** A record whose version is more than `max_ahead_ms` ahead
//!   of this replica's wall clock is refused on every write path, so a node whose
//!   clock runs ahead cannot push its future into the cluster.
//! - **Leaving.** Once a graceful leave started, writes are refused: a copy
//!   acknowledged after the leave's handoff passed its key would leave with it.
//!   Reads are answered "not authoritative" then: a store that takes no writes
//!   misses every write made since (two leaving replicas of a key, or one and a
//!   replica whose hint is not delivered yet, would otherwise make a read quorum
//!   of stale copies).
//!
//! Invariants: the store only changes by storing or merging records; nothing here
//! panics on any request. Pure: the wall clock is an argument.

use super::engine::{Change, Engine, StorageError};
use super::held::{Held, HeldCache};
use super::hlc::millis_of;
use super::key::StoreKey;
use super::memory::MemoryStore;
use super::ops::{PutCheck, ReplicaRequest, ReplicaResponse};
use super::record::{Record, Version};
use super::segments::{
    bucket_bits, bucket_of, intervals, item_hash, segment_of, segment_span, Segments, SEGMENT_BITS,
};
use crate::ring::hash::Token;
use crate::ring::ownership::Ownership;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Records read per engine call when a replica walks its store.
const PAGE: usize = 4_096;

/// Engine errors a replica answered, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// Disk full.
    pub disk_full: u64,
    /// I/O errors.
    pub io: u64,
    /// Records or files that did not decode.
    pub corrupt: u64,
    /// An engine refusing to go on.
    pub failed: u64,
}

impl ErrorCounts {
    fn count(&mut self, e: &StorageError) {
        match e {
            StorageError::Full(_) => self.disk_full += 1,
            StorageError::Io(_) => self.io += 1,
            StorageError::Corrupt(_) => self.corrupt += 1,
            StorageError::Failed(_) => self.failed += 1,
        }
    }
}

/// Counters of what a replica refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Reads answered "not authoritative".
    pub not_authoritative: u64,
    /// Client writes refused because the replica held a newer version.
    pub stale: u64,
    /// Conditional writes refused because the expected version was not the newest.
    pub conflicts: u64,
    /// Records refused because their version was too far ahead of this clock.
    pub too_far_ahead: u64,
    /// Requests answered with an error because the engine failed.
    pub errors: ErrorCounts,
}

/// What one step of [`Replica::sweep`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired values turned into tombstones of the same version.
    pub expired: usize,
    /// Tombstones older than the grace period removed.
    pub collected: usize,
    /// Records looked at.
    pub scanned: usize,
    /// The step reached the end of the store (the next one starts over).
    pub wrapped: bool,
}

/// Changes of one write, with what they do to the digests and counts; applied
/// to those only once the engine took the changes.
#[derive(Default)]
struct Staged {
    changes: Vec<Change>,
    toggles: Vec<(Token, u64)>,
    held: Vec<(StoreKey, Option<Held>)>,
    keys: isize,
    live: isize,
}

impl Staged {
    /// Replaces `old` (if any) at `at` with `new`.
    fn put(&mut self, at: StoreKey, old: Option<Held>, new: Record) {
        if let Some(old) = old {
            self.toggles
                .push((at.token, item_hash(&at.key, old.version)));
            self.live -= isize::from(!old.tombstone);
        } else {
            self.keys += 1;
        }
        self.toggles
            .push((at.token, item_hash(&at.key, new.version)));
        self.live += isize::from(!new.is_tombstone());
        self.held.push((at.clone(), Some(Held::of(&new))));
        self.changes.push(Change::Put(at, new));
    }

    /// Removes `old` at `at`.
    fn remove(&mut self, at: StoreKey, old: Held) {
        self.toggles
            .push((at.token, item_hash(&at.key, old.version)));
        self.keys -= 1;
        self.live -= isize::from(!old.tombstone);
        self.held.push((at.clone(), None));
        self.changes.push(Change::Remove(at));
    }
}

/// One node's replica of its keys, over a storage engine.
#[derive(Debug)]
pub struct Replica<E: Engine = MemoryStore> {
    engine: E,
    segments: Segments,
    keys: usize,
    live: usize,
    store_gen: u64,
    authoritative: bool,
    leaving: bool,
    /// The rings this node owns keys on (`None` until its first placement).
    ownership: Option<Ownership>,
    max_ahead_ms: u64,
    stats: ReplicaStats,
    sweep_from: Bound<StoreKey>,
    held: HeldCache,
}

impl Replica<MemoryStore> {
    /// A replica over an empty in-memory store of generation `store_gen`,
    /// authoritative, refusing versions more than `max_ahead_ms` ahead of its
    /// wall clock.
    pub fn new(store_gen: u64, max_ahead_ms: u64) -> Replica<MemoryStore> {
        Replica::with_engine(MemoryStore::new(), store_gen, max_ahead_ms)
    }
}

impl<E: Engine> Replica<E> {
    fn with_engine(engine: E, store_gen: u64, max_ahead_ms: u64) -> Replica<E> {
        Replica {
            engine,
            segments: Segments::new(),
            keys: 0,
            live: 0,
            store_gen,
            authoritative: true,
            leaving: false,
            ownership: None,
            max_ahead_ms,
            stats: ReplicaStats::default(),
            sweep_from: Bound::Unbounded,
            held: HeldCache::new(0),
        }
    }

    /// The same replica caching what it holds for up to about `capacity`
    /// recently written keys (a write then need not read its key back first;
    /// worth it over a durable engine).
    pub fn with_held_cache(mut self, capacity: usize) -> Replica<E> {
        self.held = HeldCache::new(capacity);
        self
    }

    /// What the engine holds at `at` (version and tombstone), from the cache
    /// when it knows.
    fn held_at(&mut self, at: &StoreKey) -> Result<Option<Held>, StorageError> {
        if let Some(h) = self.held.get(at) {
            return Ok(h);
        }
        let h = self.engine.get(at)?.as_ref().map(Held::of);
        self.held.put(at.clone(), h);
        Ok(h)
    }

    /// A replica over what `engine` already holds (one scan rebuilds the digests
    /// and counts), of store generation `store_gen`, authoritative.
    pub fn open(engine: E, store_gen: u64, max_ahead_ms: u64) -> Result<Replica<E>, StorageError> {
        let mut replica = Replica::with_engine(engine, store_gen, max_ahead_ms);
        let mut start = Bound::Unbounded;
        loop {
            let page = replica.engine.scan(start, Token::MAX, PAGE)?;
            let Some((last, _)) = page.last() else {
                return Ok(replica);
            };
            start = Bound::Excluded(last.clone());
            for (at, record) in &page {
                replica.segments.toggle(at.token, &at.key, record.version);
                replica.keys += 1;
                replica.live += usize::from(!record.is_tombstone());
            }
        }
    }

    /// The same replica over its engine boxed (the node's actors take any engine).
    pub fn boxed(self) -> Replica<Box<dyn Engine>>
    where
        E: 'static,
    {
        Replica {
            engine: Box::new(self.engine),
            segments: self.segments,
            keys: self.keys,
            live: self.live,
            store_gen: self.store_gen,
            authoritative: self.authoritative,
            leaving: self.leaving,
            ownership: self.ownership,
            max_ahead_ms: self.max_ahead_ms,
            stats: self.stats,
            sweep_from: self.sweep_from,
            held: self.held,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// The engine, to store hints beside the records.
    pub fn engine_mut(&mut self) -> &mut E {
        &mut self.engine
    }

    /// The engine alone, as a process that ends leaves its store behind (a
    /// restart opens a new replica over it: nothing else survives).
    pub fn into_engine(self) -> E {
        self.engine
    }

    /// The generation of this replica's store.
    pub fn store_gen(&self) -> u64 {
        self.store_gen
    }

    /// True once the replica holds every key it owns (its handoff completed).
    pub fn is_authoritative(&self) -> bool {
        self.authoritative
    }

    /// Pending (`false`) until the handoff completed, then authoritative.
    pub fn set_authoritative(&mut self, authoritative: bool) {
        self.authoritative = authoritative;
    }

    /// The rings this node owns keys on, from its latest placement: a read of
    /// a key it holds no record of and does not own is answered "not
    /// authoritative" (the coordinator's view is behind; see
    /// `ring/ownership.rs`).
    pub fn set_ownership(&mut self, ownership: Ownership) {
        self.ownership = Some(ownership);
    }

    /// Refuse every write from now on (`true`: a graceful leave is handing the
    /// store off), or take them again (`false`: the leave was given up).
    pub fn set_leaving(&mut self, leaving: bool) {
        self.leaving = leaving;
    }

    /// What was refused so far.
    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    /// Number of keys held, tombstones included.
    pub fn len(&self) -> usize {
        self.keys
    }

    /// Number of keys whose newest record is a value (expired or not).
    pub fn live_len(&self) -> usize {
        self.live
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// The newest record of `key`, tombstones included.
    pub fn get(&self, key: &str) -> Result<Option<Record>, StorageError> {
        self.engine.get(&StoreKey::of(key))
    }

    /// Up to `limit` keys after `after` (from the start when `None`), in ring
    /// order (token, then key).
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Record)>, StorageError> {
        let start = after.map_or(Bound::Unbounded, |k| Bound::Excluded(StoreKey::of(k)));
        Ok(self
            .engine
            .scan(start, Token::MAX, limit)?
            .into_iter()
            .map(|(at, r)| (at.key, r))
            .collect())
    }

    /// Removes each key whose stored version is still the one given (a handoff
    /// that raced a newer write keeps the newer write); returns how many.
    pub fn remove_if_versions(
        &mut self,
        keys: Vec<(String, Version)>,
    ) -> Result<usize, StorageError> {
        let mut staged = Staged::default();
        let mut seen = std::collections::BTreeSet::new();
        for (key, version) in keys {
            let at = StoreKey::of(&key);
            if !seen.insert(at.clone()) {
                continue;
            }
            if let Some(old) = self.held_at(&at)? {
                if old.version == version {
                    staged.remove(at, old);
                }
            }
        }
        let removed = staged.changes.len();
        self.commit(staged)?;
        Ok(removed)
    }

    /// One step of the background sweep, over at most `budget` records from
    /// where the last step stopped: values expired at `now_ms` become tombstones
    /// of their version (they read, merge and repair as before, without their
    /// bytes), tombstones older than `cutoff_ms` are removed. Its cost is bounded
    /// per step, whatever the size of the store.
    pub fn sweep(
        &mut self,
        now_ms: u64,
        cutoff_ms: u64,
        budget: usize,
    ) -> Result<Swept, StorageError> {
        let budget = budget.max(1);
        let page = self
            .engine
            .scan(self.sweep_from.clone(), Token::MAX, budget)?;
        let mut swept = Swept {
            scanned: page.len(),
            wrapped: page.len() < budget,
            ..Swept::default()
        };
        let next = match page.last() {
            Some((last, _)) if !swept.wrapped => Bound::Excluded(last.clone()),
            _ => Bound::Unbounded,
        };
        let mut staged = Staged::default();
        for (at, record) in page {
            if record.is_tombstone() {
                if millis_of(record.version.ts) < cutoff_ms {
                    staged.remove(at, Held::of(&record));
                    swept.collected += 1;
                }
            } else if record.is_expired(now_ms) {
                let tombstone = Record::tombstone(record.version);
                staged.put(at, Some(Held::of(&record)), tombstone);
                swept.expired += 1;
            }
        }
        self.commit(staged)?;
        self.sweep_from = next;
        Ok(swept)
    }

    fn commit(&mut self, staged: Staged) -> Result<(), StorageError> {
        if staged.changes.is_empty() {
            return Ok(());
        }
        self.engine.write(staged.changes)?;
        for (at, held) in staged.held {
            self.held.put(at, held);
        }
        for (t, h) in staged.toggles {
            self.segments.toggle_hash(t, h);
        }
        self.keys = self.keys.saturating_add_signed(staged.keys);
        self.live = self.live.saturating_add_signed(staged.live);
        Ok(())
    }

    /// Calls `each` on every record whose token lies in `first..=last`.
    fn each_in(
        &self,
        first: Token,
        last: Token,
        mut each: impl FnMut(&StoreKey, &Record),
    ) -> Result<(), StorageError> {
        let mut start = Bound::Included(StoreKey::first_at(first));
        loop {
            let page = self.engine.scan(start, last, PAGE)?;
            for (at, r) in &page {
                each(at, r);
            }
            match page.last() {
                Some((at, _)) if page.len() == PAGE => start = Bound::Excluded(at.clone()),
                _ => return Ok(()),
            }
        }
    }

    /// Anti-entropy digest: per bucket (a token prefix; `buckets` rounded down
    /// to a power of two, at most 65,536), the XOR of the hashes of `(key,
    /// version)` of the records in `ranges`. Whole segments come from the
    /// digests kept up to date by every write; only the ends of a range that cut
    /// through a segment are scanned.
    pub fn digest(
        &self,
        ranges: &[(Token, Token)],
        buckets: u32,
    ) -> Result<Vec<u64>, StorageError> {
        let bits = bucket_bits(buckets);
        let shift = SEGMENT_BITS - bits;
        let mut digest = vec![0u64; 1 << bits];
        for (lo, hi) in intervals(ranges) {
            for s in segment_of(lo)..=segment_of(hi) {
                let (first, last) = segment_span(s);
                let (a, b) = (lo.max(first), hi.min(last));
                if (a, b) == (first, last) {
                    digest[s >> shift] ^= self.segments.get(s);
                } else {
                    self.each_in(a, b, |at, r| {
                        digest[bucket_of(at.token, bits)] ^= item_hash(&at.key, r.version);
                    })?;
                }
            }
        }
        Ok(digest)
    }

    /// Anti-entropy: the versions of the records in `ranges` whose bucket (as
    /// [`Replica::digest`] numbers them) is one of `wanted`; one scan per wanted
    /// bucket and range.
    pub fn versions(
        &self,
        ranges: &[(Token, Token)],
        buckets: u32,
        wanted: &[u32],
    ) -> Result<Vec<(String, Version)>, StorageError> {
        let bits = bucket_bits(buckets);
        let mut want = vec![false; 1 << bits];
        for &b in wanted {
            if let Some(w) = want.get_mut(b as usize) {
                *w = true;
            }
        }
        let mut out = Vec::new();
        for (lo, hi) in intervals(ranges) {
            let (first_bucket, last_bucket) = (bucket_of(lo, bits), bucket_of(hi, bits));
            let wanted_here = want
                .iter()
                .enumerate()
                .skip(first_bucket)
                .take(last_bucket + 1 - first_bucket)
                .filter(|(_, w)| **w);
            for (b, _) in wanted_here {
                let (first, last) = bucket_span(b, bits);
                self.each_in(lo.max(first), hi.min(last), |at, r| {
                    out.push((at.key.clone(), r.version));
                })?;
            }
        }
        Ok(out)
    }

    fn too_far_ahead(&mut self, record: &Record, now_ms: u64) -> bool {
        let ahead = millis_of(record.version.ts) > now_ms.saturating_add(self.max_ahead_ms);
        if ahead {
            self.stats.too_far_ahead += 1;
        }
        ahead
    }

    /// Merges records (repair, handoff, hints): each one newer than what the
    /// store holds replaces it; a record from the future is skipped, not the
    /// batch (and counted).
    fn merge(&mut self, records: Vec<(String, Record)>, now_ms: u64) -> Result<(), StorageError> {
        let mut newest: BTreeMap<StoreKey, Record> = BTreeMap::new();
        for (key, record) in records {
            if self.too_far_ahead(&record, now_ms) {
                continue;
            }
            let at = StoreKey::of(&key);
            match newest.get(&at) {
                Some(r) if r.version >= record.version => {}
                _ => {
                    newest.insert(at, record);
                }
            }
        }
        let mut staged = Staged::default();
        for (at, record) in newest {
            let old = self.held_at(&at)?;
            if old.is_none_or(|o| o.version < record.version) {
                staged.put(at, old, record);
            }
        }
        self.commit(staged)
    }

    /// Serves one request at wall-clock `now_ms`. An engine failure is answered
    /// as [`ReplicaResponse::Error`] (and counted), never acknowledged.
    pub fn serve(&mut self, request: ReplicaRequest, now_ms: u64) -> ReplicaResponse {
        if self.leaving && request.writes() {
            return ReplicaResponse::Error("leaving the cluster".into());
        }
        match self.try_serve(request, now_ms) {
            Ok(response) => response,
            Err(e) => {
                self.stats.errors.count(&e);
                ReplicaResponse::Error(format!("storage: {e}"))
            }
        }
    }

    fn try_serve(
        &mut self,
        request: ReplicaRequest,
        now_ms: u64,
    ) -> Result<ReplicaResponse, StorageError> {
        Ok(match request {
            ReplicaRequest::Read { key, expect } => {
                if !self.authoritative
                    || self.leaving
                    || expect.is_some_and(|e| e != self.store_gen)
                {
                    self.stats.not_authoritative += 1;
                    return Ok(ReplicaResponse::NotAuthoritative);
                }
                let record = self.get(&key)?;
                if record.is_none() && self.ownership.as_ref().is_some_and(|o| !o.owns(&key)) {
                    self.stats.not_authoritative += 1;
                    return Ok(ReplicaResponse::NotAuthoritative);
                }
                ReplicaResponse::Read(record)
            }
            ReplicaRequest::Put { key, record, check } => {
                if self.too_far_ahead(&record, now_ms) {
                    return Ok(ReplicaResponse::Error(format!(
                        "version {} is more than {} ms ahead of this replica's clock",
                        record.version, self.max_ahead_ms
                    )));
                }
                let at = StoreKey::of(&key);
                let old = self.held_at(&at)?;
                let held = old.map(|h| h.version);
                match (check, held) {
                    (PutCheck::Newer, Some(h)) if h > record.version => {
                        self.stats.stale += 1;
                        return Ok(ReplicaResponse::Stale(h));
                    }
                    (PutCheck::Expect(expected), Some(h)) if Some(h) > expected => {
                        self.stats.conflicts += 1;
                        return Ok(ReplicaResponse::Conflict(h));
                    }
                    _ => {}
                }
                if held.is_none_or(|h| h < record.version) {
                    let mut staged = Staged::default();
                    staged.put(at, old, record);
                    self.commit(staged)?;
                }
                ReplicaResponse::Written
            }
            ReplicaRequest::Write { key, record } => {
                if self.too_far_ahead(&record, now_ms) {
                    return Ok(ReplicaResponse::Error("version too far ahead".into()));
                }
                self.merge(vec![(key, record)], now_ms)?;
                ReplicaResponse::Written
            }
            ReplicaRequest::WriteBatch { records } => {
                self.merge(records, now_ms)?;
                ReplicaResponse::Written
            }
            ReplicaRequest::ReadBatch { keys } => {
                let mut records = Vec::with_capacity(keys.len());
                for key in keys {
                    if let Some(r) = self.get(&key)? {
                        records.push((key, r));
                    }
                }
                ReplicaResponse::Records(records)
            }
            ReplicaRequest::Digest { ranges, buckets } => {
                ReplicaResponse::Digest(self.digest(&ranges, buckets)?)
            }
            ReplicaRequest::Versions {
                ranges,
                buckets,
                wanted,
            } => ReplicaResponse::Versions(self.versions(&ranges, buckets, &wanted)?),
            ReplicaRequest::Synced { .. } => ReplicaResponse::Error("not a storage request".into()),
        })
    }
}

/// The first and last token of bucket `b` among `1 << bits`.
fn bucket_span(b: usize, bits: u32) -> (Token, Token) {
    if bits == 0 {
        return (0, Token::MAX);
    }
    let first = (b as u64) << (64 - bits);
    (first, first | (Token::MAX >> bits))
}

#[cfg(test)]
mod tests {
    use super::super::hlc::pack;
    use super::super::record::Version;
    use super::*;
    use bytes::Bytes;

    const NOW: u64 = 1_000_000;

    fn v(ms: u64, node: u64) -> Version {
        Version {
            ts: pack(ms, 0),
            node,
        }
    }

    fn put(key: &str, version: Version, check: PutCheck) -> ReplicaRequest {
        ReplicaRequest::Put {
            key: key.into(),
            record: Record::value(version, Bytes::from_static(b"x")),
            check,
        }
    }

    fn read(key: &str, expect: Option<u64>) -> ReplicaRequest {
        ReplicaRequest::Read {
            key: key.into(),
            expect,
        }
    }

    #[test]
    fn a_client_write_older_than_the_stored_version_is_refused_with_that_version() {
        let mut r = Replica::new(1, 500);
        assert_eq!(
            r.serve(put("k", v(NOW, 2), PutCheck::Newer), NOW),
            ReplicaResponse::Written
        );
        assert_eq!(
            r.serve(put("k", v(NOW, 1), PutCheck::Newer), NOW),
            ReplicaResponse::Stale(v(NOW, 2)),
            "same millisecond, lower node id: older"
        );
        assert_eq!(
            r.serve(put("k", v(NOW, 2), PutCheck::Newer), NOW),
            ReplicaResponse::Written,
            "the same version again is the same write"
        );
        assert_eq!(r.stats().stale, 1);
        assert_eq!(
            r.get("k").expect("in memory").map(|x| x.version),
            Some(v(NOW, 2))
        );
    }

    #[test]
    fn repair_and_handoff_merge_without_refusing() {
        let mut r = Replica::new(1, 500);
        r.serve(put("k", v(NOW, 2), PutCheck::Newer), NOW);
        let old = Record::value(v(NOW - 5, 1), Bytes::new());
        let repair = ReplicaRequest::Write {
            key: "k".into(),
            record: old.clone(),
        };
        assert_eq!(r.serve(repair, NOW), ReplicaResponse::Written);
        let batch = ReplicaRequest::WriteBatch {
            records: vec![("k".into(), old)],
        };
        assert_eq!(r.serve(batch, NOW), ReplicaResponse::Written);
        assert_eq!(
            r.get("k").expect("in memory").map(|x| x.version),
            Some(v(NOW, 2))
        );
    }

    #[test]
    fn a_conditional_write_is_refused_when_the_store_holds_a_newer_version_than_expected() {
        let mut r = Replica::new(1, 500);
        r.serve(put("k", v(NOW - 10, 1), PutCheck::Newer), NOW);
        // The coordinator read v(NOW - 10): writing over it is fine.
        let ok = put("k", v(NOW, 1), PutCheck::Expect(Some(v(NOW - 10, 1))));
        assert_eq!(r.serve(ok, NOW), ReplicaResponse::Written);
        // Another writer got in between: the store holds v(NOW), newer than expected.
        let late = put("k", v(NOW + 1, 3), PutCheck::Expect(Some(v(NOW - 10, 1))));
        assert_eq!(r.serve(late, NOW), ReplicaResponse::Conflict(v(NOW, 1)));
        // A replica behind the quorum (it holds an older version) accepts.
        let mut behind = Replica::new(1, 500);
        behind.serve(put("k", v(NOW - 20, 1), PutCheck::Newer), NOW);
        let w = put("k", v(NOW, 1), PutCheck::Expect(Some(v(NOW - 10, 1))));
        assert_eq!(behind.serve(w, NOW), ReplicaResponse::Written);
        // Create-only over an absent key, and refused once the key exists.
        let mut fresh = Replica::new(1, 500);
        assert_eq!(
            fresh.serve(put("n", v(NOW, 1), PutCheck::Expect(None)), NOW),
            ReplicaResponse::Written
        );
        assert_eq!(
            fresh.serve(put("n", v(NOW + 1, 1), PutCheck::Expect(None)), NOW),
            ReplicaResponse::Conflict(v(NOW, 1))
        );
        assert_eq!(r.stats().conflicts + fresh.stats().conflicts, 2);
    }

    #[test]
    fn versions_too_far_ahead_of_the_clock_are_refused_on_every_write_path() {
        let mut r = Replica::new(1, 500);
        let future = v(NOW + 501, 1);
        assert!(matches!(
            r.serve(put("a", future, PutCheck::Newer), NOW),
            ReplicaResponse::Error(_)
        ));
        let repair = ReplicaRequest::Write {
            key: "b".into(),
            record: Record::tombstone(future),
        };
        assert!(matches!(r.serve(repair, NOW), ReplicaResponse::Error(_)));
        let batch = ReplicaRequest::WriteBatch {
            records: vec![
                ("c".into(), Record::tombstone(future)),
                ("d".into(), Record::tombstone(v(NOW + 500, 1))),
            ],
        };
        assert_eq!(r.serve(batch, NOW), ReplicaResponse::Written);
        assert_eq!(r.len(), 1, "only the record within the bound is stored");
        assert_eq!(r.stats().too_far_ahead, 3);
    }

    #[test]
    fn a_pending_replica_or_an_unexpected_store_answers_reads_not_authoritative() {
        let mut r = Replica::new(7, 500);
        r.serve(put("k", v(NOW, 1), PutCheck::Newer), NOW);
        assert!(matches!(
            r.serve(read("k", Some(7)), NOW),
            ReplicaResponse::Read(Some(_))
        ));
        assert!(matches!(
            r.serve(read("k", None), NOW),
            ReplicaResponse::Read(Some(_))
        ));
        assert_eq!(
            r.serve(read("k", Some(6)), NOW),
            ReplicaResponse::NotAuthoritative,
            "the coordinator expected the store this node had before it restarted"
        );
        r.set_authoritative(false);
        assert_eq!(
            r.serve(read("nope", Some(7)), NOW),
            ReplicaResponse::NotAuthoritative
        );
        assert_eq!(
            r.serve(put("k2", v(NOW, 1), PutCheck::Newer), NOW),
            ReplicaResponse::Written,
            "a pending replica still stores writes"
        );
        assert_eq!(r.stats().not_authoritative, 2);
    }

    #[test]
    fn a_replica_asked_for_a_key_it_neither_holds_nor_owns_answers_not_authoritative() {
        use crate::ring::ring::Ring;
        use std::sync::Arc;
        let ring = Arc::new(Ring::with_stores(
            1,
            ["a", "b", "c", "d"].map(|m| (m.to_string(), 1)),
            16,
        ));
        let owned = |mine: bool| {
            (0..100)
                .map(|i| format!("k{i}"))
                .find(|k| ring.locate(k.as_bytes(), 2).contains(&"a") == mine)
                .expect("a key of each kind")
        };
        let (mine, theirs, held) = (owned(true), owned(false), "held-elsewhere");
        let mut r = Replica::new(1, 500);
        r.serve(put(held, v(NOW, 1), PutCheck::Newer), NOW);
        assert_eq!(
            r.serve(read(&theirs, None), NOW),
            ReplicaResponse::Read(None),
            "before its first placement it answers as before"
        );
        r.set_ownership(Ownership::new("a", 2, vec![ring.clone()]));
        assert_eq!(r.serve(read(&mine, None), NOW), ReplicaResponse::Read(None));
        assert_eq!(
            r.serve(read(&theirs, None), NOW),
            ReplicaResponse::NotAuthoritative,
            "its 'missing' would mean nothing: the key is not its to hold"
        );
        assert!(
            matches!(
                r.serve(read(held, None), NOW),
                ReplicaResponse::Read(Some(_))
            ),
            "a copy it holds is always an answer"
        );
        assert_eq!(r.stats().not_authoritative, 1);
    }

    #[test]
    fn a_leaving_replica_refuses_writes_and_is_no_authority_for_reads() {
        let mut r = Replica::new(1, 500);
        r.serve(put("k", v(NOW, 1), PutCheck::Newer), NOW);
        r.set_leaving(true);
        assert!(matches!(
            r.serve(put("k", v(NOW + 1, 1), PutCheck::Newer), NOW),
            ReplicaResponse::Error(_)
        ));
        assert_eq!(
            r.serve(read("k", None), NOW),
            ReplicaResponse::NotAuthoritative
        );
        // A leave given up: writes are taken again, reads answered again.
        r.set_leaving(false);
        assert!(matches!(
            r.serve(read("k", None), NOW),
            ReplicaResponse::Read(Some(_))
        ));
        assert_eq!(
            r.serve(put("k", v(NOW + 1, 1), PutCheck::Newer), NOW),
            ReplicaResponse::Written
        );
    }
}
