//! Injected engine failures, through a mockall mock of the [`Engine`] seam: a
//! full disk, an I/O error, corrupt data, an engine that refuses to go on. The
//! replica answers each as an error (counted by kind) and changes nothing; the
//! client of a node over such an engine gets a 503, never a 200; a failed
//! journal flush refuses the writes it covered; a failed fsync under
//! `--sync always` refuses them and stops the node (exit code 3). Nothing panics.

#![allow(clippy::unwrap_used)]

use super::actor::StorageOptions;
use super::disk::DiskThread;
use super::engine::{Engine, MockEngine, StorageError, Syncer};
use super::hlc::pack;
use super::ops::{PutCheck, ReplicaRequest, ReplicaResponse};
use super::record::{Record, Version};
use super::replica::Replica;
use crate::api::{self, AppState};
use crate::config::{Config, SyncMode};
use crate::membership::actor::GetMembers;
use crate::node::{start_actors, Identity, NodeStore};
use crate::replication::actor::ClockMark;
use crate::replication::stabilizer::PeerSynced;
use crate::ring::actor::GetRing;
use crate::ring::hash::Token;
use actix_web::{test as web_test, web, App};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const NOW: u64 = 1_700_000_000_000;

fn kinds() -> Vec<StorageError> {
    vec![
        StorageError::Full("No space left on device".into()),
        StorageError::Io("Input/output error".into()),
        StorageError::Corrupt("undecodable record".into()),
        StorageError::Failed("poisoned".into()),
    ]
}

/// An engine that opens (its first scans find nothing) and then fails every
/// call with `error`; `durable` gives it a syncer that fails too.
fn failing(error: StorageError, durable: bool) -> MockEngine {
    let mut m = MockEngine::new();
    let opened = Arc::new(AtomicUsize::new(0));
    let e = error.clone();
    m.expect_scan().returning(move |_, _, _| {
        // Replica::open scans once; everything after that fails.
        if opened.fetch_add(1, Ordering::Relaxed) == 0 {
            Ok(Vec::new())
        } else {
            Err(e.clone())
        }
    });
    m.expect_scan_hints().returning(|_, _| Ok(Vec::new()));
    let e = error.clone();
    m.expect_get().returning(move |_| Err(e.clone()));
    let e = error.clone();
    m.expect_write().returning(move |_| Err(e.clone()));
    m.expect_persist().returning(|| Ok(()));
    let e = error;
    m.expect_syncer().returning(move || {
        let e = e.clone();
        durable.then(|| Syncer(Arc::new(move || Err(e.clone()))))
    });
    m.expect_disk_bytes().returning(|| 0);
    m
}

fn requests() -> Vec<ReplicaRequest> {
    let record = Record::value(
        Version {
            ts: pack(NOW, 0),
            node: 1,
        },
        Bytes::from_static(b"v"),
    );
    vec![
        ReplicaRequest::Read {
            key: "k".into(),
            expect: None,
        },
        ReplicaRequest::Put {
            key: "k".into(),
            record: record.clone(),
            check: PutCheck::Newer,
        },
        ReplicaRequest::Write {
            key: "k".into(),
            record: record.clone(),
        },
        ReplicaRequest::WriteBatch {
            records: vec![("k".into(), record)],
        },
        ReplicaRequest::ReadBatch {
            keys: vec!["k".into()],
        },
        ReplicaRequest::Digest {
            // A range that cuts through a segment: its end is scanned.
            ranges: vec![(5, 1 << 40)],
            buckets: 16,
        },
        ReplicaRequest::Versions {
            ranges: vec![(5, 7)],
            buckets: 16,
            wanted: vec![0],
        },
    ]
}

#[test]
fn every_engine_failure_is_answered_as_an_error_counted_by_kind_and_changes_nothing() {
    for error in kinds() {
        let mut r = Replica::open(failing(error.clone(), false), 1, 500).unwrap();
        let before = r.digest(&[(0, Token::MAX)], 64).unwrap();
        let mut answered = 0;
        for request in requests() {
            let what = format!("{request:?}");
            match r.serve(request, NOW) {
                ReplicaResponse::Error(m) => {
                    assert!(m.starts_with("storage: "), "{what}: {m}");
                    answered += 1;
                }
                other => panic!("{error:?} on {what} answered {other:?}"),
            }
        }
        let e = r.stats().errors;
        let counted = e.disk_full + e.io + e.corrupt + e.failed;
        assert_eq!(counted, answered, "{error:?}: every error counted");
        let of_kind = match error {
            StorageError::Full(_) => e.disk_full,
            StorageError::Io(_) => e.io,
            StorageError::Corrupt(_) => e.corrupt,
            StorageError::Failed(_) => e.failed,
        };
        assert_eq!(of_kind, counted, "{error:?}: counted under its own kind");
        assert_eq!((r.len(), r.live_len()), (0, 0), "{error:?}: nothing stored");
        assert_eq!(
            r.digest(&[(0, Token::MAX)], 64).unwrap(),
            before,
            "{error:?}: digests untouched"
        );
    }
}

/// A single node (N = R = W = 1) over `engine`, wired as `node.rs` wires it,
/// its placement in place; the handlers' state.
async fn node_over(engine: MockEngine, sync: SyncMode) -> web::Data<AppState> {
    let config = Config::for_test();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let name = udp.local_addr().unwrap().to_string();
    let identity = Identity::fresh(1, false);
    let engine: Box<dyn Engine> = Box::new(engine);
    let mut options = StorageOptions::in_memory(config.replication.tombstone_grace_ms, 100);
    options.sync = sync;
    options.disk = Some(DiskThread::start().unwrap());
    let store = NodeStore {
        replica: Replica::open(engine, 1, 500).unwrap(),
        options,
        data_dir: None,
        clock: ClockMark::unbounded(),
        recorded: Vec::new(),
        restored: false,
    };
    let actors = start_actors(&config, name, identity, store, 1, udp, None);
    actors.membership.send(GetMembers).await.unwrap();
    actors.ring.send(GetRing).await.unwrap();
    actors
        .stabilizer
        .send(PeerSynced {
            from: String::new(),
            fingerprint: 0,
            haunted: Vec::new(),
        })
        .await
        .unwrap();
    web::Data::new(actors.app_state(&config, None))
}

macro_rules! status {
    ($app:expr, $method:expr, $path:expr) => {{
        let req = web_test::TestRequest::default()
            .method($method.parse().unwrap())
            .uri($path)
            .set_payload("value")
            .to_request();
        web_test::call_service(&$app, req).await.status().as_u16()
    }};
}

#[actix_web::test]
async fn a_client_of_a_node_whose_engine_fails_gets_503_never_200() {
    for error in kinds() {
        let state = node_over(failing(error.clone(), false), SyncMode::Periodic).await;
        let app =
            web_test::init_service(App::new().app_data(state).configure(api::configure)).await;
        assert_eq!(status!(app, "POST", "/d/k"), 503, "{error:?}: POST");
        assert_eq!(status!(app, "PUT", "/d/k"), 503, "{error:?}: PUT");
        assert_eq!(status!(app, "DELETE", "/d/k"), 503, "{error:?}: DELETE");
        assert_eq!(status!(app, "GET", "/d/k"), 503, "{error:?}: GET");
        assert_eq!(
            status!(app, "GET", "/health"),
            200,
            "{error:?}: still alive"
        );
    }
}

#[actix_web::test]
async fn a_write_whose_journal_flush_fails_is_refused_though_the_engine_took_it() {
    let mut m = MockEngine::new();
    m.expect_scan().returning(|_, _, _| Ok(Vec::new()));
    m.expect_scan_hints().returning(|_, _| Ok(Vec::new()));
    m.expect_get().returning(|_| Ok(None));
    m.expect_write().returning(|_| Ok(()));
    m.expect_persist()
        .returning(|| Err(StorageError::Full("No space left on device".into())));
    m.expect_syncer()
        .returning(|| Some(Syncer(Arc::new(|| Ok(())))));
    m.expect_disk_bytes().returning(|| 0);
    let state = node_over(m, SyncMode::Periodic).await;
    let app = web_test::init_service(App::new().app_data(state).configure(api::configure)).await;
    assert_eq!(status!(app, "POST", "/d/k"), 503);
}

#[test]
fn a_failed_fsync_under_sync_always_refuses_the_write_and_stops_the_node_with_code_3() {
    let system = actix::System::new();
    let status = system.block_on(async {
        let mut m = MockEngine::new();
        m.expect_scan().returning(|_, _, _| Ok(Vec::new()));
        m.expect_scan_hints().returning(|_, _| Ok(Vec::new()));
        m.expect_get().returning(|_| Ok(None));
        m.expect_write().returning(|_| Ok(()));
        m.expect_persist().returning(|| Ok(()));
        m.expect_syncer().returning(|| {
            Some(Syncer(Arc::new(|| {
                Err(StorageError::Io("Input/output error".into()))
            })))
        });
        m.expect_disk_bytes().returning(|| 0);
        let state = node_over(m, SyncMode::Always).await;
        let app =
            web_test::init_service(App::new().app_data(state).configure(api::configure)).await;
        status!(app, "POST", "/d/k")
    });
    assert_eq!(status, 503, "not acknowledged");
    assert_eq!(system.run_with_code().unwrap(), 3, "the node stops");
}
