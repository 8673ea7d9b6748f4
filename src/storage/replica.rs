//! The replica: one node's store and the rules it applies to every replica request.
//!
//! - **Authority.** A replica that came back without its data (a restart of an
//!   in-memory node, a new or wiped data directory, a rejoin after leaving) is
//!   *pending* until its handoff completed: it answers reads with
//!   [`ReplicaResponse::NotAuthoritative`] instead of "missing", and so does a
//!   replica whose store generation is not the one the coordinator expected (the
//!   coordinator's view predates a restart: a restarted node keeps its address).
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
//!
//! Invariants: the store only changes by storing or merging records; nothing here
//! panics on any request. Pure: the wall clock is an argument.

use super::hlc::millis_of;
use super::memory::MemoryStore;
use super::ops::{self, PutCheck, ReplicaRequest, ReplicaResponse};
use super::record::Record;

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
}

/// One node's replica of its keys.
#[derive(Debug)]
pub struct Replica {
    store: MemoryStore,
    store_gen: u64,
    authoritative: bool,
    leaving: bool,
    max_ahead_ms: u64,
    stats: ReplicaStats,
}

impl Replica {
    /// A replica over an empty store of generation `store_gen`, authoritative,
    /// refusing versions more than `max_ahead_ms` ahead of its wall clock.
    pub fn new(store_gen: u64, max_ahead_ms: u64) -> Replica {
        Replica {
            store: MemoryStore::new(),
            store_gen,
            authoritative: true,
            leaving: false,
            max_ahead_ms,
            stats: ReplicaStats::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// The store, to change it directly (tombstone collection, dropping handed-off keys).
    pub fn store_mut(&mut self) -> &mut MemoryStore {
        &mut self.store
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

    /// From now on, refuse every write (a graceful leave is handing the store off).
    pub fn set_leaving(&mut self) {
        self.leaving = true;
    }

    /// What was refused so far.
    pub fn stats(&self) -> ReplicaStats {
        self.stats
    }

    fn too_far_ahead(&mut self, record: &Record, now_ms: u64) -> bool {
        let ahead = millis_of(record.version.ts) > now_ms.saturating_add(self.max_ahead_ms);
        if ahead {
            self.stats.too_far_ahead += 1;
        }
        ahead
    }

    /// Serves one request at wall-clock `now_ms`.
    pub fn serve(&mut self, request: ReplicaRequest, now_ms: u64) -> ReplicaResponse {
        if self.leaving && request.writes() {
            return ReplicaResponse::Error("leaving the cluster".into());
        }
        match request {
            ReplicaRequest::Read { key, expect } => {
                if !self.authoritative || expect.is_some_and(|e| e != self.store_gen) {
                    self.stats.not_authoritative += 1;
                    return ReplicaResponse::NotAuthoritative;
                }
                ReplicaResponse::Read(self.store.get(&key).cloned())
            }
            ReplicaRequest::Put { key, record, check } => {
                if self.too_far_ahead(&record, now_ms) {
                    return ReplicaResponse::Error(format!(
                        "version {} is more than {} ms ahead of this replica's clock",
                        record.version, self.max_ahead_ms
                    ));
                }
                let held = self.store.get(&key).map(|r| r.version);
                match (check, held) {
                    (PutCheck::Newer, Some(h)) if h > record.version => {
                        self.stats.stale += 1;
                        return ReplicaResponse::Stale(h);
                    }
                    (PutCheck::Expect(expected), Some(h)) if Some(h) > expected => {
                        self.stats.conflicts += 1;
                        return ReplicaResponse::Conflict(h);
                    }
                    _ => {}
                }
                self.store.apply(&key, record);
                ReplicaResponse::Written
            }
            ReplicaRequest::Write { key, record } => {
                if self.too_far_ahead(&record, now_ms) {
                    return ReplicaResponse::Error("version too far ahead".into());
                }
                self.store.apply(&key, record);
                ReplicaResponse::Written
            }
            ReplicaRequest::WriteBatch { records } => {
                for (key, record) in records {
                    // A record from the future is skipped, not the batch: the rest
                    // of a handoff still arrives (and the skipped one is counted).
                    if !self.too_far_ahead(&record, now_ms) {
                        self.store.apply(&key, record);
                    }
                }
                ReplicaResponse::Written
            }
            ReplicaRequest::ReadBatch { keys } => ReplicaResponse::Records(
                keys.into_iter()
                    .filter_map(|k| self.store.get(&k).cloned().map(|r| (k, r)))
                    .collect(),
            ),
            ReplicaRequest::Digest { ranges, buckets } => {
                ReplicaResponse::Digest(ops::digest(&self.store, &ranges, buckets))
            }
            ReplicaRequest::Versions {
                ranges,
                buckets,
                wanted,
            } => ReplicaResponse::Versions(ops::versions(&self.store, &ranges, buckets, &wanted)),
            ReplicaRequest::Synced { .. } => ReplicaResponse::Error("not a storage request".into()),
        }
    }
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
        assert_eq!(r.store().get("k").map(|x| x.version), Some(v(NOW, 2)));
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
        assert_eq!(r.store().get("k").map(|x| x.version), Some(v(NOW, 2)));
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
        assert_eq!(
            r.store().len(),
            1,
            "only the record within the bound is stored"
        );
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
    fn a_leaving_replica_refuses_writes_but_still_serves_reads() {
        let mut r = Replica::new(1, 500);
        r.serve(put("k", v(NOW, 1), PutCheck::Newer), NOW);
        r.set_leaving();
        assert!(matches!(
            r.serve(put("k", v(NOW + 1, 1), PutCheck::Newer), NOW),
            ReplicaResponse::Error(_)
        ));
        assert!(matches!(
            r.serve(read("k", None), NOW),
            ReplicaResponse::Read(Some(_))
        ));
    }
}
