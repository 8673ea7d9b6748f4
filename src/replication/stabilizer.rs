//! The StabilizerActor: data follows membership.
//!
//! On every ring change it walks the local store in batches and streams each key
//! to the members that are new in its preference list (see `rebalance.rs`),
//! dropping keys this node no longer replicates once their new owners acknowledged
//! them; when the walk completes it tells every member (`Synced`). It tracks the
//! [`Transition`] from the settled ring to the current one and publishes both to
//! the coordinator as a [`Placement`]. Periodically it runs anti-entropy with a
//! random peer: bucketed digests of the keys both replicate, then an exchange of
//! the keys in differing buckets. It also hands everything off before a graceful
//! leave.
//!
//! Invariants: at most one walk runs at a time (a newer ring cancels the running
//! one, which is restarted for the newer ring, so an interrupted walk resumes by
//! walking again — every step is idempotent); a key is dropped only after every
//! push of it was acknowledged and only if its version did not change meanwhile.

use super::anti_entropy::AntiEntropy;
use super::message::{ReplicaRequest, ReplicaResponse};
use super::peer;
use super::rebalance::{fingerprint, plan_key, shared_ranges, Transition};
use crate::config::StabilizeConfig;
use crate::metrics::Metrics;
use crate::ring::actor::{RingChanged, RingSnapshot};
use crate::ring::hash::token;
use crate::ring::ring::Ring;
use crate::storage::actor::{DropHandedOff, LocalOp, LocalPage};
use crate::storage::Record;
use crate::transport::rpc::RpcClient;
use actix::prelude::*;
use futures_util::future::join_all;
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where keys live now: the current ring and, during a transition, the settled one.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Placement {
    /// The current ring and the peer addresses of its members.
    pub current: RingSnapshot,
    /// The settled ring while a transition is under way.
    pub previous: Option<Arc<Ring>>,
}

/// A peer finished its handoff for a ring.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PeerSynced {
    /// The peer.
    pub from: String,
    /// The ring's fingerprint.
    pub fingerprint: u64,
}

/// Hand every local key to the members that own it without this node (graceful
/// leave). Answers how many keys were handed off, or why it failed.
#[derive(Message, Debug)]
#[rtype(result = "Result<u64, String>")]
pub struct HandOffAll;

#[derive(Message)]
#[rtype(result = "()")]
struct WalkDone {
    generation: u64,
    fingerprint: u64,
    result: Result<u64, String>,
}

/// The storage recipients a walk needs.
#[derive(Clone)]
pub struct StorageLinks {
    /// Replica operations on the local store.
    pub op: Recipient<LocalOp>,
    /// Pages of the local store.
    pub page: Recipient<LocalPage>,
    /// Dropping handed-off keys.
    pub drop: Recipient<DropHandedOff>,
}

/// One walk over the local store, from `settled` to `target`.
#[derive(Clone)]
struct Walk {
    me: String,
    n: usize,
    settled: Arc<Ring>,
    target: Arc<Ring>,
    peers: Arc<BTreeMap<String, String>>,
    storage: StorageLinks,
    rpc: RpcClient,
    batch: usize,
    pause: Duration,
    timeout: Duration,
    drop_local: bool,
    generation: Arc<AtomicU64>,
    mine: u64,
    metrics: Metrics,
}

impl Walk {
    async fn run(self) -> Result<u64, String> {
        let mut after: Option<String> = None;
        let mut moved = 0u64;
        let mut failed: Option<String> = None;
        let mut scanned = 0i64;
        loop {
            if self.generation.load(Ordering::SeqCst) != self.mine {
                return Err("superseded by a newer ring".into());
            }
            let page = self
                .storage
                .page
                .send(LocalPage {
                    after: after.clone(),
                    limit: self.batch,
                })
                .await
                .map_err(|e| format!("storage: {e}"))?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            scanned += page.len() as i64;
            let mut batches: BTreeMap<String, Vec<(String, Record)>> = BTreeMap::new();
            let mut to_drop: Vec<(String, Record, Vec<String>)> = Vec::new();
            for (key, record) in page {
                let plan = plan_key(
                    &self.me,
                    token(key.as_bytes()),
                    &self.settled,
                    &self.target,
                    self.n,
                );
                for t in &plan.push_to {
                    batches
                        .entry(t.clone())
                        .or_default()
                        .push((key.clone(), record.clone()));
                }
                if plan.drop_local && self.drop_local {
                    to_drop.push((key, record, plan.push_to));
                }
            }
            let calls = batches.into_iter().map(|(to, records)| {
                let count = records.len() as u64;
                let fut = peer::call(
                    &self.rpc,
                    self.peers.get(&to).map(String::as_str),
                    &ReplicaRequest::WriteBatch { records },
                    self.timeout,
                );
                async move { (to, count, fut.await) }
            });
            let mut acked = BTreeSet::new();
            for (to, count, response) in join_all(calls).await {
                match response {
                    ReplicaResponse::Written => {
                        moved += count;
                        self.metrics.rebalance_keys_moved.inc_by(count);
                        acked.insert(to);
                    }
                    other => failed = Some(format!("push to {to}: {other:?}")),
                }
            }
            let drops: Vec<_> = to_drop
                .into_iter()
                .filter(|(_, _, targets)| {
                    !targets.is_empty() && targets.iter().all(|t| acked.contains(t))
                })
                .map(|(k, r, _)| (k, r.version))
                .collect();
            if !drops.is_empty() {
                let _ = self.storage.drop.send(DropHandedOff(drops)).await;
            }
            let total = self.metrics.keys_stored.get();
            self.metrics
                .rebalance_keys_pending
                .set((total - scanned).max(0));
            if !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
        }
        self.metrics.rebalance_keys_pending.set(0);
        match failed {
            Some(why) => Err(why),
            None => Ok(moved),
        }
    }
}

/// Owns the ring transition, the handoff walks and anti-entropy.
pub struct StabilizerActor {
    me: String,
    n: usize,
    config: StabilizeConfig,
    transition: Option<Transition>,
    snapshot: Option<RingSnapshot>,
    storage: StorageLinks,
    rpc: RpcClient,
    placement: Recipient<Placement>,
    metrics: Metrics,
    generation: Arc<AtomicU64>,
    walking: bool,
    walk_pending: bool,
    synced_for: Option<u64>,
    timeout: Duration,
    started: Instant,
}

impl StabilizerActor {
    /// A stabilizer for node `me` keeping `n` replicas.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: String,
        n: usize,
        config: StabilizeConfig,
        storage: StorageLinks,
        rpc: RpcClient,
        placement: Recipient<Placement>,
        metrics: Metrics,
        request_timeout: Duration,
    ) -> StabilizerActor {
        StabilizerActor {
            me,
            n,
            config,
            transition: None,
            snapshot: None,
            storage,
            rpc,
            placement,
            metrics,
            generation: Arc::new(AtomicU64::new(0)),
            walking: false,
            walk_pending: false,
            synced_for: None,
            timeout: request_timeout.max(Duration::from_secs(5)),
            started: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn publish(&self) {
        let (Some(t), Some(s)) = (&self.transition, &self.snapshot) else {
            return;
        };
        let previous = t.previous().cloned();
        self.metrics
            .ring_transition
            .set(i64::from(previous.is_some()));
        self.placement.do_send(Placement {
            current: s.clone(),
            previous,
        });
    }

    fn walk(&self, settled: Arc<Ring>, target: Arc<Ring>, drop_local: bool) -> Walk {
        let peers = self
            .snapshot
            .as_ref()
            .map(|s| s.peers.clone())
            .unwrap_or_default();
        Walk {
            me: self.me.clone(),
            n: self.n,
            settled,
            target,
            peers,
            storage: self.storage.clone(),
            rpc: self.rpc.clone(),
            batch: self.config.batch_keys,
            pause: Duration::from_millis(self.config.pause_ms),
            timeout: self.timeout,
            drop_local,
            generation: self.generation.clone(),
            mine: self.generation.load(Ordering::SeqCst),
            metrics: self.metrics.clone(),
        }
    }

    fn start_walk(&mut self, ctx: &mut Context<Self>) {
        let Some(t) = &self.transition else {
            return;
        };
        if self.walking {
            // Cancel the running walk; it reports back and a new one starts then.
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.walk_pending = true;
            return;
        }
        let (settled, current) = (t.settled().clone(), t.current().clone());
        let print = fingerprint(&current);
        let walk = self.walk(settled, current, true);
        let generation = walk.mine;
        self.walking = true;
        self.walk_pending = false;
        let me = ctx.address();
        actix::spawn(async move {
            let result = walk.run().await;
            me.do_send(WalkDone {
                generation,
                fingerprint: print,
                result,
            });
        });
    }

    fn announce_synced(&mut self, ctx: &mut Context<Self>) {
        let (Some(print), Some(snapshot)) = (self.synced_for, &self.snapshot) else {
            return;
        };
        let request = ReplicaRequest::Synced {
            from: self.me.clone(),
            fingerprint: print,
        };
        for (name, addr) in snapshot.peers.iter() {
            if *name == self.me {
                continue;
            }
            let call = peer::call(&self.rpc, Some(addr), &request, self.timeout);
            actix::spawn(async move {
                let _ = call.await;
            });
        }
        let me = self.me.clone();
        ctx.notify(PeerSynced {
            from: me,
            fingerprint: print,
        });
    }

    fn anti_entropy(&mut self) {
        let (Some(t), Some(snapshot)) = (&self.transition, &self.snapshot) else {
            return;
        };
        if t.previous().is_some() || self.walking {
            return; // data is moving anyway
        }
        let ring = t.current().clone();
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
            addr: snapshot.peers.get(&peer_name).cloned(),
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
            if act.transition.as_mut().is_some_and(|t| t.on_tick(now)) {
                log::warn!("ring transition not reported complete by every member in time; settling anyway");
                act.publish();
                act.start_walk(ctx);
            }
            let pending = act.transition.as_ref().is_some_and(|t| t.previous().is_some());
            if pending && !act.walking {
                // Repeat our report: a member may have learned of this ring after it.
                act.announce_synced(ctx);
            }
        });
        let every = Duration::from_millis(self.config.anti_entropy_interval_ms);
        ctx.run_interval(every, |act, _| act.anti_entropy());
    }
}

impl Handler<RingChanged> for StabilizerActor {
    type Result = ();

    fn handle(&mut self, msg: RingChanged, ctx: &mut Context<Self>) {
        let now = self.now_ms();
        let ring = msg.0.ring.clone();
        self.snapshot = Some(msg.0);
        let changed = match &mut self.transition {
            None => {
                self.transition = Some(Transition::new(ring, self.config.transition_timeout_ms));
                false
            }
            Some(t) => t.on_ring(ring, now),
        };
        self.publish();
        if changed {
            self.synced_for = None;
            self.start_walk(ctx);
        }
    }
}

impl Handler<WalkDone> for StabilizerActor {
    type Result = ();

    fn handle(&mut self, msg: WalkDone, ctx: &mut Context<Self>) {
        self.walking = false;
        let current = self.transition.as_ref().map(|t| fingerprint(t.current()));
        match msg.result {
            Ok(moved) if current == Some(msg.fingerprint) && !self.walk_pending => {
                let unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.metrics.rebalance_last_completion.set(unix as i64);
                if moved > 0 {
                    log::info!(
                        "handoff complete: {moved} keys streamed (walk {})",
                        msg.generation
                    );
                }
                self.synced_for = Some(msg.fingerprint);
                self.announce_synced(ctx);
            }
            Ok(_) => self.start_walk(ctx),
            Err(why) => {
                if self.walk_pending {
                    self.start_walk(ctx);
                } else {
                    log::info!("handoff walk incomplete ({why}); retrying in 1 s");
                    ctx.run_later(Duration::from_secs(1), |act, ctx| act.start_walk(ctx));
                }
            }
        }
    }
}

impl Handler<PeerSynced> for StabilizerActor {
    type Result = ();

    fn handle(&mut self, msg: PeerSynced, ctx: &mut Context<Self>) {
        if self
            .transition
            .as_mut()
            .is_some_and(|t| t.on_synced(&msg.from, msg.fingerprint))
        {
            log::info!("ring transition settled: every member handed off its data");
            self.publish();
            // Writes made during the transition also reached the settled replicas:
            // walk once more to hand off and drop the copies this node no longer owns.
            self.start_walk(ctx);
        }
    }
}

impl Handler<HandOffAll> for StabilizerActor {
    type Result = ResponseFuture<Result<u64, String>>;

    fn handle(&mut self, _: HandOffAll, _: &mut Context<Self>) -> Self::Result {
        let Some(current) = self.transition.as_ref().map(|t| t.current().clone()) else {
            return Box::pin(async { Ok(0) });
        };
        let others = current.members().iter().filter(|m| **m != self.me).cloned();
        let without_me = Arc::new(Ring::new(current.epoch() + 1, others, current.vnodes()));
        // Stop any walk: from now on this node only hands off.
        self.generation.fetch_add(1, Ordering::SeqCst);
        let walk = self.walk(current, without_me, false);
        Box::pin(walk.run())
    }
}
