//! `swimkv-bench`: an HTTP load generator for swimkv's client API, closed-loop by
//! default, open-loop at a fixed rate with `--rate`.
//!
//! It opens `--connections` keep-alive HTTP/1.1 connections, spread round-robin over
//! `--targets`, and on each one issues `GET`, `POST` ("put") and `DELETE` requests on
//! `/d/<key-prefix><n>` back to back (the next request leaves as soon as the previous
//! answer arrives), or, with `--rate R`, on a fixed schedule of R requests per second
//! shared by the connections (latency then counts from each request's due time when
//! the server held it up: see `pacing`). Keys are drawn uniformly or from a Zipfian distribution
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
//!
//! Modules (one concept each; the `//!` doc of each states its invariants):
//!
//! - `cli`: flags, duration parsing, validation into the run `Config`;
//! - `workload`: operation types, op mix, key distributions (uniform, Zipf), per-connection
//!   request generator;
//! - `histogram`: latency histogram and percentiles;
//! - `response`: incremental HTTP/1.1 response parser;
//! - `http`: keep-alive client, connections, error classification;
//! - `stats`: per-operation and per-connection outcome counters;
//! - `shared`: run phases and the state shared by orchestrator and connection tasks;
//! - `connection`: one connection's loop (closed, or paced);
//! - `pacing`: the open-loop schedule of `--rate` and where its latencies start;
//! - `orchestrate`: phase driving, progress lines, Ctrl-C;
//! - `tls`: HTTPS (`--tls`, `--cacert`, `--insecure`) and the bearer token (`--token`);
//! - `run`: threads, runtimes, merging into a `Report`;
//! - `report`: totals, JSON and table output;
//! - `token_aware`: `--token-aware`, the ring fetched from the cluster and the keys
//!   each target holds.

use std::process::ExitCode;

mod cli;
mod connection;
mod cpu;
mod histogram;
mod http;
mod orchestrate;
mod pacing;
mod report;
mod response;
mod run;
mod shared;
mod stats;
mod tls;
mod token_aware;
mod workload;

use cli::{parse_cli, Config};
use report::{errors_inline, report_json, report_table};
use run::run;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let mut cfg = match Config::from_cli(cli) {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("swimkv-bench: {msg}");
            return ExitCode::from(2);
        }
    };
    if cfg.token_aware {
        let (addr, host) = cfg.targets[0].clone();
        let hosts: Vec<String> = cfg.targets.iter().map(|(_, h)| h.clone()).collect();
        let subsets = token_aware::fetch_ring(addr, &host, cfg.token.as_deref(), cfg.timeout)
            .and_then(|view| token_aware::key_subsets(&view, &hosts, &cfg.key_prefix, cfg.keys));
        match subsets {
            Ok(subsets) => cfg.key_subsets = Some(subsets),
            Err(msg) => {
                eprintln!("swimkv-bench: {msg}");
                return ExitCode::from(1);
            }
        }
    }
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
