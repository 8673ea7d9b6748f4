//! The StorageActor: owns this node's [`MemoryStore`] and serves replica requests.
//!
//! Every read, write and batch of the local replica goes through it, whether it
//! comes from this node's coordinator or a peer. Invariant: the store only changes
//! by merging records, so the order in which requests arrive cannot lose a newer
//! version.

use super::memory::MemoryStore;
use super::ops::{self, ReplicaRequest, ReplicaResponse};
use super::record::{Record, Version};
use crate::metrics::Metrics;
use actix::prelude::*;

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

/// Owns the local store.
pub struct StorageActor {
    store: MemoryStore,
    metrics: Metrics,
    tombstone_grace_ms: u64,
}

impl StorageActor {
    /// An actor over an empty store that collects tombstones older than `tombstone_grace_ms`.
    pub fn new(metrics: Metrics, tombstone_grace_ms: u64) -> StorageActor {
        StorageActor {
            store: MemoryStore::new(),
            metrics,
            tombstone_grace_ms,
        }
    }

    fn gauges(&self) {
        self.metrics.keys_stored.set(self.store.len() as i64);
        self.metrics.keys_live.set(self.store.live_len() as i64);
    }

    /// Runs one replica request.
    pub fn run(&mut self, request: ReplicaRequest) -> ReplicaResponse {
        let writes = matches!(
            request,
            ReplicaRequest::Write { .. } | ReplicaRequest::WriteBatch { .. }
        );
        let response = ops::serve(&mut self.store, request);
        if writes {
            self.gauges();
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
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let collected = act
                .store
                .collect_tombstones(now_ms.saturating_sub(act.tombstone_grace_ms));
            if collected > 0 {
                log::debug!("collected {collected} tombstones older than the grace period");
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
        MessageResult(self.store.page(msg.after.as_deref(), msg.limit))
    }
}

impl Handler<DropHandedOff> for StorageActor {
    type Result = usize;

    fn handle(&mut self, msg: DropHandedOff, _: &mut Context<Self>) -> usize {
        let dropped = msg
            .0
            .into_iter()
            .filter(|(k, v)| self.store.remove_if_version(k, *v))
            .count();
        self.gauges();
        dropped
    }
}
