//! Node configuration: every tunable of a swimkv node in one plain struct.
//!
//! Invariants: a `Config` that passed [`Config::validate`] has R, W <= N, R + W > N
//! and 2W > N (unless `allow_weak_quorum`), non-zero virtual nodes and limits, and
//! a probe timeout shorter than the protocol period. The CLI (`cli.rs`) builds it from flags
//! and `SWIMKV_*` environment variables; tests use [`Config::for_test`].

use std::fmt;
use std::path::PathBuf;

/// SWIM failure-detector timings and dissemination settings (DESIGN section 4).
#[derive(Clone, Debug, PartialEq)]
pub struct SwimConfig {
    /// Protocol period: one probe per period, in milliseconds.
    pub protocol_period_ms: u64,
    /// How long to wait for a direct ack before asking helpers, in milliseconds.
    pub probe_timeout_ms: u64,
    /// Number of helpers asked to ping-req a silent member (k).
    pub indirect_probes: usize,
    /// Suspicion timeout multiplier alpha: min timeout = alpha * log10(n) * period.
    pub suspicion_mult: u64,
    /// Lifeguard: the max suspicion timeout is `suspicion_max_mult` times the minimum.
    pub suspicion_max_mult: u64,
    /// Dissemination multiplier lambda: each update is piggybacked lambda * log(n) times.
    pub retransmit_mult: u32,
    /// Largest datagram we send, in bytes (gossip is cut to fit).
    pub max_datagram_bytes: usize,
    /// Interval of the gossip tick that sends waiting news to a few members, in milliseconds.
    pub gossip_interval_ms: u64,
    /// Members each gossip tick sends to.
    pub gossip_fanout: usize,
    /// Interval of the periodic full state exchange (push-pull), in milliseconds.
    pub push_pull_interval_ms: u64,
    /// How often a node tries to re-join through dead members and introducers, in milliseconds.
    pub reconnect_interval_ms: u64,
    /// Lifeguard refinements (local health, dogpile, buddy system) on or off.
    pub lifeguard: bool,
    /// Upper bound of the local health multiplier (Lifeguard LHM saturation).
    pub max_local_health: u32,
    /// How long a dead or left member is remembered before it is forgotten, in milliseconds.
    pub dead_reclaim_ms: u64,
    /// A node started without introducers waits this long, in milliseconds, for
    /// members of an existing cluster that have it as their seed to contact it,
    /// before it serves as the first node of a new cluster (alone, or with
    /// the new nodes that joined through it meanwhile).
    pub first_node_wait_ms: u64,
    /// A member that announced it stopped (keeping its data and place) is
    /// declared dead after this long without coming back, in ms.
    pub stopped_timeout_ms: u64,
}

impl Default for SwimConfig {
    fn default() -> Self {
        SwimConfig {
            protocol_period_ms: 1000,
            probe_timeout_ms: 400,
            indirect_probes: 3,
            suspicion_mult: 2,
            suspicion_max_mult: 6,
            retransmit_mult: 4,
            max_datagram_bytes: 1400,
            gossip_interval_ms: 200,
            gossip_fanout: 3,
            push_pull_interval_ms: 30_000,
            reconnect_interval_ms: 10_000,
            lifeguard: true,
            max_local_health: 8,
            dead_reclaim_ms: 3_600_000,
            first_node_wait_ms: 2_000,
            stopped_timeout_ms: 3 * 3_600_000,
        }
    }
}

/// Replication factor and quorums (DESIGN section 5).
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicationConfig {
    /// Number of replicas of every key (N).
    pub n: usize,
    /// Read quorum (R).
    pub r: usize,
    /// Write quorum (W).
    pub w: usize,
    /// Accept R + W <= N (reads may then miss acknowledged writes).
    pub allow_weak_quorum: bool,
    /// How long a coordinator waits for replicas, in milliseconds.
    pub request_timeout_ms: u64,
    /// How long tombstones are kept before they may be collected, in milliseconds.
    pub tombstone_grace_ms: u64,
    /// A read asks R replicas first and the others when they have not all
    /// answered after this long, in milliseconds (speculative retry).
    pub speculative_retry_ms: u64,
    /// Versions more than this far ahead of a node's wall clock are refused by
    /// replicas and never observed by coordinators; a node whose clock is this far
    /// from most of its peers' refuses writes, in milliseconds.
    pub max_clock_offset_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            n: 3,
            r: 2,
            w: 2,
            allow_weak_quorum: false,
            request_timeout_ms: 2000,
            tombstone_grace_ms: 86_400_000,
            speculative_retry_ms: 100,
            max_clock_offset_ms: 500,
        }
    }
}

/// Stabilization: rebalancing, anti-entropy and hinted handoff (DESIGN section 6).
#[derive(Clone, Debug, PartialEq)]
pub struct StabilizeConfig {
    /// Keys per handoff batch.
    pub batch_keys: usize,
    /// Pause between handoff batches, in milliseconds (throttle).
    pub pause_ms: u64,
    /// Interval of anti-entropy rounds with a random peer, in milliseconds.
    pub anti_entropy_interval_ms: u64,
    /// Buckets of an anti-entropy digest.
    pub digest_buckets: u32,
    /// A ring transition not settled after this long is settled anyway, in milliseconds.
    pub transition_timeout_ms: u64,
    /// Hints (writes a replica missed) kept per node at most.
    pub max_hints: usize,
}

impl Default for StabilizeConfig {
    fn default() -> Self {
        StabilizeConfig {
            batch_keys: 512,
            pause_ms: 2,
            anti_entropy_interval_ms: 10_000,
            digest_buckets: 4096,
            transition_timeout_ms: 60_000,
            max_hints: 100_000,
        }
    }
}

/// When a replica's writes reach the disk (DESIGN section 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Acknowledge once the journal write is in the operating system; fsync every
    /// `sync_interval_ms` in the background.
    Periodic,
    /// Acknowledge only after an fsync that covers the write (group commit).
    Always,
    /// Acknowledge once the journal write is in the operating system; never fsync.
    None,
}

impl std::str::FromStr for SyncMode {
    type Err = String;
    fn from_str(s: &str) -> Result<SyncMode, String> {
        match s {
            "periodic" => Ok(SyncMode::Periodic),
            "always" => Ok(SyncMode::Always),
            "none" => Ok(SyncMode::None),
            other => Err(format!(
                "unknown sync mode {other:?} (periodic, always or none)"
            )),
        }
    }
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncMode::Periodic => "periodic",
            SyncMode::Always => "always",
            SyncMode::None => "none",
        })
    }
}

/// Where and how a node keeps its data (DESIGN section 9).
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// The data directory; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// When writes reach the disk.
    pub sync: SyncMode,
    /// Interval of background fsyncs under [`SyncMode::Periodic`], in ms.
    pub sync_interval_ms: u64,
    /// Block cache of the durable engine, in MiB.
    pub cache_mb: u64,
    /// Hints older than this are dropped unsent (anti-entropy repairs the rest),
    /// in ms; at most half the tombstone grace period.
    pub hint_window_ms: u64,
    /// SIGTERM and Ctrl-C leave the cluster (hand off, announce `left`) instead
    /// of stopping; in-memory nodes always leave.
    pub leave_on_terminate: bool,
}

impl StorageConfig {
    /// The default for a node on `http_port`: durable, in `data/<port>`.
    pub fn new(http_port: u16) -> StorageConfig {
        StorageConfig {
            data_dir: Some(PathBuf::from(format!("data/{http_port}"))),
            sync: SyncMode::Periodic,
            sync_interval_ms: 1000,
            cache_mb: 32,
            hint_window_ms: 3 * 3_600_000,
            leave_on_terminate: false,
        }
    }

    /// True when the data lives on disk.
    pub fn durable(&self) -> bool {
        self.data_dir.is_some()
    }
}

/// Size and concurrency limits; requests over them are refused with a clear error.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest key in bytes (after percent-decoding).
    pub max_key_bytes: usize,
    /// Largest value in bytes.
    pub max_value_bytes: usize,
    /// Largest peer RPC frame in bytes (must hold a value plus its envelope).
    pub max_frame_bytes: usize,
    /// Client requests in flight on this node before it answers 503 with Retry-After.
    pub max_inflight_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            max_frame_bytes: 4 * 1024 * 1024,
            max_inflight_requests: 4096,
        }
    }
}

/// Client TLS, bearer tokens and the cluster secret file (DESIGN section 11).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecurityConfig {
    /// PEM certificate chain of the client API (HTTPS when set with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Bearer tokens file: `<token> <role> [<key-prefix>]` per line.
    pub auth_tokens: Option<PathBuf>,
    /// Tokens are needed on `/health`, `/ready`, `/metrics` and `/` too.
    pub auth_everything: bool,
    /// File holding the comma-separated cluster secrets (re-read on SIGHUP).
    pub cluster_secret_file: Option<PathBuf>,
}

/// Everything a node needs to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Address the HTTP, UDP and peer listeners bind to.
    pub bind_host: String,
    /// Host other nodes use to reach this one.
    pub advertise_host: String,
    /// HTTP port; the SWIM UDP socket uses the same port number.
    pub http_port: u16,
    /// TCP port of the peer RPC listener (default: HTTP port + 10000).
    pub peer_port: u16,
    /// Peer RPC between nodes on this host over Unix sockets
    /// ([`local`](crate::transport::local)); TCP otherwise.
    pub peer_unix: bool,
    /// Introducers to join through (`host:port` of their HTTP/UDP port).
    pub introducers: Vec<String>,
    /// Cluster id: nodes only talk to nodes with the same id.
    pub cluster_id: String,
    /// Cluster secret: when set, every datagram and peer frame carries a MAC keyed
    /// by it, and anything without a valid MAC is refused.
    pub cluster_secret: Option<String>,
    /// Virtual nodes per member on the ring (V).
    pub vnodes: u32,
    /// HTTP worker threads.
    pub http_workers: usize,
    /// SWIM settings.
    pub swim: SwimConfig,
    /// Replication settings.
    pub replication: ReplicationConfig,
    /// Limits.
    pub limits: Limits,
    /// Stabilization settings.
    pub stabilize: StabilizeConfig,
    /// Storage settings.
    pub storage: StorageConfig,
    /// TLS, tokens and secret files.
    pub security: SecurityConfig,
}

/// The offset between the HTTP port and the default peer RPC port.
pub const PEER_PORT_OFFSET: u16 = 10_000;

impl Config {
    /// The default configuration of a node serving HTTP (and SWIM UDP) on `http_port`.
    pub fn new(http_port: u16) -> Config {
        Config {
            bind_host: "127.0.0.1".to_string(),
            advertise_host: "127.0.0.1".to_string(),
            http_port,
            peer_port: http_port.wrapping_add(PEER_PORT_OFFSET),
            peer_unix: true,
            introducers: Vec::new(),
            cluster_id: "swimkv".to_string(),
            cluster_secret: None,
            vnodes: 64,
            http_workers: 1,
            swim: SwimConfig::default(),
            replication: ReplicationConfig::default(),
            limits: Limits::default(),
            stabilize: StabilizeConfig::default(),
            storage: StorageConfig::new(http_port),
            security: SecurityConfig::default(),
        }
    }

    /// A fast single-node configuration for unit and service tests (N = R = W = 1).
    pub fn for_test() -> Config {
        let mut c = Config::new(18080);
        c.replication.n = 1;
        c.replication.r = 1;
        c.replication.w = 1;
        c.http_workers = 1;
        c.swim.first_node_wait_ms = 0;
        c.storage.data_dir = None;
        c
    }

    /// This node's member name: `advertise_host:http_port`.
    pub fn node_name(&self) -> String {
        format!("{}:{}", self.advertise_host, self.http_port)
    }

    /// This node's peer RPC address as other members derive it: `advertise_host:peer_port`.
    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.advertise_host, self.peer_port)
    }

    /// Refuses impossible settings with a one-line reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.replication;
        let bad = |m: String| Err(ConfigError(m));
        if r.n == 0 || r.r == 0 || r.w == 0 {
            return bad(format!(
                "N, R and W must be at least 1 (N={}, R={}, W={})",
                r.n, r.r, r.w
            ));
        }
        if r.r > r.n || r.w > r.n {
            return bad(format!(
                "R and W must not exceed N (N={}, R={}, W={})",
                r.n, r.r, r.w
            ));
        }
        if r.r + r.w <= r.n && !r.allow_weak_quorum {
            return bad(format!(
                "R + W must exceed N for reads to see acknowledged writes (N={}, R={}, W={}); pass --allow-weak-quorum to accept it",
                r.n, r.r, r.w
            ));
        }
        if 2 * r.w <= r.n && !r.allow_weak_quorum {
            return bad(format!(
                "2W must exceed N for a write acknowledged after another one to win (N={}, W={}); pass --allow-weak-quorum to accept it",
                r.n, r.w
            ));
        }
        if self.vnodes == 0 {
            return bad("virtual nodes per member must be at least 1".into());
        }
        let s = &self.swim;
        if s.protocol_period_ms == 0 || s.probe_timeout_ms == 0 {
            return bad("protocol period and probe timeout must be positive".into());
        }
        if s.gossip_interval_ms == 0 {
            return bad("gossip interval must be positive".into());
        }
        if s.probe_timeout_ms >= s.protocol_period_ms {
            return bad(format!(
                "probe timeout ({} ms) must be shorter than the protocol period ({} ms)",
                s.probe_timeout_ms, s.protocol_period_ms
            ));
        }
        if s.max_datagram_bytes < 512 || s.max_datagram_bytes > 65_000 {
            return bad(format!(
                "max datagram size must be within 512..=65000 bytes, not {}",
                s.max_datagram_bytes
            ));
        }
        if s.retransmit_mult == 0
            || s.suspicion_mult == 0
            || s.suspicion_max_mult == 0
            || s.max_local_health == 0
        {
            return bad("SWIM multipliers must be at least 1".into());
        }
        let l = &self.limits;
        if l.max_key_bytes == 0
            || l.max_value_bytes == 0
            || l.max_inflight_requests == 0
            || self.http_workers == 0
        {
            return bad("limits and worker counts must be at least 1".into());
        }
        if l.max_frame_bytes < l.max_value_bytes + l.max_key_bytes + 1024 {
            return bad(format!(
                "max frame size ({} bytes) must hold the largest value and key plus 1 KiB of envelope",
                l.max_frame_bytes
            ));
        }
        let st = &self.stabilize;
        if st.batch_keys == 0
            || st.digest_buckets == 0
            || st.anti_entropy_interval_ms == 0
            || st.transition_timeout_ms == 0
        {
            return bad(
                "stabilization batch size, digest buckets and intervals must be at least 1".into(),
            );
        }
        if self.storage.sync_interval_ms == 0 {
            return bad("sync interval must be positive".into());
        }
        if self
            .storage
            .data_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return bad("the data directory must not be empty (use --in-memory for none)".into());
        }
        if r.request_timeout_ms == 0 {
            return bad("request timeout must be positive".into());
        }
        if self.advertise_host.is_empty() {
            return bad(format!("bound to {}, but no address other hosts can reach was found (no route to the introducer, no default route): give one with --advertise", self.bind_host));
        }
        if self.http_port == 0 || self.peer_port == 0 {
            return bad("ports must be non-zero".into());
        }
        if self.peer_port == self.http_port {
            return bad("the peer port must differ from the HTTP port".into());
        }
        if let Some(Err(e)) = self
            .cluster_secret
            .as_deref()
            .map(crate::transport::wire::parse_secrets)
        {
            return bad(format!(
                "cluster secret: {e} (every secret of the list needs at least 8 bytes)"
            ));
        }
        let sec = &self.security;
        if sec.tls_cert.is_some() != sec.tls_key.is_some() {
            return bad("--tls-cert and --tls-key go together".into());
        }
        if sec.cluster_secret_file.is_some() && self.cluster_secret.is_some() {
            return bad("give the cluster secret or a cluster secret file, not both".into());
        }
        let peers_authenticated =
            self.cluster_secret.is_some() || sec.cluster_secret_file.is_some();
        if sec.auth_tokens.is_some() && !peers_authenticated {
            return bad("--auth-tokens needs --cluster-secret or --cluster-secret-file: without it the peer ports are an open back door to the data the tokens protect".into());
        }
        if sec.auth_everything && sec.auth_tokens.is_none() {
            return bad("--auth-everything needs --auth-tokens".into());
        }
        if self.cluster_id.is_empty() || self.cluster_id.len() > 64 {
            return bad("cluster id must be 1 to 64 bytes".into());
        }
        Ok(())
    }
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        assert_eq!(Config::new(8080).validate(), Ok(()));
        assert_eq!(Config::for_test().validate(), Ok(()));
    }

    #[test]
    fn quorums_larger_than_n_are_refused() {
        let mut c = Config::new(8080);
        c.replication.r = 4;
        assert!(c.validate().is_err());
        let mut c = Config::new(8080);
        c.replication.w = 4;
        assert!(c.validate().is_err());
    }

    #[test]
    fn weak_quorums_need_explicit_consent() {
        let mut c = Config::new(8080);
        c.replication.r = 1;
        c.replication.w = 1;
        let err = c.validate().expect_err("R+W<=N must be refused");
        assert!(err.0.contains("--allow-weak-quorum"), "{err}");
        c.replication.allow_weak_quorum = true;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn write_quorums_that_do_not_intersect_need_explicit_consent() {
        let mut c = Config::new(8080);
        c.replication.n = 4;
        c.replication.r = 3;
        c.replication.w = 2;
        let err = c.validate().expect_err("2W <= N must be refused");
        assert!(err.0.contains("2W must exceed N"), "{err}");
        c.replication.allow_weak_quorum = true;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn zero_vnodes_zero_limits_and_long_probe_timeouts_are_refused() {
        let mut c = Config::new(8080);
        c.vnodes = 0;
        assert!(c.validate().is_err());
        let mut c = Config::new(8080);
        c.limits.max_value_bytes = 0;
        assert!(c.validate().is_err());
        let mut c = Config::new(8080);
        c.swim.probe_timeout_ms = c.swim.protocol_period_ms;
        assert!(c.validate().is_err());
    }

    #[test]
    fn tokens_without_a_cluster_secret_and_short_secrets_are_refused() {
        let mut c = Config::new(8080);
        c.security.auth_tokens = Some("tokens".into());
        let err = c.validate().expect_err("tokens need peer authentication");
        assert!(err.0.contains("back door"), "{err}");
        c.cluster_secret = Some("aaaaaaaa,bbbbbbbb".into());
        assert_eq!(c.validate(), Ok(()));
        c.cluster_secret = Some("aaaaaaaa,short".into());
        assert!(c.validate().is_err());
        c.cluster_secret = None;
        c.security.cluster_secret_file = Some("secrets".into());
        assert_eq!(c.validate(), Ok(()));
        c.security.tls_cert = Some("cert.pem".into());
        assert!(c.validate().is_err(), "a certificate without its key");
    }

    #[test]
    fn the_peer_port_is_derived_from_the_http_port() {
        assert_eq!(Config::new(8080).peer_port, 18080);
    }
}
