//! One conformance suite for both engines: every test here runs against the
//! in-memory store and against fjall in a temporary directory, through the
//! replica (which holds every rule) and the hint log. Ordering, tombstones,
//! last-writer-wins merge in any order, digests kept up to date against a
//! recomputation from scratch, range scans that wrap around, paging, the sweep
//! that expires values and collects tombstones after the grace period, hints.

#![allow(clippy::unwrap_used)]

use super::durable::{DurableOptions, FjallEngine};
use super::engine::Engine;
use super::hints::HintLog;
use super::hlc::pack;
use super::key::StoreKey;
use super::memory::MemoryStore;
use super::ops::{in_ranges, PutCheck, ReplicaRequest, ReplicaResponse};
use super::record::{Record, Version};
use super::replica::Replica;
use super::segments::{bucket_bits, bucket_of, item_hash};
use crate::ring::hash::{token, Token};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

const NOW: u64 = 1_700_000_000_000;

/// Makes engines of one kind; keeps their directories alive.
trait Maker {
    type E: Engine;
    fn make(&mut self) -> Self::E;
    /// Keys the replica's held cache keeps (0: none).
    fn held_cache(&self) -> usize {
        0
    }
}

struct Memory;

impl Maker for Memory {
    type E = MemoryStore;
    fn make(&mut self) -> MemoryStore {
        MemoryStore::new()
    }
}

#[derive(Default)]
struct Fjall(Vec<tempfile::TempDir>);

impl Maker for Fjall {
    type E = FjallEngine;
    fn make(&mut self) -> FjallEngine {
        let dir = tempfile::tempdir().unwrap();
        let engine = FjallEngine::open(dir.path(), DurableOptions::default()).unwrap();
        self.0.push(dir);
        engine
    }
}

/// Fjall behind a held cache small enough that its generations turn over
/// within every test.
#[derive(Default)]
struct FjallCached(Fjall);

impl Maker for FjallCached {
    type E = FjallEngine;
    fn make(&mut self) -> FjallEngine {
        self.0.make()
    }
    fn held_cache(&self) -> usize {
        3
    }
}

fn v(ms: u64, node: u64) -> Version {
    Version {
        ts: pack(ms, 0),
        node,
    }
}

fn value(version: Version, bytes: &'static [u8]) -> Record {
    Record::value(version, Bytes::from_static(bytes))
}

fn replica<M: Maker>(m: &mut M) -> Replica<M::E> {
    let cache = m.held_cache();
    Replica::open(m.make(), 1, 500)
        .unwrap()
        .with_held_cache(cache)
}

fn written(r: &mut Replica<impl Engine>, request: ReplicaRequest) {
    assert_eq!(r.serve(request, NOW), ReplicaResponse::Written);
}

fn all<E: Engine>(r: &Replica<E>) -> Vec<(String, Record)> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = r.page(after.as_deref(), 100).unwrap();
        let Some((last, _)) = page.last() else {
            return out;
        };
        after = Some(last.clone());
        out.extend(page);
    }
}

/// The digest recomputed from every record, as the definition says.
fn digest_from_scratch<E: Engine>(
    r: &Replica<E>,
    ranges: &[(Token, Token)],
    buckets: u32,
) -> Vec<u64> {
    let bits = bucket_bits(buckets);
    let mut d = vec![0u64; 1 << bits];
    for (k, rec) in all(r) {
        let t = token(k.as_bytes());
        if in_ranges(ranges, t) {
            d[bucket_of(t, bits)] ^= item_hash(&k, rec.version);
        }
    }
    d
}

/// Sorted split ranges as `shared_ranges` makes them: random boundaries, some
/// ranges, maybe the two halves of a wrapping one.
fn random_ranges(rng: &mut StdRng) -> Vec<(Token, Token)> {
    let mut cuts: Vec<Token> = (0..rng.gen_range(2..40)).map(|_| rng.gen()).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        if rng.gen_bool(0.5) {
            out.push((w[0], w[1]));
        }
    }
    if rng.gen_bool(0.5) {
        let (first, last) = (cuts[0], cuts[cuts.len() - 1]);
        out.push((last, Token::MAX));
        out.insert(0, (0, first));
    }
    out.sort_unstable();
    out
}

fn ordering_and_paging<M: Maker>(m: &mut M) {
    let mut r = replica(m);
    let mut rng = StdRng::seed_from_u64(1);
    let mut keys: Vec<String> = (0..500)
        .map(|i| format!("k{i}-{}", rng.gen::<u16>()))
        .collect();
    keys.shuffle(&mut rng);
    for k in &keys {
        written(
            &mut r,
            ReplicaRequest::Put {
                key: k.clone(),
                record: value(v(NOW, 1), b"x"),
                check: PutCheck::Newer,
            },
        );
    }
    let listed: Vec<String> = all(&r).into_iter().map(|(k, _)| k).collect();
    let mut expected: Vec<StoreKey> = keys.iter().map(|k| StoreKey::of(k)).collect();
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|s| s.key).collect();
    assert_eq!(
        listed, expected,
        "every key once, in ring order (token, then key)"
    );
    assert_eq!((r.len(), r.live_len()), (500, 500));
    let first = r.page(None, 7).unwrap();
    assert_eq!(first.len(), 7);
    let rest = r.page(Some(&first[6].0), 10_000).unwrap();
    assert_eq!(rest.len(), 493);
    assert!(r.page(Some(&expected[499]), 10).unwrap().is_empty());
}

fn tombstones<M: Maker>(m: &mut M) {
    let mut r = replica(m);
    for (k, rec) in [
        ("a", value(v(NOW, 1), b"x")),
        ("b", value(v(NOW, 1), b"y")),
        ("a", Record::tombstone(v(NOW + 1, 1))),
    ] {
        written(
            &mut r,
            ReplicaRequest::Put {
                key: k.into(),
                record: rec,
                check: PutCheck::Newer,
            },
        );
    }
    assert_eq!(r.get("a").unwrap(), Some(Record::tombstone(v(NOW + 1, 1))));
    assert_eq!((r.len(), r.live_len()), (2, 1));
    // A repair carrying the older value does not bring it back.
    written(
        &mut r,
        ReplicaRequest::Write {
            key: "a".into(),
            record: value(v(NOW, 1), b"x"),
        },
    );
    assert!(r.get("a").unwrap().unwrap().is_tombstone());
    written(
        &mut r,
        ReplicaRequest::Put {
            key: "a".into(),
            record: value(v(NOW + 2, 1), b"z"),
            check: PutCheck::Newer,
        },
    );
    assert_eq!((r.len(), r.live_len()), (2, 2));
}

fn random_record(rng: &mut StdRng) -> (String, Record) {
    let key = format!("key-{}", rng.gen_range(0..60));
    let version = v(NOW - rng.gen_range(0..1_000), rng.gen_range(0..3));
    let record = if rng.gen_bool(0.3) {
        Record::tombstone(version)
    } else {
        // Equal versions carry equal contents in the system (one writer per version).
        let tag = version.ts ^ version.node;
        Record::value(version, Bytes::from(tag.to_be_bytes().to_vec()))
    };
    (key, record)
}

fn merge_in_any_order<M: Maker>(m: &mut M) {
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let records: Vec<(String, Record)> = (0..300).map(|_| random_record(&mut rng)).collect();
        let mut newest: BTreeMap<String, Record> = BTreeMap::new();
        for (k, r) in &records {
            let keep = newest.get(k).is_none_or(|cur| cur.version < r.version);
            if keep {
                newest.insert(k.clone(), r.clone());
            }
        }
        let mut digests = Vec::new();
        for order in 0..3 {
            let mut shuffled = records.clone();
            shuffled.shuffle(&mut rng);
            let mut r = replica(m);
            // One order as one batch, one as single repairs, one as batches of 7.
            match order {
                0 => written(&mut r, ReplicaRequest::WriteBatch { records: shuffled }),
                1 => {
                    for (key, record) in shuffled {
                        written(&mut r, ReplicaRequest::Write { key, record });
                    }
                }
                _ => {
                    for chunk in shuffled.chunks(7) {
                        written(
                            &mut r,
                            ReplicaRequest::WriteBatch {
                                records: chunk.to_vec(),
                            },
                        );
                    }
                }
            }
            let held: BTreeMap<String, Record> = all(&r).into_iter().collect();
            assert_eq!(
                held, newest,
                "seed {seed} order {order}: the newest version of every key"
            );
            assert_eq!(r.len(), newest.len());
            assert_eq!(
                r.live_len(),
                newest.values().filter(|r| !r.is_tombstone()).count()
            );
            digests.push(r.digest(&[(0, Token::MAX)], 65_536).unwrap());
        }
        assert!(digests.windows(2).all(|w| w[0] == w[1]), "seed {seed}");
    }
}

fn digests_follow_every_write<M: Maker>(m: &mut M) {
    for seed in 0..10u64 {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let mut r = replica(m);
        for step in 0..400 {
            let (key, record) = random_record(&mut rng);
            match rng.gen_range(0..10) {
                0 => {
                    let held = r.get(&key).unwrap().map(|r| r.version);
                    if let Some(version) = held {
                        assert_eq!(r.remove_if_versions(vec![(key, version)]).unwrap(), 1);
                    }
                }
                1 => {
                    r.sweep(NOW, NOW - 500, rng.gen_range(1..50)).unwrap();
                }
                _ => {
                    let request = ReplicaRequest::Write { key, record };
                    written(&mut r, request);
                }
            }
            if step % 40 == 0 {
                let ranges = random_ranges(&mut rng);
                let buckets = [1, 16, 256, 4096, 65_536, 100_000][rng.gen_range(0..6)];
                assert_eq!(
                    r.digest(&ranges, buckets).unwrap(),
                    digest_from_scratch(&r, &ranges, buckets),
                    "seed {seed} step {step}"
                );
            }
        }
        let whole = [(0, Token::MAX)];
        assert_eq!(
            r.digest(&whole, 4096).unwrap(),
            digest_from_scratch(&r, &whole, 4096)
        );
    }
}

fn versions_and_wrapping_scans<M: Maker>(m: &mut M) {
    let mut r = replica(m);
    let keys: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
    let records = keys
        .iter()
        .map(|k| (k.clone(), value(v(NOW, 1), b"x")))
        .collect();
    written(&mut r, ReplicaRequest::WriteBatch { records });
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..30 {
        let ranges = random_ranges(&mut rng);
        let buckets = [1, 64, 4096, 70_000][rng.gen_range(0..4)];
        let d = r.digest(&ranges, buckets).unwrap();
        let wanted: Vec<u32> = (0..d.len() as u32)
            .filter(|&i| d[i as usize] != 0)
            .collect();
        let mut got: Vec<String> = r
            .versions(&ranges, buckets, &wanted)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        got.sort();
        let mut expected: Vec<String> = keys
            .iter()
            .filter(|k| in_ranges(&ranges, token(k.as_bytes())))
            .cloned()
            .collect();
        expected.sort();
        assert_eq!(
            got, expected,
            "every key in the ranges is in a non-empty bucket"
        );
        // Repeated, out-of-range and unwanted buckets change nothing.
        let mut noisy = vec![u32::MAX, 7, 7];
        noisy.extend(&wanted);
        assert_eq!(
            r.versions(&ranges, buckets, &noisy).unwrap().len(),
            expected.len()
        );
    }
    // A wrapping range given whole equals its two halves.
    let (s, e) = (u64::MAX / 3 * 2, u64::MAX / 3);
    let whole = r
        .versions(&[(s, e)], 16, &(0..16).collect::<Vec<_>>())
        .unwrap();
    let halves = r
        .versions(&[(0, e), (s, Token::MAX)], 16, &(0..16).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(whole.len(), halves.len());
    assert!(!whole.is_empty());
    assert_eq!(
        r.digest(&[(s, e)], 16).unwrap(),
        r.digest(&[(0, e), (s, Token::MAX)], 16).unwrap()
    );
}

fn the_sweep_expires_values_and_collects_old_tombstones<M: Maker>(m: &mut M) {
    let mut r = replica(m);
    let mut records = Vec::new();
    for i in 0..100 {
        records.push((format!("old-{i}"), Record::tombstone(v(NOW - 10_000, 1))));
        records.push((format!("new-{i}"), Record::tombstone(v(NOW - 10, 1))));
        records.push((
            format!("ttl-{i}"),
            value(v(NOW - 10, 1), b"t").expiring(Some(NOW - 1)),
        ));
        records.push((format!("live-{i}"), value(v(NOW - 10_000, 1), b"l")));
    }
    written(&mut r, ReplicaRequest::WriteBatch { records });
    let before = r.digest(&[(0, Token::MAX)], 256).unwrap();
    let (mut expired, mut collected, mut steps) = (0, 0, 0);
    loop {
        let s = r.sweep(NOW, NOW - 1_000, 33).unwrap();
        assert!(s.scanned <= 33, "bounded per step");
        expired += s.expired;
        collected += s.collected;
        steps += 1;
        if s.wrapped {
            break;
        }
    }
    assert_eq!(
        (expired, collected, steps),
        (100, 100, 400_usize.div_ceil(33))
    );
    assert_eq!((r.len(), r.live_len()), (300, 100));
    assert!(r.get("old-5").unwrap().is_none());
    assert_eq!(
        r.get("ttl-5").unwrap(),
        Some(Record::tombstone(v(NOW - 10, 1)))
    );
    assert!(r.get("new-5").unwrap().is_some() && r.get("live-5").unwrap().is_some());
    let after = r.digest(&[(0, Token::MAX)], 256).unwrap();
    assert_ne!(before, after, "collected tombstones leave the digest");
    assert_eq!(after, digest_from_scratch(&r, &[(0, Token::MAX)], 256));
    let again = r.sweep(NOW, NOW - 1_000, 1_000).unwrap();
    assert_eq!(
        (again.expired, again.collected, again.wrapped),
        (0, 0, true)
    );
}

fn hints_are_kept_per_member_in_order<M: Maker>(m: &mut M) {
    let mut engine = m.make();
    let mut log = HintLog::open(&engine, 5).unwrap();
    let hint = |to: &str, k: &str| (to.to_string(), k.to_string(), value(v(NOW, 1), b"h"));
    let stored = log
        .store(
            &mut engine,
            vec![
                hint("b", "1"),
                hint("a", "2"),
                hint("b", "3"),
                hint("bad\0", "x"),
            ],
            NOW,
        )
        .unwrap();
    assert_eq!(stored, 3, "a name with a 0 byte is refused");
    assert_eq!(
        log.store(
            &mut engine,
            vec![hint("c", "4"), hint("c", "5"), hint("c", "6")],
            NOW + 5
        )
        .unwrap(),
        2,
        "bounded at 5"
    );
    let b: Vec<String> = log
        .oldest(&engine, "b", 10)
        .unwrap()
        .into_iter()
        .map(|(_, h)| h.key)
        .collect();
    assert_eq!(b, ["1", "3"], "one member's hints, oldest first");
    assert!(log.oldest(&engine, "nobody", 10).unwrap().is_empty());
    let first = log.oldest(&engine, "b", 1).unwrap();
    log.remove(&mut engine, first.into_iter().map(|(k, _)| k).collect())
        .unwrap();
    assert_eq!(log.backlog().get("b"), Some(&1));
    assert_eq!(log.expire(&mut engine, NOW + 1).unwrap(), 2, "b's and a's");
    assert_eq!(log.total(), 2);
    let reopened = HintLog::open(&engine, 5).unwrap();
    assert_eq!(reopened.backlog(), log.backlog());
}

macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $name() { super::$name(&mut super::Memory); })*
        }
        mod fjall {
            $(#[test] fn $name() { super::$name(&mut super::Fjall::default()); })*
        }
        mod fjall_cached {
            $(#[test] fn $name() { super::$name(&mut super::FjallCached::default()); })*
        }
    };
}

both_engines!(
    ordering_and_paging,
    tombstones,
    merge_in_any_order,
    digests_follow_every_write,
    versions_and_wrapping_scans,
    the_sweep_expires_values_and_collects_old_tombstones,
    hints_are_kept_per_member_in_order,
);

#[test]
fn a_reopened_fjall_engine_holds_its_records_hints_and_digests() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let records: Vec<(String, Record)> = (0..300).map(|_| random_record(&mut rng)).collect();
    let (held, digest, backlog) = {
        let mut r = Replica::open(
            FjallEngine::open(dir.path(), DurableOptions::default()).unwrap(),
            1,
            500,
        )
        .unwrap();
        written(&mut r, ReplicaRequest::WriteBatch { records });
        let mut log = HintLog::open(r.engine(), 100).unwrap();
        log.store(
            r.engine_mut(),
            vec![("m".into(), "k".into(), value(v(NOW, 1), b"h"))],
            NOW,
        )
        .unwrap();
        r.engine().persist().unwrap();
        (
            all(&r),
            r.digest(&[(0, Token::MAX)], 4096).unwrap(),
            log.backlog().clone(),
        )
    };
    let r = Replica::open(
        FjallEngine::open(dir.path(), DurableOptions::default()).unwrap(),
        1,
        500,
    )
    .unwrap();
    assert_eq!(all(&r), held);
    assert_eq!(r.digest(&[(0, Token::MAX)], 4096).unwrap(), digest);
    assert_eq!(HintLog::open(r.engine(), 100).unwrap().backlog(), &backlog);
}
