//! The StorageActor: owns this node's [`Replica`] and serves replica requests.
//!
//! Every read, write and batch of the local replica goes through it, whether it
//! comes from this node's coordinator or a peer. Invariant: the store only changes
//! by storing or merging records (see `replica.rs`), so the order in which
//! requests arrive cannot lose a newer version.

use super::ops::{ReplicaRequest, ReplicaResponse};
use super::record::{Record, Version};
use super::replica::{Replica, ReplicaStats};
use crate::metrics::Metrics;
use actix::prelude::*;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs one replica request against the local store.
#[derive(Message, Debug)]
#[rtype(result = "ReplicaResponse")]
pub struct LocalOp(pub ReplicaRequest);

/// A page of the local store, for `/cluster/local` and stabilization.
#[derive(Message, Debug)]
#[rtype(result = "Vec<(String, Record)>")]
pub struct LocalPage {
    /// Start strictly after this key (from the first key when `None`).
    pub after: Option<String>,
    /// At most this many keys.
    pub limit: usize,
}

/// Drops keys whose local version is still the one handed off.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct DropHandedOff(pub Vec<(String, Version)>);

/// The replica's authority: `false` while its handoff is still arriving.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetAuthority(pub bool);

/// A graceful leave started: refuse every write from now on.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetLeaving;

/// Wall-clock milliseconds since the Unix epoch (0 before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Owns the local replica.
pub struct StorageActor {
    replica: Replica,
    metrics: Metrics,
    tombstone_grace_ms: u64,
    reported: ReplicaStats,
}

impl StorageActor {
    /// An actor over `replica` that collects tombstones older than `tombstone_grace_ms`.
    pub fn new(replica: Replica, metrics: Metrics, tombstone_grace_ms: u64) -> StorageActor {
        metrics
            .pending_replica
            .set(i64::from(!replica.is_authoritative()));
        StorageActor {
            replica,
            metrics,
            tombstone_grace_ms,
            reported: ReplicaStats::default(),
        }
    }

    fn gauges(&self) {
        let store = self.replica.store();
        self.metrics.keys_stored.set(store.len() as i64);
        self.metrics.keys_live.set(store.live_len() as i64);
    }

    fn count_refusals(&mut self) {
        let now = self.replica.stats();
        let was = std::mem::replace(&mut self.reported, now);
        let m = &self.metrics;
        m.reads_not_authoritative
            .inc_by(now.not_authoritative - was.not_authoritative);
        m.writes_refused_stale.inc_by(now.stale - was.stale);
        m.writes_refused_conflict
            .inc_by(now.conflicts - was.conflicts);
        m.versions_too_far_ahead
            .inc_by(now.too_far_ahead - was.too_far_ahead);
    }

    /// Runs one replica request.
    pub fn run(&mut self, request: ReplicaRequest) -> ReplicaResponse {
        let writes = request.writes();
        let response = self.replica.serve(request, unix_ms());
        if writes {
            self.gauges();
        }
        if !matches!(
            response,
            ReplicaResponse::Read(_) | ReplicaResponse::Written
        ) {
            self.count_refusals();
        }
        response
    }
}

impl Actor for StorageActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
        let every =
            std::time::Duration::from_millis((self.tombstone_grace_ms / 10).clamp(1_000, 60_000));
        ctx.run_interval(every, |act, _| {
            let now_ms = unix_ms();
            let store = act.replica.store_mut();
            let expired = store.expire(now_ms);
            let collected = store.collect_tombstones(now_ms.saturating_sub(act.tombstone_grace_ms));
            act.metrics.expired_collected.inc_by(expired as u64);
            if collected > 0 || expired > 0 {
                log::debug!(
                    "{expired} expired values turned into tombstones; {collected} tombstones older than the grace period collected"
                );
                act.gauges();
            }
        });
    }
}

impl Handler<LocalOp> for StorageActor {
    type Result = MessageResult<LocalOp>;

    fn handle(&mut self, msg: LocalOp, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.run(msg.0))
    }
}

impl Handler<LocalPage> for StorageActor {
    type Result = MessageResult<LocalPage>;

    fn handle(&mut self, msg: LocalPage, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.replica.store().page(msg.after.as_deref(), msg.limit))
    }
}

impl Handler<DropHandedOff> for StorageActor {
    type Result = usize;

    fn handle(&mut self, msg: DropHandedOff, _: &mut Context<Self>) -> usize {
        let store = self.replica.store_mut();
        let dropped = msg
            .0
            .into_iter()
            .filter(|(k, v)| store.remove_if_version(k, *v))
            .count();
        self.gauges();
        dropped
    }
}

impl Handler<SetAuthority> for StorageActor {
    type Result = ();

    fn handle(&mut self, msg: SetAuthority, _: &mut Context<Self>) {
        if msg.0 != self.replica.is_authoritative() {
            log::info!(
                "{}",
                if msg.0 {
                    "handoff complete: this replica is an authority on its keys"
                } else {
                    "this replica is pending: reads are answered 'not authoritative' until its handoff completes"
                }
            );
        }
        self.replica.set_authoritative(msg.0);
        self.metrics.pending_replica.set(i64::from(!msg.0));
    }
}

impl Handler<SetLeaving> for StorageActor {
    type Result = ();

    fn handle(&mut self, _: SetLeaving, _: &mut Context<Self>) {
        self.replica.set_leaving();
    }
}
