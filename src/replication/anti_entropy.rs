//! One anti-entropy round between this node and one peer.
//!
//! Both sides hash `(key, version)` into buckets over the token ranges they both
//! replicate; for buckets that differ they exchange key versions, then each newer
//! record is pushed or pulled. Invariant: a round only ever merges records, so a
//! round racing writes or another round can only move replicas forward.

use super::message::{ReplicaRequest, ReplicaResponse};
use super::peer;
use crate::metrics::Metrics;
use crate::storage::actor::LocalOp;
use crate::transport::rpc::RpcClient;
use actix::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// One anti-entropy round with one peer.
pub struct AntiEntropy {
    /// The peer's member name.
    pub peer: String,
    /// The peer's RPC address.
    pub addr: Option<String>,
    /// Token ranges both replicate.
    pub ranges: Vec<(u64, u64)>,
    /// Digest buckets.
    pub buckets: u32,
    /// The local store.
    pub storage: Recipient<LocalOp>,
    /// Peer RPC.
    pub rpc: RpcClient,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Metrics.
    pub metrics: Metrics,
}

impl AntiEntropy {
    async fn local(&self, request: ReplicaRequest) -> Result<ReplicaResponse, String> {
        self.storage
            .send(LocalOp(request))
            .await
            .map_err(|e| e.to_string())
    }

    async fn remote(&self, request: ReplicaRequest) -> ReplicaResponse {
        peer::call(&self.rpc, self.addr.as_deref(), &request, self.timeout).await
    }

    /// Runs the round: digests, versions of differing buckets, push and pull.
    pub async fn run(self) -> Result<(), String> {
        let digest = ReplicaRequest::Digest {
            ranges: self.ranges.clone(),
            buckets: self.buckets,
        };
        let (ReplicaResponse::Digest(mine), ReplicaResponse::Digest(theirs)) =
            (self.local(digest.clone()).await?, self.remote(digest).await)
        else {
            return Err(format!("no digest from {}", self.peer));
        };
        let wanted: Vec<u32> = (0..mine.len().min(theirs.len()))
            .filter(|&i| mine[i] != theirs[i])
            .map(|i| i as u32)
            .collect();
        self.metrics.anti_entropy_rounds.inc();
        if wanted.is_empty() {
            return Ok(());
        }
        let versions = ReplicaRequest::Versions {
            ranges: self.ranges.clone(),
            buckets: self.buckets,
            wanted,
        };
        let (ReplicaResponse::Versions(mine), ReplicaResponse::Versions(theirs)) = (
            self.local(versions.clone()).await?,
            self.remote(versions).await,
        ) else {
            return Err(format!("no versions from {}", self.peer));
        };
        let theirs: BTreeMap<String, _> = theirs.into_iter().collect();
        let mine: BTreeMap<String, _> = mine.into_iter().collect();
        let push: Vec<String> = mine
            .iter()
            .filter(|(k, v)| theirs.get(*k).is_none_or(|t| t < *v))
            .map(|(k, _)| k.clone())
            .collect();
        let pull: Vec<String> = theirs
            .iter()
            .filter(|(k, v)| mine.get(*k).is_none_or(|m| m < *v))
            .map(|(k, _)| k.clone())
            .collect();
        if !push.is_empty() {
            if let ReplicaResponse::Records(records) =
                self.local(ReplicaRequest::ReadBatch { keys: push }).await?
            {
                let count = records.len() as u64;
                if self.remote(ReplicaRequest::WriteBatch { records }).await
                    == ReplicaResponse::Written
                {
                    self.metrics.anti_entropy_repairs.inc_by(count);
                }
            }
        }
        if !pull.is_empty() {
            if let ReplicaResponse::Records(records) =
                self.remote(ReplicaRequest::ReadBatch { keys: pull }).await
            {
                let count = records.len() as u64;
                self.local(ReplicaRequest::WriteBatch { records }).await?;
                self.metrics.anti_entropy_repairs.inc_by(count);
            }
        }
        Ok(())
    }
}
