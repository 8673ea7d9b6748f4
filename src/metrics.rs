//! Prometheus metrics of one node, in the text exposition format (prometheus-client).
//!
//! Actors and handlers update the metrics they own as they go; counters kept as
//! plain atomics by the transports are read at scrape time by a collector. Metric
//! names start with `swimkv_`. Invariant: counters only grow.

use crate::transport::rpc::RpcCounters;
use crate::transport::udp::UdpCounters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route pattern, e.g. `/d/{key}`.
    pub route: &'static str,
    /// HTTP method (`other` for a method outside the standard ones).
    pub method: &'static str,
    /// Response status code.
    pub status: u16,
}

/// Labels naming a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route pattern.
    pub route: &'static str,
}

/// Labels naming an operation kind (`read`, `write`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// Operation kind.
    pub op: &'static str,
}

/// Labels naming a member state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// alive, suspect, dead or left.
    pub state: &'static str,
}

/// Labels naming a member.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabels {
    /// Member name.
    pub member: String,
}

/// Labels naming a kind of storage error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorKindLabels {
    /// disk_full, io, corrupt or failed.
    pub kind: &'static str,
}

/// Labels of a refused client request: its route pattern and the status (401 or 403).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// Route pattern (or `unmatched`).
    pub route: &'static str,
    /// 401 (no or unknown token) or 403 (token without the right).
    pub status: u16,
}

/// Labels of an outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What happened.
    pub outcome: &'static str,
}

/// Labels naming a peer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// Peer name.
    pub peer: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

/// Every metric of a node.
#[derive(Clone)]
pub struct Metrics {
    /// HTTP requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// HTTP request latency in seconds by route.
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Client operations that missed their quorum.
    pub quorum_failures: Family<OpLabels, Counter>,
    /// Read repairs sent.
    pub read_repairs: Counter,
    /// Client requests refused because too many were in flight.
    pub overloaded: Counter,
    /// SWIM direct probes sent.
    pub probes: Counter,
    /// SWIM ping-req requests sent.
    pub ping_reqs: Counter,
    /// Members this node suspected.
    pub suspicions: Counter,
    /// Members this node declared dead.
    pub deaths: Counter,
    /// Suspicions about this node that it refuted.
    pub refutations: Counter,
    /// Members known, by state (this node included).
    pub members: Family<StateLabels, Gauge>,
    /// Membership updates waiting to be gossiped.
    pub gossip_backlog: Gauge,
    /// Lifeguard local health score (0 is healthy).
    pub local_health: Gauge,
    /// Ring epoch.
    pub ring_epoch: Gauge,
    /// Keys stored locally (tombstones included).
    pub keys_stored: Gauge,
    /// Keys stored locally whose newest record is a live value.
    pub keys_live: Gauge,
    /// Keys streamed to other nodes by rebalancing and re-replication.
    pub rebalance_keys_moved: Counter,
    /// Key and value bytes handed to other members by handoff walks.
    pub rebalance_bytes_moved: Counter,
    /// Keys handed off, by receiving member.
    pub handoff_keys: Family<MemberLabels, Counter>,
    /// Members of the current ring that have not reported their handoff yet.
    pub transition_waiting: Gauge,
    /// 1 while this node is a pending replica (still receiving its handoff).
    pub pending_replica: Gauge,
    /// Ring members that are pending replicas, as this node sees them.
    pub pending_members: Gauge,
    /// Reads this replica answered "not authoritative".
    pub reads_not_authoritative: Counter,
    /// Writes answered 503 because fewer live replicas than W could be found.
    pub writes_without_live_quorum: Counter,
    /// Client writes this replica refused because it held a newer version.
    pub writes_refused_stale: Counter,
    /// Writes this coordinator sent again past a version a replica refused them for.
    pub writes_retried_stale: Counter,
    /// Conditional writes this replica refused (the expected version was superseded).
    pub writes_refused_conflict: Counter,
    /// Conditional writes this coordinator answered 412.
    pub precondition_failed: Counter,
    /// Records this replica refused because their version was too far ahead of its clock.
    pub versions_too_far_ahead: Counter,
    /// Versions this coordinator did not observe because they were too far ahead of its clock.
    pub versions_not_observed: Counter,
    /// Expired values turned into tombstones.
    pub expired_collected: Counter,
    /// Estimated clock offset of each peer (its clock minus this node's), in seconds.
    pub clock_offset: Family<PeerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// 1 while this node's clock is off from most of its peers' (writes refused).
    pub clock_skewed: Gauge,
    /// Unix time (seconds) the last rebalance completed.
    pub rebalance_last_completion: Gauge,
    /// Keys repaired by anti-entropy (pushed or pulled).
    pub anti_entropy_repairs: Counter,
    /// Anti-entropy rounds completed.
    pub anti_entropy_rounds: Counter,
    /// 1 while a ring transition is not settled.
    pub ring_transition: Gauge,
    /// Hints waiting for their replica.
    pub hints_pending: Gauge,
    /// Hints delivered.
    pub hints_delivered: Counter,
    /// Hints dropped because the hint limit was reached.
    pub hints_dropped: Counter,
    /// Hints held per member they are for.
    pub hints_backlog: Family<MemberLabels, Gauge>,
    /// Hints removed unsent because they outlived the hint window.
    pub hints_expired: Counter,
    /// Storage engine errors answered, by kind.
    pub storage_errors: Family<ErrorKindLabels, Counter>,
    /// Client requests refused by token checks, by route and status.
    pub auth_refused: Family<AuthLabels, Counter>,
    /// Bearer tokens accepted now (0 without `--auth-tokens`).
    pub auth_tokens: Gauge,
    /// Cluster secrets accepted now (0 without a cluster secret).
    pub cluster_secrets: Gauge,
    /// SIGHUP reloads, by outcome (`ok`, or `partial` when a file could not be used).
    pub reloads: Family<OutcomeLabels, Counter>,
    /// fsync latency in seconds.
    pub fsync_seconds: Histogram,
    /// Writes acknowledged per fsync (`--sync always`) or covered per fsync.
    pub writes_per_fsync: Histogram,
    /// Journal flushes to the operating system (each covers every write of one drained batch).
    pub journal_flushes: Counter,
    /// Bytes the storage engine occupies on disk.
    pub storage_disk_bytes: Gauge,
    registry: Arc<Registry>,
}

#[derive(Debug)]
struct TransportCollector {
    udp: Arc<UdpCounters>,
    rpc: Arc<RpcCounters>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

impl Collector for TransportCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let udp = &self.udp;
        counter(
            &mut encoder,
            "swimkv_udp_received",
            "SWIM datagrams received with a valid envelope",
            udp.received.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "swimkv_udp_sent",
            "SWIM datagrams sent",
            udp.sent.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "swimkv_udp_send_dropped",
            "SWIM datagrams dropped on send",
            udp.send_dropped.load(Ordering::Relaxed),
        )?;
        let refused = udp.refused_snapshot();
        let probe = ConstCounter::new(0u64);
        let mut fam = encoder.encode_descriptor(
            "swimkv_udp_refused",
            "Datagrams refused, by reason (malformed, version, foreign_cluster, decode, ...)",
            None,
            probe.metric_type(),
        )?;
        for (reason, n) in refused {
            ConstCounter::new(n).encode(fam.encode_family(&ReasonLabels { reason })?)?;
        }
        let rpc = &self.rpc;
        counter(
            &mut encoder,
            "swimkv_rpc_served",
            "Peer RPC requests served",
            rpc.served.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "swimkv_rpc_refused_frames",
            "Peer RPC frames refused",
            rpc.refused_frames.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "swimkv_rpc_local_connections",
            "Peer RPC connections this node opened over a local (Unix) socket",
            rpc.local_connections.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "swimkv_rpc_foreign_cluster",
            "Peer RPC frames from another cluster",
            rpc.foreign_cluster.load(Ordering::Relaxed),
        )?;
        Ok(())
    }
}

impl Metrics {
    /// A registry with every metric, reading transport counters at scrape time.
    pub fn new(udp: Arc<UdpCounters>, rpc: Arc<RpcCounters>) -> Metrics {
        let mut r = Registry::default();
        let mut m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            hints_backlog: Family::default(),
            hints_expired: Counter::default(),
            storage_errors: Family::default(),
            auth_refused: Family::default(),
            auth_tokens: Gauge::default(),
            cluster_secrets: Gauge::default(),
            reloads: Family::default(),
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 18)),
            writes_per_fsync: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            journal_flushes: Counter::default(),
            storage_disk_bytes: Gauge::default(),
            quorum_failures: Family::default(),
            read_repairs: Counter::default(),
            overloaded: Counter::default(),
            probes: Counter::default(),
            ping_reqs: Counter::default(),
            suspicions: Counter::default(),
            deaths: Counter::default(),
            refutations: Counter::default(),
            members: Family::default(),
            gossip_backlog: Gauge::default(),
            local_health: Gauge::default(),
            ring_epoch: Gauge::default(),
            keys_stored: Gauge::default(),
            keys_live: Gauge::default(),
            rebalance_keys_moved: Counter::default(),
            rebalance_bytes_moved: Counter::default(),
            handoff_keys: Family::default(),
            transition_waiting: Gauge::default(),
            pending_replica: Gauge::default(),
            pending_members: Gauge::default(),
            reads_not_authoritative: Counter::default(),
            writes_without_live_quorum: Counter::default(),
            writes_refused_stale: Counter::default(),
            writes_retried_stale: Counter::default(),
            writes_refused_conflict: Counter::default(),
            precondition_failed: Counter::default(),
            versions_too_far_ahead: Counter::default(),
            versions_not_observed: Counter::default(),
            expired_collected: Counter::default(),
            clock_offset: Family::default(),
            clock_skewed: Gauge::default(),
            rebalance_last_completion: Gauge::default(),
            anti_entropy_repairs: Counter::default(),
            anti_entropy_rounds: Counter::default(),
            ring_transition: Gauge::default(),
            hints_pending: Gauge::default(),
            hints_delivered: Counter::default(),
            hints_dropped: Counter::default(),
            registry: Arc::new(Registry::default()),
        };
        r.register(
            "swimkv_http_requests",
            "HTTP requests by route, method and status",
            m.requests.clone(),
        );
        r.register(
            "swimkv_http_request_duration_seconds",
            "HTTP request latency by route",
            m.latency.clone(),
        );
        r.register(
            "swimkv_quorum_failures",
            "Client operations that missed their quorum",
            m.quorum_failures.clone(),
        );
        r.register(
            "swimkv_read_repairs",
            "Read repair writes sent",
            m.read_repairs.clone(),
        );
        r.register(
            "swimkv_overloaded",
            "Client requests refused with 503 because too many were in flight",
            m.overloaded.clone(),
        );
        r.register(
            "swimkv_swim_probes",
            "SWIM direct probes sent",
            m.probes.clone(),
        );
        r.register(
            "swimkv_swim_ping_reqs",
            "SWIM indirect probe requests sent",
            m.ping_reqs.clone(),
        );
        r.register(
            "swimkv_swim_suspicions",
            "Members this node suspected",
            m.suspicions.clone(),
        );
        r.register(
            "swimkv_swim_deaths",
            "Members this node declared dead",
            m.deaths.clone(),
        );
        r.register(
            "swimkv_swim_refutations",
            "Suspicions of this node it refuted",
            m.refutations.clone(),
        );
        r.register(
            "swimkv_members",
            "Members known by state, this node included",
            m.members.clone(),
        );
        r.register(
            "swimkv_gossip_backlog",
            "Membership updates waiting to be gossiped",
            m.gossip_backlog.clone(),
        );
        r.register(
            "swimkv_local_health",
            "Lifeguard local health score, 0 is healthy",
            m.local_health.clone(),
        );
        r.register(
            "swimkv_ring_epoch",
            "Epoch of the ring snapshot in use",
            m.ring_epoch.clone(),
        );
        r.register(
            "swimkv_keys_stored",
            "Keys stored on this node, tombstones included",
            m.keys_stored.clone(),
        );
        r.register(
            "swimkv_keys_live",
            "Keys stored on this node holding a value",
            m.keys_live.clone(),
        );
        r.register(
            "swimkv_rebalance_keys_moved",
            "Keys streamed to new owners",
            m.rebalance_keys_moved.clone(),
        );
        r.register(
            "swimkv_rebalance_bytes_moved",
            "Key and value bytes handed to other members by handoff",
            m.rebalance_bytes_moved.clone(),
        );
        r.register(
            "swimkv_handoff_keys_sent",
            "Keys handed off, by receiving member",
            m.handoff_keys.clone(),
        );
        r.register(
            "swimkv_transition_waiting_members",
            "Members of the current ring that have not reported their handoff yet",
            m.transition_waiting.clone(),
        );
        r.register(
            "swimkv_pending_replica",
            "1 while this node is a pending replica, still receiving its handoff",
            m.pending_replica.clone(),
        );
        r.register(
            "swimkv_pending_members",
            "Ring members that are pending replicas",
            m.pending_members.clone(),
        );
        r.register(
            "swimkv_reads_not_authoritative",
            "Reads this replica answered 'not authoritative'",
            m.reads_not_authoritative.clone(),
        );
        r.register(
            "swimkv_writes_refused_no_live_quorum",
            "Writes answered 503 because fewer live replicas than W could be found",
            m.writes_without_live_quorum.clone(),
        );
        r.register(
            "swimkv_writes_refused_stale",
            "Client writes this replica refused because it held a newer version",
            m.writes_refused_stale.clone(),
        );
        r.register(
            "swimkv_writes_retried_stale",
            "Writes sent again past the version a replica refused them for",
            m.writes_retried_stale.clone(),
        );
        r.register(
            "swimkv_writes_refused_conflict",
            "Conditional writes this replica refused",
            m.writes_refused_conflict.clone(),
        );
        r.register(
            "swimkv_precondition_failed",
            "Conditional writes answered 412",
            m.precondition_failed.clone(),
        );
        r.register(
            "swimkv_versions_refused_too_far_ahead",
            "Records refused because their version was too far ahead of this clock",
            m.versions_too_far_ahead.clone(),
        );
        r.register(
            "swimkv_versions_not_observed",
            "Versions not observed because they were too far ahead of this clock",
            m.versions_not_observed.clone(),
        );
        r.register(
            "swimkv_expired_collected",
            "Expired values turned into tombstones",
            m.expired_collected.clone(),
        );
        r.register(
            "swimkv_clock_offset_seconds",
            "Estimated clock offset of each peer (its clock minus this node's)",
            m.clock_offset.clone(),
        );
        r.register(
            "swimkv_clock_skewed",
            "1 while this node's clock is off from most of its peers' (writes refused)",
            m.clock_skewed.clone(),
        );
        r.register(
            "swimkv_rebalance_last_completion_seconds",
            "Unix time the last rebalance completed",
            m.rebalance_last_completion.clone(),
        );
        r.register(
            "swimkv_anti_entropy_repairs",
            "Keys repaired by anti-entropy",
            m.anti_entropy_repairs.clone(),
        );
        r.register(
            "swimkv_anti_entropy_rounds",
            "Anti-entropy rounds completed",
            m.anti_entropy_rounds.clone(),
        );
        r.register(
            "swimkv_ring_transition",
            "1 while a ring change is not settled everywhere",
            m.ring_transition.clone(),
        );
        r.register(
            "swimkv_hints_pending",
            "Hints waiting for their replica",
            m.hints_pending.clone(),
        );
        r.register(
            "swimkv_hints_delivered",
            "Hints delivered",
            m.hints_delivered.clone(),
        );
        r.register(
            "swimkv_hints_dropped",
            "Hints dropped at the hint limit",
            m.hints_dropped.clone(),
        );
        r.register(
            "swimkv_hints_backlog",
            "Hints held per member they are for",
            m.hints_backlog.clone(),
        );
        r.register(
            "swimkv_hints_expired",
            "Hints removed unsent after the hint window",
            m.hints_expired.clone(),
        );
        r.register(
            "swimkv_storage_errors",
            "Storage engine errors answered, by kind",
            m.storage_errors.clone(),
        );
        r.register(
            "swimkv_auth_refused",
            "Client requests refused by token checks, by route and status (401, 403)",
            m.auth_refused.clone(),
        );
        r.register(
            "swimkv_auth_tokens",
            "Bearer tokens accepted now",
            m.auth_tokens.clone(),
        );
        r.register(
            "swimkv_cluster_secrets",
            "Cluster secrets accepted now (the first signs)",
            m.cluster_secrets.clone(),
        );
        r.register(
            "swimkv_reloads",
            "SIGHUP reloads of tokens, secrets and certificate, by outcome",
            m.reloads.clone(),
        );
        r.register(
            "swimkv_fsync_seconds",
            "fsync latency of the storage journal",
            m.fsync_seconds.clone(),
        );
        r.register(
            "swimkv_writes_per_fsync",
            "Writes covered by one fsync",
            m.writes_per_fsync.clone(),
        );
        r.register(
            "swimkv_journal_flushes",
            "Journal buffers handed to the operating system",
            m.journal_flushes.clone(),
        );
        r.register(
            "swimkv_storage_disk_bytes",
            "Bytes the storage engine occupies on disk",
            m.storage_disk_bytes.clone(),
        );
        r.register_collector(Box::new(TransportCollector { udp, rpc }));
        m.registry = Arc::new(r);
        m
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
