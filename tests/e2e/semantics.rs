//! Data semantics end to end: a write acknowledged after another one wins, with
//! and without a skewed clock (libfaketime, installed by
//! `scripts/ensure-faketime.sh` when missing); TTL; conditional writes.

use super::cluster::{http, http_with, Cluster};
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

fn all_alive(c: &Cluster, count: usize) -> bool {
    c.wait_for(15 * SECOND, || {
        c.running().iter().all(|&i| c.count(i, "alive") == count)
    })
}

fn post(c: &Cluster, node: usize, key: &str, value: &str) -> u16 {
    http(
        c.port(node),
        "POST",
        &format!("/d/{key}"),
        value.as_bytes(),
        5 * SECOND,
    )
    .status
}

/// A POST that must be acknowledged; the answer's body names why when it is not.
fn post_acked(c: &Cluster, node: usize, key: &str, value: &str) {
    let a = http(
        c.port(node),
        "POST",
        &format!("/d/{key}"),
        value.as_bytes(),
        5 * SECOND,
    );
    assert_eq!(a.status, 200, "{key} through node {node}: {}", a.text());
}

fn get(c: &Cluster, node: usize, key: &str) -> (u16, String) {
    let a = http(c.port(node), "GET", &format!("/d/{key}"), b"", 5 * SECOND);
    (a.status, a.text())
}

#[test]
fn a_thousand_keys_written_through_one_node_then_another_always_read_the_later_write() {
    let c = Cluster::start(23600, 3, &[]);
    assert!(all_alive(&c, 3));
    let keys: Vec<String> = (0..1_000).map(|i| format!("order-{i}")).collect();
    let lost = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for (t, chunk) in keys.chunks(250).enumerate() {
            let (c, lost) = (&c, &lost);
            s.spawn(move || {
                for (i, k) in chunk.iter().enumerate() {
                    let first = (i + t) % 3;
                    let second = (first + 1) % 3;
                    assert_eq!(post(c, first, k, "one"), 200, "{k} via {first}");
                    // Starts after the first write was acknowledged, often in the
                    // same millisecond.
                    assert_eq!(post(c, second, k, "two"), 200, "{k} via {second}");
                    let got = get(c, (second + 1) % 3, k);
                    if got != (200, "two".to_string()) {
                        lost.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{k}: {got:?}"));
                    }
                }
            });
        }
    });
    let lost = lost.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(
        lost.is_empty(),
        "{} later writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

fn faketime() -> String {
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/ensure-faketime.sh"
        ))
        .output()
        .expect("run scripts/ensure-faketime.sh");
    let lib = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !lib.is_empty(),
        "no libfaketime: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

fn metric(c: &Cluster, node: usize, name: &str) -> Option<f64> {
    let m = http(c.port(node), "GET", "/metrics", b"", 2 * SECOND).text();
    m.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn with_one_clock_two_minutes_ahead_the_later_write_always_wins_and_deletes_stay_deleted() {
    let lib = faketime();
    const FAST: usize = 4;
    let c = Cluster::start_env(23700, 5, &[], |i| {
        if i == FAST {
            vec![
                ("LD_PRELOAD".into(), lib.clone()),
                ("FAKETIME".into(), "+120s".into()),
                ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ]
        } else {
            Vec::new()
        }
    });
    assert!(all_alive(&c, 5));
    assert!(
        c.wait_for(20 * SECOND, || metric(&c, FAST, "swimkv_clock_skewed")
            == Some(1.0)),
        "the fast node never found its clock off"
    );
    // The normal nodes coordinate the writes that must succeed: as an operator
    // would, start once they are ready (joined, settled, quorums alive).
    assert!(
        c.wait_for(20 * SECOND, || (0..FAST).all(|i| c.ready(i))),
        "the normal nodes did not get ready"
    );
    let mut fast_acked = 0;
    let mut wrong = Vec::new();
    for i in 0..100 {
        let normal = i % FAST;
        // The fast node first, then a normal one after it answered.
        let k = format!("skew-a-{i}");
        fast_acked += usize::from(post(&c, FAST, &k, "fast") == 200);
        post_acked(&c, normal, &k, "normal");
        for node in [(normal + 1) % FAST, FAST] {
            let got = get(&c, node, &k);
            if got != (200, "normal".to_string()) {
                wrong.push(format!("{k} via {node}: {got:?}"));
            }
        }
        // A normal node first, then the fast one: its write may fail, never win silently.
        let k = format!("skew-b-{i}");
        post_acked(&c, normal, &k, "normal");
        let fast = post(&c, FAST, &k, "fast");
        let expect = if fast == 200 { "fast" } else { "normal" };
        let got = get(&c, (normal + 2) % FAST, &k);
        if got != (200, expect.to_string()) {
            wrong.push(format!("{k} (fast write {fast}): {got:?}"));
        }
        fast_acked += usize::from(fast == 200);
        // A delete through a normal node after a write through the fast one.
        let k = format!("skew-c-{i}");
        fast_acked += usize::from(post(&c, FAST, &k, "fast") == 200);
        let d = http(
            c.port(normal),
            "DELETE",
            &format!("/d/{k}"),
            b"",
            5 * SECOND,
        );
        assert_eq!(d.status, 200, "{k}: {}", d.text());
        if get(&c, (normal + 3) % FAST, &k).0 != 404 {
            wrong.push(format!("{k}: deleted but still there"));
        }
    }
    eprintln!("writes through the fast node acknowledged: {fast_acked} of 300");
    assert!(
        wrong.is_empty(),
        "{} wrong: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    // A fast write refused is a 503 saying why.
    let a = http(c.port(FAST), "POST", "/d/refused", b"x", 5 * SECOND);
    assert_eq!(a.status, 503);
    assert!(a.text().contains("clock_skew"), "{}", a.text());
    // Nothing deleted came back later (repair and anti-entropy only merge).
    std::thread::sleep(2 * SECOND);
    for i in 0..100 {
        let k = format!("skew-c-{i}");
        assert_eq!(get(&c, i % 5, &k).0, 404, "{k} came back");
    }
    assert!(metric(&c, 0, "swimkv_clock_skewed") == Some(0.0));
}

#[test]
fn a_value_with_a_ttl_reads_until_it_expires_then_404_on_every_node_even_after_anti_entropy() {
    let c = Cluster::start(23800, 3, &["--anti-entropy-interval-ms", "500"]);
    assert!(all_alive(&c, 3));
    let a = http(
        c.port(0),
        "POST",
        "/d/short?ttl=2",
        b"soon gone",
        5 * SECOND,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    for node in 0..3 {
        let a = http(c.port(node), "GET", "/d/short", b"", 5 * SECOND);
        assert_eq!(
            (a.status, a.text().as_str()),
            (200, "soon gone"),
            "node {node}"
        );
        let expires = a.header("X-Swimkv-Expires").unwrap_or_default();
        assert!(
            expires.ends_with('Z') && expires.contains('T'),
            "node {node}: {expires:?}"
        );
    }
    let written = Instant::now();
    std::thread::sleep(3 * SECOND - written.elapsed().min(SECOND));
    for node in 0..3 {
        assert_eq!(get(&c, node, "short").0, 404, "node {node} after 3 s");
    }
    std::thread::sleep(2 * SECOND); // several anti-entropy rounds
    for node in 0..3 {
        assert_eq!(
            get(&c, node, "short").0,
            404,
            "node {node} after anti-entropy"
        );
    }
    for bad in ["0", "-1", "soon", "315360001", ""] {
        let a = http(
            c.port(1),
            "POST",
            &format!("/d/bad?ttl={bad}"),
            b"x",
            5 * SECOND,
        );
        assert_eq!(a.status, 400, "ttl={bad}: {}", a.text());
    }
    assert_eq!(get(&c, 1, "bad").0, 404, "a refused ttl wrote nothing");
}

#[test]
fn conditional_writes_create_only_and_write_over_an_exact_version() {
    let c = Cluster::start(23900, 3, &[]);
    assert!(all_alive(&c, 3));
    let created = http_with(
        c.port(0),
        "POST",
        "/d/cond",
        &[("If-None-Match", "*")],
        b"v1",
        5 * SECOND,
    );
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(
        created.header("X-Swimkv-Precondition").as_deref(),
        Some("best-effort")
    );
    let etag = created.header("ETag").expect("an ETag on the write");
    let again = http_with(
        c.port(1),
        "POST",
        "/d/cond",
        &[("If-None-Match", "*")],
        b"v2",
        5 * SECOND,
    );
    assert_eq!(again.status, 412, "{}", again.text());
    assert_eq!(again.header("ETag").as_deref(), Some(etag.as_str()));
    assert_eq!(
        get(&c, 2, "cond"),
        (200, "v1".to_string()),
        "a 412 leaves the key unchanged"
    );
    let read_tag = http(c.port(2), "GET", "/d/cond", b"", 5 * SECOND).header("ETag");
    assert_eq!(read_tag.as_deref(), Some(etag.as_str()));
    let over = http_with(
        c.port(1),
        "PUT",
        "/d/cond",
        &[("If-Match", &etag)],
        b"v3",
        5 * SECOND,
    );
    assert_eq!(over.status, 200, "{}", over.text());
    let stale = http_with(
        c.port(2),
        "PUT",
        "/d/cond",
        &[("If-Match", &etag)],
        b"v4",
        5 * SECOND,
    );
    assert_eq!(stale.status, 412, "{}", stale.text());
    assert_eq!(get(&c, 0, "cond"), (200, "v3".to_string()));
    let new_tag = over.header("ETag").expect("ETag");
    let d = http_with(
        c.port(0),
        "DELETE",
        "/d/cond",
        &[("If-Match", &etag)],
        b"",
        5 * SECOND,
    );
    assert_eq!(d.status, 412, "a delete over a stale version: {}", d.text());
    let d = http_with(
        c.port(0),
        "DELETE",
        "/d/cond",
        &[("If-Match", &new_tag)],
        b"",
        5 * SECOND,
    );
    assert_eq!(d.status, 200, "{}", d.text());
    // Deleted: create-only succeeds again.
    let recreated = http_with(
        c.port(2),
        "POST",
        "/d/cond",
        &[("If-None-Match", "*")],
        b"v5",
        5 * SECOND,
    );
    assert_eq!(recreated.status, 200, "{}", recreated.text());
}
