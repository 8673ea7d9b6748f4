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

use crate::api::{self, AppState};
use crate::config::Config;
use crate::membership::actor::{Leave, LiveMember, MembershipActor, PeerUnreachable};
use crate::membership::swim::Swim;
use crate::metrics::Metrics;
use crate::replication::actor::ReplicationActor;
use crate::replication::message::{ReplicaRequest, ReplicaResponse};
use crate::replication::peer::encode_response;
use crate::replication::stabilizer::{HandOffAll, PeerSynced, StabilizerActor, StorageLinks};
use crate::ring::actor::RingActor;
use crate::storage::actor::{LocalOp, StorageActor};
use crate::transport::rpc::{self, Handler as RpcHandler, RpcClient, RpcCounters};
use crate::transport::udp::UdpCounters;
use crate::transport::wire::Seal;
use actix::prelude::*;
use actix_web::{middleware, web, App, HttpServer};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Leave gracefully: hand every key off, announce `left`, stop the node.
/// Answers how many keys were handed off.
#[derive(Message)]
#[rtype(result = "Result<u64, String>")]
pub struct GracefulLeave;

/// Runs a graceful leave and stops the actor system afterwards.
pub struct Control {
    stabilizer: Recipient<HandOffAll>,
    membership: Recipient<Leave>,
    leaving: bool,
}

impl Actor for Control {
    type Context = Context<Self>;
}

impl Handler<GracefulLeave> for Control {
    type Result = ResponseActFuture<Self, Result<u64, String>>;

    fn handle(&mut self, _: GracefulLeave, _: &mut Context<Self>) -> Self::Result {
        let first = !self.leaving;
        self.leaving = true;
        let stabilizer = self.stabilizer.clone();
        let membership = self.membership.clone();
        let work = async move {
            if !first {
                return Err("already leaving".to_string());
            }
            let handed = match stabilizer.send(HandOffAll).await {
                Ok(Ok(n)) => n,
                Ok(Err(why)) => {
                    log::warn!("handoff before leaving incomplete: {why}");
                    0
                }
                Err(e) => return Err(e.to_string()),
            };
            log::info!("handed off {handed} keys; announcing left");
            let _ = membership.send(Leave).await;
            Ok(handed)
        };
        Box::pin(work.into_actor(self).map(|result, _, ctx| {
            if result.is_ok() {
                ctx.run_later(Duration::from_millis(500), |_, _| {
                    log::info!("left the cluster; stopping");
                    System::current().stop();
                });
            }
            result
        }))
    }
}

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
                Ok(ReplicaRequest::Synced { from, fingerprint }) => {
                    stabilizer.do_send(PeerSynced { from, fingerprint });
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

/// Runs a node until it is stopped (leave, SIGTERM or SIGINT).
pub fn run(config: Config) -> Result<(), StartError> {
    let system = System::new();
    system.block_on(start(config))?;
    system
        .run()
        .map_err(|e| StartError(format!("actor system failed: {e}")))
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
}

/// Starts storage, replication, stabilizer, ring and membership and wires them,
/// in the order of the dependency arrows so that every subscriber exists before
/// its publisher. SWIM runs on `swim_arbiter` when given, else on the current one.
pub fn start_actors(
    config: &Config,
    name: String,
    generation: u64,
    seed: u64,
    udp: std::net::UdpSocket,
    swim_arbiter: Option<&ArbiterHandle>,
) -> Actors {
    let seal = Seal::new(&config.cluster_id, config.cluster_secret.as_deref());
    let udp_counters = Arc::new(UdpCounters::default());
    let rpc_counters = Arc::new(RpcCounters::default());
    let metrics = Metrics::new(udp_counters.clone(), rpc_counters.clone());
    let storage = StorageActor::new(metrics.clone(), config.replication.tombstone_grace_ms).start();
    let rpc_client = RpcClient::new(seal, config.limits.max_frame_bytes, rpc_counters.clone());
    let replication = ReplicationActor::new(
        name.clone(),
        config.replication.clone(),
        storage.clone().recipient(),
        rpc_client.clone(),
        metrics.clone(),
        config.stabilize.max_hints,
    )
    .start();
    let stabilizer = StabilizerActor::new(
        name.clone(),
        config.replication.n,
        config.stabilize.clone(),
        StorageLinks {
            op: storage.clone().recipient(),
            page: storage.clone().recipient(),
            drop: storage.clone().recipient(),
        },
        rpc_client.clone(),
        replication.clone().recipient(),
        metrics.clone(),
        Duration::from_millis(config.replication.request_timeout_ms),
    )
    .start();
    let me = LiveMember {
        name: name.clone(),
        peer_addr: format!("{}:{}", config.advertise_host, config.peer_port),
    };
    let ring = RingActor::new(
        me,
        config.vnodes,
        vec![stabilizer.clone().recipient()],
        metrics.clone(),
    )
    .start();
    let swim = Swim::new(
        name.clone(),
        generation,
        config.peer_port,
        config.swim.clone(),
        config.swim.max_datagram_bytes - seal.overhead(),
        StdRng::seed_from_u64(seed),
    );
    let membership = MembershipActor::new(
        swim,
        udp,
        seal,
        config.introducers.clone(),
        vec![ring.clone().recipient()],
        udp_counters,
        metrics.clone(),
    );
    let membership = match swim_arbiter {
        Some(arbiter) => MembershipActor::start_in_arbiter(arbiter, move |_| membership),
        None => membership.start(),
    };
    // A refused or broken peer connection (a killed process's sockets close at
    // once) makes SWIM probe that member next instead of at its round-robin turn.
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
    }
}

impl Actors {
    /// What the HTTP handlers need; `leave` absent where a leave must not stop the process.
    pub fn app_state(&self, config: &Config, leave: Option<Recipient<GracefulLeave>>) -> AppState {
        AppState {
            node: self.name.clone(),
            introducers: config.introducers.len(),
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
        }
    }
}

/// What the first HTTP worker needs to start the node's actors on its own thread.
struct Boot {
    config: Config,
    name: String,
    generation: u64,
    udp: Option<std::net::UdpSocket>,
    peer_listener: Option<std::net::TcpListener>,
    swim_arbiter: ArbiterHandle,
    state: Option<web::Data<AppState>>,
}

impl Boot {
    /// The handlers' state; the first call (on the arbiter of the HTTP worker that
    /// builds its App first) starts every actor but SWIM's there, with the peer RPC
    /// server. A later call that finds those actors gone (their worker stopped)
    /// stops the process: SWIM alone would keep a node without storage alive.
    fn state(&mut self) -> Option<web::Data<AppState>> {
        if self.state.is_none() {
            if let (Some(udp), Some(peer_listener)) = (self.udp.take(), self.peer_listener.take()) {
                self.state = Some(self.start(udp, peer_listener));
            }
        }
        match &self.state {
            Some(state) if state.get.connected() => Some(state.clone()),
            _ => {
                log::error!("the node's actors are gone (their HTTP worker stopped): stopping");
                System::current().stop_with_code(1);
                None
            }
        }
    }

    fn start(
        &self,
        udp: std::net::UdpSocket,
        peer_listener: std::net::TcpListener,
    ) -> web::Data<AppState> {
        let config = &self.config;
        let seed = self.generation ^ crate::replication::actor::node_tiebreak(&self.name);
        let actors = start_actors(
            config,
            self.name.clone(),
            self.generation,
            seed,
            udp,
            Some(&self.swim_arbiter),
        );
        let Actors {
            seal,
            storage,
            stabilizer,
            membership,
            rpc_counters,
            ..
        } = actors.clone();
        match tokio::net::TcpListener::from_std(peer_listener) {
            Ok(listener) => {
                actix::spawn(rpc::serve(
                    listener,
                    seal,
                    config.limits.max_frame_bytes,
                    replica_handler(storage.recipient(), stabilizer.clone().recipient()),
                    rpc_counters,
                ));
            }
            Err(e) => {
                log::error!("peer RPC listener unusable: {e}");
                System::current().stop_with_code(2);
            }
        }
        let control = Control {
            stabilizer: stabilizer.recipient(),
            membership: membership.recipient(),
            leaving: false,
        }
        .start();
        actix::spawn(stop_on_signal(control.clone().recipient()));
        log::info!(
            "node {} serving HTTP and SWIM on port {}, peer RPC on port {}, N={} R={} W={}",
            self.name,
            config.http_port,
            config.peer_port,
            config.replication.n,
            config.replication.r,
            config.replication.w
        );
        web::Data::new(actors.app_state(config, Some(control.recipient())))
    }
}

async fn start(config: Config) -> Result<(), StartError> {
    let name = config.node_name();
    let http_addr = format!("{}:{}", config.bind_host, config.http_port);
    let peer_addr = format!("{}:{}", config.bind_host, config.peer_port);
    let udp = std::net::UdpSocket::bind(&http_addr)
        .map_err(|e| bind_error("SWIM (UDP)", &http_addr, e))?;
    let peer_listener = std::net::TcpListener::bind(&peer_addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| bind_error("peer RPC", &peer_addr, e))?;
    let generation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // SWIM runs on an arbiter (thread) of its own, so that client and replica
    // traffic never delays an ack past the probe timeout. Everything else runs on
    // the first HTTP worker's thread: a request is parsed, coordinated, served
    // from the local store and answered without changing threads, and peer
    // requests are served on that thread too (one wake-up per message, no
    // hand-over between threads: see README, Performance).
    let swim_arbiter = Arbiter::new();
    let boot = Arc::new(Mutex::new(Boot {
        config: config.clone(),
        name: name.clone(),
        generation,
        udp: Some(udp),
        peer_listener: Some(peer_listener),
        swim_arbiter: swim_arbiter.handle(),
        state: None,
    }));
    let server = HttpServer::new(move || {
        let state = match boot.lock() {
            Ok(mut boot) => boot.state(),
            Err(poisoned) => poisoned.into_inner().state(),
        };
        let mut app = App::new();
        if let Some(state) = state {
            app = app.app_data(state);
        }
        app.wrap(middleware::from_fn(api::record_metrics))
            .configure(api::configure)
    })
    .workers(config.http_workers)
    .disable_signals()
    .bind(&http_addr)
    .map_err(|e| bind_error("HTTP", &http_addr, e))?
    .run();
    actix::spawn(async move {
        // The node's actors live on an HTTP worker: without the server, stop.
        if let Err(e) = server.await {
            log::error!("HTTP server failed: {e}; stopping");
            System::current().stop_with_code(1);
        }
    });
    Ok(())
}

async fn stop_on_signal(control: Recipient<GracefulLeave>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    log::info!("signal received: handing data off and leaving the cluster");
    if let Ok(Err(why)) = control.send(GracefulLeave).await {
        log::warn!("graceful leave failed: {why}; stopping anyway");
        System::current().stop();
    }
}
