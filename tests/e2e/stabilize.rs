//! Stabilization end to end: data follows membership.

use super::cluster::{http, Cluster};
use super::copies::{copies, misplaced, under_replicated};
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

/// Writes `value(k)` to every key through node `i % nodes`, with a few threads.
pub fn write_all(c: &Cluster, keys: &[String], value: impl Fn(&str) -> String + Sync) {
    let nodes = c.running();
    std::thread::scope(|s| {
        for (t, chunk) in keys.chunks(keys.len().div_ceil(4).max(1)).enumerate() {
            let nodes = &nodes;
            let value = &value;
            s.spawn(move || {
                for (i, k) in chunk.iter().enumerate() {
                    let node = nodes[(i + t) % nodes.len()];
                    let a = http(
                        c.port(node),
                        "POST",
                        &format!("/d/{k}"),
                        value(k).as_bytes(),
                        5 * SECOND,
                    );
                    assert_eq!(a.status, 200, "write {k}: {}", a.text());
                }
            });
        }
    });
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i:05}")).collect()
}

fn settle(c: &Cluster, keys: &[String], within: Duration) -> Result<Duration, Vec<String>> {
    let started = Instant::now();
    let mut last = Vec::new();
    while started.elapsed() < within {
        last = misplaced(c, keys, 3);
        if last.is_empty() {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(last)
}

fn moved_total(c: &Cluster) -> f64 {
    c.running()
        .into_iter()
        .map(|i| {
            let m = http(c.port(i), "GET", "/metrics", b"", 2 * SECOND).text();
            m.lines()
                .find(|l| l.starts_with("swimkv_rebalance_keys_moved_total "))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum()
}

#[test]
fn a_sixth_node_receives_its_share_and_every_key_keeps_exactly_n_copies() {
    let mut c = Cluster::start(20400, 5, &[]);
    assert!(c.wait_for(10 * SECOND, || (0..5).all(|i| c.count(i, "alive") == 5)));
    let keys = keys(10_000);
    write_all(&c, &keys, |k| format!("v-{k}"));
    assert!(
        settle(&c, &keys, 30 * SECOND).is_ok(),
        "keys not on their replicas after the writes"
    );
    let before = moved_total(&c);
    c.add_node();
    let took = settle(&c, &keys, 60 * SECOND).unwrap_or_else(|bad| {
        panic!(
            "{} keys misplaced, e.g. {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        )
    });
    let moved = moved_total(&c) - before;
    let total_copies = (keys.len() * 3) as f64;
    eprintln!(
        "6th node joined: every key on exactly its 3 replicas after {took:?}; {moved} copies streamed = {:.3} of all {total_copies} copies (1/6 = 0.167)",
        moved / total_copies
    );
    assert!(
        moved / total_copies < 0.5,
        "far more than the new node's share moved: {moved}"
    );
}

#[test]
fn after_a_kill_every_key_has_n_live_copies_again() {
    let mut c = Cluster::start(20500, 6, &[]);
    assert!(c.wait_for(10 * SECOND, || (0..6).all(|i| c.count(i, "alive") == 6)));
    let keys = keys(10_000);
    write_all(&c, &keys, |k| format!("v-{k}"));
    assert!(settle(&c, &keys, 30 * SECOND).is_ok());
    c.kill(4);
    let killed = Instant::now();
    let ok = c.wait_for(60 * SECOND, || under_replicated(&c, &keys, 3) == 0);
    let took = killed.elapsed();
    eprintln!("kill -9 of 1 of 6 with 10000 keys: every key has 3 live copies after {took:?}");
    assert!(
        ok,
        "{} keys still under-replicated",
        under_replicated(&c, &keys, 3)
    );
    assert!(took < 30 * SECOND, "re-replication took {took:?}");
    for k in keys.iter().step_by(97) {
        let a = http(c.port(0), "GET", &format!("/d/{k}"), b"", 5 * SECOND);
        assert_eq!((a.status, a.text()), (200, format!("v-{k}")));
    }
}

#[test]
fn a_graceful_leave_never_leaves_a_key_below_n_minus_one_copies() {
    let mut c = Cluster::start(20600, 5, &[]);
    assert!(c.wait_for(10 * SECOND, || (0..5).all(|i| c.count(i, "alive") == 5)));
    let keys = keys(3_000);
    write_all(&c, &keys, |k| format!("v-{k}"));
    assert!(settle(&c, &keys, 30 * SECOND).is_ok());
    let leaver = c.port(2);
    let leave =
        std::thread::spawn(move || http(leaver, "POST", "/cluster/leave", b"", 60 * SECOND));
    let mut worst = usize::MAX;
    let started = Instant::now();
    while !leave.is_finished() && started.elapsed() < 60 * SECOND {
        let held = copies(&c);
        let min = keys
            .iter()
            .map(|k| held.get(k).map_or(0, |cs| cs.len()))
            .min()
            .unwrap_or(0);
        worst = worst.min(min);
    }
    let a = leave.join().expect("leave thread");
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(c.wait_exit(2, 10 * SECOND), Some(0));
    assert!(worst >= 2, "a key had {worst} copies during the leave");
    let took = settle(&c, &keys, 30 * SECOND).unwrap_or_else(|bad| {
        panic!(
            "{} keys misplaced after the leave: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        )
    });
    eprintln!("graceful leave: at least {worst} copies of every key during it; exactly 3 again {took:?} after");
}

#[test]
fn a_paused_replica_converges_after_resuming_and_deleted_keys_stay_deleted() {
    let c = Cluster::start(20700, 5, &["--anti-entropy-interval-ms", "1000"]);
    assert!(c.wait_for(10 * SECOND, || (0..5).all(|i| c.count(i, "alive") == 5)));
    let keys = keys(1_000);
    write_all(&c, &keys, |k| format!("v1-{k}"));
    assert!(settle(&c, &keys, 30 * SECOND).is_ok());
    c.signal(3, "-STOP");
    // Writes and deletes while node 3 cannot answer (long enough to be declared dead).
    let (rewrites, deletes) = keys.split_at(500);
    let others: Vec<usize> = vec![0, 1, 2, 4];
    for (i, k) in rewrites.iter().enumerate() {
        let a = http(
            c.port(others[i % 4]),
            "POST",
            &format!("/d/{k}"),
            format!("v2-{k}").as_bytes(),
            5 * SECOND,
        );
        assert_eq!(a.status, 200, "{}", a.text());
    }
    for (i, k) in deletes.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let a = http(
            c.port(others[i % 4]),
            "DELETE",
            &format!("/d/{k}"),
            b"",
            5 * SECOND,
        );
        assert_eq!(a.status, 200, "{}", a.text());
    }
    std::thread::sleep(8 * SECOND);
    c.signal(3, "-CONT");
    // Convergence without any client read: every copy of a key has the same version.
    let converged = c.wait_for(60 * SECOND, || {
        let held = copies(&c);
        keys.iter().all(|k| {
            held.get(k).is_some_and(|cs| {
                cs.len() == 3 && cs.windows(2).all(|w| w[0].version == w[1].version)
            })
        })
    });
    if !converged {
        let held = copies(&c);
        let bad: Vec<String> = keys
            .iter()
            .filter_map(|k| {
                let cs = held.get(k);
                let ok = cs.is_some_and(|cs| {
                    cs.len() == 3 && cs.windows(2).all(|w| w[0].version == w[1].version)
                });
                (!ok).then(|| {
                    let at: Vec<String> = cs
                        .into_iter()
                        .flatten()
                        .map(|c| format!("n{}:{}", c.node, c.version))
                        .collect();
                    format!("{k} {at:?}")
                })
            })
            .collect();
        panic!(
            "replicas did not converge after the pause: {} keys, e.g. {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
    }
    for (i, k) in deletes.iter().enumerate() {
        let a = http(c.port(3), "GET", &format!("/d/{k}"), b"", 5 * SECOND);
        if i % 2 == 0 {
            assert_eq!(a.status, 404, "deleted key {k} came back: {}", a.text());
        } else {
            assert_eq!((a.status, a.text()), (200, format!("v1-{k}")));
        }
    }
    for k in rewrites.iter().step_by(7) {
        let a = http(c.port(3), "GET", &format!("/d/{k}"), b"", 5 * SECOND);
        assert_eq!((a.status, a.text()), (200, format!("v2-{k}")));
    }
}

#[test]
fn killing_nodes_one_at_a_time_down_to_n_loses_no_acknowledged_key() {
    let mut c = Cluster::start(20800, 6, &[]);
    assert!(c.wait_for(10 * SECOND, || (0..6).all(|i| c.count(i, "alive") == 6)));
    let keys = keys(3_000);
    write_all(&c, &keys, |k| format!("v-{k}"));
    for victim in [5, 1, 3] {
        c.kill(victim);
        let ok = c.wait_for(60 * SECOND, || misplaced(&c, &keys, 3).is_empty());
        assert!(
            ok,
            "after killing node {victim}, keys are not back on 3 replicas"
        );
    }
    assert_eq!(c.running().len(), 3);
    for k in &keys {
        let a = http(c.port(0), "GET", &format!("/d/{k}"), b"", 5 * SECOND);
        assert_eq!(
            (a.status, a.text()),
            (200, format!("v-{k}")),
            "acknowledged key lost"
        );
    }
}
