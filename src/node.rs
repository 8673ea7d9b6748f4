//! A whole node: the only place that starts actors and wires them together.
//!
//! Start order follows the dependency arrows (storage, replication, ring,
//! membership), so every subscriber exists before its publisher. Listeners (HTTP,
//! SWIM UDP on the HTTP port number, peer RPC) are bound before anything starts,
//! so a port in use is a one-line error and nothing runs half-started.
//!
//! Threads: SWIM gets an arbiter of its own; every other actor, the peer RPC
//! server and the signal handler start lazily from the HTTP App factory, on the
//! arbiter of whichever HTTP worker builds its App first, once the server runs.
//! Invariant: if that arbiter or the HTTP server ends, the process ends (a node
//! answering SWIM without storage behind it would never be declared dead).
//!
//! Files: this one wires the actors (`start_actors`, shared by the binary and
//! the service tests) and answers peer requests; `node/store.rs` opens the
//! node's store (its data directory, or memory); `node/boot.rs` starts a node
//! process; `node/control.rs` is the graceful leave and the stop that keeps
//! the data.

mod boot;
mod control;
mod store;

pub use boot::run;
pub use control::{Control, GracefulLeave, LeaveRefused, Stop};
pub use store::NodeStore;

use crate::api::AppState;
use crate::config::Config;
use crate::membership::actor::{MembershipActor, MembershipLinks, PeerUnreachable};
use crate::membership::member::LiveMember;
use crate::membership::swim::Swim;
use crate::metrics::Metrics;
use crate::replication::actor::ReplicationActor;
use crate::replication::message::{ReplicaRequest, ReplicaResponse};
use crate::replication::peer::encode_response;
use crate::replication::stabilizer::{PeerSynced, StabilizerActor, StorageLinks, WireMembership};
use crate::ring::actor::RingActor;
use crate::storage::actor::{LocalOp, MarkLeft, StorageActor, SyncNow};
use crate::transport::rpc::{Handler as RpcHandler, RpcClient, RpcCounters};
use crate::transport::udp::UdpCounters;
use crate::transport::wire::{parse_secrets, Seal};
use actix::prelude::*;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

/// Why a node could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bind_error(what: &str, addr: &str, e: std::io::Error) -> StartError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        StartError(format!(
            "cannot listen for {what} on {addr}: address already in use"
        ))
    } else {
        StartError(format!("cannot listen for {what} on {addr}: {e}"))
    }
}

/// Answers peer requests: `Synced` goes to the stabilizer, the rest to storage.
fn replica_handler(storage: Recipient<LocalOp>, stabilizer: Recipient<PeerSynced>) -> RpcHandler {
    Arc::new(move |payload: Bytes| {
        let storage = storage.clone();
        let stabilizer = stabilizer.clone();
        Box::pin(async move {
            let response = match postcard::from_bytes::<ReplicaRequest>(&payload) {
                Ok(ReplicaRequest::Synced {
                    from,
                    fingerprint,
                    haunted,
                }) => {
                    stabilizer.do_send(PeerSynced {
                        from,
                        fingerprint,
                        haunted,
                    });
                    ReplicaResponse::Written
                }
                Ok(request) => storage
                    .send(LocalOp(request))
                    .await
                    .unwrap_or_else(|e| ReplicaResponse::Error(format!("storage: {e}"))),
                Err(_) => ReplicaResponse::Error("undecodable request".into()),
            };
            encode_response(&response)
        })
    })
}

/// Who a starting node is: its process generation and the store it starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// This process's generation (its start time in Unix ms; a restart raises it).
    pub generation: u64,
    /// The generation of the store it starts with (equal to `generation` for a
    /// store created empty by this process).
    pub store: u64,
    /// Starts as a pending replica: it comes back without its data and joins an
    /// existing cluster, so it is no authority until its handoff completed.
    pub pending: bool,
}

impl Identity {
    /// A process at `generation` with a new, empty store, pending when it joins
    /// through introducers.
    pub fn fresh(generation: u64, joins: bool) -> Identity {
        Identity {
            generation,
            store: generation,
            pending: joins,
        }
    }
}

/// The actors of one node, started and wired (see [`start_actors`]).
#[derive(Clone)]
pub struct Actors {
    /// The node's member name.
    pub name: String,
    /// How envelopes are sealed and opened (cluster tag, secret).
    pub seal: Seal,
    /// Local store.
    pub storage: Addr<StorageActor>,
    /// Quorum coordinator.
    pub replication: Addr<ReplicationActor>,
    /// Handoff, transitions, anti-entropy.
    pub stabilizer: Addr<StabilizerActor>,
    /// The ring.
    pub ring: Addr<RingActor>,
    /// SWIM.
    pub membership: Addr<MembershipActor>,
    /// Metrics.
    pub metrics: Metrics,
    /// Peer RPC counters (shared by the client and the server).
    pub rpc_counters: Arc<RpcCounters>,
    /// Set once the node is part of a cluster (see the membership actor).
    pub joined: Arc<AtomicBool>,
    /// Set once the node may coordinate: joined, and its view settled since.
    pub serving: Arc<AtomicBool>,
    /// Flushes and fsyncs the store (a stop that keeps the data).
    pub sync: Recipient<SyncNow>,
    /// Records in the data directory that the node left.
    pub left: Recipient<MarkLeft>,
}

/// Starts storage, replication, stabilizer, ring and membership and wires them,
/// in the order of the dependency arrows so that every subscriber exists before
/// its publisher. SWIM runs on `swim_arbiter` when given, else on the current one.
pub fn start_actors(
    config: &Config,
    name: String,
    identity: Identity,
    store: NodeStore,
    seed: u64,
    udp: std::net::UdpSocket,
    swim_arbiter: Option<&ArbiterHandle>,
) -> Actors {
    // Config::validate refused a list that does not parse; were it given one
    // anyway, the whole text is the one secret (never an open seal).
    let secrets = config
        .cluster_secret
        .as_deref()
        .map(|s| parse_secrets(s).unwrap_or_else(|_| vec![s.to_string()]));
    let seal = Seal::with_secrets(&config.cluster_id, secrets);
    let udp_counters = Arc::new(UdpCounters::default());
    let rpc_counters = Arc::new(RpcCounters::default());
    let metrics = Metrics::new(udp_counters.clone(), rpc_counters.clone());
    let NodeStore {
        mut replica,
        options,
        data_dir,
        clock,
        recorded,
        restored,
    } = store;
    replica.set_authoritative(!identity.pending);
    let storage = StorageActor::new(replica, metrics.clone(), options, data_dir).start();
    let storage_sync = storage.clone().recipient();
    let storage_left = storage.clone().recipient();
    let rpc_client = RpcClient::new(
        seal.clone(),
        config.limits.max_frame_bytes,
        rpc_counters.clone(),
    )
    .with_local_sockets(config.peer_unix);
    let replication = ReplicationActor::new(
        name.clone(),
        config.replication.clone(),
        storage.clone(),
        rpc_client.clone(),
        metrics.clone(),
        clock,
    )
    .start();
    let stabilizer = StabilizerActor::new(
        name.clone(),
        (config.replication.n, config.replication.w),
        config.stabilize.clone(),
        StorageLinks {
            op: storage.clone().recipient(),
            page: storage.clone().recipient(),
            drop: storage.clone().recipient(),
            authority: storage.clone().recipient(),
            ownership: storage.clone().recipient(),
            leaving: storage.clone().recipient(),
        },
        rpc_client.clone(),
        replication.clone().recipient(),
        replication.clone().recipient(),
        metrics.clone(),
        Duration::from_millis(config.replication.request_timeout_ms),
    );
    let serving = stabilizer.serving_flag();
    let stabilizer = stabilizer.start();
    let me = LiveMember {
        name: name.clone(),
        peer_addr: config.peer_addr(),
        store: identity.store,
        pending: identity.pending,
    };
    let mut ring = RingActor::new(
        me,
        config.vnodes,
        vec![stabilizer.clone().recipient()],
        metrics.clone(),
    );
    if restored {
        let host = config.advertise_host.clone();
        let stopped = recorded
            .iter()
            .filter(|r| !r.dead && r.name != name)
            .map(|r| LiveMember {
                name: r.name.clone(),
                peer_addr: format!(
                    "{}:{}",
                    r.name.rsplit_once(':').map_or(host.as_str(), |(h, _)| h),
                    r.peer_port
                ),
                store: r.store,
                pending: false,
            })
            .collect();
        let dead = recorded
            .iter()
            .filter(|r| r.dead)
            .map(|r| (r.name.clone(), r.store))
            .collect();
        ring = ring.restored(stopped, dead);
    }
    let ring = ring.start();
    let swim = Swim::new(
        name.clone(),
        identity.generation,
        config.peer_port,
        config.swim.clone(),
        config.swim.max_datagram_bytes - seal.overhead(),
        StdRng::seed_from_u64(seed),
    )
    .with_store(identity.store, identity.pending)
    .remembering(
        recorded
            .iter()
            .map(|r| (r.name.clone(), r.store, r.peer_port, r.dead))
            .collect(),
        restored,
    );
    let joined = Arc::new(AtomicBool::new(false));
    let links = MembershipLinks {
        introducers: config.introducers.clone(),
        subscribers: vec![ring.clone().recipient(), storage.clone().recipient()],
        clock: Some(replication.clone().recipient()),
        joined: joined.clone(),
        max_clock_offset_ms: config.replication.max_clock_offset_ms,
    };
    let membership = MembershipActor::new(
        swim,
        udp,
        seal.clone(),
        links,
        udp_counters,
        metrics.clone(),
    );
    let membership = match swim_arbiter {
        Some(arbiter) => MembershipActor::start_in_arbiter(arbiter, move |_| membership),
        None => membership.start(),
    };
    // A refused or broken peer connection (a killed process's sockets close at
    // once) makes SWIM probe that member next instead of at its round-robin turn.
    stabilizer.do_send(WireMembership(membership.clone().recipient()));
    let hinted = membership.clone();
    rpc_client.on_unreachable(Arc::new(move |addr: &str| {
        hinted.do_send(PeerUnreachable {
            peer_addr: addr.to_string(),
        });
    }));
    Actors {
        name,
        seal,
        storage,
        replication,
        stabilizer,
        ring,
        membership,
        metrics,
        rpc_counters,
        joined,
        serving,
        sync: storage_sync,
        left: storage_left,
    }
}

impl Actors {
    /// What the HTTP handlers need; `leave` absent where a leave must not stop the process.
    pub fn app_state(&self, config: &Config, leave: Option<Recipient<GracefulLeave>>) -> AppState {
        AppState {
            node: self.name.clone(),
            introducers: config.introducers.len(),
            joined: self.joined.clone(),
            serving: self.serving.clone(),
            get: self.replication.clone().recipient(),
            put: self.replication.clone().recipient(),
            members: self.membership.clone().recipient(),
            leave,
            ring: self.ring.clone().recipient(),
            local: self.storage.clone().recipient(),
            limits: config.limits.clone(),
            replication: config.replication.clone(),
            metrics: self.metrics.clone(),
            inflight: Arc::new(AtomicUsize::new(0)),
            auth: None,
        }
    }
}
