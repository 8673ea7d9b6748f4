//! Starting a node process: open the security files (cluster secret file,
//! tokens, TLS certificate), bind every listener first (a port in use is a
//! one-line error; HTTPS only when a certificate is given), start SWIM on its own arbiter, then start every other actor,
//! the peer RPC server and the signal handlers (stop, SIGHUP reload) from the HTTP App factory, on the
//! arbiter of the HTTP worker that builds its App first.
//!
//! Invariant: if that arbiter or the HTTP server ends, the process ends (a node
//! answering SWIM without storage behind it would never be declared dead).

use super::control::{stop_on_signal, Control};
use super::{bind_error, replica_handler, start_actors, Actors, Identity, NodeStore, StartError};
use crate::api::{self, AppState};
use crate::config::Config;
use crate::security::{self, reload::reload_on_sighup, Security};
use crate::transport::rpc;
use actix::prelude::*;
use actix_web::{middleware, web, App, HttpServer};
use std::sync::{Arc, Mutex};

/// Runs a node until it is stopped (leave, SIGTERM or SIGINT); answers the
/// process exit code (0, or the code of a fatal stop such as a failed fsync).
pub fn run(config: Config) -> Result<i32, StartError> {
    let system = System::new();
    system.block_on(start(config))?;
    system
        .run_with_code()
        .map_err(|e| StartError(format!("actor system failed: {e}")))
}

/// What the first HTTP worker needs to start the node's actors on its own thread.
struct Boot {
    config: Config,
    name: String,
    identity: Identity,
    store: Option<NodeStore>,
    udp: Option<std::net::UdpSocket>,
    peer_listener: Option<std::net::TcpListener>,
    swim_arbiter: ArbiterHandle,
    security: Arc<Security>,
    state: Option<web::Data<AppState>>,
}

impl Boot {
    /// The handlers' state; the first call (on the arbiter of the HTTP worker that
    /// builds its App first) starts every actor but SWIM's there, with the peer RPC
    /// server. A later call that finds those actors gone (their worker stopped)
    /// stops the process: SWIM alone would keep a node without storage alive.
    fn state(&mut self) -> Option<web::Data<AppState>> {
        if self.state.is_none() {
            if let (Some(udp), Some(peer_listener), Some(store)) = (
                self.udp.take(),
                self.peer_listener.take(),
                self.store.take(),
            ) {
                self.state = Some(self.start(udp, peer_listener, store));
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
        store: NodeStore,
    ) -> web::Data<AppState> {
        let seed = self.identity.generation ^ crate::replication::actor::node_tiebreak(&self.name);
        let mut config = self.config.clone();
        // The members the data directory recorded are seeds too.
        for r in &store.recorded {
            if r.name != self.name && !config.introducers.contains(&r.name) {
                config.introducers.push(r.name.clone());
            }
        }
        let config = &config;
        let actors = start_actors(
            config,
            self.name.clone(),
            self.identity,
            store,
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
            sync,
            left,
            ..
        } = actors.clone();
        let handler = replica_handler(storage.recipient(), stabilizer.clone().recipient());
        #[cfg(unix)]
        if config.peer_unix {
            match crate::transport::local::listen(&config.peer_addr()) {
                Ok(Some(listener)) => {
                    actix::spawn(rpc::serve(
                        rpc::Listener::Unix(listener),
                        seal.clone(),
                        config.limits.max_frame_bytes,
                        handler.clone(),
                        rpc_counters.clone(),
                    ));
                }
                Ok(None) => {}
                Err(e) => log::warn!(
                    "no local peer socket for {} ({e}): peers on this host use TCP",
                    config.peer_addr()
                ),
            }
        }
        match tokio::net::TcpListener::from_std(peer_listener) {
            Ok(listener) => {
                actix::spawn(rpc::serve(
                    listener,
                    seal.clone(),
                    config.limits.max_frame_bytes,
                    handler,
                    rpc_counters,
                ));
            }
            Err(e) => {
                log::error!("peer RPC listener unusable: {e}");
                System::current().stop_with_code(2);
            }
        }
        let control = Control::new(
            stabilizer.recipient(),
            membership.clone().recipient(),
            membership.recipient(),
            sync,
            left,
        )
        .start();
        let leave = !config.storage.durable() || config.storage.leave_on_terminate;
        actix::spawn(stop_on_signal(control.clone(), leave));
        actix::spawn(reload_on_sighup(
            self.security.clone(),
            seal.clone(),
            actors.metrics.clone(),
        ));
        log::info!(
            "node {} serving HTTP and SWIM on port {}, peer RPC on port {}, N={} R={} W={}",
            self.name,
            config.http_port,
            config.peer_port,
            config.replication.n,
            config.replication.r,
            config.replication.w
        );
        let mut state = actors.app_state(config, Some(control.recipient()));
        state.auth = self.security.auth.clone();
        web::Data::new(state)
    }
}

/// Reads the cluster secret file into `config` (checked as `--cluster-secret` is)
/// and opens the tokens file and TLS certificate.
fn open_security(config: &mut Config) -> Result<Security, StartError> {
    if let Some(path) = &config.security.cluster_secret_file {
        let list = security::read_secret_file(path).map_err(StartError)?;
        crate::transport::wire::parse_secrets(&list)
            .map_err(|e| StartError(format!("cluster secret file {}: {e}", path.display())))?;
        config.cluster_secret = Some(list);
    }
    Security::open(&config.security).map_err(StartError)
}

async fn start(mut config: Config) -> Result<(), StartError> {
    let security = Arc::new(open_security(&mut config)?);
    let tls = match &security.tls {
        Some(resolver) => Some(resolver.server_config().map_err(StartError)?),
        None => None,
    };
    let name = config.node_name();
    let http_addr = format!("{}:{}", config.bind_host, config.http_port);
    let peer_addr = format!("{}:{}", config.bind_host, config.peer_port);
    let udp = std::net::UdpSocket::bind(&http_addr)
        .map_err(|e| bind_error("SWIM (UDP)", &http_addr, e))?;
    let peer_listener = std::net::TcpListener::bind(&peer_addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| bind_error("peer RPC", &peer_addr, e))?;
    let (identity, store) = NodeStore::open(&config, &name)?;
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
        identity,
        store: Some(store),
        udp: Some(udp),
        peer_listener: Some(peer_listener),
        swim_arbiter: swim_arbiter.handle(),
        security,
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
        app.wrap(middleware::from_fn(api::auth::authorize))
            .wrap(middleware::from_fn(api::record_metrics))
            .configure(api::configure)
    })
    .workers(config.http_workers)
    .disable_signals();
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(&http_addr, tls),
        None => server.bind(&http_addr),
    }
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
