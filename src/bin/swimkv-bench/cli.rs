//! Command line: the clap flags (`Cli`), duration parsing, and their validation into the
//! immutable run [`Config`].
//!
//! Invariants: a `Config` only exists validated — at least one resolved target, one
//! connection, one thread (never more threads than connections), one key, a positive
//! timeout, a value size of at most [`MAX_VALUE_SIZE`], an op mix summing to 100, a
//! `--rate` (when given) positive and at most one operation per µs per connection, and
//! exactly one stop condition (`duration` is `None` only when `--ops` is set). The flag
//! doc comments are the `--help` text, so editing them changes the CLI. Errors are
//! one-line messages; `parse_cli` prints them with exit status 2.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::workload::{OpMix, Zipf};

/// Key distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian over key ranks (rank 0 = `<prefix>0` is the hottest), skew `--zipf-s`.
    Zipf,
}

/// Load generator for swimkv's `/d/<key>` HTTP API: closed-loop, or open-loop with `--rate`.
#[derive(Debug, Parser)]
#[command(name = "swimkv-bench", version)]
pub(crate) struct Cli {
    /// Comma-separated `host:port` list; connections are spread over them round-robin.
    #[arg(
        long,
        env = "SWIMKV_BENCH_TARGETS",
        value_delimiter = ',',
        required = true
    )]
    targets: Vec<String>,

    /// Number of concurrent keep-alive connections (one closed-loop task each).
    #[arg(long, default_value_t = 64)]
    connections: usize,

    /// Length of the measured phase, e.g. `10s`, `500ms`, `2m` [default: 10s].
    #[arg(long, value_parser = parse_duration, conflicts_with = "ops")]
    duration: Option<Duration>,

    /// Measure exactly this many operations instead of a fixed duration.
    #[arg(long)]
    ops: Option<u64>,

    /// Percent of GETs. If no percentage is given the mix is 90/10/0; if some are
    /// given, the others default to 0. The three must sum to 100.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    get: Option<u32>,

    /// Percent of puts (sent as `POST /d/<key>` with a `--value-size` body).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    put: Option<u32>,

    /// Percent of DELETEs.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    delete: Option<u32>,

    /// Number of distinct keys: `<key-prefix>0` .. `<key-prefix><keys-1>`.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,

    /// How keys are drawn.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,

    /// Zipf skew θ, in (0, 1) (YCSB's default is 0.99).
    #[arg(long, default_value_t = 0.99)]
    zipf_s: f64,

    /// Size in bytes of the values written by puts and the preload.
    #[arg(long, default_value_t = 64)]
    value_size: usize,

    /// Write every key once before measuring (not counted in the results).
    #[arg(long)]
    preload: bool,

    /// Run the workload this long, unrecorded, before measuring (`0s` to skip).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    warmup: Duration,

    /// Print one JSON object of results on stdout instead of the table.
    #[arg(long)]
    json: bool,

    /// RNG seed; connection i uses a seed derived from (seed, i).
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Print one progress line per second on stderr.
    #[arg(long)]
    progress: bool,

    /// Prefix of every key (percent-encoded in the URL where needed).
    #[arg(long, default_value = "bench-")]
    key_prefix: String,

    /// OS threads, each running a current-thread runtime with a share of the connections.
    #[arg(long, default_value_t = 1)]
    threads: usize,

    /// Per-request timeout, covering connect, send and the whole response.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    timeout: Duration,

    /// Send each request to a replica of its key (learned from the first target's
    /// `GET /cluster/ring`): a connection to a node draws only keys that node holds.
    /// Uniform keys only; swimkv clusters only.
    #[arg(long)]
    token_aware: bool,

    /// Bearer token sent on every request (`Authorization: Bearer <token>`).
    #[arg(long, env = "SWIMKV_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Speak HTTPS to the targets (rustls); needs --cacert or --insecure.
    #[arg(long)]
    tls: bool,

    /// PEM certificate(s) to trust with --tls (a CA, or the server's self-signed certificate).
    #[arg(long, requires = "tls")]
    cacert: Option<std::path::PathBuf>,

    /// With --tls, accept any server certificate (self-signed test setups only).
    #[arg(long, requires = "tls")]
    insecure: bool,

    /// Open loop: send this many operations per second in total, shared evenly by the
    /// connections, on a fixed schedule (a connection that falls behind sends at once
    /// and catches up; each still has one request in flight at most). Latency counts
    /// from a request's due time when the server held it up.
    #[arg(long)]
    rate: Option<f64>,

    /// Comma-separated PIDs of the server processes: report their CPU time during
    /// the measured phase, and per operation (Linux: read from /proc).
    #[arg(long, value_delimiter = ',')]
    cpu_pids: Vec<u32>,
}

/// Parses `10s`, `1.5s`, `500ms`, `2m`, `100us`, `1h`; a bare number means seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (examples: 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("invalid duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Resolved targets with the text used for the `Host` header.
    pub(crate) targets: Vec<(SocketAddr, String)>,
    pub(crate) connections: usize,
    pub(crate) threads: usize,
    /// `None` means run `--ops` operations.
    pub(crate) duration: Option<Duration>,
    pub(crate) ops: Option<u64>,
    pub(crate) mix: OpMix,
    pub(crate) keys: u64,
    pub(crate) distribution: Distribution,
    pub(crate) zipf: Option<Zipf>,
    pub(crate) zipf_s: f64,
    pub(crate) value_size: usize,
    pub(crate) preload: bool,
    pub(crate) warmup: Duration,
    pub(crate) json: bool,
    pub(crate) seed: u64,
    pub(crate) progress: bool,
    /// Key prefix already percent-encoded for the request path.
    pub(crate) path_prefix: String,
    pub(crate) key_prefix: String,
    pub(crate) timeout: Duration,
    /// `--token-aware`: ask the cluster for its ring before the run.
    pub(crate) token_aware: bool,
    /// With `--token-aware`, per target the keys it holds (filled in before the run).
    pub(crate) key_subsets: Option<Vec<std::sync::Arc<Vec<u64>>>>,
    /// Server processes whose CPU time the measured phase reports.
    pub(crate) cpu_pids: Vec<u32>,
    /// `--rate`: operations per second in total (open loop); `None`: closed loop.
    pub(crate) rate: Option<f64>,
    /// TLS and token.
    pub(crate) secure: crate::tls::Secure,
    /// The bearer token, for `--token-aware`'s ring request.
    pub(crate) token: Option<String>,
}

/// Largest accepted `--value-size` (64 MiB).
const MAX_VALUE_SIZE: usize = 64 << 20;

/// Characters kept verbatim in the key prefix; everything else is percent-encoded.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl Config {
    /// Validates the parsed flags; the error is a one-line message.
    pub(crate) fn from_cli(cli: Cli) -> Result<Self, String> {
        let mix = OpMix::from_flags(cli.get, cli.put, cli.delete)?;
        if cli.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if cli.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if cli.keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        if cli.value_size > MAX_VALUE_SIZE {
            return Err(format!("--value-size must be at most {MAX_VALUE_SIZE}"));
        }
        if cli.timeout.is_zero() {
            return Err("--timeout must be positive".into());
        }
        if let Some(rate) = cli.rate {
            // At most one request per microsecond per connection: a schedule finer than
            // that is no schedule.
            let most = cli.connections as f64 * 1e6;
            if !(rate.is_finite() && rate > 0.0 && rate <= most) {
                return Err(format!(
                    "--rate must be a positive number of operations per second, at most {most} for {} connections",
                    cli.connections
                ));
            }
        }
        if cli.ops == Some(0) {
            return Err("--ops must be at least 1".into());
        }
        let duration = match (cli.duration, cli.ops) {
            (Some(d), _) if d.is_zero() => return Err("--duration must be positive".into()),
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        };
        if cli.token_aware && cli.distribution != Distribution::Uniform {
            return Err("--token-aware draws keys uniformly: drop --distribution zipf".into());
        }
        let zipf = match cli.distribution {
            Distribution::Uniform => None,
            Distribution::Zipf => Some(Zipf::new(cli.keys, cli.zipf_s)?),
        };
        let mut targets = Vec::new();
        for raw in &cli.targets {
            let host = raw
                .trim()
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string();
            if host.is_empty() {
                continue;
            }
            let addr = host
                .to_socket_addrs()
                .map_err(|e| format!("bad target {raw:?}: {e}"))?
                .next()
                .ok_or_else(|| format!("bad target {raw:?}: no address"))?;
            targets.push((addr, host));
        }
        if targets.is_empty() {
            return Err("--targets needs at least one host:port".into());
        }
        if cli.token_aware && cli.tls {
            return Err("--token-aware reads the ring over plain HTTP: drop --tls".into());
        }
        let secure = crate::tls::Secure::new(
            cli.tls,
            cli.cacert.as_deref(),
            cli.insecure,
            cli.token.as_deref(),
        )?;
        let path_prefix =
            percent_encoding::utf8_percent_encode(&cli.key_prefix, KEY_ENCODE).to_string();
        Ok(Config {
            targets,
            threads: cli.threads.min(cli.connections),
            connections: cli.connections,
            duration,
            ops: cli.ops,
            mix,
            keys: cli.keys,
            distribution: cli.distribution,
            zipf,
            zipf_s: cli.zipf_s,
            value_size: cli.value_size,
            preload: cli.preload,
            warmup: cli.warmup,
            json: cli.json,
            seed: cli.seed,
            progress: cli.progress,
            path_prefix,
            key_prefix: cli.key_prefix,
            timeout: cli.timeout,
            token_aware: cli.token_aware,
            key_subsets: None,
            cpu_pids: cli.cpu_pids,
            rate: cli.rate,
            secure,
            token: cli.token,
        })
    }
}

/// Parses the command line; prints help/version (exit 0) or a one-line error (exit 2).
pub(crate) fn parse_cli() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(err) => {
            use clap::error::ErrorKind as K;
            if matches!(err.kind(), K::DisplayHelp | K::DisplayVersion) {
                // Help and version go to stdout; nothing useful to do if that fails.
                let _ = err.print();
                return Err(ExitCode::SUCCESS);
            }
            let rendered = err.to_string();
            let message = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("swimkv-bench: {message} (see --help)");
            Err(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::{parse_duration, Cli, Config};
    use crate::http::Client;
    use crate::workload::Op;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn rate_must_be_a_positive_finite_number_of_operations_per_second() {
        let cfg = |rate: &str| {
            let cli = Cli::try_parse_from([
                "swimkv-bench",
                "--targets",
                "127.0.0.1:1",
                "--connections",
                "2",
                &format!("--rate={rate}"),
            ])
            .expect("flags parse");
            Config::from_cli(cli)
        };
        assert_eq!(cfg("1500").expect("valid").rate, Some(1500.0));
        for bad in ["0", "-5", "inf", "NaN", "3000000"] {
            assert!(cfg(bad).is_err(), "--rate {bad} accepted");
        }
    }

    #[test]
    fn cli_rejects_bad_mix_and_builds_requests() {
        let cli = Cli::try_parse_from([
            "swimkv-bench",
            "--targets",
            "127.0.0.1:1",
            "--get",
            "90",
            "--put",
            "20",
        ])
        .expect("flags parse");
        assert!(Config::from_cli(cli).is_err());
        let cli = Cli::try_parse_from([
            "swimkv-bench",
            "--targets",
            "127.0.0.1:1",
            "--key-prefix",
            "a b/",
        ])
        .expect("flags parse");
        let cfg = Config::from_cli(cli).expect("valid");
        assert_eq!(cfg.path_prefix, "a%20b%2F");
        let (addr, host) = cfg.targets[0].clone();
        let mut client = Client::new(addr, host, cfg.path_prefix, cfg.timeout);
        client.build_request(Op::Put, 42, b"xyz");
        assert_eq!(
            client.request(),
            b"POST /d/a%20b%2F42 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\
              Content-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nxyz"
        );
    }
}
