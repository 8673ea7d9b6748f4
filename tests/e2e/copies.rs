//! Counting copies across a cluster through `GET /cluster/local` and checking
//! that every key sits on exactly its preference list.

use super::cluster::{http, Cluster};
use std::collections::BTreeMap;
use std::time::Duration;

/// One copy of a key on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    pub node: usize,
    pub version: String,
    pub tombstone: bool,
}

/// Every key held by the running nodes, with its copies.
pub fn copies(c: &Cluster) -> BTreeMap<String, Vec<Copy>> {
    let mut all: BTreeMap<String, Vec<Copy>> = BTreeMap::new();
    for node in c.running() {
        let mut after = String::new();
        for _ in 0..10_000 {
            let path = format!("/cluster/local?limit=5000&after={after}");
            let a = http(c.port(node), "GET", &path, b"", Duration::from_secs(5));
            let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
            for k in v["keys"].as_array().into_iter().flatten() {
                all.entry(k["key"].as_str().unwrap_or("").to_string())
                    .or_default()
                    .push(Copy {
                        node,
                        version: k["version"].as_str().unwrap_or("").to_string(),
                        tombstone: k["tombstone"].as_bool().unwrap_or(false),
                    });
            }
            match v["next"].as_str() {
                Some(next) => after = percent_encode(next),
                None => break,
            }
        }
    }
    all
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Keys whose copies are not exactly on their preference list over the running
/// nodes (computed with the crate's own ring, as every node does).
pub fn misplaced(c: &Cluster, keys: &[String], n: usize) -> Vec<String> {
    let ring = swimkv::ring::ring::Ring::new(0, c.running().into_iter().map(|i| c.name(i)), 64);
    let held = copies(c);
    let mut bad = Vec::new();
    for k in keys {
        let mut want: Vec<usize> = ring
            .locate(k.as_bytes(), n)
            .into_iter()
            .filter_map(|id| id.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
            .map(|p| (p - c.base) as usize)
            .collect();
        want.sort_unstable();
        let mut have: Vec<usize> = held
            .get(k)
            .map(|cs| cs.iter().map(|c| c.node).collect())
            .unwrap_or_default();
        have.sort_unstable();
        if have != want {
            bad.push(format!("{k}: held by {have:?}, preference list {want:?}"));
        }
    }
    bad
}

/// Number of keys with fewer than `n` copies on running nodes.
pub fn under_replicated(c: &Cluster, keys: &[String], n: usize) -> usize {
    let held = copies(c);
    keys.iter()
        .filter(|k| held.get(*k).map_or(0, |cs| cs.len()) < n)
        .count()
}
