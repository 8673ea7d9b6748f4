//! The ReplicationActor: coordinates client requests over the replicas of a key.
//!
//! It asks the [`Placement`] which replicas a request needs, asks the pure
//! [`Coordinator`] what to send, routes each replica request to the local
//! StorageActor or over peer RPC (a read carries the store generation it expects
//! of that replica), feeds the answers back, and answers the client. A write a
//! replica missed becomes a hint in the StorageActor (durable with the data);
//! this actor delivers hints once their member is on the ring again. While SWIM finds this node's clock off from most of its peers, it
//! refuses writes (their versions would be in everyone else's future).
//!
//! Invariant: every client request gets exactly one [`Outcome`], at the latest when
//! the request timeout fires.

use super::coordinator::{Coordinator, CoordinatorStats, Effect, OpId, Outcome, WriteSpec};
use super::message::{ReplicaRequest, ReplicaResponse};
use super::peer;
use super::placement::{Placement, Quorums};
use super::quorum::Consistency;
use super::stabilizer::{FlushHints, PlacementChanged};
use crate::config::ReplicationConfig;
use crate::membership::actor::ClockStatus;
use crate::metrics::{Metrics, OpLabels};
use crate::storage::actor::{
    unix_ms, HintedMembers, HintsDelivered, HintsFor, LocalOp, StorageActor, StoreHints,
};
use crate::transport::rpc::RpcClient;
use actix::prelude::*;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often request deadlines and speculative retries are checked while any is pending.
const SWEEP: Duration = Duration::from_millis(20);

/// Hints sent to one member in one batch.
const HINT_BATCH: usize = 512;

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
    /// The value (`None` deletes), its time to live and its condition.
    pub spec: WriteSpec,
    /// Time to live in milliseconds (the expiry is stamped by this coordinator).
    pub ttl_ms: Option<u64>,
    /// Consistency level.
    pub consistency: Consistency,
}

#[derive(Message)]
#[rtype(result = "()")]
struct ReplicaReply {
    op: OpId,
    attempt: u32,
    from: String,
    response: ReplicaResponse,
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
    delivering: Rc<RefCell<BTreeSet<String>>>,
    skewed: bool,
    hlc_ceiling: Arc<AtomicU64>,
    storage: Recipient<LocalOp>,
    hints: Addr<StorageActor>,
    rpc: RpcClient,
    pending: HashMap<OpId, (oneshot::Sender<Outcome>, &'static str)>,
    metrics: Metrics,
    reported: CoordinatorStats,
    out: Vec<Effect>,
}

/// Bounds of this node's clock from its data directory: start past the mark a
/// previous run wrote, and stay below the mark written ahead of use.
#[derive(Clone, Debug)]
pub struct ClockMark {
    /// Versions start past this many Unix ms (the previous run's mark).
    pub floor_ms: u64,
    /// Unix ms the persisted mark allows versions up to (`u64::MAX` in memory).
    pub ceiling_ms: Arc<AtomicU64>,
}

impl ClockMark {
    /// No bounds (an in-memory node).
    pub fn unbounded() -> ClockMark {
        ClockMark {
            floor_ms: 0,
            ceiling_ms: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }
}

/// Delivers `to`'s hints batch by batch until none are left or one is refused.
async fn deliver(
    storage: &Addr<StorageActor>,
    rpc: &RpcClient,
    to: &str,
    addr: &str,
    timeout: Duration,
) {
    // Bounded: a member that keeps accepting gets at most this many batches per call.
    for _ in 0..1_000 {
        let hints = storage
            .send(HintsFor {
                to: to.to_string(),
                limit: HINT_BATCH,
            })
            .await
            .unwrap_or_default();
        if hints.is_empty() {
            return;
        }
        let (keys, records): (Vec<_>, Vec<_>) = hints
            .into_iter()
            .map(|(k, h)| (k, (h.key, h.record)))
            .unzip();
        let request = ReplicaRequest::WriteBatch { records };
        if peer::call(rpc, Some(addr), &request, timeout).await != ReplicaResponse::Written {
            return;
        }
        if storage.send(HintsDelivered(keys)).await.is_err() {
            return;
        }
    }
}

/// The tiebreak id of a node name (stable across restarts of the same address).
pub fn node_tiebreak(name: &str) -> u64 {
    crate::ring::hash::token(name.as_bytes())
}

impl ReplicationActor {
    /// A coordinator for node `me`, never observing versions more than
    /// `max_clock_offset_ms` ahead of its clock, keeping hints in `storage`.
    /// Its clock starts past `clock.floor_ms`; it writes only while its clock
    /// plus the offset bound stays below `clock.ceiling_ms` (the mark on disk).
    pub fn new(
        me: String,
        config: ReplicationConfig,
        storage: Addr<StorageActor>,
        rpc: RpcClient,
        metrics: Metrics,
        clock: ClockMark,
    ) -> ReplicationActor {
        let mut coordinator = Coordinator::new(node_tiebreak(&me), config.max_clock_offset_ms);
        coordinator.start_past(clock.floor_ms);
        ReplicationActor {
            coordinator,
            me,
            config,
            placement: None,
            deadlines: VecDeque::new(),
            sweeping: false,
            speculate: VecDeque::new(),
            delivering: Rc::new(RefCell::new(BTreeSet::new())),
            skewed: false,
            hlc_ceiling: clock.ceiling_ms,
            storage: storage.clone().recipient(),
            hints: storage,
            rpc,
            pending: HashMap::new(),
            metrics,
            reported: CoordinatorStats::default(),
            out: Vec::new(),
        }
    }

    fn quorums(&self) -> Quorums {
        Quorums {
            n: self.config.n,
            r: self.config.r,
            w: self.config.w,
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
        op: Option<(OpId, u32)>,
        to: String,
        mut request: ReplicaRequest,
        ctx: &mut Context<Self>,
    ) {
        let me = ctx.address();
        if let ReplicaRequest::Read { expect, .. } = &mut request {
            *expect = self.placement.as_ref().and_then(|p| p.expect(&to));
        }
        let hint = match &request {
            ReplicaRequest::Put { key, record, .. } => Some((key.clone(), record.clone())),
            _ => None,
        };
        let hints = self.hints.clone();
        let stopped = self
            .placement
            .as_ref()
            .is_some_and(|p| p.current.stopped.contains(&to));
        let response = if stopped {
            // Down, keeping its place: it fails at once (a write leaves a hint).
            futures_util::future::Either::Left(futures_util::future::Either::Right(
                std::future::ready(ReplicaResponse::Error(format!("{to} is stopped"))),
            ))
        } else if to == self.me {
            let fut = self.storage.send(LocalOp(request));
            futures_util::future::Either::Left(futures_util::future::Either::Left(async move {
                fut.await
                    .unwrap_or_else(|e| ReplicaResponse::Error(format!("local storage: {e}")))
            }))
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
                hints.do_send(StoreHints(vec![(to.clone(), key, record)]));
            }
            if let Some((op, attempt)) = op {
                me.do_send(ReplicaReply {
                    op,
                    attempt,
                    from: to,
                    response,
                });
            }
        });
    }

    /// Sends the hints held for every member on the ring, batch by batch;
    /// resolves when sent (or a member refused). With `all`, also for members
    /// whose periodic delivery is under way.
    fn deliver_hints(&mut self, all: bool) -> impl std::future::Future<Output = ()> {
        let (peers, stopped) = self
            .placement
            .as_ref()
            .map(|p| (p.current.peers.clone(), p.current.stopped.clone()))
            .unwrap_or_default();
        let storage = self.hints.clone();
        let rpc = self.rpc.clone();
        let delivering = self.delivering.clone();
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        async move {
            let members = storage.send(HintedMembers).await.unwrap_or_default();
            let mut calls = Vec::new();
            for to in members {
                let Some(addr) = peers.get(&to).cloned().filter(|_| !stopped.contains(&to)) else {
                    continue;
                };
                if !all && !delivering.borrow_mut().insert(to.clone()) {
                    continue;
                }
                let (storage, rpc, delivering) = (storage.clone(), rpc.clone(), delivering.clone());
                calls.push(async move {
                    deliver(&storage, &rpc, &to, &addr, timeout).await;
                    if !all {
                        delivering.borrow_mut().remove(&to);
                    }
                });
            }
            futures_util::future::join_all(calls).await;
        }
    }

    fn run_effects(&mut self, ctx: &mut Context<Self>) {
        let effects = std::mem::take(&mut self.out);
        for effect in effects {
            match effect {
                Effect::Send {
                    op,
                    attempt,
                    to,
                    request,
                } => self.send_replica(Some((op, attempt)), to, request, ctx),
                Effect::Repair { to, request } => {
                    self.metrics.read_repairs.inc();
                    self.send_replica(None, to, request, ctx);
                }
                Effect::Reply { op, outcome } => {
                    if let Some((tx, kind)) = self.pending.remove(&op) {
                        if let Outcome::Unavailable {
                            needed, replicas, ..
                        } = &outcome
                        {
                            self.metrics
                                .quorum_failures
                                .get_or_create(&OpLabels { op: kind })
                                .inc();
                            if kind == "write" && replicas < needed {
                                self.metrics.writes_without_live_quorum.inc();
                            }
                        }
                        let _ = tx.send(outcome);
                    }
                }
            }
        }
        self.count();
    }

    fn count(&mut self) {
        let now = self.coordinator.stats();
        let was = std::mem::replace(&mut self.reported, now);
        self.metrics
            .writes_retried_stale
            .inc_by(now.stale_retries - was.stale_retries);
        self.metrics
            .versions_not_observed
            .inc_by(now.not_observed - was.not_observed);
        self.metrics
            .precondition_failed
            .inc_by(now.precondition_failed - was.precondition_failed);
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
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            let sent = act.deliver_hints(false);
            ctx.spawn(actix::fut::wrap_future(sent));
        });
    }
}

impl Handler<PlacementChanged> for ReplicationActor {
    type Result = ();

    fn handle(&mut self, msg: PlacementChanged, _: &mut Context<Self>) {
        self.placement = Some(msg.0);
    }
}

impl Handler<ClockStatus> for ReplicationActor {
    type Result = ();

    fn handle(&mut self, msg: ClockStatus, _: &mut Context<Self>) {
        if msg.skewed != self.skewed {
            if msg.skewed {
                log::error!(
                    "this node's clock is more than {} ms away from most peers' clocks: refusing writes until it is fixed",
                    self.config.max_clock_offset_ms
                );
            } else {
                log::info!("this node's clock agrees with its peers again: accepting writes");
            }
        }
        self.skewed = msg.skewed;
        self.metrics.clock_skewed.set(i64::from(msg.skewed));
    }
}

impl Handler<FlushHints> for ReplicationActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: FlushHints, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.deliver_hints(true))
    }
}

impl Handler<ClientGet> for ReplicationActor {
    type Result = ResponseFuture<Outcome>;

    fn handle(&mut self, msg: ClientGet, ctx: &mut Context<Self>) -> Self::Result {
        if !self.placement.as_ref().is_some_and(|p| p.serving) {
            return Box::pin(async { Outcome::NotJoined });
        }
        let groups = match &self.placement {
            Some(p) => p.groups(&self.me, &msg.key, msg.consistency, self.quorums(), false),
            None => Vec::new(),
        };
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
        if !self.placement.as_ref().is_some_and(|p| p.serving) {
            return Box::pin(async { Outcome::NotJoined });
        }
        if self.skewed {
            return Box::pin(async { Outcome::ClockSkewed });
        }
        let now = unix_ms();
        if now.saturating_add(self.config.max_clock_offset_ms)
            >= self.hlc_ceiling.load(Ordering::Relaxed)
        {
            log::warn!("write refused: the clock mark on disk is behind this node's clock (a slow or failing disk)");
            return Box::pin(async { Outcome::StorageUnavailable });
        }
        let mut spec = msg.spec;
        spec.expires_ms = msg.ttl_ms.map(|ttl| now.saturating_add(ttl));
        let groups = match &self.placement {
            Some(p) => p.groups(&self.me, &msg.key, msg.consistency, self.quorums(), true),
            None => Vec::new(),
        };
        let mut out = std::mem::take(&mut self.out);
        let op = self
            .coordinator
            .write(&msg.key, spec, &groups, now, &mut out);
        self.out = out;
        let rx = self.register(op, "write", ctx);
        self.run_effects(ctx);
        Self::respond(rx)
    }
}

impl Handler<ReplicaReply> for ReplicationActor {
    type Result = ();

    fn handle(&mut self, msg: ReplicaReply, ctx: &mut Context<Self>) {
        let mut out = std::mem::take(&mut self.out);
        self.coordinator.on_response(
            msg.op,
            msg.attempt,
            &msg.from,
            msg.response,
            unix_ms(),
            &mut out,
        );
        self.out = out;
        self.run_effects(ctx);
    }
}
