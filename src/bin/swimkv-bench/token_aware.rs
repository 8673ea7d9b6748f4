//! `--token-aware`: send each request to a replica of its key, as Cassandra's
//! token-aware drivers do, so the coordinating node serves one of the R reads (or W
//! writes) from its own store and one peer hop per request disappears.
//!
//! Before the run the bench asks the first target for `GET /cluster/ring`, rebuilds
//! the ring with swimkv's own placement code, and gives every target the list of key
//! indices whose preference list contains it. A connection to target `t` then draws
//! its keys uniformly from `t`'s list.
//!
//! Invariants: a key in target `t`'s list has `t` in its preference list for the ring
//! fetched at start (a ring change during the run only makes some requests travel one
//! hop more, never fail); every key is in the list of each of its replicas that is a
//! target; a target that is not a ring member is an error, not an empty list.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use swimkv::ring::ring::Ring;

use crate::response::parse_response;

/// What the bench needs of `GET /cluster/ring`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RingView {
    pub(crate) members: Vec<String>,
    pub(crate) vnodes: u32,
    pub(crate) replication: usize,
}

/// Fetches and parses `GET /cluster/ring` from `addr` (`host` for the Host header).
pub(crate) fn fetch_ring(
    addr: SocketAddr,
    host: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<RingView, String> {
    let fail = |e: std::io::Error| format!("--token-aware: GET /cluster/ring from {host}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("GET /cluster/ring HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).map_err(fail)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(fail)?;
    parse_ring(&response).map_err(|e| format!("--token-aware: {host}: {e}"))
}

/// Parses a whole HTTP response (read to the connection's close) carrying the
/// `/cluster/ring` JSON body, with the bench's own response parser.
pub(crate) fn parse_ring(response: &[u8]) -> Result<RingView, String> {
    let mut body = Vec::new();
    let meta = parse_response(response, true, &mut body)
        .map_err(|e| format!("bad HTTP response: {e}"))?
        .ok_or_else(|| "truncated HTTP response".to_string())?;
    if meta.status != 200 {
        return Err(format!("/cluster/ring answered {}", meta.status));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("/cluster/ring is not JSON: {e}"))?;
    let members = json["members"]
        .as_array()
        .ok_or_else(|| "/cluster/ring has no members".to_string())?
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect::<Vec<_>>();
    let vnodes = json["vnodes"].as_u64().and_then(|v| u32::try_from(v).ok());
    let replication = json["replication"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok());
    match (vnodes, replication) {
        (Some(vnodes), Some(replication)) if !members.is_empty() => Ok(RingView {
            members,
            vnodes,
            replication,
        }),
        _ => Err("/cluster/ring lacks members, vnodes or replication".into()),
    }
}

/// For each target (by the `host:port` text it was given as), the key indices
/// `0..keys` of which it is a replica.
pub(crate) fn key_subsets(
    view: &RingView,
    targets: &[String],
    key_prefix: &str,
    keys: u64,
) -> Result<Vec<Arc<Vec<u64>>>, String> {
    if let Some(stranger) = targets.iter().find(|t| !view.members.contains(t)) {
        return Err(format!(
            "--token-aware: target {stranger} is not a ring member (members are named host:port as in /cluster/ring)"
        ));
    }
    let ring = Ring::new(0, view.members.iter().cloned(), view.vnodes);
    let n = view.replication.min(view.members.len());
    let mut subsets: Vec<Vec<u64>> = vec![Vec::new(); targets.len()];
    for k in 0..keys {
        let key = format!("{key_prefix}{k}");
        for replica in ring.locate(key.as_bytes(), n) {
            for (i, t) in targets.iter().enumerate() {
                if t == replica {
                    subsets[i].push(k);
                }
            }
        }
    }
    if let Some(i) = subsets.iter().position(Vec::is_empty) {
        return Err(format!(
            "--token-aware: target {} holds none of the {keys} keys",
            targets[i]
        ));
    }
    Ok(subsets.into_iter().map(Arc::new).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(members: usize) -> RingView {
        RingView {
            members: (0..members)
                .map(|i| format!("127.0.0.1:{}", 9000 + i))
                .collect(),
            vnodes: 64,
            replication: 3,
        }
    }

    #[test]
    fn every_key_is_in_the_list_of_each_of_its_replicas_and_no_other() {
        let v = view(6);
        let subsets = key_subsets(&v, &v.members, "bench-", 2_000).expect("subsets");
        let ring = Ring::new(0, v.members.iter().cloned(), 64);
        for k in 0..2_000u64 {
            let key = format!("bench-{k}");
            let replicas = ring.locate(key.as_bytes(), 3);
            for (i, member) in v.members.iter().enumerate() {
                assert_eq!(
                    subsets[i].contains(&k),
                    replicas.contains(&member.as_str()),
                    "key {k} and member {member}"
                );
            }
        }
        let total: usize = subsets.iter().map(|s| s.len()).sum();
        assert_eq!(total, 3 * 2_000);
    }

    #[test]
    fn a_target_that_is_not_a_member_is_an_error() {
        let v = view(3);
        let err = key_subsets(&v, &["127.0.0.1:1".to_string()], "k", 10).expect_err("stranger");
        assert!(err.contains("not a ring member"), "{err}");
    }

    #[test]
    fn the_ring_answer_is_parsed_and_a_bad_one_refused() {
        let body = r#"{"epoch":3,"vnodes":64,"replication":3,"members":[{"id":"127.0.0.1:9000","tokens":[1]},{"id":"127.0.0.1:9001","tokens":[2]}]}"#;
        let ok = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{body}");
        assert_eq!(
            parse_ring(ok.as_bytes()),
            Ok(RingView {
                members: vec!["127.0.0.1:9000".into(), "127.0.0.1:9001".into()],
                vnodes: 64,
                replication: 3
            })
        );
        assert!(parse_ring(b"HTTP/1.1 503 Service Unavailable\r\n\r\n{}").is_err());
        assert!(parse_ring(b"HTTP/1.1 200 OK\r\n\r\n{\"members\":[]}").is_err());
        // A chunked answer is decoded, not taken for the JSON itself.
        let chunked = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        assert!(parse_ring(chunked.as_bytes()).is_ok());
        assert!(parse_ring(b"garbage").is_err());
    }
}
