//! `swimkv-bench`: a closed-loop HTTP load generator for swimkv's client API.
//!
//! It opens `--connections` keep-alive HTTP/1.1 connections, spread round-robin over
//! `--targets`, and on each one issues `GET`, `POST` ("put") and `DELETE` requests on
//! `/d/<key-prefix><n>` back to back (the next request leaves as soon as the previous
//! answer arrives). Keys are drawn uniformly or from a Zipfian distribution
//! (the YCSB / Gray et al. generator, rank 0 the hottest key), with a per-connection
//! seeded RNG so a run's request sequence is reproducible.
//!
//! A run has up to four phases:
//!
//! 1. **preload** (`--preload`): every key is written once, spread over all connections;
//!    not measured, summarised separately;
//! 2. **warmup** (`--warmup`, default 1 s): the workload runs but nothing is recorded;
//! 3. **measure**: for `--duration` (default 10 s) or until `--ops` operations are done.
//!    An operation counts when it both starts and completes inside this phase;
//! 4. **report**: throughput (completed successful + failed operations per second of the
//!    measured phase), errors by HTTP status and by transport error kind, reconnections,
//!    per-operation-type counts and latency percentiles (p50, p90, p99, p99.9, max) as a
//!    table, or as one JSON object with `--json`.
//!
//! Latency is recorded for every operation that got an HTTP response (whatever its
//! status) into a log-bucketed histogram accurate to better than 0.5 %; transport
//! failures (refused, reset, timeout, ...) are counted but have no latency.
//!
//! The HTTP client is a deliberately small HTTP/1.1 keep-alive client written here on top
//! of tokio's `TcpStream`: one reusable request buffer, one `write_all`, an incremental
//! response parser (status line, headers, `Content-Length`, `Transfer-Encoding: chunked`,
//! or read-to-close). A general-purpose client (pools, header maps, redirect logic,
//! per-request allocations) would add client-side overhead that distorts the very
//! numbers this tool measures, especially when the bench shares a 2-core machine with the
//! system under test.
//!
//! Threads: `--threads N` (default 1, so the bench takes one of two cores) starts N OS
//! threads, each running a current-thread tokio runtime with a contiguous share of the
//! connections; a small current-thread runtime on the main thread orchestrates phases,
//! progress lines (`--progress`) and Ctrl-C (which ends the run and reports what was
//! measured).
//!
//! Exit status: 0 when the run completed (request errors are reported, not fatal),
//! 1 when the bench itself could not run, 2 for bad arguments (one-line message).
//!
//! ```text
//! swimkv-bench --targets 127.0.0.1:8080,127.0.0.1:8081 --connections 64 --duration 10s \
//!     --get 90 --put 10 --keys 10000 --distribution zipf --preload --json
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use rand::distributions::Alphanumeric;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

/// Key distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian over key ranks (rank 0 = `<prefix>0` is the hottest), skew `--zipf-s`.
    Zipf,
}

/// Closed-loop load generator for swimkv's `/d/<key>` HTTP API.
#[derive(Debug, Parser)]
#[command(name = "swimkv-bench", version)]
struct Cli {
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

/// The three operation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get = 0,
    Put = 1,
    Delete = 2,
}

impl Op {
    /// All operation types, in report order.
    const ALL: [Op; 3] = [Op::Get, Op::Put, Op::Delete];

    /// Name used in reports.
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Delete => "delete",
        }
    }
}

/// Operation mix in percent; always sums to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpMix {
    get: u32,
    put: u32,
    delete: u32,
}

impl OpMix {
    /// Builds a mix from the optional `--get/--put/--delete` flags: none given means
    /// 90/10/0, otherwise missing ones are 0; rejects any mix not summing to 100.
    fn from_flags(get: Option<u32>, put: Option<u32>, delete: Option<u32>) -> Result<Self, String> {
        let mix = if get.is_none() && put.is_none() && delete.is_none() {
            OpMix {
                get: 90,
                put: 10,
                delete: 0,
            }
        } else {
            OpMix {
                get: get.unwrap_or(0),
                put: put.unwrap_or(0),
                delete: delete.unwrap_or(0),
            }
        };
        let sum = u64::from(mix.get) + u64::from(mix.put) + u64::from(mix.delete);
        if sum != 100 {
            return Err(format!(
                "--get {} --put {} --delete {} sums to {sum}, must be 100",
                mix.get, mix.put, mix.delete
            ));
        }
        Ok(mix)
    }

    /// Maps a uniform draw in `0..100` to an operation.
    fn pick(&self, draw: u32) -> Op {
        if draw < self.get {
            Op::Get
        } else if draw < self.get + self.put {
            Op::Put
        } else {
            Op::Delete
        }
    }
}

/// Validated run configuration.
#[derive(Debug, Clone)]
struct Config {
    /// Resolved targets with the text used for the `Host` header.
    targets: Vec<(SocketAddr, String)>,
    connections: usize,
    threads: usize,
    /// `None` means run `--ops` operations.
    duration: Option<Duration>,
    ops: Option<u64>,
    mix: OpMix,
    keys: u64,
    distribution: Distribution,
    zipf: Option<Zipf>,
    zipf_s: f64,
    value_size: usize,
    preload: bool,
    warmup: Duration,
    json: bool,
    seed: u64,
    progress: bool,
    /// Key prefix already percent-encoded for the request path.
    path_prefix: String,
    key_prefix: String,
    timeout: Duration,
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
    fn from_cli(cli: Cli) -> Result<Self, String> {
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
        if cli.ops == Some(0) {
            return Err("--ops must be at least 1".into());
        }
        let duration = match (cli.duration, cli.ops) {
            (Some(d), _) if d.is_zero() => return Err("--duration must be positive".into()),
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        };
        let zipf = match cli.distribution {
            Distribution::Uniform => None,
            Distribution::Zipf => Some(Zipf::new(cli.keys, cli.zipf_s)?),
        };
        let mut targets = Vec::new();
        for raw in &cli.targets {
            let host = raw
                .trim()
                .trim_start_matches("http://")
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
        })
    }
}

/// Parses the command line; prints help/version (exit 0) or a one-line error (exit 2).
fn parse_cli() -> Result<Cli, ExitCode> {
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

// ---------------------------------------------------------------------------------------
// Key distributions
// ---------------------------------------------------------------------------------------

/// Zipfian generator over ranks `0..n` (Gray et al., "Quickly generating billion-record
/// synthetic databases", SIGMOD 1994; the `ZipfianGenerator` of YCSB). Rank 0 is the most
/// frequent; P(rank i) ∝ 1 / (i + 1)^θ. The O(n) zeta sum is computed once and the struct
/// is `Copy`, so every connection shares it and only owns its RNG.
#[derive(Debug, Clone, Copy)]
struct Zipf {
    n: u64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// `1 + 0.5^θ`: the draw threshold below which rank 1 is returned.
    two_threshold: f64,
}

impl Zipf {
    /// Precomputes the constants for `n` items with skew `theta` in (0, 1).
    fn new(n: u64, theta: f64) -> Result<Self, String> {
        if n == 0 {
            return Err("zipf needs at least one key".into());
        }
        if !(theta > 0.0 && theta < 1.0) {
            return Err(format!(
                "--zipf-s must be strictly between 0 and 1 (got {theta})"
            ));
        }
        let zetan = zeta(n, theta);
        let zeta2 = 1.0 + 0.5f64.powf(theta);
        let eta = if n > 2 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            0.0
        };
        Ok(Zipf {
            n,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            two_threshold: zeta2,
        })
    }

    /// Draws one rank in `0..n`.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.two_threshold {
            return 1.min(self.n - 1);
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// ζ(n, θ) = Σ_{i=1..n} 1 / i^θ.
fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| (i as f64).powf(-theta)).sum()
}

/// SplitMix64 finaliser, used to derive independent per-connection seeds.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The per-connection request generator: op mix, key distribution and its RNG.
struct Workload {
    rng: SmallRng,
    mix: OpMix,
    keys: u64,
    zipf: Option<Zipf>,
}

impl Workload {
    /// Next operation and key index.
    fn next(&mut self) -> (Op, u64) {
        let op = self.mix.pick(self.rng.gen_range(0..100));
        let key = match &self.zipf {
            Some(z) => z.sample(&mut self.rng),
            None => self.rng.gen_range(0..self.keys),
        };
        (op, key)
    }
}

// ---------------------------------------------------------------------------------------
// Latency histogram
// ---------------------------------------------------------------------------------------

/// Bits of linear sub-buckets per power of two: values below 2^8 µs are exact, above that
/// a bucket spans at most 1/128 of its value and is reported by its midpoint (≤ 0.4 %).
const SUB_BITS: u32 = 8;
const SUB: u64 = 1 << SUB_BITS;
const HALF: u64 = SUB / 2;
/// Values are clamped to 2^40 - 1 µs (about 12 days).
const MAX_TRACKED: u64 = (1 << 40) - 1;
const BUCKETS: usize = bucket_index(MAX_TRACKED) + 1;

/// Bucket of a value (µs).
const fn bucket_index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = v.ilog2();
    let shift = msb - (SUB_BITS - 1);
    let mantissa = v >> shift; // in [HALF, SUB)
    (SUB + (shift as u64 - 1) * HALF + (mantissa - HALF)) as usize
}

/// Smallest and largest value falling in bucket `i`.
fn bucket_bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, i);
    }
    let j = i - SUB;
    let shift = j / HALF + 1;
    let low = (j % HALF + HALF) << shift;
    (low, low + (1 << shift) - 1)
}

/// HDR-style log-bucketed latency histogram in microseconds.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    min: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            min: u64::MAX,
        }
    }
}

/// The percentiles every report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Percentiles {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Histogram {
    /// Records one value (µs).
    fn record(&mut self, micros: u64) {
        let v = micros.min(MAX_TRACKED);
        if let Some(c) = self.counts.get_mut(bucket_index(v)) {
            *c += 1;
        }
        self.total += 1;
        self.max = self.max.max(v);
        self.min = self.min.min(v);
    }

    /// Adds every value of `other`.
    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
    }

    /// Value at percentile `p` (0..=100): the smallest recorded value v such that at least
    /// p % of the values are ≤ v, up to bucket precision. 0 when empty.
    fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = bucket_bounds(i);
                return (low + (high - low) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// p50, p90, p99, p99.9 and max.
    fn percentiles(&self) -> Percentiles {
        Percentiles {
            p50: self.percentile(50.0),
            p90: self.percentile(90.0),
            p99: self.percentile(99.0),
            p999: self.percentile(99.9),
            max: self.max,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client
// ---------------------------------------------------------------------------------------

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 256 << 20;
/// Minimum free space offered to each socket read.
const READ_CHUNK: usize = 16 * 1024;

/// Framing of one complete response found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ResponseMeta {
    /// HTTP status code (after any skipped `1xx` interim responses).
    status: u16,
    /// Whether the connection may carry another request afterwards.
    keep_alive: bool,
    /// Bytes of the buffer occupied by this response (interim responses included).
    consumed: usize,
}

/// A malformed or unsupported response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProtocolError(String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shorthand for a protocol error result.
fn proto<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// Strips one trailing `\r`.
fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Index of the next `\n` at or after `from`.
fn find_lf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i)
}

/// Length of the response head (status line + headers + blank line), if complete.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    while let Some(lf) = find_lf(buf, line_start) {
        if line_start != 0 && trim_cr(&buf[line_start..lf]).is_empty() {
            return Some(lf + 1);
        }
        line_start = lf + 1;
    }
    None
}

/// How a response body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Parsed response head.
struct Head {
    status: u16,
    keep_alive: bool,
    framing: Framing,
}

/// Parses a complete head (`head` ends with the blank line).
fn parse_head(head: &[u8]) -> Result<Head, ProtocolError> {
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let status_line = lines.next().unwrap_or_default();
    let Some(rest) = status_line.strip_prefix(b"HTTP/1.") else {
        return proto(format!(
            "bad status line {:?}",
            String::from_utf8_lossy(status_line)
        ));
    };
    let http10 = match rest.first() {
        Some(b'0') => true,
        Some(b'1') => false,
        _ => return proto("unsupported HTTP version"),
    };
    let status = match (rest.get(1), rest.get(2..5)) {
        (Some(b' '), Some(code)) if code.iter().all(u8::is_ascii_digit) => code
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0')),
        _ => {
            return proto(format!(
                "bad status line {:?}",
                String::from_utf8_lossy(status_line)
            ))
        }
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive_token = false;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return proto(format!(
                "bad header line {:?}",
                String::from_utf8_lossy(line)
            ));
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| {
                    ProtocolError(format!(
                        "bad content-length {:?}",
                        String::from_utf8_lossy(value)
                    ))
                })?;
            if content_length.is_some_and(|old| old != parsed) {
                return proto("conflicting content-length headers");
            }
            content_length = Some(parsed);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let codings: Vec<&[u8]> = value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|c| !c.is_empty())
                .collect();
            match codings.split_last() {
                Some((last, before)) if last.eq_ignore_ascii_case(b"chunked") => {
                    if let Some(other) = before.first() {
                        return proto(format!(
                            "unsupported transfer-encoding {:?}",
                            String::from_utf8_lossy(other)
                        ));
                    }
                    chunked = true;
                }
                Some(_) => {
                    return proto(format!(
                        "unsupported transfer-encoding {:?}",
                        String::from_utf8_lossy(value)
                    ))
                }
                None => {}
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = content_length {
        if n > MAX_BODY {
            return proto(format!("body of {n} bytes exceeds {MAX_BODY}"));
        }
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let keep_alive = !close && (!http10 || keep_alive_token);
    Ok(Head {
        status,
        keep_alive: keep_alive && !matches!(framing, Framing::UntilClose),
        framing,
    })
}

/// Decodes a chunked body starting at `pos`; returns the end offset when complete.
fn decode_chunked(
    buf: &[u8],
    mut pos: usize,
    body: &mut Vec<u8>,
) -> Result<Option<usize>, ProtocolError> {
    loop {
        let Some(lf) = find_lf(buf, pos) else {
            if buf.len() - pos > 1024 {
                return proto("chunk size line too long");
            }
            return Ok(None);
        };
        let line = trim_cr(&buf[pos..lf]);
        let size_text = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or_else(|| {
                ProtocolError(format!(
                    "bad chunk size {:?}",
                    String::from_utf8_lossy(line)
                ))
            })?;
        pos = lf + 1;
        if size == 0 {
            // Optional trailer fields, then the final blank line.
            loop {
                let Some(lf) = find_lf(buf, pos) else {
                    return Ok(None);
                };
                let empty = trim_cr(&buf[pos..lf]).is_empty();
                pos = lf + 1;
                if empty {
                    return Ok(Some(pos));
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY {
            return proto(format!("chunked body exceeds {MAX_BODY} bytes"));
        }
        let data_end = pos + size;
        let Some(data) = buf.get(pos..data_end) else {
            return Ok(None);
        };
        body.extend_from_slice(data);
        pos = data_end;
        match buf.get(pos..) {
            Some([b'\r', b'\n', ..]) => pos += 2,
            Some([b'\n', ..]) => pos += 1,
            Some([] | [b'\r']) | None => return Ok(None),
            Some(_) => return proto("missing CRLF after chunk data"),
        }
    }
}

/// Parses one response from the start of `buf`. `Ok(None)` means more bytes are needed;
/// `eof` says the peer closed, which completes a body delimited by connection close.
/// On success `body` holds the decoded body (it is cleared first).
fn parse_response(
    buf: &[u8],
    eof: bool,
    body: &mut Vec<u8>,
) -> Result<Option<ResponseMeta>, ProtocolError> {
    body.clear();
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        let Some(head_len) = find_head_end(rest) else {
            if rest.len() > MAX_HEAD {
                return proto(format!("response head exceeds {MAX_HEAD} bytes"));
            }
            return Ok(None);
        };
        let head = parse_head(&rest[..head_len])?;
        let body_start = start + head_len;
        if (100..200).contains(&head.status) {
            if head.status == 101 {
                return proto("unexpected 101 Switching Protocols");
            }
            start = body_start; // interim response: skip it, the real one follows
            continue;
        }
        let end = match head.framing {
            Framing::Length(n) => {
                let Some(data) = buf.get(body_start..body_start + n) else {
                    return Ok(None);
                };
                body.extend_from_slice(data);
                body_start + n
            }
            Framing::Chunked => match decode_chunked(buf, body_start, body)? {
                Some(end) => end,
                None => {
                    body.clear();
                    return Ok(None);
                }
            },
            Framing::UntilClose => {
                if !eof {
                    return Ok(None);
                }
                if buf.len() - body_start > MAX_BODY {
                    return proto(format!("body exceeds {MAX_BODY} bytes"));
                }
                body.extend_from_slice(&buf[body_start..]);
                buf.len()
            }
        };
        return Ok(Some(ResponseMeta {
            status: head.status,
            keep_alive: head.keep_alive,
            consumed: end,
        }));
    }
}

/// Why an operation failed without an HTTP response (or got a non-2xx one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum ErrorKind {
    /// Non-2xx HTTP status.
    Status(u16),
    /// The target refused the TCP connection.
    ConnectRefused,
    /// Connecting took longer than `--timeout`.
    ConnectTimeout,
    /// Any other connect failure.
    ConnectError,
    /// The request did not complete within `--timeout`.
    Timeout,
    /// Connection reset / aborted / broken pipe.
    Reset,
    /// The peer closed the connection before the response was complete.
    Closed,
    /// Malformed or unsupported response.
    Protocol,
    /// Any other I/O error.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Status(code) => write!(f, "{code}"),
            ErrorKind::ConnectRefused => f.write_str("connect_refused"),
            ErrorKind::ConnectTimeout => f.write_str("connect_timeout"),
            ErrorKind::ConnectError => f.write_str("connect_error"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Reset => f.write_str("reset"),
            ErrorKind::Closed => f.write_str("closed"),
            ErrorKind::Protocol => f.write_str("protocol"),
            ErrorKind::Io => f.write_str("io"),
        }
    }
}

/// Classifies an I/O error on an established connection.
fn classify_io(err: &io::Error) -> ErrorKind {
    match err.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
        _ => ErrorKind::Io,
    }
}

/// Classifies a connect error.
fn classify_connect(err: &io::Error) -> ErrorKind {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
        _ => ErrorKind::ConnectError,
    }
}

/// A failed round trip.
#[derive(Debug)]
struct RoundTripError {
    kind: ErrorKind,
    /// No byte of the response had arrived (a stale keep-alive connection looks like this).
    before_response: bool,
    /// Detail for protocol errors.
    detail: Option<String>,
}

/// One open keep-alive connection.
struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    /// Responses completed on this connection.
    served: u64,
}

impl Conn {
    /// Opens a connection with Nagle disabled.
    async fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            rbuf: Vec::with_capacity(READ_CHUNK),
            served: 0,
        })
    }

    /// Sends `req` and reads one full response, decoding its body into `body`.
    async fn round_trip(
        &mut self,
        req: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<ResponseMeta, RoundTripError> {
        let io_err = |e: io::Error, before_response: bool| RoundTripError {
            kind: classify_io(&e),
            before_response,
            detail: None,
        };
        let proto_err = |e: ProtocolError| RoundTripError {
            kind: ErrorKind::Protocol,
            before_response: false,
            detail: Some(e.0),
        };
        self.rbuf.clear();
        self.stream
            .write_all(req)
            .await
            .map_err(|e| io_err(e, true))?;
        loop {
            if !self.rbuf.is_empty() {
                if let Some(meta) = parse_response(&self.rbuf, false, body).map_err(proto_err)? {
                    self.rbuf.drain(..meta.consumed);
                    self.served += 1;
                    return Ok(meta);
                }
            }
            self.rbuf.reserve(READ_CHUNK);
            let before_response = self.rbuf.is_empty();
            let n = self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| io_err(e, before_response))?;
            if n == 0 {
                if before_response {
                    return Err(RoundTripError {
                        kind: ErrorKind::Closed,
                        before_response: true,
                        detail: None,
                    });
                }
                return match parse_response(&self.rbuf, true, body).map_err(proto_err)? {
                    Some(meta) => {
                        self.served += 1;
                        Ok(ResponseMeta {
                            keep_alive: false,
                            ..meta
                        })
                    }
                    None => Err(RoundTripError {
                        kind: ErrorKind::Closed,
                        before_response: false,
                        detail: None,
                    }),
                };
            }
        }
    }
}

/// A reconnecting client bound to one target.
struct Client {
    addr: SocketAddr,
    host: String,
    path_prefix: String,
    timeout: Duration,
    conn: Option<Conn>,
    /// Connections successfully opened.
    connects: u64,
    /// Request buffer, rebuilt for every operation.
    req: Vec<u8>,
    /// Decoded body of the last response.
    body: Vec<u8>,
    /// First protocol error seen, for the report.
    protocol_error: Option<String>,
}

impl Client {
    fn new(addr: SocketAddr, host: String, path_prefix: String, timeout: Duration) -> Self {
        Client {
            addr,
            host,
            path_prefix,
            timeout,
            conn: None,
            connects: 0,
            req: Vec::with_capacity(256),
            body: Vec::new(),
            protocol_error: None,
        }
    }

    /// Opens the connection if there is none; errors are classified.
    async fn ensure_connected(&mut self, deadline: tokio::time::Instant) -> Result<(), ErrorKind> {
        if self.conn.is_some() {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, Conn::open(self.addr)).await {
            Err(_) => Err(ErrorKind::ConnectTimeout),
            Ok(Err(e)) => {
                log::debug!("connect to {} failed: {e}", self.addr);
                Err(classify_connect(&e))
            }
            Ok(Ok(conn)) => {
                self.conn = Some(conn);
                self.connects += 1;
                Ok(())
            }
        }
    }

    /// Writes the request for `op` on key index `key` into the request buffer.
    fn build_request(&mut self, op: Op, key: u64, value: &[u8]) {
        use std::io::Write as _;
        let method: &[u8] = match op {
            Op::Get => b"GET",
            Op::Put => b"POST",
            Op::Delete => b"DELETE",
        };
        let req = &mut self.req;
        req.clear();
        req.extend_from_slice(method);
        req.extend_from_slice(b" /d/");
        req.extend_from_slice(self.path_prefix.as_bytes());
        // Writing into a Vec cannot fail.
        let _ = write!(req, "{key} HTTP/1.1\r\nHost: {}\r\n", self.host);
        match op {
            Op::Get => req.extend_from_slice(b"\r\n"),
            Op::Delete => req.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
            Op::Put => {
                let _ = write!(
                    req,
                    "Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                    value.len()
                );
                req.extend_from_slice(value);
            }
        }
    }

    /// Sends the built request; returns the HTTP status or the transport error kind.
    /// A request that finds a reused keep-alive connection already closed by the server
    /// (closed/reset before any response byte) is retried once on a fresh connection.
    async fn execute(&mut self) -> Result<u16, ErrorKind> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        for attempt in 0..2 {
            self.ensure_connected(deadline).await?;
            let Some(conn) = self.conn.as_mut() else {
                return Err(ErrorKind::ConnectError);
            };
            let reused = conn.served > 0;
            let result =
                tokio::time::timeout_at(deadline, conn.round_trip(&self.req, &mut self.body)).await;
            match result {
                Err(_) => {
                    self.conn = None;
                    return Err(ErrorKind::Timeout);
                }
                Ok(Ok(meta)) => {
                    if !meta.keep_alive {
                        self.conn = None;
                    }
                    return Ok(meta.status);
                }
                Ok(Err(err)) => {
                    self.conn = None;
                    let stale = reused
                        && err.before_response
                        && matches!(err.kind, ErrorKind::Closed | ErrorKind::Reset);
                    if attempt == 0 && stale {
                        continue;
                    }
                    if let Some(detail) = err.detail {
                        log::debug!("protocol error from {}: {detail}", self.addr);
                        self.protocol_error.get_or_insert(detail);
                    }
                    return Err(err.kind);
                }
            }
        }
        Err(ErrorKind::Closed)
    }
}

// ---------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------

/// Outcome counters of one operation type.
#[derive(Debug, Clone, Default)]
struct OpStats {
    ok: u64,
    errors: BTreeMap<ErrorKind, u64>,
    /// Latency of every operation that got an HTTP response.
    latency: Histogram,
}

impl OpStats {
    /// Records one outcome.
    fn record(&mut self, result: Result<u16, ErrorKind>, micros: u64) {
        match result {
            Ok(status) if (200..300).contains(&status) => {
                self.ok += 1;
                self.latency.record(micros);
            }
            Ok(status) => {
                *self.errors.entry(ErrorKind::Status(status)).or_default() += 1;
                self.latency.record(micros);
            }
            Err(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }

    fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        self.latency.merge(&other.latency);
    }
}

/// Everything one connection measured.
#[derive(Debug, Clone, Default)]
struct ConnStats {
    by_op: [OpStats; 3],
    /// Preload writes: ok count and errors (no latency).
    preload_ok: u64,
    preload_errors: BTreeMap<ErrorKind, u64>,
    /// Connections opened after the first one.
    reconnects: u64,
    /// Completion time of the last measured operation.
    last_completion: Option<Instant>,
    protocol_error: Option<String>,
}

impl ConnStats {
    fn merge(&mut self, other: &ConnStats) {
        for (a, b) in self.by_op.iter_mut().zip(&other.by_op) {
            a.merge(b);
        }
        self.preload_ok += other.preload_ok;
        for (k, v) in &other.preload_errors {
            *self.preload_errors.entry(*k).or_default() += v;
        }
        self.reconnects += other.reconnects;
        self.last_completion = self.last_completion.max(other.last_completion);
        if self.protocol_error.is_none() {
            self.protocol_error.clone_from(&other.protocol_error);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------

/// Run phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Phase {
    Preload = 0,
    Warmup = 1,
    Measure = 2,
    Done = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Preload,
            1 => Phase::Warmup,
            2 => Phase::Measure,
            _ => Phase::Done,
        }
    }
}

/// State shared by the orchestrator and every connection task.
struct Shared {
    phase: AtomicU8,
    /// Wakes connection tasks waiting for the end of the preload phase.
    phase_tx: watch::Sender<Phase>,
    /// Next key index to preload.
    preload_next: AtomicU64,
    /// Connections that have not finished their preload/connect step.
    preload_pending: AtomicUsize,
    /// Connection tasks still running.
    running: AtomicUsize,
    /// Measured operations claimed so far (`--ops` mode).
    tickets: AtomicU64,
    /// Completed operations (any phase), for progress lines.
    progress_ops: AtomicU64,
    /// Failed operations (any phase), for progress lines.
    progress_errors: AtomicU64,
}

impl Shared {
    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
        self.phase_tx.send_replace(phase);
    }
}

/// One connection's closed loop: preload share, then warmup and measured operations.
async fn run_connection(
    index: usize,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    mut phase_rx: watch::Receiver<Phase>,
) -> ConnStats {
    let (addr, host) = cfg.targets[index % cfg.targets.len()].clone();
    let mut client = Client::new(addr, host, cfg.path_prefix.clone(), cfg.timeout);
    let mut rng = SmallRng::seed_from_u64(splitmix64(cfg.seed ^ splitmix64(index as u64)));
    let value: Vec<u8> = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(cfg.value_size)
        .collect();
    let mut workload = Workload {
        rng,
        mix: cfg.mix,
        keys: cfg.keys,
        zipf: cfg.zipf,
    };
    let mut stats = ConnStats::default();

    // Connect eagerly so the measured phase does not pay for it, then preload.
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let _ = client.ensure_connected(deadline).await;
    if cfg.preload {
        loop {
            if shared.phase() == Phase::Done {
                break;
            }
            let key = shared.preload_next.fetch_add(1, Ordering::Relaxed);
            if key >= cfg.keys {
                break;
            }
            client.build_request(Op::Put, key, &value);
            let result = client.execute().await;
            if cfg.progress {
                shared.progress_ops.fetch_add(1, Ordering::Relaxed);
            }
            match result {
                Ok(status) if (200..300).contains(&status) => stats.preload_ok += 1,
                Ok(status) => {
                    *stats
                        .preload_errors
                        .entry(ErrorKind::Status(status))
                        .or_default() += 1;
                }
                Err(kind) => {
                    *stats.preload_errors.entry(kind).or_default() += 1;
                    connect_backoff(kind).await;
                }
            }
        }
    }
    shared.preload_pending.fetch_sub(1, Ordering::AcqRel);
    if phase_rx.wait_for(|p| *p != Phase::Preload).await.is_err() {
        shared.running.fetch_sub(1, Ordering::AcqRel);
        return stats;
    }

    let ops_limit = cfg.ops;
    loop {
        let phase = shared.phase();
        if phase == Phase::Done {
            break;
        }
        let measured = phase == Phase::Measure;
        if let (true, Some(limit)) = (measured, ops_limit) {
            if shared.tickets.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }
        let (op, key) = workload.next();
        client.build_request(op, key, &value);
        let started = Instant::now();
        let result = client.execute().await;
        let finished = Instant::now();
        if cfg.progress {
            shared.progress_ops.fetch_add(1, Ordering::Relaxed);
            if !matches!(result, Ok(s) if (200..300).contains(&s)) {
                shared.progress_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Count operations that started and completed inside the measured phase
        // (in --ops mode every claimed operation counts).
        if measured && (ops_limit.is_some() || shared.phase() == Phase::Measure) {
            let micros =
                u64::try_from(finished.duration_since(started).as_micros()).unwrap_or(u64::MAX);
            stats.by_op[op as usize].record(result, micros);
            stats.last_completion = Some(finished);
        }
        if let Err(kind) = result {
            connect_backoff(kind).await;
        }
    }
    stats.reconnects = client.connects.saturating_sub(1);
    stats.protocol_error = client.protocol_error.take();
    shared.running.fetch_sub(1, Ordering::AcqRel);
    stats
}

/// After a failed connect, pause 10 ms so a dead target does not turn the closed loop
/// into a busy loop of refused connections.
async fn connect_backoff(kind: ErrorKind) {
    if matches!(
        kind,
        ErrorKind::ConnectRefused | ErrorKind::ConnectError | ErrorKind::ConnectTimeout
    ) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the connections `range` on a current-thread runtime on this OS thread.
fn run_worker(
    range: std::ops::Range<usize>,
    cfg: Arc<Config>,
    shared: Arc<Shared>,
    phase_rx: watch::Receiver<Phase>,
) -> Result<Vec<ConnStats>, String> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            // Do not leave the orchestrator waiting for connections that never start.
            shared
                .preload_pending
                .fetch_sub(range.len(), Ordering::AcqRel);
            shared.running.fetch_sub(range.len(), Ordering::AcqRel);
            return Err(format!("cannot start a tokio runtime: {e}"));
        }
    };
    runtime.block_on(async move {
        let mut set = JoinSet::new();
        for index in range {
            set.spawn(run_connection(
                index,
                Arc::clone(&cfg),
                Arc::clone(&shared),
                phase_rx.clone(),
            ));
        }
        let mut all = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(stats) => all.push(stats),
                Err(e) => return Err(format!("connection task failed: {e}")),
            }
        }
        Ok(all)
    })
}

/// What the orchestrator observed.
struct Timeline {
    preload: Option<Duration>,
    /// When the measured phase began (`None` if it never did).
    measure_start: Option<Instant>,
    measured: Duration,
    interrupted: bool,
}

/// Prints a progress line once per second while waiting.
struct Progress {
    enabled: bool,
    started: Instant,
    next: Instant,
    last_ops: u64,
    last_errors: u64,
    last_at: Instant,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Progress {
            enabled,
            started: now,
            next: now + Duration::from_secs(1),
            last_ops: 0,
            last_errors: 0,
            last_at: now,
        }
    }

    /// Prints a line if a second has passed.
    fn tick(&mut self, shared: &Shared, cfg: &Config) {
        let now = Instant::now();
        if !self.enabled || now < self.next {
            return;
        }
        let ops = shared.progress_ops.load(Ordering::Relaxed);
        let errors = shared.progress_errors.load(Ordering::Relaxed);
        let secs = now.duration_since(self.last_at).as_secs_f64().max(1e-9);
        let phase = shared.phase();
        let detail = match phase {
            Phase::Preload => format!(
                ", preloaded {}/{}",
                shared.preload_next.load(Ordering::Relaxed).min(cfg.keys),
                cfg.keys
            ),
            Phase::Measure => match cfg.ops {
                Some(limit) => format!(
                    ", {}/{limit} ops",
                    shared.tickets.load(Ordering::Relaxed).min(limit)
                ),
                None => String::new(),
            },
            Phase::Warmup | Phase::Done => String::new(),
        };
        eprintln!(
            "[{:6.1}s] {:<7} {:>10.0} ops/s {:>8.0} err/s{detail}",
            now.duration_since(self.started).as_secs_f64(),
            format!("{phase:?}").to_lowercase(),
            (ops - self.last_ops) as f64 / secs,
            (errors - self.last_errors) as f64 / secs,
        );
        self.last_ops = ops;
        self.last_errors = errors;
        self.last_at = now;
        while self.next <= now {
            self.next += Duration::from_secs(1);
        }
    }
}

/// Waits until `done()` holds or `deadline` passes; false if interrupted by Ctrl-C.
async fn wait_until(
    shared: &Shared,
    cfg: &Config,
    progress: &mut Progress,
    interrupted: &AtomicBool,
    deadline: Option<Instant>,
    done: impl Fn() -> bool,
) -> bool {
    loop {
        if interrupted.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if done() || deadline.is_some_and(|d| now >= d) {
            return true;
        }
        progress.tick(shared, cfg);
        let mut wake = now + Duration::from_millis(10);
        if let Some(d) = deadline {
            wake = wake.min(d);
        }
        tokio::time::sleep_until(wake.into()).await;
    }
}

/// Drives the phases from the main thread.
async fn orchestrate(cfg: &Config, shared: &Shared) -> Timeline {
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        });
    }
    let mut progress = Progress::new(cfg.progress);
    let mut timeline = Timeline {
        preload: None,
        measure_start: None,
        measured: Duration::ZERO,
        interrupted: false,
    };

    let preload_start = Instant::now();
    let all_ready = || shared.preload_pending.load(Ordering::Acquire) == 0;
    if !wait_until(shared, cfg, &mut progress, &interrupted, None, all_ready).await {
        timeline.interrupted = true;
        shared.set_phase(Phase::Done);
        return timeline;
    }
    if cfg.preload {
        timeline.preload = Some(preload_start.elapsed());
    }

    if !cfg.warmup.is_zero() {
        shared.set_phase(Phase::Warmup);
        let until = Some(Instant::now() + cfg.warmup);
        if !wait_until(shared, cfg, &mut progress, &interrupted, until, || false).await {
            timeline.interrupted = true;
            shared.set_phase(Phase::Done);
            return timeline;
        }
    }

    shared.set_phase(Phase::Measure);
    let start = Instant::now();
    timeline.measure_start = Some(start);
    let (deadline, all_done): (Option<Instant>, Box<dyn Fn() -> bool>) = match cfg.duration {
        Some(d) => (Some(start + d), Box::new(|| false)),
        None => (
            None,
            Box::new(|| shared.running.load(Ordering::Acquire) == 0),
        ),
    };
    timeline.interrupted =
        !wait_until(shared, cfg, &mut progress, &interrupted, deadline, all_done).await;
    shared.set_phase(Phase::Done);
    timeline.measured = start.elapsed();
    timeline
}

/// The merged results of a run.
struct Report {
    stats: ConnStats,
    timeline: Timeline,
    /// In `--ops` mode, measured time ends at the last completion.
    duration: Duration,
}

/// Runs the whole benchmark.
fn run(cfg: Config) -> Result<Report, String> {
    let cfg = Arc::new(cfg);
    let (phase_tx, phase_rx) = watch::channel(Phase::Preload);
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(Phase::Preload as u8),
        phase_tx,
        preload_next: AtomicU64::new(0),
        preload_pending: AtomicUsize::new(cfg.connections),
        running: AtomicUsize::new(cfg.connections),
        tickets: AtomicU64::new(0),
        progress_ops: AtomicU64::new(0),
        progress_errors: AtomicU64::new(0),
    });
    let orchestrator = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;

    let mut workers = Vec::new();
    for t in 0..cfg.threads {
        let range = (t * cfg.connections / cfg.threads)..((t + 1) * cfg.connections / cfg.threads);
        let (cfg2, shared2, rx) = (Arc::clone(&cfg), Arc::clone(&shared), phase_rx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || run_worker(range.clone(), cfg2, shared2, rx));
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => {
                shared.set_phase(Phase::Done);
                return Err(format!("cannot spawn a worker thread: {e}"));
            }
        }
    }
    drop(phase_rx);

    let timeline = orchestrator.block_on(orchestrate(&cfg, &shared));

    let mut stats = ConnStats::default();
    for handle in workers {
        match handle.join() {
            Ok(Ok(list)) => list.iter().for_each(|s| stats.merge(s)),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a worker thread panicked".into()),
        }
    }
    // In --ops mode the measured phase ends with the last completed operation.
    let duration = match (cfg.duration, timeline.measure_start, stats.last_completion) {
        (None, Some(start), Some(last)) => last.saturating_duration_since(start),
        _ => timeline.measured,
    };
    Ok(Report {
        stats,
        timeline,
        duration,
    })
}

// ---------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------

/// Latency percentiles as a JSON object.
fn latency_json(p: Percentiles) -> Value {
    json!({"p50": p.p50, "p90": p.p90, "p99": p.p99, "p999": p.p999, "max": p.max})
}

/// Error counts as a JSON object keyed by status or kind.
fn errors_json(errors: &BTreeMap<ErrorKind, u64>) -> Value {
    let map: Map<String, Value> = errors
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    Value::Object(map)
}

/// Merged figures derived from a report.
struct Totals {
    ok: u64,
    failed: u64,
    errors: BTreeMap<ErrorKind, u64>,
    latency: Histogram,
    duration_s: f64,
    ops_per_sec: f64,
}

impl Totals {
    fn of(report: &Report) -> Totals {
        let mut all = OpStats::default();
        for s in &report.stats.by_op {
            all.merge(s);
        }
        let duration_s = report.duration.as_secs_f64();
        let failed = all.failed();
        let ops = all.ok + failed;
        Totals {
            ok: all.ok,
            failed,
            ops_per_sec: if duration_s > 0.0 {
                ops as f64 / duration_s
            } else {
                0.0
            },
            errors: all.errors,
            latency: all.latency,
            duration_s,
        }
    }
}

/// The `--json` document.
fn report_json(cfg: &Config, report: &Report) -> Value {
    let totals = Totals::of(report);
    let mut by_op = Map::new();
    for op in Op::ALL {
        let s = &report.stats.by_op[op as usize];
        by_op.insert(
            op.name().to_string(),
            json!({
                "ops": s.ok + s.failed(),
                "ok": s.ok,
                "failed": s.failed(),
                "errors": errors_json(&s.errors),
                "latency_us": latency_json(s.latency.percentiles()),
            }),
        );
    }
    let preload = report.timeline.preload.map(|d| {
        json!({
            "keys": cfg.keys,
            "ok": report.stats.preload_ok,
            "errors": errors_json(&report.stats.preload_errors),
            "duration_s": round3(d.as_secs_f64()),
        })
    });
    json!({
        "ops_per_sec": round1(totals.ops_per_sec),
        "ok": totals.ok,
        "failed": totals.failed,
        "errors": errors_json(&totals.errors),
        "latency_us": latency_json(totals.latency.percentiles()),
        "duration_s": round3(totals.duration_s),
        "by_op": by_op,
        "reconnects": report.stats.reconnects,
        "interrupted": report.timeline.interrupted,
        "preload": preload,
        "config": {
            "targets": cfg.targets.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>(),
            "connections": cfg.connections,
            "threads": cfg.threads,
            "mix": {"get": cfg.mix.get, "put": cfg.mix.put, "delete": cfg.mix.delete},
            "keys": cfg.keys,
            "key_prefix": cfg.key_prefix,
            "distribution": match cfg.distribution {
                Distribution::Uniform => "uniform",
                Distribution::Zipf => "zipf",
            },
            "zipf_s": cfg.zipf.map(|_| cfg.zipf_s),
            "value_size": cfg.value_size,
            "warmup_s": cfg.warmup.as_secs_f64(),
            "timeout_s": cfg.timeout.as_secs_f64(),
            "seed": cfg.seed,
            "ops_limit": cfg.ops,
        },
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Formats error counts as `503=12 timeout=3`, or `-`.
fn errors_inline(errors: &BTreeMap<ErrorKind, u64>) -> String {
    if errors.is_empty() {
        return "-".into();
    }
    errors
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The human-readable table.
fn report_table(cfg: &Config, report: &Report) -> String {
    use std::fmt::Write as _;
    let totals = Totals::of(report);
    let mut out = String::new();
    let dist = match cfg.distribution {
        Distribution::Uniform => "uniform".to_string(),
        Distribution::Zipf => format!("zipf(s={})", cfg.zipf_s),
    };
    let targets: Vec<&str> = cfg.targets.iter().map(|(_, h)| h.as_str()).collect();
    let _ = writeln!(out, "swimkv-bench → {}", targets.join(", "));
    let _ = writeln!(
        out,
        "  {} connections, {} thread(s), mix get/put/delete {}/{}/{}, {} keys {dist}, {}-byte values",
        cfg.connections,
        cfg.threads,
        cfg.mix.get,
        cfg.mix.put,
        cfg.mix.delete,
        cfg.keys,
        cfg.value_size
    );
    if let Some(d) = report.timeline.preload {
        let _ = writeln!(
            out,
            "  preload: {} ok in {:.2} s, errors: {}",
            report.stats.preload_ok,
            d.as_secs_f64(),
            errors_inline(&report.stats.preload_errors)
        );
    }
    if report.timeline.interrupted {
        let _ = writeln!(out, "  (interrupted: partial results)");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "  duration     {:>12.3} s", totals.duration_s);
    let _ = writeln!(out, "  throughput   {:>12.1} ops/s", totals.ops_per_sec);
    let _ = writeln!(out, "  ok           {:>12}", totals.ok);
    let _ = writeln!(out, "  failed       {:>12}", totals.failed);
    let _ = writeln!(out, "  reconnects   {:>12}", report.stats.reconnects);
    let _ = writeln!(out, "  errors       {}", errors_inline(&totals.errors));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<7} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op", "ops", "ok", "failed", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    let mut row = |name: &str, ok: u64, failed: u64, h: &Histogram| {
        let p = h.percentiles();
        // No HTTP response at all (only transport errors): no latency to show.
        let cell = |v: u64| {
            if h.total == 0 {
                "-".to_string()
            } else {
                v.to_string()
            }
        };
        let _ = writeln!(
            out,
            "  {:<7} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            ok + failed,
            ok,
            failed,
            cell(p.p50),
            cell(p.p90),
            cell(p.p99),
            cell(p.p999),
            cell(p.max)
        );
    };
    for op in Op::ALL {
        let s = &report.stats.by_op[op as usize];
        if s.ok + s.failed() > 0 {
            row(op.name(), s.ok, s.failed(), &s.latency);
        }
    }
    row("all", totals.ok, totals.failed, &totals.latency);
    for op in Op::ALL {
        let s = &report.stats.by_op[op as usize];
        if !s.errors.is_empty() {
            let _ = writeln!(out, "  {} errors: {}", op.name(), errors_inline(&s.errors));
        }
    }
    if let Some(detail) = &report.stats.protocol_error {
        let _ = writeln!(out, "  first protocol error: {detail}");
    }
    out
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let cfg = match Config::from_cli(cli) {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("swimkv-bench: {msg}");
            return ExitCode::from(2);
        }
    };
    match run(cfg.clone()) {
        Ok(report) => {
            if cfg.json {
                println!("{}", report_json(&cfg, &report));
            } else {
                print!("{}", report_table(&cfg, &report));
            }
            if let Some(detail) = &report.stats.protocol_error {
                eprintln!("swimkv-bench: first protocol error: {detail}");
            }
            let preload_failed: u64 = report.stats.preload_errors.values().sum();
            if preload_failed > 0 {
                eprintln!(
                    "swimkv-bench: warning: {preload_failed} preload writes failed ({}); \
                     GETs of those keys may answer 404",
                    errors_inline(&report.stats.preload_errors)
                );
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("swimkv-bench: {msg}");
            ExitCode::from(1)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a response fed in pieces of `step` bytes, as successive reads would.
    fn parse_in_steps(full: &[u8], step: usize) -> (ResponseMeta, Vec<u8>) {
        let mut body = Vec::new();
        let mut end = 0;
        loop {
            end = (end + step).min(full.len());
            let parsed = parse_response(&full[..end], false, &mut body).expect("valid response");
            if let Some(meta) = parsed {
                return (meta, body);
            }
            assert!(end < full.len(), "complete response not recognised");
        }
    }

    #[test]
    fn parses_content_length_response() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello";
        let mut body = Vec::new();
        let meta = parse_response(raw, false, &mut body)
            .expect("valid")
            .expect("complete");
        assert_eq!(meta.status, 200);
        assert!(meta.keep_alive);
        assert_eq!(meta.consumed, raw.len());
        assert_eq!(body, b"hello");
    }

    #[test]
    fn content_length_split_across_reads_at_every_byte() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n\r\n{\"e\":\"no\"}!";
        for step in 1..raw.len() {
            let (meta, body) = parse_in_steps(raw, step);
            assert_eq!(meta.status, 503);
            assert_eq!(meta.consumed, raw.len());
            assert_eq!(body, b"{\"e\":\"no\"}!");
        }
    }

    #[test]
    fn parses_chunked_response_split_across_reads() {
        let raw: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in 1..raw.len() {
            let (meta, body) = parse_in_steps(raw, step);
            assert_eq!(meta.status, 200);
            assert!(meta.keep_alive);
            assert_eq!(meta.consumed, raw.len());
            assert_eq!(body, b"hello, world");
        }
    }

    #[test]
    fn chunked_wins_over_content_length_and_leaves_next_response() {
        let mut raw =
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\ntransfer-encoding: Chunked\r\n\r\n\
            3\r\nabc\r\n0\r\n\r\n"
                .to_vec();
        let first = raw.len();
        raw.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        let mut body = Vec::new();
        let meta = parse_response(&raw, false, &mut body)
            .expect("valid")
            .expect("complete");
        assert_eq!(meta.consumed, first);
        assert_eq!(body, b"abc");
        let next = parse_response(&raw[first..], false, &mut body)
            .expect("valid")
            .expect("complete");
        assert_eq!(next.status, 404);
        assert!(body.is_empty());
    }

    #[test]
    fn connection_close_and_http10_disable_keep_alive() {
        let mut body = Vec::new();
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let meta = parse_response(close, false, &mut body)
            .expect("valid")
            .expect("complete");
        assert!(!meta.keep_alive);
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        let meta = parse_response(old, false, &mut body)
            .expect("valid")
            .expect("complete");
        assert!(!meta.keep_alive);
        let old_ka = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        let meta = parse_response(old_ka, false, &mut body)
            .expect("valid")
            .expect("complete");
        assert!(meta.keep_alive);
    }

    #[test]
    fn body_until_close_completes_only_at_eof() {
        let raw = b"HTTP/1.1 200 OK\r\n\r\nsome bytes";
        let mut body = Vec::new();
        assert_eq!(parse_response(raw, false, &mut body), Ok(None));
        let meta = parse_response(raw, true, &mut body)
            .expect("valid")
            .expect("complete");
        assert!(!meta.keep_alive);
        assert_eq!(body, b"some bytes");
    }

    #[test]
    fn skips_interim_responses_and_ignores_body_of_204() {
        let raw =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n";
        let mut body = Vec::new();
        let meta = parse_response(raw, false, &mut body)
            .expect("valid")
            .expect("complete");
        assert_eq!(meta.status, 204);
        assert_eq!(meta.consumed, raw.len());
    }

    #[test]
    fn rejects_malformed_responses_clearly() {
        let mut body = Vec::new();
        let cases: [&[u8]; 5] = [
            b"HTTX/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ];
        for raw in cases {
            assert!(
                parse_response(raw, false, &mut body).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let err = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
            &mut body,
        )
        .expect_err("gzip is unsupported");
        assert!(err.0.contains("transfer-encoding"), "{err}");
    }

    #[test]
    fn incomplete_chunked_response_is_not_complete_at_eof() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        let mut body = Vec::new();
        assert_eq!(parse_response(raw, true, &mut body), Ok(None));
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn client_reads_split_response_and_reconnects_after_close() {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            // Two connections; each answers one request in pieces, then closes.
            for _ in 0..2 {
                let (mut sock, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = sock.read(&mut buf).await.expect("read");
                    assert!(n > 0);
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(got.starts_with(b"GET /d/bench-7 HTTP/1.1\r\nHost: "));
                for piece in [
                    &b"HTTP/1.1 200 OK\r\nTransfer-"[..],
                    b"Encoding: chunked\r\n\r\n4\r\nab",
                    b"cd\r\n0\r\n\r\n",
                ] {
                    sock.write_all(piece).await.expect("write");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        let mut client = Client::new(
            addr,
            addr.to_string(),
            "bench-".into(),
            Duration::from_secs(5),
        );
        for _ in 0..2 {
            client.build_request(Op::Get, 7, b"");
            assert_eq!(client.execute().await, Ok(200));
            assert_eq!(client.body, b"abcd");
        }
        // The server closed the first connection, so the second request reconnected.
        assert_eq!(client.connects, 2);
        server.await.expect("server task");
        // Now nothing listens: a refused connect is classified.
        drop(client.conn.take());
        client.build_request(Op::Get, 7, b"");
        let result = client.execute().await;
        assert!(
            matches!(
                result,
                Err(ErrorKind::ConnectRefused | ErrorKind::Closed | ErrorKind::Reset)
            ),
            "{result:?}"
        );
    }

    #[test]
    fn zipf_rank_zero_most_frequent_and_in_range() {
        let n = 1000;
        let zipf = Zipf::new(n, 0.99).expect("valid");
        let mut rng = SmallRng::seed_from_u64(42);
        let mut counts = vec![0u64; n as usize];
        let samples = 200_000;
        for _ in 0..samples {
            let r = zipf.sample(&mut rng);
            assert!(r < n);
            counts[r as usize] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(0);
        assert_eq!(counts[0], top);
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
        // P(rank 0) = 1 / zeta(n): check within 5 %.
        let expected = samples as f64 / zeta(n, 0.99);
        assert!((counts[0] as f64 - expected).abs() < expected * 0.05);
    }

    #[test]
    fn zipf_is_deterministic_for_a_seed() {
        let zipf = Zipf::new(10_000, 0.8).expect("valid");
        let draw = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..1000).map(|_| zipf.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn zipf_edge_cases() {
        let mut rng = SmallRng::seed_from_u64(1);
        let one = Zipf::new(1, 0.99).expect("valid");
        let two = Zipf::new(2, 0.99).expect("valid");
        for _ in 0..1000 {
            assert_eq!(one.sample(&mut rng), 0);
            assert!(two.sample(&mut rng) < 2);
        }
        assert!(Zipf::new(0, 0.5).is_err());
        assert!(Zipf::new(10, 1.0).is_err());
        assert!(Zipf::new(10, 0.0).is_err());
    }

    #[test]
    fn histogram_buckets_are_contiguous_and_tight() {
        let mut prev_high = None;
        for i in 0..BUCKETS {
            let (low, high) = bucket_bounds(i);
            assert_eq!(bucket_index(low), i);
            assert_eq!(bucket_index(high), i);
            if let Some(p) = prev_high {
                assert_eq!(low, p + 1);
            }
            assert!((high - low) as f64 <= low as f64 / 128.0 + 1.0);
            prev_high = Some(high);
        }
        assert_eq!(prev_high, Some(MAX_TRACKED));
    }

    #[test]
    fn percentiles_are_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (p, expected) in [
            (50.0, 50_000.0),
            (90.0, 90_000.0),
            (99.0, 99_000.0),
            (99.9, 99_900.0),
        ] {
            let got = h.percentile(p) as f64;
            assert!(
                (got - expected).abs() <= expected * 0.01,
                "p{p}: got {got}, expected {expected}"
            );
        }
        let p = h.percentiles();
        assert_eq!(p.max, 100_000);
        assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max);
    }

    #[test]
    fn percentiles_exact_for_small_values_and_merge() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for v in 1..=50 {
            a.record(v);
        }
        for v in 51..=100 {
            b.record(v);
        }
        a.merge(&b);
        assert_eq!(a.percentile(50.0), 50);
        assert_eq!(a.percentile(90.0), 90);
        assert_eq!(a.percentile(99.0), 99);
        assert_eq!(a.percentile(100.0), 100);
        assert_eq!(a.percentile(0.0), 1);
        assert_eq!(Histogram::default().percentiles(), Percentiles::default());
        let mut single = Histogram::default();
        single.record(123_456);
        assert_eq!(single.percentile(50.0), 123_456);
    }

    #[test]
    fn op_mix_must_sum_to_100() {
        assert_eq!(
            OpMix::from_flags(None, None, None),
            Ok(OpMix {
                get: 90,
                put: 10,
                delete: 0
            })
        );
        assert_eq!(
            OpMix::from_flags(Some(100), None, None),
            Ok(OpMix {
                get: 100,
                put: 0,
                delete: 0
            })
        );
        assert!(OpMix::from_flags(Some(80), Some(10), Some(10)).is_ok());
        assert!(OpMix::from_flags(Some(90), Some(20), None).is_err());
        assert!(OpMix::from_flags(Some(90), None, None).is_err());
        assert!(OpMix::from_flags(Some(0), Some(0), Some(0)).is_err());
        let mix = OpMix::from_flags(Some(50), Some(30), Some(20)).expect("valid");
        assert_eq!(mix.pick(0), Op::Get);
        assert_eq!(mix.pick(49), Op::Get);
        assert_eq!(mix.pick(50), Op::Put);
        assert_eq!(mix.pick(79), Op::Put);
        assert_eq!(mix.pick(80), Op::Delete);
        assert_eq!(mix.pick(99), Op::Delete);
    }

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
            client.req,
            b"POST /d/a%20b%2F42 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\
              Content-Type: application/octet-stream\r\nContent-Length: 3\r\n\r\nxyz"
        );
    }
}
