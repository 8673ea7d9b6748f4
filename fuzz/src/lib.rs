//! What the fuzz targets run, as plain functions: so a crash can be replayed from
//! an ordinary test or binary, and the seed generator shares the constants.
//!
//! Each check feeds untrusted bytes to the decoders a node runs on network input
//! and asserts the properties they promise beyond "does not panic": an accepted
//! envelope re-encodes to the same bytes, and an accepted message re-encodes to
//! something that decodes back to it.

use bytes::{Bytes, BytesMut};
use swimkv::config::{Limits, SwimConfig};
use swimkv::membership::message::{update_size, Datagram};
use swimkv::membership::swim::{Swim, Timer};
use swimkv::storage::ops::{ReplicaRequest, ReplicaResponse};
use swimkv::storage::{Record, Replica, Version};
use swimkv::transport::wire::{self, Kind};
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// The cluster id a node uses by default.
pub const CLUSTER_ID: &str = "swimkv";

/// The cluster tag of [`CLUSTER_ID`].
pub fn cluster() -> u64 {
    wire::cluster_tag(CLUSTER_ID)
}

/// The name and generation of the SWIM node the `datagram` target feeds.
pub const NODE: &str = "127.0.0.1:7000";
/// See [`NODE`].
pub const GENERATION: u64 = 1;

/// The peer RPC frame limit a node runs with by default.
pub fn max_frame() -> usize {
    Limits::default().max_frame_bytes
}

/// Opens an envelope as a node does; an accepted one must be canonical.
fn open(data: &[u8]) -> Option<wire::Envelope> {
    let tag = cluster();
    let env = wire::decode(tag, Bytes::copy_from_slice(data)).ok()?;
    assert_eq!(
        &wire::encode(tag, env.kind, env.id, &env.payload)[..],
        data,
        "an accepted envelope does not re-encode to its bytes"
    );
    Some(env)
}

/// A SWIM payload: decode, round-trip, and hand it to a fresh SWIM core.
fn swim_payload(payload: &[u8]) {
    let Ok(d) = Datagram::decode(payload) else {
        return;
    };
    assert_eq!(
        Datagram::decode(&d.encode()).as_ref(),
        Ok(&d),
        "a decoded datagram does not round-trip"
    );
    for u in &d.gossip {
        let _ = update_size(u);
    }
    // What the membership actor does with it: a node that knows one peer gets the
    // datagram, then runs a protocol period (probing whatever it just learnt).
    let mut swim = Swim::new(
        NODE.into(),
        GENERATION,
        17000,
        SwimConfig::default(),
        SwimConfig::default().max_datagram_bytes - wire::HEADER_LEN,
        rand::SeedableRng::seed_from_u64(1),
    );
    let mut out = Vec::new();
    swim.start(0, vec!["127.0.0.1:7001".into()], &mut out);
    swim.on_datagram(10, d, &mut out);
    swim.on_timer(1_000, Timer::Protocol { round: 0 }, &mut out);
    swim.on_timer(1_500, Timer::PushPull, &mut out);
}

/// The `datagram` target: bytes as a UDP socket receives them, and as a payload.
pub fn check_datagram(data: &[u8]) {
    if let Some(env) = open(data) {
        if env.kind == Kind::Swim {
            swim_payload(&env.payload);
        }
    }
    swim_payload(data);
}

fn store() -> Replica {
    let mut r = Replica::new(1, 500);
    let s = r.store_mut();
    for (i, k) in ["a", "b", "key-1"].iter().enumerate() {
        let v = Version {
            ts: i as u64 + 1,
            node: 1,
        };
        s.apply(k, Record::value(v, Bytes::from_static(b"v")));
    }
    s.apply("gone", Record::tombstone(Version { ts: 9, node: 2 }));
    r
}

/// A peer RPC payload: as a request (decoded, round-tripped and served against a
/// small store, as the replica handler does) and as a response.
fn rpc_payload(payload: &[u8]) {
    if let Ok(req) = postcard::from_bytes::<ReplicaRequest>(payload) {
        let bytes = postcard::to_allocvec(&req).expect("encode request");
        assert_eq!(
            postcard::from_bytes::<ReplicaRequest>(&bytes).as_ref(),
            Ok(&req),
            "a decoded request does not round-trip"
        );
        let _ = store().serve(req, 1_700_000_000_000);
    }
    if let Ok(resp) = postcard::from_bytes::<ReplicaResponse>(payload) {
        let bytes = postcard::to_allocvec(&resp).expect("encode response");
        assert_eq!(
            postcard::from_bytes::<ReplicaResponse>(&bytes).as_ref(),
            Ok(&resp),
            "a decoded response does not round-trip"
        );
    }
}

/// One frame as the RPC server or client gets it from the codec.
fn rpc_frame(frame: &[u8]) {
    if let Some(env) = open(frame) {
        rpc_payload(&env.payload);
    }
}

/// The `rpc_frame` target. The first byte picks how the rest arrives on the
/// stream (chunk size); the rest goes through the length-delimited codec with the
/// node's frame limit, every frame it yields through the envelope and the replica
/// message decoders; the rest is also taken as one frame and as one payload.
pub fn check_rpc(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    rpc_frame(rest);
    rpc_payload(rest);

    let max = max_frame();
    let mut codec = LengthDelimitedCodec::builder()
        .max_frame_length(max)
        .new_codec();
    let mut buf = BytesMut::new();
    let step = usize::from(chunk).max(1);
    let mut failed = false;
    'feed: for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max, "a frame over the limit was yielded");
                    rpc_frame(&frame);
                }
                Ok(None) => break,
                Err(_) => {
                    // The connection is closed on a codec error.
                    failed = true;
                    break 'feed;
                }
            }
        }
    }
    if !failed {
        while let Ok(Some(frame)) = codec.decode_eof(&mut buf) {
            rpc_frame(&frame);
        }
    }
}
