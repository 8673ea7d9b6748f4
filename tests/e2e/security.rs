//! Security end to end (DESIGN section 11): HTTPS with a self-signed
//! certificate (curl `--cacert`), bearer tokens and roles on the real binary,
//! and a cluster secret rotation by file edits and SIGHUPs under a write load.

use super::cluster::{http, http_with, Answer, Cluster};
use super::SECOND;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Makes a self-signed certificate for 127.0.0.1 and localhost in `dir` with openssl.
fn self_signed(dir: &Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // An end-entity certificate (rustls clients refuse a CA as one).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed to make a test certificate (.ci/run installs it)");
    assert!(status.success(), "openssl could not make a certificate");
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

/// `curl` over HTTPS trusting `ca`; (status, body).
fn curl(ca: &str, method: &str, url: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert", ca, "-X", method])
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn https_serves_with_a_self_signed_certificate_and_plain_http_gets_no_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let c = Cluster::start(
        24500,
        1,
        &["--in-memory", "--tls-cert", &cert, "--tls-key", &key],
    );
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", c.port(0));
    let ready = c.wait_for(15 * SECOND, || {
        curl(&cert, "GET", &url("/ready"), &[]).0 == 200
    });
    assert!(ready, "the HTTPS node did not get ready");
    let (status, body) = curl(
        &cert,
        "POST",
        &url("/d/k"),
        &["--data-binary", "secret value"],
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&cert, "GET", &url("/d/k"), &[]);
    assert_eq!((status, body.as_str()), (200, "secret value"));

    // Plain HTTP to the TLS port: no HTTP answer, and certainly not the value.
    let plain: Answer = http(c.port(0), "GET", "/d/k", b"", 2 * SECOND);
    assert_eq!(plain.status, 0, "plain HTTP was answered: {}", plain.head);
    assert!(!plain.text().contains("secret value"));
    // A client that does not trust the certificate is refused by curl itself.
    let untrusted = Command::new("curl")
        .args(["-sS", "--max-time", "5", &url("/health")])
        .output()
        .expect("curl");
    assert!(
        !untrusted.status.success(),
        "an untrusted certificate passed"
    );
}

const READER: &str = "reader-0123456789abcdef";
const APP_WRITER: &str = "writer-0123456789abcdef";
const ADMIN: &str = "admin-00123456789abcdef";

fn with_token(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    http_with(port, method, path, &headers, body, 5 * SECOND)
}

#[test]
fn tokens_give_each_role_its_routes_and_a_node_refusing_a_leave_stays_a_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("# test tokens\n{READER} read\n{APP_WRITER} write app/\n{ADMIN} admin\n"),
    )
    .expect("write tokens");
    let tokens = tokens.to_string_lossy().into_owned();
    let args = [
        "--in-memory",
        "--cluster-secret",
        "correct horse battery",
        "--auth-tokens",
        &tokens,
    ];
    let mut c = Cluster::start(24600, 3, &args);
    c.token = Some(READER.to_string());
    let all = [0, 1, 2];
    assert!(
        c.wait_for(15 * SECOND, || all
            .iter()
            .all(|&i| c.count(i, "alive") == 3)),
        "3 nodes with tokens did not converge"
    );
    let p = c.port(1);
    for (method, path) in [
        ("GET", "/d/k"),
        ("GET", "/cluster/local"),
        ("POST", "/cluster/leave"),
    ] {
        let a = with_token(p, method, path, None, b"");
        assert_eq!(a.status, 401, "{method} {path}: {}", a.text());
        assert!(a
            .header("WWW-Authenticate")
            .is_some_and(|h| h.starts_with("Bearer")));
        assert!(a.text().contains("\"unauthorized\""), "{}", a.text());
    }
    assert_eq!(c.count(0, "alive"), 3, "the refused leave took node 1 away");
    assert_eq!(with_token(p, "GET", "/health", None, b"").status, 200);

    let w = with_token(p, "POST", "/d/app%2Fx", Some(APP_WRITER), b"v");
    assert_eq!(w.status, 200, "{}", w.text());
    let r = with_token(c.port(2), "GET", "/d/app%2Fx", Some(READER), b"");
    assert_eq!((r.status, r.text().as_str()), (200, "v"));
    assert_eq!(
        with_token(p, "POST", "/d/app%2Fx", Some(READER), b"v").status,
        403
    );
    assert_eq!(
        with_token(p, "POST", "/d/other", Some(APP_WRITER), b"v").status,
        403
    );
    let leave = with_token(p, "POST", "/cluster/leave", Some(APP_WRITER), b"");
    assert_eq!(leave.status, 403, "{}", leave.text());
    assert!(leave.text().contains("\"forbidden\""));
    let metrics = http(p, "GET", "/metrics", b"", 2 * SECOND).text();
    assert!(
        metrics.contains("swimkv_auth_refused_total{route=\"/cluster/leave\",status=\"403\"} 1"),
        "{metrics}"
    );

    // SIGHUP: the reader is revoked, a new reader added.
    std::fs::write(
        &tokens,
        format!("{ADMIN} admin\nnew-reader-0123456789 read\n"),
    )
    .expect("rewrite tokens");
    c.signal(1, "-HUP");
    let reloaded = c.wait_for(5 * SECOND, || {
        with_token(p, "GET", "/d/app%2Fx", Some(READER), b"").status == 401
    });
    assert!(reloaded, "the revoked token still works after SIGHUP");
    let r = with_token(p, "GET", "/d/app%2Fx", Some("new-reader-0123456789"), b"");
    assert_eq!(r.status, 200, "{}", r.text());

    let left = with_token(p, "POST", "/cluster/leave", Some(ADMIN), b"");
    assert_eq!(left.status, 200, "{}", left.text());
    assert_eq!(
        c.wait_exit(1, 30 * SECOND),
        Some(0),
        "node 1 did not leave and exit"
    );
    c.token = Some(ADMIN.to_string());
    assert!(
        c.wait_for(10 * SECOND, || c.state_of(0, 1).as_deref() == Some("left")),
        "node 0 does not see node 1 as left: {:?}",
        c.view(0)
    );
}

fn metric(port: u16, name: &str) -> f64 {
    http(port, "GET", "/metrics", b"", 2 * SECOND)
        .text()
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn a_secret_rotation_by_file_edits_and_sighups_fails_no_request_and_suspects_no_one() {
    const OLD: &str = "old-secret-0001";
    const NEW: &str = "new-secret-0002";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |i: usize| dir.path().join(format!("secret-{i}"));
    for i in 0..3 {
        std::fs::write(file(i), format!("{OLD}\n")).expect("write secret");
    }
    let c = Cluster::start_env(24700, 3, &["--in-memory"], |i| {
        vec![(
            "SWIMKV_CLUSTER_SECRET_FILE".to_string(),
            file(i).to_string_lossy().into_owned(),
        )]
    });
    let all = [0, 1, 2];
    assert!(
        c.wait_for(15 * SECOND, || all
            .iter()
            .all(|&i| c.count(i, "alive") == 3)),
        "3 nodes sharing a secret file did not converge"
    );
    let suspicions_before: Vec<f64> = all
        .iter()
        .map(|&i| metric(c.port(i), "swimkv_swim_suspicions_total"))
        .collect();

    // A steady write load through every node, for the whole rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let ports: Vec<u16> = all.iter().map(|&i| c.port(i)).collect();
    let writer = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            // Bounded: the test stops it; 200,000 writes is far more than it makes.
            while !stop.load(Ordering::Relaxed) && n < 200_000 {
                let port = ports[(n % 3) as usize];
                let a = http(port, "POST", &format!("/d/rot-{n}"), b"v", 5 * SECOND);
                if a.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("write {n} through {port}: {} {}", a.status, a.text());
                }
                n += 1;
            }
        })
    };

    for (step, list, accepted) in [
        (1, format!("{OLD},{NEW}"), 2.0),
        (2, format!("{NEW},{OLD}"), 2.0),
        (3, NEW.to_string(), 1.0),
    ] {
        for i in all {
            std::fs::write(file(i), &list).expect("edit secret");
            c.signal(i, "-HUP");
            assert!(
                c.wait_for(5 * SECOND, || metric(c.port(i), "swimkv_cluster_secrets")
                    == accepted),
                "step {step}: node {i} did not reload its secrets"
            );
            // The cluster runs a protocol period or two with this node ahead of the others.
            std::thread::sleep(2 * SECOND);
        }
    }
    std::thread::sleep(2 * SECOND);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("rotation: {ok} writes acknowledged, {failed} failed");
    assert!(ok > 100, "the write load did not run ({ok} writes)");
    assert_eq!(failed, 0, "requests failed during the rotation");
    for (k, &i) in all.iter().enumerate() {
        let after = metric(c.port(i), "swimkv_swim_suspicions_total");
        assert_eq!(
            after, suspicions_before[k],
            "node {i} suspected a member during the rotation"
        );
        assert_eq!(c.count(i, "alive"), 3, "node {i}: {:?}", c.view(i));
    }

    // A node that holds only the old secret is refused once the rotation is complete.
    let mut stale = Command::new(env!("CARGO_BIN_EXE_swimkv"));
    stale
        .args([
            "24799",
            &c.port(0).to_string(),
            "--in-memory",
            "--peer-port",
            "29799",
        ])
        .args(["--cluster-secret", OLD])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let refused_before = metric(c.port(0), "swimkv_udp_refused_total{reason=\"auth\"}");
    let mut stale = stale.spawn().expect("start the stale node");
    let refused = c.wait_for(10 * SECOND, || {
        metric(c.port(0), "swimkv_udp_refused_total{reason=\"auth\"}") > refused_before
    });
    let _ = stale.kill();
    let _ = stale.wait();
    assert!(
        refused,
        "datagrams signed with the old secret were not refused"
    );
    assert_eq!(
        c.count(0, "alive"),
        3,
        "the stale node became a member: {:?}",
        c.view(0)
    );
}
