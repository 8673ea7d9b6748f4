//! Writes seed corpora of valid encodings into `seeds/<target>/` (kept in the
//! repository; `scripts/fuzz.sh` hands them to libFuzzer beside the working
//! corpus). Regenerate with `cargo run --bin seeds [dir]` from `fuzz/`.

use bytes::{BufMut, Bytes, BytesMut};
use std::path::Path;
use swimkv::membership::message::{Body, Datagram};
use swimkv::membership::{State, Update};
use swimkv::storage::ops::{ReplicaRequest, ReplicaResponse};
use swimkv::storage::{Record, Version};
use swimkv::transport::wire::{self, Kind};
use swimkv_fuzz::{cluster, GENERATION, NODE};

fn update(name: &str, state: State) -> Update {
    Update {
        name: name.into(),
        generation: 1_700_000_000_000,
        incarnation: 3,
        state,
        peer_port: 17001,
        accuser: None,
        store: 1,
        pending: false,
    }
}

fn datagrams() -> Vec<Datagram> {
    let gossip = vec![
        update("127.0.0.1:7001", State::Alive),
        update("127.0.0.1:7002", State::Suspect),
        update("127.0.0.1:7003", State::Dead),
        update("127.0.0.1:7004", State::Left),
    ];
    let bodies = [
        Body::Ping { seq: 1, wall_ms: 1 },
        Body::Ack {
            seq: 1,
            echo_ms: 1,
            wall_ms: 2,
        },
        Body::PingReq {
            seq: 2,
            target: "127.0.0.1:7002".into(),
        },
        Body::Nack { seq: 2 },
        Body::Join,
        Body::Sync {
            reply: true,
            members: gossip.clone(),
            wall_ms: 1,
            joined: true,
        },
    ];
    let mut all: Vec<Datagram> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Datagram {
            from: "127.0.0.1:7001".into(),
            generation: 1_700_000_000_000,
            body,
            gossip: gossip[..i % 5].to_vec(),
        })
        .collect();
    // News about the receiving node itself (it refutes a suspicion).
    all.push(Datagram {
        from: "127.0.0.1:7001".into(),
        generation: 1_700_000_000_000,
        body: Body::Ping { seq: 9, wall_ms: 1 },
        gossip: vec![Update {
            name: NODE.into(),
            generation: GENERATION,
            incarnation: 0,
            state: State::Suspect,
            peer_port: 17000,
            accuser: None,
            store: 1,
            pending: false,
        }],
    });
    all
}

fn requests() -> Vec<ReplicaRequest> {
    let rec = Record::value(Version { ts: 5, node: 1 }, Bytes::from_static(b"value"));
    vec![
        ReplicaRequest::Read {
            key: "a".into(),
            expect: Some(1),
        },
        ReplicaRequest::Put {
            key: "a".into(),
            record: rec.clone(),
            check: swimkv::storage::ops::PutCheck::Expect(None),
        },
        ReplicaRequest::Write {
            key: "a".into(),
            record: rec.clone(),
        },
        ReplicaRequest::WriteBatch {
            records: vec![
                ("a".into(), rec),
                ("b".into(), Record::tombstone(Version { ts: 6, node: 2 })),
            ],
        },
        ReplicaRequest::ReadBatch {
            keys: vec!["a".into(), "b".into()],
        },
        ReplicaRequest::Digest {
            ranges: vec![(0, 1 << 40), (1 << 50, u64::MAX)],
            buckets: 16,
        },
        ReplicaRequest::Versions {
            ranges: vec![(0, u64::MAX)],
            buckets: 16,
            wanted: vec![0, 3, 15],
        },
        ReplicaRequest::Synced {
            from: "127.0.0.1:7001".into(),
            fingerprint: 42,
            haunted: vec![vec![("127.0.0.1:7002".into(), 7)]],
        },
    ]
}

fn responses() -> Vec<ReplicaResponse> {
    let rec = Record::value(Version { ts: 5, node: 1 }, Bytes::from_static(b"value"));
    vec![
        ReplicaResponse::Read(Some(rec.clone())),
        ReplicaResponse::Read(None),
        ReplicaResponse::Written,
        ReplicaResponse::Records(vec![("a".into(), rec)]),
        ReplicaResponse::Digest(vec![1, 2, 3]),
        ReplicaResponse::Versions(vec![("a".into(), Version { ts: 5, node: 1 })]),
        ReplicaResponse::Error("nope".into()),
    ]
}

fn write(dir: &Path, name: String, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn frame(kind: Kind, id: u64, payload: &[u8]) -> Vec<u8> {
    let env = wire::encode(cluster(), kind, id, payload);
    let mut b = BytesMut::new();
    b.put_u32(env.len() as u32);
    b.put_slice(&env);
    b.to_vec()
}

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| "seeds".into());
    let root = Path::new(&root);
    let dg = root.join("datagram");
    let rpc = root.join("rpc_frame");
    std::fs::create_dir_all(&dg).expect("mkdir");
    std::fs::create_dir_all(&rpc).expect("mkdir");

    for (i, d) in datagrams().iter().enumerate() {
        let payload = d.encode();
        write(&dg, format!("seed-raw-{i}"), &payload);
        write(
            &dg,
            format!("seed-env-{i}"),
            &wire::encode(cluster(), Kind::Swim, 0, &payload),
        );
    }
    write(
        &dg,
        "seed-foreign".into(),
        &wire::encode(wire::cluster_tag("other"), Kind::Swim, 0, b"x"),
    );

    // rpc_frame inputs: a chunk-size byte, then a stream of frames.
    let mut stream = vec![7u8];
    for (i, r) in requests().iter().enumerate() {
        let payload = postcard::to_allocvec(r).expect("encode");
        let f = frame(Kind::Request, i as u64 + 1, &payload);
        stream.extend_from_slice(&f);
        let mut one = vec![0u8];
        one.extend_from_slice(&f);
        write(&rpc, format!("seed-req-{i}"), &one);
    }
    for (i, r) in responses().iter().enumerate() {
        let payload = postcard::to_allocvec(r).expect("encode");
        let mut one = vec![3u8];
        one.extend_from_slice(&frame(Kind::Response, i as u64 + 1, &payload));
        write(&rpc, format!("seed-resp-{i}"), &one);
    }
    write(&rpc, "seed-stream".into(), &stream);
    let mut huge = vec![1u8];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    write(&rpc, "seed-oversize".into(), &huge);
    println!("seeds written under {}", root.display());
}
