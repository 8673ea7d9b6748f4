//! Durable storage end to end (the default: each node in its own data
//! directory): kill -9 in mid-stream and restart, 20 rounds, with a history
//! checker; every node of a cluster killed and started again; rolling restarts
//! with SIGTERM and with kill -9 waiting only for `/ready`, counting the bytes
//! handoff moved; and the directories a node refuses to start on.

use super::cluster::{http, Cluster};
use super::stabilize::write_all;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

fn all_ready(c: &Cluster, within: Duration) -> bool {
    c.wait_for(within, || c.running().iter().all(|&i| c.ready(i)))
}

/// A counter of node `i`'s /metrics (0 when absent).
fn counter(c: &Cluster, i: usize, name: &str) -> f64 {
    let m = http(c.port(i), "GET", "/metrics", b"", 2 * SECOND).text();
    m.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// One client operation on a key and what became of it.
#[derive(Clone, Debug)]
struct Op {
    /// The value written, `None` for a delete.
    value: Option<String>,
    /// Acknowledged (200/204); otherwise its outcome is unknown.
    acked: bool,
}

/// What a read of `key` may answer given its history: the effect of the last
/// acknowledged operation, or of any later operation whose outcome is unknown
/// (`None` in the set: absent). With nothing acknowledged yet, absent too.
fn allowed(history: &[Op]) -> Vec<Option<String>> {
    let last_acked = history.iter().rposition(|o| o.acked);
    let mut ok = vec![last_acked.and_then(|i| history[i].value.clone())];
    let from = last_acked.map_or(0, |i| i + 1);
    ok.extend(history[from..].iter().map(|o| o.value.clone()));
    ok
}

/// Reads `key` through `port` until it answers 200 or 404 (bounded): the value,
/// or `None` for absent.
fn read(port: u16, key: &str) -> Result<Option<String>, String> {
    let deadline = Instant::now() + 20 * SECOND;
    loop {
        let a = http(port, "GET", &format!("/d/{key}"), b"", 5 * SECOND);
        match a.status {
            200 => return Ok(Some(a.text())),
            404 => return Ok(None),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            s => return Err(format!("{key}: {s} {}", a.text())),
        }
    }
}

/// Every key's read against its history: the violations.
fn check(c: &Cluster, histories: &BTreeMap<String, Vec<Op>>, seed: u64) -> Vec<String> {
    let nodes = c.running();
    let mut rng = StdRng::seed_from_u64(seed);
    histories
        .iter()
        .filter_map(|(k, h)| {
            let node = nodes[rng.gen_range(0..nodes.len())];
            match read(c.port(node), k) {
                Ok(got) if allowed(h).contains(&got) => None,
                Ok(got) => Some(format!(
                    "{k} via node {node}: read {got:?}, allowed {:?}",
                    allowed(h)
                )),
                Err(e) => Some(e),
            }
        })
        .collect()
}

#[test]
fn the_history_checker_is_not_vacuous() {
    let w = |v: &str, acked| Op {
        value: Some(v.into()),
        acked,
    };
    let d = |acked| Op { value: None, acked };
    // A lost acknowledged write, and a deleted key that came back, are caught.
    assert!(!allowed(&[w("a", true), w("b", true)]).contains(&Some("a".into())));
    assert!(!allowed(&[w("a", true), d(true)]).contains(&Some("a".into())));
    assert!(
        !allowed(&[w("a", true)]).contains(&None),
        "a 404 for a key that exists"
    );
    // Unknown outcomes after the last ack may or may not have happened.
    let h = [w("a", true), w("b", false), d(false)];
    assert_eq!(allowed(&h), [Some("a".into()), Some("b".into()), None]);
}

#[test]
fn twenty_rounds_of_kill_9_in_mid_stream_lose_no_acknowledged_write_and_resurrect_no_delete() {
    let mut c = Cluster::start(24000, 3, &[]);
    assert!(all_ready(&c, 20 * SECOND), "3 nodes never became ready");
    let mut histories: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    let mut rng = StdRng::seed_from_u64(2026);
    let (mut acked, mut unknown) = (0, 0);
    for round in 0..20u64 {
        let victim = rng.gen_range(0..3);
        let stop = AtomicBool::new(false);
        let ports: Vec<u16> = (0..3).map(|i| c.port(i)).collect();
        // Three writers, one through each node, each on keys of its own (so each
        // key's operations are sequential): writes, overwrites and deletes.
        let results: Vec<Vec<(String, Op)>> = std::thread::scope(|s| {
            let writers: Vec<_> = (0..3)
                .map(|t| {
                    let (stop, ports) = (&stop, &ports);
                    s.spawn(move || {
                        let mut rng = StdRng::seed_from_u64(round * 10 + t);
                        let mut ops = Vec::new();
                        let mut n = 0;
                        while !stop.load(Ordering::Relaxed) && n < 2_000 {
                            n += 1;
                            let key = format!("crash-{t}-{}", rng.gen_range(0..40));
                            let port = ports[t as usize];
                            let op = if rng.gen_bool(0.2) {
                                let a = http(port, "DELETE", &format!("/d/{key}"), b"", 3 * SECOND);
                                Op {
                                    value: None,
                                    acked: a.status == 200 || a.status == 204,
                                }
                            } else {
                                let value = format!("r{round}-t{t}-n{n}");
                                let a = http(
                                    port,
                                    "POST",
                                    &format!("/d/{key}"),
                                    value.as_bytes(),
                                    3 * SECOND,
                                );
                                Op {
                                    value: Some(value),
                                    acked: a.status == 200,
                                }
                            };
                            ops.push((key, op));
                        }
                        ops
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(700));
            c.kill(victim);
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
            writers
                .into_iter()
                .map(|w| w.join().unwrap_or_default())
                .collect()
        });
        for (key, op) in results.into_iter().flatten() {
            if op.acked {
                acked += 1;
            } else {
                unknown += 1;
            }
            histories.entry(key).or_default().push(op);
        }
        c.restart(victim);
        assert!(
            c.wait_for(30 * SECOND, || c.ready(victim)),
            "round {round}: node {victim} never became ready after its restart"
        );
    }
    assert!(all_ready(&c, 30 * SECOND));
    let violations = check(&c, &histories, 1);
    eprintln!(
        "20 kill -9 rounds: {acked} acknowledged operations, {unknown} with unknown outcome, {} keys, {} violations",
        histories.len(),
        violations.len()
    );
    assert!(
        acked > 1_000,
        "the writers barely ran: {acked} acknowledged"
    );
    assert!(
        violations.is_empty(),
        "{} keys read wrong: {:?}",
        violations.len(),
        &violations[..violations.len().min(10)]
    );
}

#[test]
fn killing_every_node_of_a_five_node_cluster_and_starting_them_again_loses_no_key() {
    let mut c = Cluster::start(24100, 5, &[]);
    assert!(all_ready(&c, 20 * SECOND), "5 nodes never became ready");
    let keys: Vec<String> = (0..10_000).map(|i| format!("whole-{i:05}")).collect();
    let value = |k: &str| format!("value of {k}");
    write_all(&c, &keys, value);
    for i in 0..5 {
        c.kill(i);
    }
    let restarted = Instant::now();
    for i in 0..5 {
        c.restart(i);
    }
    assert!(
        all_ready(&c, 60 * SECOND),
        "the cluster never became ready again"
    );
    eprintln!(
        "5 nodes killed and started again: ready after {:?}",
        restarted.elapsed()
    );
    let histories: BTreeMap<String, Vec<Op>> = keys
        .iter()
        .map(|k| {
            (
                k.clone(),
                vec![Op {
                    value: Some(value(k)),
                    acked: true,
                }],
            )
        })
        .collect();
    let lost = check(&c, &histories, 2);
    assert!(
        lost.is_empty(),
        "{} of 10000 keys lost after a whole-cluster restart: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

/// Restarts every node of a 5-node durable cluster in turn, waiting only for
/// `/ready`; answers the bytes handoff moved in all.
fn rolling_restart(base: u16, kill: bool) -> f64 {
    let mut c = Cluster::start(base, 5, &[]);
    assert!(all_ready(&c, 20 * SECOND), "5 nodes never became ready");
    let keys: Vec<String> = (0..2_000).map(|i| format!("roll-{i:05}")).collect();
    let value = |k: &str| format!("value of {k}");
    write_all(&c, &keys, value);
    // Counters restart with their process: sum each process's growth before it
    // goes, from a baseline taken once the writes are in and the rings settled.
    let moved = |c: &Cluster, i: usize| counter(c, i, "swimkv_rebalance_bytes_moved_total");
    std::thread::sleep(2 * SECOND);
    let mut base: Vec<f64> = (0..5).map(|i| moved(&c, i)).collect();
    let mut bytes = 0.0;
    for (i, base) in base.iter_mut().enumerate() {
        bytes += moved(&c, i) - *base;
        *base = 0.0;
        let restarted = Instant::now();
        if kill {
            c.kill(i);
        } else {
            assert_eq!(
                c.terminate(i, 30 * SECOND),
                Some(0),
                "node {i} did not stop"
            );
        }
        c.restart(i);
        assert!(
            c.wait_for(60 * SECOND, || c.ready(i)),
            "node {i} never became ready after its restart"
        );
        eprintln!(
            "node {i} restarted and ready after {:?}",
            restarted.elapsed()
        );
    }
    std::thread::sleep(2 * SECOND);
    bytes += (0..5).map(|i| moved(&c, i) - base[i]).sum::<f64>();
    let histories: BTreeMap<String, Vec<Op>> = keys
        .iter()
        .map(|k| {
            let op = Op {
                value: Some(value(k)),
                acked: true,
            };
            (k.clone(), vec![op])
        })
        .collect();
    let lost = check(&c, &histories, 3);
    assert!(
        lost.is_empty(),
        "{} of {} keys lost after a durable rolling restart ({}): {:?}",
        lost.len(),
        keys.len(),
        if kill { "kill -9" } else { "SIGTERM" },
        &lost[..lost.len().min(10)]
    );
    eprintln!(
        "durable rolling restart ({}): {bytes} bytes moved by handoff",
        if kill { "kill -9" } else { "SIGTERM" }
    );
    bytes
}

#[test]
fn a_durable_rolling_restart_with_sigterm_loses_no_key_and_streams_nothing() {
    let bytes = rolling_restart(24200, false);
    assert_eq!(
        bytes, 0.0,
        "a stopped node keeps its place: nothing is re-streamed"
    );
}

#[test]
fn a_durable_rolling_restart_with_kill_9_loses_no_key() {
    rolling_restart(24300, true);
}

/// Runs the binary on `dir` and expects it to refuse to start: its stderr.
fn refused(port: u16, dir: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_swimkv"))
        .arg(port.to_string())
        .arg("--peer-port")
        .arg((port + 5_000).to_string())
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .expect("run swimkv");
    assert_eq!(out.status.code(), Some(2), "expected a refusal");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn a_directory_in_use_of_another_cluster_or_down_past_the_grace_period_is_refused() {
    let mut c = Cluster::start(24400, 1, &["--tombstone-grace-ms", "3000"]);
    assert!(all_ready(&c, 10 * SECOND));
    let dir = c.data_dir(0);
    let e = refused(24401, &dir, &[]);
    assert!(e.contains("in use by another swimkv process"), "{e}");
    assert_eq!(c.terminate(0, 10 * SECOND), Some(0));
    let e = refused(24400, &dir, &["--cluster-id", "another"]);
    assert!(e.contains("belongs to cluster"), "{e}");
    // Down for longer than the grace period: it may resurrect deleted keys.
    std::thread::sleep(4 * SECOND);
    let e = refused(24400, &dir, &["--tombstone-grace-ms", "3000"]);
    assert!(e.contains("grace period") && e.contains("rm -r"), "{e}");
    // After the wipe it says to do, the node starts (empty).
    c.wipe(0);
    c.restart(0);
    assert!(
        c.wait_for(10 * SECOND, || c.ready(0)),
        "did not start after the wipe"
    );
}
