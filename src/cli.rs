//! The command line: `swimkv <port> [<introducer>] [flags]` into a [`Config`].
//!
//! Every setting of the Config is a flag with its default shown in `--help` and an
//! environment variable `SWIMKV_*`. Invariant: the defaults here equal
//! `Config::new`'s (a unit test holds them together).

use crate::config::{Config, SyncMode, PEER_PORT_OFFSET};
use clap::Parser;

/// swimkv: a distributed key-value store (SWIM membership, consistent hashing, quorum replication).
#[derive(Parser, Debug, Clone)]
#[command(name = "swimkv", version, about, long_about = None)]
pub struct Cli {
    /// HTTP port of this node; SWIM uses UDP on the same port number.
    #[arg(env = "SWIMKV_PORT")]
    pub port: u16,
    /// Introducer to join through: a port on this host (8080) or host:port.
    #[arg(env = "SWIMKV_INTRODUCER")]
    pub introducer: Option<String>,
    /// More introducers (seeds), repeatable; joined with the positional one.
    #[arg(
        long = "introducer",
        id = "seeds",
        env = "SWIMKV_INTRODUCERS",
        value_delimiter = ','
    )]
    pub seeds: Vec<String>,
    /// Address to bind the HTTP, UDP and peer listeners to.
    #[arg(long, env = "SWIMKV_BIND", default_value = "127.0.0.1")]
    pub bind: String,
    /// Address or host name other nodes reach this node at [default: the bind address; when
    /// binding 0.0.0.0 or ::, the local address of the route to the introducer or of the default route].
    #[arg(long, env = "SWIMKV_ADVERTISE")]
    pub advertise: Option<String>,
    /// Peer RPC (TCP) port [default: HTTP port + 10000].
    #[arg(long, env = "SWIMKV_PEER_PORT")]
    pub peer_port: Option<u16>,
    /// Between nodes on this host (loopback addresses), peer RPC over a Unix socket instead
    /// of TCP (Linux: an abstract socket named after the peer address; TCP is the fallback).
    #[arg(long, env = "SWIMKV_PEER_UNIX", default_value_t = true, action = clap::ArgAction::Set)]
    pub peer_unix: bool,
    /// Cluster id: nodes only talk to nodes with the same id.
    #[arg(long, env = "SWIMKV_CLUSTER_ID", default_value = "swimkv")]
    pub cluster_id: String,
    /// Cluster secrets, comma-separated, each at least 8 bytes: authenticate every datagram and
    /// peer frame (sign with the first, accept any); give every node the same list.
    #[arg(long, env = "SWIMKV_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secrets, comma-separated (sign with the first, accept any); re-read on SIGHUP.
    #[arg(
        long,
        env = "SWIMKV_CLUSTER_SECRET_FILE",
        conflicts_with = "cluster_secret"
    )]
    pub cluster_secret_file: Option<std::path::PathBuf>,
    /// PEM certificate chain: serve the client API over HTTPS only (with --tls-key); re-read on SIGHUP.
    #[arg(long, env = "SWIMKV_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SWIMKV_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Bearer tokens file, `<token> <role> [<key-prefix>]` per line (roles read, write, admin);
    /// needs a cluster secret; re-read on SIGHUP.
    #[arg(long, env = "SWIMKV_AUTH_TOKENS")]
    pub auth_tokens: Option<std::path::PathBuf>,
    /// Need a token on /health, /ready, /metrics and / too.
    #[arg(long, env = "SWIMKV_AUTH_EVERYTHING", requires = "auth_tokens")]
    pub auth_everything: bool,
    /// Replication factor N.
    #[arg(
        short = 'n',
        long = "replicas",
        env = "SWIMKV_REPLICAS",
        default_value_t = 3
    )]
    pub n: usize,
    /// Read quorum R.
    #[arg(
        short = 'r',
        long = "read-quorum",
        env = "SWIMKV_READ_QUORUM",
        default_value_t = 2
    )]
    pub r: usize,
    /// Write quorum W.
    #[arg(
        short = 'w',
        long = "write-quorum",
        env = "SWIMKV_WRITE_QUORUM",
        default_value_t = 2
    )]
    pub w: usize,
    /// Accept R + W <= N (reads may miss acknowledged writes).
    #[arg(long, env = "SWIMKV_ALLOW_WEAK_QUORUM")]
    pub allow_weak_quorum: bool,
    /// How long a coordinator waits for replicas, in ms.
    #[arg(long, env = "SWIMKV_REQUEST_TIMEOUT_MS", default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// A read asks R replicas first and the rest after this long without all answers, in ms.
    #[arg(long, env = "SWIMKV_SPECULATIVE_RETRY_MS", default_value_t = 100)]
    pub speculative_retry_ms: u64,
    /// How long tombstones are kept before collection, in ms.
    #[arg(long, env = "SWIMKV_TOMBSTONE_GRACE_MS", default_value_t = 86_400_000)]
    pub tombstone_grace_ms: u64,
    /// Virtual nodes per member on the ring.
    #[arg(long, env = "SWIMKV_VNODES", default_value_t = 64)]
    pub vnodes: u32,
    /// HTTP worker threads. The node's actors (but SWIM) run on the first one;
    /// more workers parse HTTP in parallel but hand every request over to it.
    #[arg(long, env = "SWIMKV_HTTP_WORKERS", default_value_t = 1)]
    pub http_workers: usize,
    /// SWIM protocol period, in ms.
    #[arg(long, env = "SWIMKV_PROTOCOL_PERIOD_MS", default_value_t = 1000)]
    pub protocol_period_ms: u64,
    /// SWIM direct probe timeout, in ms.
    #[arg(long, env = "SWIMKV_PROBE_TIMEOUT_MS", default_value_t = 400)]
    pub probe_timeout_ms: u64,
    /// Helpers asked to ping-req a silent member (k).
    #[arg(long, env = "SWIMKV_INDIRECT_PROBES", default_value_t = 3)]
    pub indirect_probes: usize,
    /// Suspicion timeout multiplier: min timeout = mult * log10(n) * period.
    #[arg(long, env = "SWIMKV_SUSPICION_MULT", default_value_t = 2)]
    pub suspicion_mult: u64,
    /// Lifeguard: max suspicion timeout as a multiple of the minimum.
    #[arg(long, env = "SWIMKV_SUSPICION_MAX_MULT", default_value_t = 6)]
    pub suspicion_max_mult: u64,
    /// Gossip retransmit multiplier lambda: each update is sent lambda * log(n) times.
    #[arg(long, env = "SWIMKV_RETRANSMIT_MULT", default_value_t = 4)]
    pub retransmit_mult: u32,
    /// Largest SWIM datagram, in bytes.
    #[arg(long, env = "SWIMKV_MAX_DATAGRAM_BYTES", default_value_t = 1400)]
    pub max_datagram_bytes: usize,
    /// Gossip tick: waiting membership news goes to a few members this often, in ms.
    #[arg(long, env = "SWIMKV_GOSSIP_INTERVAL_MS", default_value_t = 200)]
    pub gossip_interval_ms: u64,
    /// Members each gossip tick sends to.
    #[arg(long, env = "SWIMKV_GOSSIP_FANOUT", default_value_t = 3)]
    pub gossip_fanout: usize,
    /// Full state exchange (push-pull) interval, in ms.
    #[arg(long, env = "SWIMKV_PUSH_PULL_INTERVAL_MS", default_value_t = 30_000)]
    pub push_pull_interval_ms: u64,
    /// Interval of re-joins and probes of dead members (partition healing), in ms.
    #[arg(long, env = "SWIMKV_RECONNECT_INTERVAL_MS", default_value_t = 10_000)]
    pub reconnect_interval_ms: u64,
    /// Lifeguard: upper bound of the local health multiplier.
    #[arg(long, env = "SWIMKV_MAX_LOCAL_HEALTH", default_value_t = 8)]
    pub max_local_health: u32,
    /// How long dead and left members are remembered, in ms.
    #[arg(long, env = "SWIMKV_DEAD_RECLAIM_MS", default_value_t = 3_600_000)]
    pub dead_reclaim_ms: u64,
    /// A node started without an introducer waits this long for members of an
    /// existing cluster that have it as a seed to contact it before it serves
    /// alone as the first node of a new cluster, in ms.
    #[arg(long, env = "SWIMKV_FIRST_NODE_WAIT_MS", default_value_t = 2_000)]
    pub first_node_wait_ms: u64,
    /// A member that stopped keeping its data and place on the ring (SIGTERM of a
    /// durable node) is declared dead after this long without coming back, in ms.
    #[arg(long, env = "SWIMKV_STOPPED_TIMEOUT_MS", default_value_t = 10_800_000)]
    pub stopped_timeout_ms: u64,
    /// Versions more than this far ahead of a node's clock are refused; a node
    /// whose clock is this far off most peers' refuses writes, in ms.
    #[arg(long, env = "SWIMKV_MAX_CLOCK_OFFSET_MS", default_value_t = 500)]
    pub max_clock_offset_ms: u64,
    /// Turn the Lifeguard refinements off (local health, dogpile, buddy system).
    #[arg(long, env = "SWIMKV_NO_LIFEGUARD")]
    pub no_lifeguard: bool,
    /// Keys per handoff batch when data moves after a ring change.
    #[arg(long, env = "SWIMKV_REBALANCE_BATCH", default_value_t = 512)]
    pub rebalance_batch: usize,
    /// Pause between handoff batches, in ms (throttle).
    #[arg(long, env = "SWIMKV_REBALANCE_PAUSE_MS", default_value_t = 2)]
    pub rebalance_pause_ms: u64,
    /// Interval of anti-entropy rounds with a random peer, in ms.
    #[arg(
        long,
        env = "SWIMKV_ANTI_ENTROPY_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub anti_entropy_interval_ms: u64,
    /// Buckets of an anti-entropy digest (rounded down to a power of two, at most 65536).
    #[arg(long, env = "SWIMKV_DIGEST_BUCKETS", default_value_t = 4096)]
    pub digest_buckets: u32,
    /// A ring transition not settled after this long is settled anyway, in ms.
    #[arg(long, env = "SWIMKV_TRANSITION_TIMEOUT_MS", default_value_t = 60_000)]
    pub transition_timeout_ms: u64,
    /// Hints (writes a down replica missed) kept at most.
    #[arg(long, env = "SWIMKV_MAX_HINTS", default_value_t = 100_000)]
    pub max_hints: usize,
    /// Data directory of this node [default: data/<port>, relative to the working directory].
    #[arg(long, env = "SWIMKV_DATA_DIR", conflicts_with = "in_memory")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Keep the data in memory only: a restart comes back empty (and SIGTERM leaves the cluster).
    #[arg(long, env = "SWIMKV_IN_MEMORY")]
    pub in_memory: bool,
    /// When writes reach the disk: periodic (acknowledged once in the OS, fsync every
    /// --sync-interval-ms), always (acknowledged after an fsync covering them), none (never fsync).
    #[arg(long, env = "SWIMKV_SYNC", default_value = "periodic", value_parser = ["periodic", "always", "none"])]
    pub sync: String,
    /// Interval of background fsyncs under --sync periodic, in ms.
    #[arg(long, env = "SWIMKV_SYNC_INTERVAL_MS", default_value_t = 1000)]
    pub sync_interval_ms: u64,
    /// Block cache of the storage engine, in MiB.
    #[arg(long, env = "SWIMKV_CACHE_MB", default_value_t = 32)]
    pub cache_mb: u64,
    /// Hints (writes a down replica missed) older than this are dropped unsent, in ms
    /// (at most half the tombstone grace period; anti-entropy repairs the rest).
    #[arg(long, env = "SWIMKV_HINT_WINDOW_MS", default_value_t = 10_800_000)]
    pub hint_window_ms: u64,
    /// SIGTERM and Ctrl-C leave the cluster for good (hand every key off, announce
    /// left) instead of stopping with the data kept; in-memory nodes always leave.
    #[arg(long, env = "SWIMKV_LEAVE_ON_TERMINATE")]
    pub leave_on_terminate: bool,
    /// Largest key, in bytes.
    #[arg(long, env = "SWIMKV_MAX_KEY_BYTES", default_value_t = 1024)]
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    #[arg(long, env = "SWIMKV_MAX_VALUE_BYTES", default_value_t = 1_048_576)]
    pub max_value_bytes: usize,
    /// Largest peer RPC frame, in bytes.
    #[arg(long, env = "SWIMKV_MAX_FRAME_BYTES", default_value_t = 4_194_304)]
    pub max_frame_bytes: usize,
    /// Client requests in flight before answering 503 with Retry-After.
    #[arg(long, env = "SWIMKV_MAX_INFLIGHT", default_value_t = 4096)]
    pub max_inflight: usize,
}

/// `8080` means `127.0.0.1:8080`; anything else is taken as `host:port`.
pub fn introducer_addr(s: &str) -> String {
    match s.parse::<u16>() {
        Ok(port) => format!("127.0.0.1:{port}"),
        Err(_) => s.to_string(),
    }
}

impl Cli {
    /// The configuration these flags describe (not yet validated).
    pub fn into_config(self) -> Config {
        let mut c = Config::new(self.port);
        c.introducers = self
            .introducer
            .iter()
            .chain(self.seeds.iter())
            .map(|i| introducer_addr(i.trim()))
            .filter(|i| !i.is_empty())
            .collect();
        // An empty advertise host is refused by `Config::validate` with the reason.
        c.advertise_host = match &self.advertise {
            Some(a) => a.clone(),
            None => crate::advertise::advertise_for(&self.bind, &c.introducers).unwrap_or_default(),
        };
        c.bind_host = self.bind;
        c.peer_port = self
            .peer_port
            .unwrap_or_else(|| self.port.checked_add(PEER_PORT_OFFSET).unwrap_or(0));
        c.peer_unix = self.peer_unix;
        c.cluster_id = self.cluster_id;
        c.cluster_secret = self.cluster_secret;
        c.security = crate::config::SecurityConfig {
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            auth_tokens: self.auth_tokens,
            auth_everything: self.auth_everything,
            cluster_secret_file: self.cluster_secret_file,
        };
        c.vnodes = self.vnodes;
        c.http_workers = self.http_workers;
        let r = &mut c.replication;
        r.n = self.n;
        r.r = self.r;
        r.w = self.w;
        r.allow_weak_quorum = self.allow_weak_quorum;
        r.request_timeout_ms = self.request_timeout_ms;
        r.tombstone_grace_ms = self.tombstone_grace_ms;
        r.speculative_retry_ms = self.speculative_retry_ms;
        let s = &mut c.swim;
        s.protocol_period_ms = self.protocol_period_ms;
        s.probe_timeout_ms = self.probe_timeout_ms;
        s.indirect_probes = self.indirect_probes;
        s.suspicion_mult = self.suspicion_mult;
        s.suspicion_max_mult = self.suspicion_max_mult;
        s.retransmit_mult = self.retransmit_mult;
        s.max_datagram_bytes = self.max_datagram_bytes;
        s.push_pull_interval_ms = self.push_pull_interval_ms;
        s.gossip_interval_ms = self.gossip_interval_ms;
        s.gossip_fanout = self.gossip_fanout;
        s.reconnect_interval_ms = self.reconnect_interval_ms;
        s.lifeguard = !self.no_lifeguard;
        s.max_local_health = self.max_local_health;
        s.dead_reclaim_ms = self.dead_reclaim_ms;
        s.first_node_wait_ms = self.first_node_wait_ms;
        s.stopped_timeout_ms = self.stopped_timeout_ms;
        c.replication.max_clock_offset_ms = self.max_clock_offset_ms;
        let st = &mut c.stabilize;
        st.batch_keys = self.rebalance_batch;
        st.pause_ms = self.rebalance_pause_ms;
        st.anti_entropy_interval_ms = self.anti_entropy_interval_ms;
        st.digest_buckets = self.digest_buckets;
        st.transition_timeout_ms = self.transition_timeout_ms;
        st.max_hints = self.max_hints;
        let so = &mut c.storage;
        if self.in_memory {
            so.data_dir = None;
        } else if let Some(dir) = self.data_dir {
            so.data_dir = Some(dir);
        }
        so.sync = self.sync.parse().unwrap_or(SyncMode::Periodic);
        so.sync_interval_ms = self.sync_interval_ms;
        so.cache_mb = self.cache_mb;
        so.hint_window_ms = self.hint_window_ms;
        so.leave_on_terminate = self.leave_on_terminate;
        let l = &mut c.limits;
        l.max_key_bytes = self.max_key_bytes;
        l.max_value_bytes = self.max_value_bytes;
        l.max_frame_bytes = self.max_frame_bytes;
        l.max_inflight_requests = self.max_inflight;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Cli::try_parse_from(std::iter::once("swimkv").chain(args.iter().copied()))
            .expect("valid arguments")
            .into_config()
    }

    #[test]
    fn flag_defaults_equal_the_config_defaults() {
        assert_eq!(parse(&["8080"]), Config::new(8080));
    }

    #[test]
    fn an_introducer_is_a_port_or_host_and_port() {
        assert_eq!(parse(&["8081", "8080"]).introducers, ["127.0.0.1:8080"]);
        assert_eq!(
            parse(&["8081", "10.0.0.1:9000"]).introducers,
            ["10.0.0.1:9000"]
        );
    }

    #[test]
    fn introducers_may_be_repeated_beside_the_positional_one() {
        let c = parse(&[
            "8082",
            "8080",
            "--introducer",
            "8081",
            "--introducer",
            "h:1",
        ]);
        assert_eq!(c.introducers, ["127.0.0.1:8080", "127.0.0.1:8081", "h:1"]);
        assert_eq!(
            parse(&["8082", "--introducer", "8081"]).introducers,
            ["127.0.0.1:8081"]
        );
    }

    #[test]
    fn a_wildcard_bind_never_advertises_loopback() {
        let c = parse(&["8080", "--bind", "0.0.0.0", "--advertise", "node1"]);
        assert_eq!(c.node_name(), "node1:8080");
        let c = parse(&["8080", "--bind", "0.0.0.0"]);
        let ip: Option<std::net::IpAddr> = c.advertise_host.parse().ok();
        assert!(
            ip.is_none_or(|ip| !ip.is_loopback()),
            "{}",
            c.advertise_host
        );
    }

    #[test]
    fn flags_reach_the_config() {
        let c = parse(&[
            "8080",
            "-n",
            "5",
            "-r",
            "3",
            "-w",
            "3",
            "--vnodes",
            "8",
            "--no-lifeguard",
            "--peer-port",
            "9999",
        ]);
        assert_eq!(
            (c.replication.n, c.replication.r, c.replication.w, c.vnodes),
            (5, 3, 3, 8)
        );
        assert!(!c.swim.lifeguard);
        assert_eq!(c.peer_port, 9999);
    }

    #[test]
    fn storage_flags_reach_the_config() {
        let c = parse(&["8080", "--sync", "always", "--data-dir", "/tmp/x"]);
        assert_eq!(c.storage.sync, SyncMode::Always);
        assert_eq!(
            c.storage.data_dir.as_deref(),
            Some(std::path::Path::new("/tmp/x"))
        );
        assert_eq!(parse(&["8080", "--in-memory"]).storage.data_dir, None);
        assert_eq!(
            parse(&["8080"]).storage.data_dir.as_deref(),
            Some(std::path::Path::new("data/8080"))
        );
        assert!(Cli::try_parse_from(["swimkv", "1", "--sync", "sometimes"]).is_err());
        assert!(Cli::try_parse_from(["swimkv", "1", "--in-memory", "--data-dir", "d"]).is_err());
    }

    #[test]
    fn a_port_without_room_for_the_peer_offset_gets_an_invalid_peer_port() {
        assert!(parse(&["60000"]).validate().is_err());
    }
}
