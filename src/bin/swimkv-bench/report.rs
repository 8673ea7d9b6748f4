//! Output: the merged totals of a run and their two renderings, the `--json` document
//! and the human-readable table (both on stdout).
//!
//! Invariants: throughput counts completed operations, successful and failed, per second
//! of the measured duration (0 when that is 0); "failed" is the sum of the error counts.
//! Latencies are in microseconds; an operation type with no HTTP response shows `-`
//! instead of latencies in the table. The JSON keys, the table layout and the JSON
//! rounding (throughput to 0.1, durations to 0.001 s) are an output format that scripts
//! parse: change them only on purpose.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::cli::{Config, Distribution};
use crate::histogram::{Histogram, Percentiles};
use crate::http::ErrorKind;
use crate::run::Report;
use crate::stats::OpStats;
use crate::workload::Op;

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
pub(crate) fn report_json(cfg: &Config, report: &Report) -> Value {
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
    let ops = totals.ok + totals.failed;
    let cpu = report.timeline.server_cpu_s;
    let cpu_per_op = cpu
        .filter(|_| ops > 0)
        .map(|c| round1(c * 1e6 / ops as f64));
    json!({
        "ops_per_sec": round1(totals.ops_per_sec),
        "server_cpu_s": cpu.map(round3),
        "server_cpu_us_per_op": cpu_per_op,
        "client_cpu_s": report.timeline.client_cpu_s.map(round3),
        "ok": totals.ok,
        "failed": totals.failed,
        "errors": errors_json(&totals.errors),
        "latency_us": latency_json(totals.latency.percentiles()),
        "duration_s": round3(totals.duration_s),
        "by_op": by_op,
        "reconnects": report.stats.reconnects,
        "first_server_error": report.stats.server_error,
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
            "token_aware": cfg.token_aware,
            "value_size": cfg.value_size,
            "warmup_s": cfg.warmup.as_secs_f64(),
            "timeout_s": cfg.timeout.as_secs_f64(),
            "seed": cfg.seed,
            "ops_limit": cfg.ops,
            "rate": cfg.rate,
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
pub(crate) fn errors_inline(errors: &BTreeMap<ErrorKind, u64>) -> String {
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
pub(crate) fn report_table(cfg: &Config, report: &Report) -> String {
    use std::fmt::Write as _;
    let totals = Totals::of(report);
    let mut out = String::new();
    let dist = match cfg.distribution {
        Distribution::Uniform => "uniform".to_string(),
        Distribution::Zipf => format!("zipf(s={})", cfg.zipf_s),
    } + if cfg.token_aware { ", token-aware" } else { "" };
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
    if let Some(rate) = cfg.rate {
        let _ = writeln!(out, "  target rate  {rate:>12.1} ops/s (open loop)");
    }
    if let Some(cpu) = report.timeline.server_cpu_s {
        let ops = (totals.ok + totals.failed).max(1);
        let _ = writeln!(
            out,
            "  server CPU   {:>12.3} s ({:.1} µs per op)",
            cpu,
            cpu * 1e6 / ops as f64
        );
    }
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
    if let Some(detail) = &report.stats.server_error {
        let _ = writeln!(out, "  first server error: {detail}");
    }
    out
}
