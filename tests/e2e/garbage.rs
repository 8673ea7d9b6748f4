//! Garbage on every port of a node: random and almost-valid datagrams on its UDP
//! port, malformed HTTP on its HTTP port, broken frames on its peer RPC port. The
//! node must keep serving right answers, its cluster must not notice, and every
//! refused datagram and frame must show up in /metrics.

use super::cluster::{http, Cluster};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use swimkv::membership::message::{Body, Datagram};
use swimkv::membership::{State, Update};
use swimkv::storage::ops::{ReplicaRequest, ReplicaResponse};
use swimkv::transport::wire::{self, Kind};

const SECOND: Duration = Duration::from_secs(1);
const DATAGRAMS: usize = 10_000;
const HTTP_REQUESTS: usize = 1_000;
/// The node's default peer frame limit (`Limits::default().max_frame_bytes`).
const MAX_FRAME: usize = 4 * 1024 * 1024;

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = rng.gen_range(0..=max);
    (0..len).map(|_| rng.gen()).collect()
}

/// A real datagram of this cluster, as a template to break.
fn valid_payload(rng: &mut StdRng) -> Vec<u8> {
    let body = match rng.gen_range(0..4) {
        0 => Body::Ping {
            seq: rng.gen(),
            wall_ms: rng.gen(),
        },
        1 => Body::Ack {
            seq: rng.gen(),
            echo_ms: rng.gen(),
            wall_ms: rng.gen(),
        },
        2 => Body::Join,
        _ => Body::PingReq {
            seq: rng.gen(),
            target: "127.0.0.1:20901".into(),
        },
    };
    Datagram {
        from: "127.0.0.1:29999".into(),
        generation: rng.gen(),
        body,
        gossip: vec![Update {
            name: "127.0.0.1:29998".into(),
            generation: 1,
            incarnation: 0,
            state: State::Alive,
            peer_port: 29998,
            accuser: None,
            store: 1,
            pending: false,
        }],
    }
    .encode()
}

/// A payload that the SWIM decoder refuses: random, or a real one cut or mutated.
/// (Anything that still decodes would be a real message, not garbage.)
fn garbage_payload(rng: &mut StdRng) -> Vec<u8> {
    loop {
        let v = match rng.gen_range(0..3) {
            0 => random_bytes(rng, 1200),
            1 => {
                let mut v = valid_payload(rng);
                let cut = rng.gen_range(0..v.len());
                v.truncate(cut);
                v
            }
            _ => {
                let mut v = valid_payload(rng);
                for _ in 0..rng.gen_range(1..6) {
                    let i = rng.gen_range(0..v.len());
                    v[i] = rng.gen();
                }
                if rng.gen_bool(0.3) {
                    v.extend(random_bytes(rng, 16));
                }
                v
            }
        };
        if Datagram::decode(&v).is_err() {
            return v;
        }
    }
}

/// The expected refusal reason and the bytes of one bad datagram.
fn bad_datagram(rng: &mut StdRng, cluster: u64) -> (&'static str, Vec<u8>) {
    match rng.gen_range(0..10) {
        0 | 1 => {
            let mut v = random_bytes(rng, 1400);
            if v.starts_with(b"SK") {
                v[0] = b'X';
            }
            ("malformed", v)
        }
        2 => {
            // A header cut short.
            let mut v = wire::encode(cluster, Kind::Swim, 0, &valid_payload(rng)).to_vec();
            v.truncate(rng.gen_range(0..wire::HEADER_LEN));
            if v.len() >= 2 {
                ("malformed", v)
            } else {
                ("malformed", b"SK\x01".to_vec())
            }
        }
        3 => {
            let mut v = wire::encode(cluster, Kind::Swim, 0, &valid_payload(rng)).to_vec();
            // Any other protocol version (0.1 nodes spoke version 1).
            v[2] = loop {
                let b: u8 = rng.gen();
                if b != wire::VERSION {
                    break b;
                }
            };
            ("version", v)
        }
        4 => {
            let mut v = wire::encode(cluster, Kind::Swim, 0, &garbage_payload(rng)).to_vec();
            v[3] = *[0u8, 2, 3, 4, 0x7f, 0xff]
                .get(rng.gen_range(0..6))
                .unwrap_or(&0);
            ("unknown_kind", v)
        }
        5 | 6 => {
            let other = wire::cluster_tag(&format!("other-{}", rng.gen_range(0..4)));
            let payload = if rng.gen_bool(0.5) {
                valid_payload(rng)
            } else {
                garbage_payload(rng)
            };
            (
                "foreign_cluster",
                wire::encode(other, Kind::Swim, 0, &payload).to_vec(),
            )
        }
        _ => (
            // The right envelope around a payload SWIM cannot decode.
            "decode",
            wire::encode(cluster, Kind::Swim, rng.gen(), &garbage_payload(rng)).to_vec(),
        ),
    }
}

/// Counters of the node's /metrics: name (with labels) to value.
fn metrics(port: u16) -> BTreeMap<String, f64> {
    let a = http(port, "GET", "/metrics", b"", 2 * SECOND);
    a.text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Datagrams refused by node `port`, by reason.
fn udp_refused(port: u16) -> BTreeMap<String, u64> {
    metrics(port)
        .into_iter()
        .filter_map(|(k, v)| {
            let reason = k
                .strip_prefix("swimkv_udp_refused_total{reason=\"")?
                .strip_suffix("\"}")?;
            Some((reason.to_string(), v as u64))
        })
        .collect()
}

fn counter(port: u16, name: &str) -> u64 {
    metrics(port).get(name).copied().unwrap_or(0.0) as u64
}

fn sum(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, k: &str) -> u64 {
    after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0)
}

/// Sends `DATAGRAMS` bad datagrams to `port`, paced so the socket buffer keeps up.
/// Returns how many of each expected reason were sent.
fn send_datagrams(rng: &mut StdRng, port: u16, cluster: u64) -> BTreeMap<&'static str, u64> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let mut sent: BTreeMap<&'static str, u64> = BTreeMap::new();
    for i in 0..DATAGRAMS {
        let (reason, bytes) = bad_datagram(rng, cluster);
        if socket.send_to(&bytes, ("127.0.0.1", port)).is_ok() {
            *sent.entry(reason).or_default() += 1;
        }
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    sent
}

/// One malformed HTTP request: its bytes, and whether to close right after them.
fn bad_http(rng: &mut StdRng, i: usize) -> Vec<u8> {
    let paths = [
        "/d/junk",
        "/health",
        "/metrics",
        "/nope",
        "/d/",
        "/cluster/members",
    ];
    let path = paths[rng.gen_range(0..paths.len())];
    match i % 10 {
        0 => random_bytes(rng, 2000),
        1 => {
            let lines: [&[u8]; 8] = [
                b"GET\r\n\r\n",
                b"HELLO WORLD\r\n\r\n",
                b"GET / HTTP/9.9\r\n\r\n",
                b"GET /d/x HTTP/1.1 extra words\r\n\r\n",
                b"GET  /health  HTTP/1.1\r\n\r\n",
                b"\r\n\r\n\r\n",
                b" / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /health HTTP/1.1\nHost x\n\n",
            ];
            if rng.gen_bool(0.2) {
                let long = "a".repeat(rng.gen_range(10_000..200_000));
                format!("GET /d/{long} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
            } else {
                lines[rng.gen_range(0..lines.len())].to_vec()
            }
        }
        2 => {
            let mut v = format!("GET {path} HTTP/1.1\r\nHost: x\r\n").into_bytes();
            if rng.gen_bool(0.5) {
                let n = rng.gen_range(20_000..300_000);
                v.extend(format!("X-Big: {}\r\n", "h".repeat(n)).into_bytes());
            } else {
                for h in 0..rng.gen_range(100..1000) {
                    v.extend(format!("X-H{h}: {h}\r\n").into_bytes());
                }
            }
            v.extend(b"\r\n");
            v
        }
        3 => {
            let bad = ["%zz", "%", "%4", "%C3%28", "%00", "%FF%FE", "%%%", "%E2%82"];
            let b = bad[rng.gen_range(0..bad.len())];
            let route = if rng.gen_bool(0.5) {
                "/d/junk-"
            } else {
                "/cluster/locate/"
            };
            format!("GET {route}{b} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
        }
        4 => {
            // A body promised long and cut off by the close.
            let mut v =
                b"POST /d/junk-trunc HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                    .to_vec();
            v.extend(random_bytes(rng, 5000));
            v
        }
        5 => {
            let methods = [
                "PATCH", "BREW", "TRACE", "CONNECT", "get", "G=T", "OPTIONS", "HEAD",
            ];
            let m = methods[rng.gen_range(0..methods.len())];
            format!("{m} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").into_bytes()
        }
        6 => {
            let lens = [
                "99999999999999999999999",
                "-1",
                "abc",
                "18446744073709551616",
                "5, 6",
                "1e9",
            ];
            let l = lens[rng.gen_range(0..lens.len())];
            format!("PUT /d/junk-cl HTTP/1.1\r\nHost: x\r\nContent-Length: {l}\r\n\r\nbody")
                .into_bytes()
        }
        7 => {
            let mut v = b"GET /d/".to_vec();
            v.extend((0..rng.gen_range(1..40)).map(|_| rng.gen_range(0x80..=0xffu8)));
            v.extend(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            v
        }
        8 => {
            // Chunked bodies that lie.
            let bodies: [&[u8]; 4] = [
                b"zz\r\nhello\r\n0\r\n\r\n",
                b"ffffffffffffffffff\r\nx\r\n",
                b"5\r\nhelloXX0\r\n\r\n",
                b"3\r\nabc",
            ];
            let mut v = b"POST /d/junk-chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                .to_vec();
            if rng.gen_bool(0.3) {
                v.extend(b"Content-Length: 3\r\n");
            }
            v.extend(b"\r\n");
            v.extend(bodies[rng.gen_range(0..bodies.len())]);
            v
        }
        _ => {
            // A good head with a garbage (non-UTF-8) header value and version.
            let mut v = format!("GET {path} HTTP/1.").into_bytes();
            v.push(rng.gen());
            v.extend(b"\r\nHost: ");
            v.extend(random_bytes(rng, 64));
            v.extend(b"\r\n\r\n");
            v
        }
    }
}

/// Writes `bytes` on a fresh connection, closes the write side and reads what
/// comes back (bounded); the status code of the answer, 0 when there is none.
fn raw_exchange(port: u16, bytes: &[u8], timeout: Duration) -> u16 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    std::str::from_utf8(raw.get(..12).unwrap_or(&[]))
        .ok()
        .and_then(|head| head.strip_prefix("HTTP/1.1 "))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Sends the malformed HTTP requests from a few threads; statuses seen, by code.
fn send_http(seed: u64, port: u16) -> BTreeMap<u16, usize> {
    const THREADS: usize = 4;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed + t as u64);
                let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
                for i in (t..HTTP_REQUESTS).step_by(THREADS) {
                    let req = bad_http(&mut rng, i);
                    *statuses
                        .entry(raw_exchange(port, &req, 2 * SECOND))
                        .or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    for h in handles {
        for (code, n) in h.join().expect("http thread") {
            *all.entry(code).or_default() += n;
        }
    }
    all
}

fn frame(envelope: &[u8]) -> Vec<u8> {
    let mut v = (envelope.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(envelope);
    v
}

/// What was sent to the peer RPC port.
#[derive(Debug, Default)]
struct RpcSent {
    /// Connections whose first frame has a refused envelope (one count each).
    refused: u64,
    /// ... of which from another cluster.
    foreign: u64,
    /// Connections opened with an over-long length prefix.
    oversize: u64,
    /// Requests with a good envelope and an undecodable payload.
    undecodable: u64,
    /// ... answered with a replica error.
    answered_error: u64,
}

fn rpc_connection(port: u16, bytes: &[u8]) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(2 * SECOND));
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    raw
}

fn send_rpc(rng: &mut StdRng, port: u16, cluster: u64) -> RpcSent {
    let mut sent = RpcSent::default();
    for i in 0..400 {
        match i % 8 {
            0 => {
                // Random bytes: a random length prefix, nearly always over the limit.
                let _ = rpc_connection(port, &random_bytes(rng, 2000));
            }
            1 => {
                let len = rng.gen_range(MAX_FRAME as u32 + 1..=u32::MAX);
                let mut v = len.to_be_bytes().to_vec();
                v.extend(random_bytes(rng, 100));
                let _ = rpc_connection(port, &v);
                sent.oversize += 1;
            }
            2 | 3 => {
                // A good length prefix around a garbage envelope.
                let mut env = random_bytes(rng, 300);
                if env.starts_with(b"SK") {
                    env[0] = b'X';
                }
                let _ = rpc_connection(port, &frame(&env));
                sent.refused += 1;
            }
            4 => {
                let mut env = wire::encode(cluster, Kind::Request, 1, b"x").to_vec();
                match rng.gen_range(0..3) {
                    0 => env[2] = 9,                      // version
                    1 => env[3] = rng.gen_range(4..=255), // kind
                    _ => env = wire::encode(cluster, Kind::Response, 1, b"x").to_vec(),
                }
                let _ = rpc_connection(port, &frame(&env));
                sent.refused += 1;
            }
            5 | 6 => {
                let other = wire::cluster_tag(&format!("other-{i}"));
                let payload = postcard::to_allocvec(&ReplicaRequest::Read {
                    key: "k0".into(),
                    expect: None,
                })
                .expect("encode");
                let env = wire::encode(other, Kind::Request, 1, &payload);
                let _ = rpc_connection(port, &frame(&env));
                sent.refused += 1;
                sent.foreign += 1;
            }
            _ => {
                // A well-formed request frame whose payload is no replica request.
                let payload = loop {
                    let p = random_bytes(rng, 200);
                    if postcard::from_bytes::<ReplicaRequest>(&p).is_err() {
                        break p;
                    }
                };
                let env = wire::encode(cluster, Kind::Request, 77, &payload);
                let answer = rpc_connection(port, &frame(&env));
                sent.undecodable += 1;
                let decoded = answer
                    .get(4..)
                    .and_then(|e| wire::decode(cluster, bytes::Bytes::copy_from_slice(e)).ok())
                    .filter(|e| e.kind == Kind::Response && e.id == 77)
                    .and_then(|e| postcard::from_bytes::<ReplicaResponse>(&e.payload).ok());
                if matches!(decoded, Some(ReplicaResponse::Error(_))) {
                    sent.answered_error += 1;
                }
            }
        }
    }
    sent
}

#[test]
fn garbage_on_every_port_is_refused_counted_and_changes_nothing() {
    let started = Instant::now();
    let c = Cluster::start(20900, 3, &[]);
    let all = [0, 1, 2];
    let all_alive = |c: &Cluster| all.iter().all(|&i| c.count(i, "alive") == 3);
    assert!(
        c.wait_for(10 * SECOND, || all_alive(&c)),
        "3 nodes did not see each other"
    );
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        let a = http(
            c.port(i % 3),
            "PUT",
            &format!("/d/{k}"),
            k.as_bytes(),
            5 * SECOND,
        );
        assert_eq!(a.status, 200, "write {k}: {}", a.text());
    }

    let port = c.port(0);
    let cluster = wire::cluster_tag("swimkv");
    let seed = 0x06a7_ba6e;
    let mut rng = StdRng::seed_from_u64(seed);
    let udp_before = udp_refused(port);
    let rpc_refused_before = counter(port, "swimkv_rpc_refused_frames_total");
    let rpc_foreign_before = counter(port, "swimkv_rpc_foreign_cluster_total");

    let t = Instant::now();
    let sent = send_datagrams(&mut rng, port, cluster);
    let total: u64 = sent.values().sum();
    eprintln!("sent {total} bad datagrams in {:?}: {sent:?}", t.elapsed());

    let t = Instant::now();
    let statuses = send_http(seed, port);
    eprintln!(
        "sent {HTTP_REQUESTS} malformed HTTP requests in {:?}; answers by status (0: none): {statuses:?}",
        t.elapsed()
    );

    let t = Instant::now();
    let rpc = send_rpc(&mut rng, c.peer_port(0), cluster);
    eprintln!("peer RPC garbage in {:?}: {rpc:?}", t.elapsed());

    // The node still answers, and right.
    assert_eq!(http(port, "GET", "/health", b"", 2 * SECOND).status, 200);
    for k in &keys {
        let a = http(port, "GET", &format!("/d/{k}"), b"", 5 * SECOND);
        assert_eq!(
            (a.status, a.text()),
            (200, k.clone()),
            "read {k} via node 0"
        );
    }
    // No cut, lying or oversized body became a write.
    for k in ["junk-trunc", "junk-cl", "junk-chunk"] {
        let a = http(port, "GET", &format!("/d/{k}"), b"", 5 * SECOND);
        assert_eq!(
            a.status,
            404,
            "{k} was written from a broken request: {}",
            a.text()
        );
    }
    // Nobody noticed.
    assert!(
        c.wait_for(5 * SECOND, || all_alive(&c)),
        "membership disturbed: {:?} / {:?} / {:?}",
        c.view(0),
        c.view(1),
        c.view(2)
    );

    // Every bad datagram is counted once, under the reason it was built for.
    let mut udp_after = udp_refused(port);
    c.wait_for(3 * SECOND, || {
        udp_after = udp_refused(port);
        sum(&udp_after) - sum(&udp_before) >= total
    });
    let refused = sum(&udp_after) - sum(&udp_before);
    eprintln!("datagrams refused: {refused} of {total}: {udp_after:?}");
    assert!(
        refused * 10 >= total * 9,
        "only {refused} of {total} bad datagrams counted: {udp_after:?}"
    );
    assert!(
        refused <= total + 100,
        "more refused than sent: {udp_after:?}"
    );
    for (reason, n) in &sent {
        let got = if *reason == "decode" {
            // A full mailbox refuses before decoding.
            delta(&udp_after, &udp_before, "decode")
                + delta(&udp_after, &udp_before, "mailbox_full")
        } else {
            delta(&udp_after, &udp_before, reason)
        };
        assert!(
            got * 10 >= n * 9,
            "{reason}: {got} counted of {n} sent ({udp_after:?})"
        );
    }

    // HTTP: malformed requests get 4xx or a closed connection, never a 5xx.
    assert!(
        statuses.keys().all(|s| *s < 500),
        "a malformed request got a server error: {statuses:?}"
    );

    // Peer RPC: refused frames and foreign clusters counted; garbage requests answered.
    let rpc_refused = counter(port, "swimkv_rpc_refused_frames_total") - rpc_refused_before;
    let rpc_foreign = counter(port, "swimkv_rpc_foreign_cluster_total") - rpc_foreign_before;
    eprintln!("rpc refused frames {rpc_refused}, foreign cluster {rpc_foreign}");
    assert!(
        rpc_refused >= rpc.refused + rpc.oversize,
        "{rpc_refused} < {rpc:?}"
    );
    assert_eq!(rpc_foreign, rpc.foreign);
    assert_eq!(
        rpc.answered_error, rpc.undecodable,
        "an undecodable request was not answered with a replica error"
    );
    let took = started.elapsed();
    eprintln!("garbage test took {took:?}");
}
