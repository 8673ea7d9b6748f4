//! The ReplicationActor: coordinates client requests over the replicas of a key.
//!
//! It stamps writes with a hybrid-logical-clock version, asks the pure
//! [`Coordinator`] what to send, routes each replica request to the local
//! StorageActor or over peer RPC, feeds the answers back, and answers the client.
//! Invariant: every client request gets exactly one [`Outcome`], at the latest when
//! the request timeout fires.

use super::coordinator::{Coordinator, Effect, Group, OpId, Outcome};
use super::message::{ReplicaRequest, ReplicaResponse};
use super::peer;
use super::quorum::{needed, Consistency};
use super::stabilizer::Placement;
use crate::config::ReplicationConfig;
use crate::metrics::{Metrics, OpLabels};
use crate::storage::actor::LocalOp;
use crate::storage::hlc::Hlc;
use crate::storage::Record;
use crate::transport::rpc::RpcClient;
use actix::prelude::*;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// How often request deadlines and speculative retries are checked while any is pending.
const SWEEP: Duration = Duration::from_millis(20);

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

/// A write a replica missed, kept until the replica is back (hinted handoff).
#[derive(Message, Debug)]
#[rtype(result = "()")]
struct Hint {
    to: String,
    key: String,
    record: Record,
}

/// Coordinates client requests.
pub struct ReplicationActor {
    me: String,
    config: ReplicationConfig,
    coordinator: Coordinator,
    placement: Option<Placement>,
    deadlines: VecDeque<(Instant, OpId)>,
    sweeping: bool,
    speculate: VecDeque<(Instant, OpId)>,
    hints: BTreeMap<String, VecDeque<(String, Record)>>,
    hint_count: usize,
    max_hints: usize,
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
        max_hints: usize,
    ) -> ReplicationActor {
        ReplicationActor {
            hlc: Hlc::new(node_tiebreak(&me)),
            me,
            config,
            coordinator: Coordinator::new(),
            placement: None,
            deadlines: VecDeque::new(),
            sweeping: false,
            speculate: VecDeque::new(),
            hints: BTreeMap::new(),
            hint_count: 0,
            max_hints,
            storage,
            rpc,
            pending: HashMap::new(),
            metrics,
            out: Vec::new(),
        }
    }

    /// The replica groups of `key`: its preference list and, during a ring
    /// transition, the live members of its settled preference list.
    fn groups(&self, key: &str, level: Consistency, configured: usize) -> Vec<Group> {
        let Some(p) = &self.placement else {
            return Vec::new();
        };
        let n = self.config.n;
        let mut current: Vec<String> = p
            .current
            .ring
            .locate(key.as_bytes(), n)
            .into_iter()
            .map(str::to_string)
            .collect();
        // This node first: a read asks the first R replicas before the others.
        if let Some(i) = current.iter().position(|m| *m == self.me) {
            current[..=i].rotate_right(1);
        }
        let mut groups = vec![Group::new(
            current.clone(),
            needed(level, configured, current.len()),
        )];
        if let Some(previous) = &p.previous {
            let settled = previous.locate(key.as_bytes(), n);
            if settled.iter().any(|m| !current.iter().any(|c| c == m)) {
                let need = needed(level, configured, settled.len());
                let live: Vec<String> = settled
                    .into_iter()
                    .filter(|m| p.current.peers.contains_key(*m))
                    .map(str::to_string)
                    .collect();
                groups.push(Group::new(live, need));
            }
        }
        groups
    }

    fn register(
        &mut self,
        op: OpId,
        kind: &'static str,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.pending.insert(op, (tx, kind));
        // One deadline queue swept by one timer: a timer per request would make the
        // actor's context poll every pending timer on every wake-up.
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        self.deadlines.push_back((Instant::now() + timeout, op));
        self.schedule_sweep(ctx);
        rx
    }

    /// Arms the sweep timer unless it is armed; an idle node has no timer running.
    fn schedule_sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        ctx.run_later(SWEEP, |act, ctx| {
            act.sweeping = false;
            act.expire(ctx);
            if !act.deadlines.is_empty() || !act.speculate.is_empty() {
                act.schedule_sweep(ctx);
            }
        });
    }

    fn expire(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut out = std::mem::take(&mut self.out);
        while let Some(&(deadline, op)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            self.coordinator.on_timeout(op, &mut out);
        }
        while let Some(&(at, op)) = self.speculate.front() {
            if at > now {
                break;
            }
            self.speculate.pop_front();
            self.coordinator.on_slow(op, &mut out);
        }
        self.out = out;
        self.run_effects(ctx);
    }

    fn send_replica(
        &mut self,
        op: Option<OpId>,
        to: String,
        request: ReplicaRequest,
        ctx: &mut Context<Self>,
    ) {
        let me = ctx.address();
        let hint = match &request {
            ReplicaRequest::Write { key, record } => Some((key.clone(), record.clone())),
            _ => None,
        };
        let response = if to == self.me {
            let fut = self.storage.send(LocalOp(request));
            futures_util::future::Either::Left(async move {
                fut.await
                    .unwrap_or_else(|e| ReplicaResponse::Error(format!("local storage: {e}")))
            })
        } else {
            let addr = self
                .placement
                .as_ref()
                .and_then(|p| p.current.peers.get(&to).cloned());
            let timeout = Duration::from_millis(self.config.request_timeout_ms);
            futures_util::future::Either::Right(peer::call(
                &self.rpc,
                addr.as_deref(),
                &request,
                timeout,
            ))
        };
        actix::spawn(async move {
            let response = response.await;
            if let (ReplicaResponse::Error(_), Some((key, record))) = (&response, hint) {
                me.do_send(Hint {
                    to: to.clone(),
                    key,
                    record,
                });
            }
            if let Some(op) = op {
                me.do_send(ReplicaReply {
                    op,
                    from: to,
                    response,
                });
            }
        });
    }

    fn deliver_hints(&mut self, ctx: &mut Context<Self>) {
        let Some(p) = &self.placement else {
            return;
        };
        let ready: Vec<String> = self
            .hints
            .keys()
            .filter(|to| p.current.peers.contains_key(*to))
            .cloned()
            .collect();
        for to in ready {
            let Some(queue) = self.hints.get_mut(&to) else {
                continue;
            };
            let take = queue.len().min(512);
            let records: Vec<(String, Record)> = queue.drain(..take).collect();
            if queue.is_empty() {
                self.hints.remove(&to);
            }
            self.hint_count -= records.len();
            let addr = p.current.peers.get(&to).cloned();
            let timeout = Duration::from_millis(self.config.request_timeout_ms);
            let request = ReplicaRequest::WriteBatch { records };
            let call = peer::call(&self.rpc, addr.as_deref(), &request, timeout);
            let metrics = self.metrics.clone();
            let me = ctx.address();
            actix::spawn(async move {
                if call.await == ReplicaResponse::Written {
                    if let ReplicaRequest::WriteBatch { records } = request {
                        metrics.hints_delivered.inc_by(records.len() as u64);
                    }
                } else if let ReplicaRequest::WriteBatch { records } = request {
                    for (key, record) in records {
                        me.do_send(Hint {
                            to: to.clone(),
                            key,
                            record,
                        });
                    }
                }
            });
        }
        self.metrics.hints_pending.set(self.hint_count as i64);
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
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.deliver_hints(ctx));
    }
}

impl Handler<Placement> for ReplicationActor {
    type Result = ();

    fn handle(&mut self, msg: Placement, _: &mut Context<Self>) {
        self.placement = Some(msg);
    }
}

impl Handler<Hint> for ReplicationActor {
    type Result = ();

    fn handle(&mut self, msg: Hint, _: &mut Context<Self>) {
        if self.hint_count >= self.max_hints {
            self.metrics.hints_dropped.inc();
            return;
        }
        self.hint_count += 1;
        self.hints
            .entry(msg.to)
            .or_default()
            .push_back((msg.key, msg.record));
        self.metrics.hints_pending.set(self.hint_count as i64);
    }
}

impl Handler<ClientGet> for ReplicationActor {
    type Result = ResponseFuture<Outcome>;

    fn handle(&mut self, msg: ClientGet, ctx: &mut Context<Self>) -> Self::Result {
        let groups = self.groups(&msg.key, msg.consistency, self.config.r);
        let mut out = std::mem::take(&mut self.out);
        let op = self.coordinator.read(&msg.key, &groups, &mut out);
        self.out = out;
        let rx = self.register(op, "read", ctx);
        let delay = Duration::from_millis(self.config.speculative_retry_ms);
        self.speculate.push_back((Instant::now() + delay, op));
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
        let groups = self.groups(&msg.key, msg.consistency, self.config.w);
        let mut out = std::mem::take(&mut self.out);
        let op = self.coordinator.write(&msg.key, record, &groups, &mut out);
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
