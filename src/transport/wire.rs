//! The envelope every datagram and peer frame travels in.
//!
//! Layout (big endian): magic `b"SK"`, protocol version (1 byte), message kind
//! (1 byte), cluster id hash (8 bytes), request id (8 bytes), then the payload that
//! the owning subsystem encodes. The transport only checks the envelope; what the
//! payload means is decided by whoever the kind is routed to.
//!
//! When the cluster has secrets, a [`Seal`] appends a 32-byte keyed BLAKE3 MAC of
//! the whole envelope, keyed by the first secret; an envelope whose MAC no secret
//! of the list verifies is refused (rotation: see [`Seal::rekey`]).
//!
//! Invariant: decoding never panics; anything that is short, has another magic,
//! another version, another cluster or a bad MAC is refused with a [`WireError`]
//! that says why. Pure.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::sync::{Arc, RwLock};

/// Protocol version spoken by this build.
pub const VERSION: u8 = 2;
/// Envelope header length in bytes.
pub const HEADER_LEN: usize = 2 + 1 + 1 + 8 + 8;
const MAGIC: [u8; 2] = *b"SK";

/// What a payload is, so the receiver can route it without decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A SWIM datagram (UDP).
    Swim,
    /// A peer RPC request (TCP).
    Request,
    /// A peer RPC response (TCP).
    Response,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Swim => 1,
            Kind::Request => 2,
            Kind::Response => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Swim),
            2 => Some(Kind::Request),
            3 => Some(Kind::Response),
            _ => None,
        }
    }
}

/// A decoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// What the payload is.
    pub kind: Kind,
    /// Request id (RPC) or 0.
    pub id: u64,
    /// The subsystem's bytes.
    pub payload: Bytes,
}

/// Why an envelope was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WireError {
    /// Shorter than a header, or wrong magic.
    Malformed,
    /// Another protocol version.
    Version,
    /// Another cluster.
    ForeignCluster,
    /// Unknown message kind.
    UnknownKind,
    /// Missing or wrong MAC (cluster secret).
    Auth,
}

impl WireError {
    /// A short label for counters and logs.
    pub fn label(self) -> &'static str {
        match self {
            WireError::Malformed => "malformed",
            WireError::Version => "version",
            WireError::ForeignCluster => "foreign_cluster",
            WireError::UnknownKind => "unknown_kind",
            WireError::Auth => "auth",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The 64-bit tag of a cluster id carried in every envelope.
pub fn cluster_tag(cluster_id: &str) -> u64 {
    // FNV-1a: stable across builds and platforms, enough to tell clusters apart.
    cluster_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes an envelope into `buf`.
pub fn encode_into(buf: &mut BytesMut, cluster: u64, kind: Kind, id: u64, payload: &[u8]) {
    buf.reserve(HEADER_LEN + payload.len());
    buf.put_slice(&MAGIC);
    buf.put_u8(VERSION);
    buf.put_u8(kind.byte());
    buf.put_u64(cluster);
    buf.put_u64(id);
    buf.put_slice(payload);
}

/// An envelope as bytes.
pub fn encode(cluster: u64, kind: Kind, id: u64, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + payload.len());
    encode_into(&mut buf, cluster, kind, id, payload);
    buf.freeze()
}

fn be_u64(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

/// Checks and opens an envelope of `cluster`.
pub fn decode(cluster: u64, bytes: Bytes) -> Result<Envelope, WireError> {
    if bytes.len() < HEADER_LEN || bytes[0..2] != MAGIC {
        return Err(WireError::Malformed);
    }
    if bytes[2] != VERSION {
        return Err(WireError::Version);
    }
    let kind = Kind::from_byte(bytes[3]).ok_or(WireError::UnknownKind)?;
    if be_u64(&bytes[4..12]) != cluster {
        return Err(WireError::ForeignCluster);
    }
    let id = be_u64(&bytes[12..20]);
    Ok(Envelope {
        kind,
        id,
        payload: bytes.slice(HEADER_LEN..),
    })
}

/// Length of the MAC appended when a cluster secret is set.
pub const MAC_LEN: usize = 32;

/// How this node seals and opens envelopes: its cluster tag and, when the cluster
/// has secrets, the keys of the MAC appended to every envelope.
///
/// Secret rotation: a seal signs with its first key and opens an envelope that
/// any of its keys verifies. [`Seal::rekey`] swaps the keys of every clone at
/// once (the SIGHUP reload), but never turns a keyed seal into an open one or
/// back, so the bytes a seal adds stay the same for the life of the process.
#[derive(Clone, Debug)]
pub struct Seal {
    cluster: u64,
    keys: Option<Arc<RwLock<Vec<[u8; 32]>>>>,
}

impl From<u64> for Seal {
    fn from(cluster: u64) -> Seal {
        Seal {
            cluster,
            keys: None,
        }
    }
}

/// The MAC key derived from one cluster secret.
fn derive(secret: &str) -> [u8; 32] {
    blake3::derive_key("swimkv cluster secret v1", secret.as_bytes())
}

/// Why a list of cluster secrets was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsError(pub String);

impl fmt::Display for SecretsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The secrets of a comma-separated list (`new,old`), trimmed; every one at
/// least 8 bytes, at least one.
pub fn parse_secrets(list: &str) -> Result<Vec<String>, SecretsError> {
    let secrets: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if secrets.is_empty() {
        return Err(SecretsError("no cluster secret given".into()));
    }
    if let Some(i) = secrets.iter().position(|s| s.len() < 8) {
        return Err(SecretsError(format!(
            "cluster secret {} of the list is shorter than 8 bytes",
            i + 1
        )));
    }
    Ok(secrets)
}

impl Seal {
    /// The seal of cluster `cluster_id`, authenticated with `secret` when given.
    pub fn new(cluster_id: &str, secret: Option<&str>) -> Seal {
        Seal::with_secrets(cluster_id, secret.map(|s| vec![s.to_string()]))
    }

    /// The seal of cluster `cluster_id` signing with the first of `secrets` and
    /// accepting any of them; open (no MAC) when `None`.
    pub fn with_secrets(cluster_id: &str, secrets: Option<Vec<String>>) -> Seal {
        Seal {
            cluster: cluster_tag(cluster_id),
            keys: secrets.map(|s| Arc::new(RwLock::new(s.iter().map(|s| derive(s)).collect()))),
        }
    }

    /// Replaces the secrets of this seal and of every clone of it. Refused for
    /// an open seal and for an empty list (either would change the envelope size).
    pub fn rekey(&self, secrets: &[String]) -> Result<(), SecretsError> {
        let Some(keys) = &self.keys else {
            return Err(SecretsError(
                "this node was started without a cluster secret; one cannot be added without a restart".into(),
            ));
        };
        if secrets.is_empty() {
            return Err(SecretsError("no cluster secret given".into()));
        }
        let derived = secrets.iter().map(|s| derive(s)).collect();
        match keys.write() {
            Ok(mut k) => *k = derived,
            Err(poisoned) => *poisoned.into_inner() = derived,
        }
        Ok(())
    }

    /// How many secrets this seal accepts (0 when open).
    pub fn secrets(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| read(k).len())
    }

    /// Bytes the seal adds after the payload.
    pub fn overhead(&self) -> usize {
        HEADER_LEN + if self.keys.is_some() { MAC_LEN } else { 0 }
    }

    /// Writes a sealed envelope into `buf`.
    pub fn encode_into(&self, buf: &mut BytesMut, kind: Kind, id: u64, payload: &[u8]) {
        let start = buf.len();
        encode_into(buf, self.cluster, kind, id, payload);
        if let Some(keys) = &self.keys {
            let keys = read(keys);
            if let Some(key) = keys.first() {
                let mac = blake3::keyed_hash(key, &buf[start..]);
                buf.put_slice(mac.as_bytes());
            }
        }
    }

    /// A sealed envelope as bytes.
    pub fn encode(&self, kind: Kind, id: u64, payload: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.overhead() + payload.len());
        self.encode_into(&mut buf, kind, id, payload);
        buf.freeze()
    }

    /// Checks and opens a sealed envelope.
    pub fn decode(&self, bytes: Bytes) -> Result<Envelope, WireError> {
        let Some(keys) = &self.keys else {
            return decode(self.cluster, bytes);
        };
        if bytes.len() < HEADER_LEN + MAC_LEN {
            // Let the header checks say what is wrong when they can.
            decode(self.cluster, bytes)?;
            return Err(WireError::Auth);
        }
        let body = bytes.len() - MAC_LEN;
        let mut env = decode(self.cluster, bytes.slice(..body))?;
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&bytes[body..]);
        let mac = blake3::Hash::from(mac);
        // blake3::Hash compares in constant time.
        if !read(keys)
            .iter()
            .any(|key| blake3::keyed_hash(key, &bytes[..body]) == mac)
        {
            return Err(WireError::Auth);
        }
        env.payload = bytes.slice(HEADER_LEN..body);
        Ok(env)
    }
}

/// The keys, also after a panic elsewhere poisoned the lock (they are replaced whole).
fn read(keys: &RwLock<Vec<[u8; 32]>>) -> std::sync::RwLockReadGuard<'_, Vec<[u8; 32]>> {
    keys.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn an_envelope_round_trips() {
        let c = cluster_tag("swimkv");
        let e = decode(c, encode(c, Kind::Request, 42, b"hello")).expect("valid");
        assert_eq!(
            (e.kind, e.id, &e.payload[..]),
            (Kind::Request, 42, &b"hello"[..])
        );
    }

    #[test]
    fn another_cluster_version_or_garbage_is_refused() {
        let c = cluster_tag("a");
        let other = encode(cluster_tag("b"), Kind::Swim, 0, b"x");
        assert_eq!(decode(c, other), Err(WireError::ForeignCluster));
        let mut old = encode(c, Kind::Swim, 0, b"x").to_vec();
        old[2] = 0;
        assert_eq!(decode(c, Bytes::from(old)), Err(WireError::Version));
        assert_eq!(
            decode(c, Bytes::from_static(b"SK")),
            Err(WireError::Malformed)
        );
        let mut kind = encode(c, Kind::Swim, 0, b"x").to_vec();
        kind[3] = 99;
        assert_eq!(decode(c, Bytes::from(kind)), Err(WireError::UnknownKind));
    }

    #[test]
    fn a_sealed_envelope_opens_only_with_the_same_secret() {
        let a = Seal::new("swimkv", Some("s3cret"));
        let b = Seal::new("swimkv", Some("other"));
        let open = Seal::new("swimkv", None);
        let bytes = a.encode(Kind::Swim, 1, b"hello");
        let env = a.decode(bytes.clone()).expect("same secret");
        assert_eq!(&env.payload[..], b"hello");
        assert_eq!(b.decode(bytes.clone()), Err(WireError::Auth));
        assert_eq!(
            a.decode(open.encode(Kind::Swim, 1, b"hello")),
            Err(WireError::Auth)
        );
        let mut tampered = bytes.to_vec();
        tampered[HEADER_LEN] ^= 1;
        assert_eq!(a.decode(Bytes::from(tampered)), Err(WireError::Auth));
        assert_eq!(a.overhead(), HEADER_LEN + MAC_LEN);
    }

    fn secrets(list: &str) -> Vec<String> {
        parse_secrets(list).expect("valid list")
    }

    #[test]
    fn a_rotation_in_three_steps_keeps_every_pair_of_nodes_talking() {
        // Two nodes; each step is applied to `a` first, then to `b`.
        let a = Seal::with_secrets("swimkv", Some(secrets("old-secret")));
        let b = Seal::with_secrets("swimkv", Some(secrets("old-secret")));
        let talk = |x: &Seal, y: &Seal| {
            x.decode(y.encode(Kind::Swim, 1, b"p")).is_ok()
                && y.decode(x.encode(Kind::Swim, 1, b"p")).is_ok()
        };
        for step in [
            "old-secret,new-secret",
            "new-secret,old-secret",
            "new-secret",
        ] {
            a.rekey(&secrets(step)).expect("rekey");
            assert!(talk(&a, &b), "after {step:?} on a only");
            b.rekey(&secrets(step)).expect("rekey");
            assert!(talk(&a, &b), "after {step:?} on both");
        }
        let stale = Seal::with_secrets("swimkv", Some(secrets("old-secret")));
        assert_eq!(
            a.decode(stale.encode(Kind::Swim, 1, b"p")),
            Err(WireError::Auth)
        );
        assert_eq!(a.secrets(), 1);
        // Skipping the middle step breaks it: the checker is not vacuous.
        let c = Seal::with_secrets("swimkv", Some(secrets("old-secret")));
        c.rekey(&secrets("new-secret")).expect("rekey");
        assert!(!talk(&c, &stale));
    }

    #[test]
    fn a_clone_follows_a_rekey_and_an_open_seal_cannot_be_keyed() {
        let a = Seal::with_secrets("swimkv", Some(secrets("first-secret")));
        let clone = a.clone();
        a.rekey(&secrets("second-secret")).expect("rekey");
        let fresh = Seal::new("swimkv", Some("second-secret"));
        assert!(fresh.decode(clone.encode(Kind::Swim, 1, b"p")).is_ok());
        assert!(Seal::new("swimkv", None)
            .rekey(&secrets("abcdefgh"))
            .is_err());
        assert!(a.rekey(&[]).is_err());
    }

    #[test]
    fn secret_lists_are_trimmed_and_short_secrets_refused() {
        assert_eq!(secrets(" aaaaaaaa , bbbbbbbb "), ["aaaaaaaa", "bbbbbbbb"]);
        assert!(parse_secrets("aaaaaaaa,short").is_err());
        assert!(parse_secrets(" , ").is_err());
    }

    #[test]
    fn random_bytes_never_panic_the_decoder() {
        let c = cluster_tag("swimkv");
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..64);
            let mut v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if rng.gen_bool(0.5) && v.len() >= 2 {
                v[0] = b'S';
                v[1] = b'K';
            }
            let _ = decode(c, Bytes::from(v.clone()));
            let _ = Seal::new("swimkv", Some("k")).decode(Bytes::from(v));
        }
    }
}
