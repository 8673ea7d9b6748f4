//! The ReplicationActor: coordinates client requests over the replicas of a key.
//!
//! It stamps writes with a hybrid-logical-clock version, asks the pure
//! [`Coordinator`] what to send, routes each replica request to the local
//! StorageActor or over peer RPC, feeds the answers back, and answers the client.
//! Invariant: every client request gets exactly one [`Outcome`], at the latest when
//! the request timeout fires.

use super::coordinator::{Coordinator, Effect, OpId, Outcome};
use super::message::{ReplicaRequest, ReplicaResponse};
use super::quorum::{needed, Consistency};
use crate::config::ReplicationConfig;
use crate::metrics::{Metrics, OpLabels};
use crate::ring::actor::{RingChanged, RingSnapshot};
use crate::storage::actor::LocalOp;
use crate::storage::hlc::Hlc;
use crate::storage::Record;
use crate::transport::rpc::RpcClient;
use actix::prelude::*;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// A client read.
#[derive(Message, Debug)]
#[rtype(result = "Outcome")]
pub struct ClientGet {
    /// The key.
    pub key: String,
    /// Consistency level.
    pub consistency: Consistency,
}

/// A client write (`value: None` is a delete).
#[derive(Message, Debug)]
#[rtype(result = "Outcome")]
pub struct ClientPut {
    /// The key.
    pub key: String,
    /// The value, or `None` to write a tombstone.
    pub value: Option<Bytes>,
    /// Consistency level.
    pub consistency: Consistency,
}

#[derive(Message)]
#[rtype(result = "()")]
struct ReplicaReply {
    op: OpId,
    from: String,
    response: ReplicaResponse,
}

/// Encodes a replica request for peer RPC.
pub fn encode_request(request: &ReplicaRequest) -> Bytes {
    Bytes::from(postcard::to_allocvec(request).unwrap_or_default())
}

/// Decodes a replica response from peer RPC; garbage becomes an error response.
pub fn decode_response(bytes: &[u8]) -> ReplicaResponse {
    postcard::from_bytes(bytes)
        .unwrap_or_else(|_| ReplicaResponse::Error("undecodable response".into()))
}

/// Coordinates client requests.
pub struct ReplicationActor {
    me: String,
    config: ReplicationConfig,
    coordinator: Coordinator,
    ring: Option<RingSnapshot>,
    hlc: Hlc,
    storage: Recipient<LocalOp>,
    rpc: RpcClient,
    pending: HashMap<OpId, (oneshot::Sender<Outcome>, &'static str)>,
    metrics: Metrics,
    out: Vec<Effect>,
}

/// The tiebreak id of a node name (stable across restarts of the same address).
pub fn node_tiebreak(name: &str) -> u64 {
    crate::ring::hash::token(name.as_bytes())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ReplicationActor {
    /// A coordinator for node `me`.
    pub fn new(
        me: String,
        config: ReplicationConfig,
        storage: Recipient<LocalOp>,
        rpc: RpcClient,
        metrics: Metrics,
    ) -> ReplicationActor {
        ReplicationActor {
            hlc: Hlc::new(node_tiebreak(&me)),
            me,
            config,
            coordinator: Coordinator::new(),
            ring: None,
            storage,
            rpc,
            pending: HashMap::new(),
            metrics,
            out: Vec::new(),
        }
    }

    fn replicas(&self, key: &str) -> Vec<String> {
        match &self.ring {
            Some(s) => s
                .ring
                .locate(key.as_bytes(), self.config.n)
                .into_iter()
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        }
    }

    fn register(
        &mut self,
        op: OpId,
        kind: &'static str,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.pending.insert(op, (tx, kind));
        ctx.run_later(
            Duration::from_millis(self.config.request_timeout_ms),
            move |act, ctx| {
                let mut out = std::mem::take(&mut act.out);
                act.coordinator.on_timeout(op, &mut out);
                act.out = out;
                act.run_effects(ctx);
            },
        );
        rx
    }

    fn send_replica(
        &mut self,
        op: Option<OpId>,
        to: String,
        request: ReplicaRequest,
        ctx: &mut Context<Self>,
    ) {
        let me = ctx.address();
        if to == self.me {
            let fut = self.storage.send(LocalOp(request));
            actix::spawn(async move {
                let response = fut
                    .await
                    .unwrap_or_else(|e| ReplicaResponse::Error(format!("local storage: {e}")));
                if let Some(op) = op {
                    me.do_send(ReplicaReply {
                        op,
                        from: to,
                        response,
                    });
                }
            });
            return;
        }
        let peer = self.ring.as_ref().and_then(|s| s.peers.get(&to).cloned());
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let call = peer.map(|addr| self.rpc.call(&addr, encode_request(&request)));
        actix::spawn(async move {
            let response = match call {
                None => ReplicaResponse::Error(format!("{to} is not on the ring")),
                Some(call) => match tokio::time::timeout(timeout, call).await {
                    Ok(Ok(bytes)) => decode_response(&bytes),
                    Ok(Err(e)) => ReplicaResponse::Error(e.to_string()),
                    Err(_) => ReplicaResponse::Error("timeout".into()),
                },
            };
            if let Some(op) = op {
                me.do_send(ReplicaReply {
                    op,
                    from: to,
                    response,
                });
            }
        });
    }

    fn run_effects(&mut self, ctx: &mut Context<Self>) {
        let effects = std::mem::take(&mut self.out);
        for effect in effects {
            match effect {
                Effect::Send { op, to, request } => self.send_replica(Some(op), to, request, ctx),
                Effect::Repair { to, request } => {
                    self.metrics.read_repairs.inc();
                    self.send_replica(None, to, request, ctx);
                }
                Effect::Reply { op, outcome } => {
                    if let Some((tx, kind)) = self.pending.remove(&op) {
                        if matches!(outcome, Outcome::Unavailable { .. }) {
                            self.metrics
                                .quorum_failures
                                .get_or_create(&OpLabels { op: kind })
                                .inc();
                        }
                        let _ = tx.send(outcome);
                    }
                }
            }
        }
    }

    fn respond(rx: oneshot::Receiver<Outcome>) -> ResponseFuture<Outcome> {
        Box::pin(async move {
            rx.await.unwrap_or(Outcome::Unavailable {
                needed: 0,
                succeeded: 0,
                failed: 0,
                replicas: 0,
            })
        })
    }
}

impl Actor for ReplicationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
    }
}

impl Handler<RingChanged> for ReplicationActor {
    type Result = ();

    fn handle(&mut self, msg: RingChanged, _: &mut Context<Self>) {
        self.ring = Some(msg.0);
    }
}

impl Handler<ClientGet> for ReplicationActor {
    type Result = ResponseFuture<Outcome>;

    fn handle(&mut self, msg: ClientGet, ctx: &mut Context<Self>) -> Self::Result {
        let replicas = self.replicas(&msg.key);
        let need = needed(msg.consistency, self.config.r, replicas.len());
        let mut out = std::mem::take(&mut self.out);
        let op = self.coordinator.read(&msg.key, &replicas, need, &mut out);
        self.out = out;
        let rx = self.register(op, "read", ctx);
        self.run_effects(ctx);
        Self::respond(rx)
    }
}

impl Handler<ClientPut> for ReplicationActor {
    type Result = ResponseFuture<Outcome>;

    fn handle(&mut self, msg: ClientPut, ctx: &mut Context<Self>) -> Self::Result {
        let version = self.hlc.tick(unix_ms());
        let record = match msg.value {
            Some(v) => Record::value(version, v),
            None => Record::tombstone(version),
        };
        let replicas = self.replicas(&msg.key);
        let need = needed(msg.consistency, self.config.w, replicas.len());
        let mut out = std::mem::take(&mut self.out);
        let op = self
            .coordinator
            .write(&msg.key, record, &replicas, need, &mut out);
        self.out = out;
        let rx = self.register(op, "write", ctx);
        self.run_effects(ctx);
        Self::respond(rx)
    }
}

impl Handler<ReplicaReply> for ReplicationActor {
    type Result = ();

    fn handle(&mut self, msg: ReplicaReply, ctx: &mut Context<Self>) {
        if let ReplicaResponse::Read(Some(r)) = &msg.response {
            self.hlc.observe(r.version);
        }
        let mut out = std::mem::take(&mut self.out);
        self.coordinator
            .on_response(msg.op, &msg.from, msg.response, &mut out);
        self.out = out;
        self.run_effects(ctx);
    }
}
