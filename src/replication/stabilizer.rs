//! The StabilizerActor: the shell of the stabilizer core (`stabilization.rs`).
//!
//! It feeds the core ring changes, peers' `Synced` reports and a tick every
//! second, and carries out what the core asks: pages of the local store, pushes
//! to peers, drops of handed-off keys, `Synced` announcements (after flushing the
//! hints this node holds, so a member back without its data also gets the writes
//! it missed), the local replica's authority, and the end of a graceful leave.
//! It also runs anti-entropy with a random peer every interval while no
//! transition is under way: bucketed digests of the keys both replicate, then an
//! exchange of the keys in differing buckets.
//!
//! Invariant: every answer the core waits for is reported back to it exactly
//! once, tagged with the walk it belongs to (a replaced walk's answers are
//! ignored by the core).

use super::anti_entropy::AntiEntropy;
use super::handoff::WalkEffect;
use super::message::{ReplicaRequest, ReplicaResponse};
use super::peer;
use super::placement::Placement;
use super::rebalance::shared_ranges;
use super::stabilization::{StabilizeEffect, Stabilizer};
use crate::config::StabilizeConfig;
use crate::membership::actor::MarkSynced;
use crate::metrics::{MemberLabels, Metrics};
use crate::ring::actor::RingChanged;
use crate::storage::actor::{
    DropHandedOff, LocalOp, LocalPage, SetAuthority, SetLeaving, SetOwnership,
};
use crate::storage::Record;
use crate::transport::rpc::RpcClient;
use actix::prelude::*;
use rand::seq::SliceRandom;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The placement coordinators must use from now on.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct PlacementChanged(pub Placement);

/// A peer finished its handoff for a ring.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PeerSynced {
    /// The peer.
    pub from: String,
    /// The ring's fingerprint.
    pub fingerprint: u64,
    /// The rings that haunt the peer's reads.
    pub haunted: Vec<Vec<(String, u64)>>,
}

/// Why a graceful leave did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaveRefused {
    /// Another leave is running.
    AlreadyLeaving,
    /// Some keys could not be handed off: the node stays a member.
    HandoffIncomplete(String),
    /// The node's actors are gone.
    Stopped(String),
}

impl std::fmt::Display for LeaveRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaveRefused::AlreadyLeaving => f.write_str("already leaving"),
            LeaveRefused::HandoffIncomplete(why) => write!(
                f,
                "could not hand every key off ({why}); this node is still a member, retry the leave"
            ),
            LeaveRefused::Stopped(why) => write!(f, "node stopping: {why}"),
        }
    }
}

/// Hand every local key to the members that own it without this node (graceful
/// leave). Answers how many keys were handed off, or why not every one was:
/// then, unless `forced`, the leave was given up and writes are taken again.
#[derive(Message, Debug)]
#[rtype(result = "Result<u64, LeaveRefused>")]
pub struct HandOffAll {
    /// Keep refusing writes even when the handoff fails (the node goes anyway).
    pub forced: bool,
}

/// Deliver every hint held for a live member now; answers once they were sent.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FlushHints;

/// Where the stabilizer reports that this node's handoff completed (wired once
/// the membership actor exists: it starts after the stabilizer).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WireMembership(pub Recipient<MarkSynced>);

#[derive(Message)]
#[rtype(result = "()")]
struct WalkPage {
    walk: u64,
    page: Vec<(String, Record)>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct WalkPushed {
    walk: u64,
    to: String,
    ok: bool,
    count: u64,
}

/// The storage recipients the stabilizer needs.
#[derive(Clone)]
pub struct StorageLinks {
    /// Replica operations on the local store.
    pub op: Recipient<LocalOp>,
    /// Pages of the local store.
    pub page: Recipient<LocalPage>,
    /// Dropping handed-off keys.
    pub drop: Recipient<DropHandedOff>,
    /// The replica's authority.
    pub authority: Recipient<SetAuthority>,
    /// The rings the replica owns keys on.
    pub ownership: Recipient<SetOwnership>,
    /// Refusing writes once leaving.
    pub leaving: Recipient<SetLeaving>,
}

/// Owns the stabilizer core and anti-entropy.
pub struct StabilizerActor {
    me: String,
    n: usize,
    core: Stabilizer,
    config: StabilizeConfig,
    storage: StorageLinks,
    rpc: RpcClient,
    placement: Recipient<PlacementChanged>,
    hints: Recipient<FlushHints>,
    membership: Option<Recipient<MarkSynced>>,
    metrics: Metrics,
    timeout: Duration,
    started: Instant,
    leave_reply: Option<oneshot::Sender<Result<u64, LeaveRefused>>>,
    serving: Arc<AtomicBool>,
    out: Vec<StabilizeEffect>,
}

impl StabilizerActor {
    /// A stabilizer for node `me` keeping `n` replicas, acknowledging writes at `w`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: String,
        (n, w): (usize, usize),
        config: StabilizeConfig,
        storage: StorageLinks,
        rpc: RpcClient,
        placement: Recipient<PlacementChanged>,
        hints: Recipient<FlushHints>,
        metrics: Metrics,
        request_timeout: Duration,
    ) -> StabilizerActor {
        StabilizerActor {
            core: Stabilizer::new(me.clone(), n, w, config.clone()),
            me,
            n,
            config,
            storage,
            rpc,
            placement,
            hints,
            membership: None,
            metrics,
            timeout: request_timeout.max(Duration::from_secs(5)),
            started: Instant::now(),
            leave_reply: None,
            serving: Arc::new(AtomicBool::new(false)),
            out: Vec::new(),
        }
    }

    /// Set once this node may coordinate (joined, and its view settled since).
    pub fn serving_flag(&self) -> Arc<AtomicBool> {
        self.serving.clone()
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn peer_addr(&self, name: &str) -> Option<String> {
        self.core
            .placement()
            .and_then(|p| p.current.peers.get(name).cloned())
    }

    fn run_effects(&mut self, ctx: &mut Context<Self>) {
        let effects = std::mem::take(&mut self.out);
        for effect in effects {
            match effect {
                StabilizeEffect::Publish(p) => {
                    self.metrics
                        .ring_transition
                        .set(i64::from(p.previous.is_some()));
                    let owns = p.ownership(&self.me, self.n);
                    self.storage.ownership.do_send(SetOwnership(owns));
                    self.placement.do_send(PlacementChanged(p));
                }
                StabilizeEffect::Walk { walk, effect } => self.walk_step(walk, effect, ctx),
                StabilizeEffect::AnnounceSynced {
                    fingerprint,
                    to,
                    haunted,
                } => {
                    self.announce(fingerprint, to, haunted);
                }
                StabilizeEffect::Authority(a) => self.storage.authority.do_send(SetAuthority(a)),
                StabilizeEffect::MarkSynced => {
                    if let Some(m) = &self.membership {
                        m.do_send(MarkSynced);
                    }
                }
                StabilizeEffect::SetLeaving(on) => self.storage.leaving.do_send(SetLeaving(on)),
                StabilizeEffect::LeaveDone(result) => {
                    if let Some(reply) = self.leave_reply.take() {
                        let _ = reply.send(result.map_err(LeaveRefused::HandoffIncomplete));
                    }
                }
            }
        }
        self.serving.store(self.core.serving(), Ordering::Relaxed);
        let waiting = self.core.waiting_for().len();
        self.metrics.transition_waiting.set(waiting as i64);
    }

    fn walk_step(&mut self, walk: u64, effect: WalkEffect, ctx: &mut Context<Self>) {
        let me = ctx.address();
        match effect {
            WalkEffect::ReadPage {
                after,
                limit,
                delay_ms,
            } => {
                let page = self.storage.page.clone();
                actix::spawn(async move {
                    if delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    }
                    let page = page
                        .send(LocalPage { after, limit })
                        .await
                        .unwrap_or_default();
                    me.do_send(WalkPage { walk, page });
                });
            }
            WalkEffect::Push { to, records } => {
                let count = records.len() as u64;
                let bytes: u64 = records
                    .iter()
                    .map(|(k, r)| (k.len() + r.value.as_ref().map_or(0, |v| v.len())) as u64)
                    .sum();
                let addr = self.peer_addr(&to);
                let call = peer::call(
                    &self.rpc,
                    addr.as_deref(),
                    &ReplicaRequest::WriteBatch { records },
                    self.timeout,
                );
                let metrics = self.metrics.clone();
                actix::spawn(async move {
                    let ok = call.await == ReplicaResponse::Written;
                    if ok {
                        metrics.rebalance_keys_moved.inc_by(count);
                        metrics.rebalance_bytes_moved.inc_by(bytes);
                        metrics
                            .handoff_keys
                            .get_or_create(&MemberLabels { member: to.clone() })
                            .inc_by(count);
                    }
                    me.do_send(WalkPushed {
                        walk,
                        to,
                        ok,
                        count,
                    });
                });
            }
            WalkEffect::Drop(keys) => self.storage.drop.do_send(DropHandedOff(keys)),
            WalkEffect::Done(_) => {} // the core handles the end of its walks
        }
    }

    /// Tells every member this node handed off its data, once its hints went out.
    fn announce(
        &self,
        fingerprint: u64,
        to: Vec<(String, String)>,
        haunted: Vec<Vec<(String, u64)>>,
    ) {
        let request = ReplicaRequest::Synced {
            from: self.me.clone(),
            fingerprint,
            haunted,
        };
        let calls: Vec<_> = to
            .iter()
            .map(|(_, addr)| peer::call(&self.rpc, Some(addr), &request, self.timeout))
            .collect();
        let flush = self.hints.send(FlushHints);
        actix::spawn(async move {
            let _ = flush.await;
            for call in calls {
                let _ = call.await;
            }
        });
    }

    fn anti_entropy(&mut self) {
        if self.core.in_transition() || self.core.walking() {
            return; // data is moving anyway
        }
        let Some(placement) = self.core.placement() else {
            return;
        };
        let ring = placement.current.ring.clone();
        let others: Vec<&String> = ring.members().iter().filter(|m| **m != self.me).collect();
        let Some(peer_name) = others
            .choose(&mut rand::thread_rng())
            .map(|s| s.to_string())
        else {
            return;
        };
        let ranges = shared_ranges(&ring, &self.me, &peer_name, self.n);
        if ranges.is_empty() {
            return;
        }
        let round = AntiEntropy {
            addr: placement.current.peers.get(&peer_name).cloned(),
            peer: peer_name,
            ranges,
            buckets: self.config.digest_buckets,
            storage: self.storage.op.clone(),
            rpc: self.rpc.clone(),
            timeout: self.timeout,
            metrics: self.metrics.clone(),
        };
        actix::spawn(async move {
            if let Err(why) = round.run().await {
                log::debug!("anti-entropy round failed: {why}");
            }
        });
    }
}

impl Actor for StabilizerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            let now = act.now_ms();
            let mut out = std::mem::take(&mut act.out);
            act.core.on_tick(now, &mut out);
            act.out = out;
            act.run_effects(ctx);
        });
        let every = Duration::from_millis(self.config.anti_entropy_interval_ms);
        ctx.run_interval(every, |act, _| act.anti_entropy());
    }
}

impl Handler<RingChanged> for StabilizerActor {
    type Result = ();

    fn handle(&mut self, msg: RingChanged, ctx: &mut Context<Self>) {
        let now = self.now_ms();
        let mut out = std::mem::take(&mut self.out);
        self.core.on_ring(msg.snapshot, msg.merged, now, &mut out);
        self.out = out;
        self.run_effects(ctx);
    }
}

impl Handler<WalkPage> for StabilizerActor {
    type Result = ();

    fn handle(&mut self, msg: WalkPage, ctx: &mut Context<Self>) {
        let mut out = std::mem::take(&mut self.out);
        self.core.on_page(msg.walk, msg.page, &mut out);
        self.out = out;
        self.run_effects(ctx);
    }
}

impl Handler<WalkPushed> for StabilizerActor {
    type Result = ();

    fn handle(&mut self, msg: WalkPushed, ctx: &mut Context<Self>) {
        let mut out = std::mem::take(&mut self.out);
        self.core
            .on_pushed(msg.walk, &msg.to, msg.ok, msg.count, &mut out);
        self.out = out;
        if msg.ok {
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.metrics.rebalance_last_completion.set(unix as i64);
        }
        self.run_effects(ctx);
    }
}

impl Handler<PeerSynced> for StabilizerActor {
    type Result = ();

    fn handle(&mut self, msg: PeerSynced, ctx: &mut Context<Self>) {
        let mut out = std::mem::take(&mut self.out);
        self.core
            .on_synced(&msg.from, msg.fingerprint, msg.haunted, &mut out);
        self.out = out;
        self.run_effects(ctx);
    }
}

impl Handler<WireMembership> for StabilizerActor {
    type Result = ();

    fn handle(&mut self, msg: WireMembership, _: &mut Context<Self>) {
        self.membership = Some(msg.0);
    }
}

impl Handler<HandOffAll> for StabilizerActor {
    type Result = ResponseFuture<Result<u64, LeaveRefused>>;

    fn handle(&mut self, msg: HandOffAll, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.leave_reply.is_some() {
            return Box::pin(async { Err(LeaveRefused::AlreadyLeaving) });
        }
        self.leave_reply = Some(tx);
        let mut out = std::mem::take(&mut self.out);
        self.core.leave(msg.forced, &mut out);
        self.out = out;
        self.run_effects(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(LeaveRefused::Stopped("stabilizer stopped".into())))
        })
    }
}
