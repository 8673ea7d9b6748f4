//! Service tests of the HTTP API (DESIGN section 2): every row of the API, error
//! and cluster-endpoint tables, against real actors (storage, replication, ring,
//! membership over a loopback UDP socket) wired as `node.rs` wires them, and an
//! actix-web test service wrapped in the same metrics middleware.
//!
//! No test sleeps: every wait is on an actor's reply, and the order of mailbox
//! messages makes the wiring deterministic (see [`Node::start`]).

#![allow(clippy::unwrap_used)]

use actix::prelude::*;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, Service, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{middleware, test, web, App};
use bytes::Bytes;
use futures_util::Stream;
use openmetrics_parser::{MetricNumber, OpenMetricsValue};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::Poll;
use swimkv::api::{self, AppState};
use swimkv::config::Config;
use swimkv::membership::actor::{GetMembers, LiveMember, MembershipActor};
use swimkv::membership::swim::Swim;
use swimkv::metrics::Metrics;
use swimkv::replication::actor::ReplicationActor;
use swimkv::ring::actor::{GetRing, RingActor, RingChanged, RingSnapshot};
use swimkv::storage::actor::StorageActor;
use swimkv::transport::rpc::{RpcClient, RpcCounters};
use swimkv::transport::udp::UdpCounters;
use swimkv::transport::wire;

/// The seed of every SWIM core in these tests (printed by `Node::start`).
const SEED: u64 = 0x5eed_a1;

/// One node's actors and the state the handlers see.
struct Node {
    name: String,
    peer_addr: String,
    vnodes: u32,
    replication: Addr<ReplicationActor>,
    state: web::Data<AppState>,
}

impl Node {
    /// A single node with `Config::for_test()` (N = R = W = 1), no introducers.
    async fn single() -> Node {
        Node::start(Config::for_test(), Vec::new()).await
    }

    /// Starts storage, replication, ring and membership as `node.rs` does, with
    /// the UDP socket on 127.0.0.1:0 and the node named after it.
    ///
    /// Returns once every actor has started and the ring every later request
    /// sees is in place: the ring actor announces its first ring to replication
    /// when it starts, membership announces the live set to the ring when it
    /// starts, and awaiting `GetMembers` then `GetRing` puts both announcements
    /// ahead of any client request in the replication actor's mailbox.
    async fn start(config: Config, introducers: Vec<String>) -> Node {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let name = udp.local_addr().unwrap().to_string();
        eprintln!("node {name}, SWIM seed {SEED:#x}");
        let peer_addr = format!("127.0.0.1:{}", config.peer_port);
        let cluster = wire::cluster_tag(&config.cluster_id);
        let udp_counters = Arc::new(UdpCounters::default());
        let rpc_counters = Arc::new(RpcCounters::default());
        let metrics = Metrics::new(udp_counters.clone(), rpc_counters.clone());

        let storage = StorageActor::new(metrics.clone()).start();
        // Peer RPC points nowhere: a single node only ever asks its own storage.
        let rpc = RpcClient::new(cluster, config.limits.max_frame_bytes, rpc_counters);
        let replication = ReplicationActor::new(
            name.clone(),
            config.replication.clone(),
            storage.clone().recipient(),
            rpc,
            metrics.clone(),
        )
        .start();
        let me = LiveMember {
            name: name.clone(),
            peer_addr: peer_addr.clone(),
        };
        let ring = RingActor::new(
            me,
            config.vnodes,
            vec![replication.clone().recipient()],
            metrics.clone(),
        )
        .start();
        let swim = Swim::new(
            name.clone(),
            1,
            config.peer_port,
            config.swim.clone(),
            config.swim.max_datagram_bytes - wire::HEADER_LEN,
            StdRng::seed_from_u64(SEED),
        );
        let membership = MembershipActor::new(
            swim,
            Arc::new(udp),
            cluster,
            introducers.clone(),
            vec![ring.clone().recipient()],
            udp_counters,
            metrics.clone(),
        )
        .start();
        membership.send(GetMembers).await.unwrap();
        ring.send(GetRing).await.unwrap();

        let state = web::Data::new(AppState {
            node: name.clone(),
            introducers: introducers.len(),
            get: replication.clone().recipient(),
            put: replication.clone().recipient(),
            members: membership.clone().recipient(),
            leave: membership.recipient(),
            ring: ring.recipient(),
            local: storage.recipient(),
            shutdown: None,
            limits: config.limits.clone(),
            replication: config.replication.clone(),
            metrics,
            inflight: Arc::new(AtomicUsize::new(0)),
        });
        Node {
            name,
            peer_addr,
            vnodes: config.vnodes,
            replication,
            state,
        }
    }
}

/// The app of `node.rs`: the API routes wrapped in the metrics middleware.
macro_rules! app {
    ($node:expr) => {
        test::init_service(
            App::new()
                .app_data($node.state.clone())
                .wrap(middleware::from_fn(api::record_metrics))
                .configure(api::configure),
        )
        .await
    };
}

/// What came back.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: impl header::AsHeaderName) -> &str {
        self.headers.get(name).unwrap().to_str().unwrap()
    }

    /// Asserts a JSON error: status, `error` kind, a non-empty `message`.
    fn assert_error(&self, status: StatusCode, kind: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "body: {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header(header::CONTENT_TYPE), "application/json");
        let body = self.json();
        assert_eq!(body["error"], kind, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        body
    }

    /// Asserts a 200 write answer `{"key","version","acks"}` and returns the version.
    fn assert_written(&self, key: &str, acks: u64) -> String {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "body: {:?}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        let fields: BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, BTreeSet::from(["key", "version", "acks"]), "{body}");
        assert_eq!(body["key"], key);
        assert_eq!(body["acks"], acks);
        let version = body["version"].as_str().unwrap().to_string();
        assert!(!version.is_empty());
        version
    }
}

async fn call<S, R, B>(app: &S, req: R) -> Reply
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = test::read_body(res).await;
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends a `TestRequest` builder to the app and reads the whole reply.
macro_rules! send {
    ($app:expr, $req:expr) => {
        call(&$app, $req.to_request()).await
    };
}

/// `GET uri`.
macro_rules! get {
    ($app:expr, $uri:expr) => {
        send!($app, test::TestRequest::get().uri(&$uri))
    };
}

/// `POST uri` with `body` (Content-Length set).
macro_rules! post {
    ($app:expr, $uri:expr, $body:expr) => {
        send!(
            $app,
            test::TestRequest::post().uri(&$uri).set_payload($body)
        )
    };
}
