//! SWIM datagrams: what members send each other, and their encoding.
//!
//! Every datagram names its sender (name and generation), carries one protocol
//! message, and piggybacks membership updates. Encoding is postcard (compact,
//! varint); [`Datagram::decode`] refuses anything malformed or with trailing bytes
//! and never panics. The envelope (version, cluster id) is added by the transport.

use super::member::Update;
use serde::{Deserialize, Serialize};

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A probe: answer with `Ack { seq }`.
    Ping {
        /// Probe sequence number chosen by the sender.
        seq: u64,
        /// The sender's wall clock when it sent the ping (Unix ms).
        wall_ms: u64,
    },
    /// The answer to a ping.
    Ack {
        /// The ping's sequence number.
        seq: u64,
        /// The ping's `wall_ms`, echoed (0 in an ack relayed for a ping-req).
        echo_ms: u64,
        /// The responder's wall clock when it answered (Unix ms; 0 when relayed).
        wall_ms: u64,
    },
    /// Ask the receiver to probe `target` on the sender's behalf.
    PingReq {
        /// The sender's probe sequence number.
        seq: u64,
        /// The member to probe.
        target: String,
    },
    /// A ping-req helper got no ack from the target in time (Lifeguard).
    Nack {
        /// The origin's probe sequence number.
        seq: u64,
    },
    /// A new member asks to join; the receiver answers with its full state.
    Join,
    /// A part of the sender's full member list (join answer, push-pull, seed
    /// contact). A `dead` entry in it is merged as `suspect`, so that a live
    /// member can refute the other side's verdict after a partition.
    Sync {
        /// The receiver should send its own full state back.
        reply: bool,
        /// Members.
        members: Vec<Update>,
        /// The sender's wall clock when it sent this (Unix ms): a first, rough
        /// clock reading of a member this node has not pinged yet.
        wall_ms: u64,
        /// The sender is joined (its state is the cluster's, not a process that
        /// has just restarted and knows nobody).
        joined: bool,
    },
    /// Urgent news sent outright, applied as gossip: a leave, a refutation, a
    /// death, a suspicion told to its suspect.
    Broadcast {
        /// The updates.
        updates: Vec<Update>,
    },
    /// Nothing but piggybacked gossip (the gossip tick, while news is waiting).
    Gossip,
}

/// One datagram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datagram {
    /// The sender's name.
    pub from: String,
    /// The sender's generation.
    pub generation: u64,
    /// The message.
    pub body: Body,
    /// Piggybacked membership updates.
    pub gossip: Vec<Update>,
}

/// Why a datagram could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError;

impl Datagram {
    /// The datagram's bytes.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a datagram; refuses trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Datagram, DecodeError> {
        match postcard::take_from_bytes::<Datagram>(bytes) {
            Ok((d, [])) => Ok(d),
            _ => Err(DecodeError),
        }
    }
}

/// Encoded size of an update (what it adds to a datagram's gossip list).
pub fn update_size(update: &Update) -> usize {
    postcard::to_allocvec(update).map_or(usize::MAX, |v| v.len())
}

#[cfg(test)]
mod tests {
    use super::super::member::State;
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn sample() -> Datagram {
        Datagram {
            from: "127.0.0.1:8080".into(),
            generation: 9,
            body: Body::PingReq {
                seq: 3,
                target: "127.0.0.1:8081".into(),
            },
            gossip: vec![Update {
                name: "127.0.0.1:8082".into(),
                generation: 1,
                incarnation: 2,
                state: State::Suspect,
                peer_port: 18082,
                accuser: Some("127.0.0.1:8083".into()),
                store: 1,
                pending: true,
            }],
        }
    }

    #[test]
    fn datagrams_round_trip() {
        let d = sample();
        assert_eq!(Datagram::decode(&d.encode()), Ok(d));
    }

    #[test]
    fn trailing_bytes_and_truncation_are_refused() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(Datagram::decode(&bytes), Err(DecodeError));
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(Datagram::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(11);
        let base = sample().encode();
        for _ in 0..20_000 {
            let mut v = base.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..v.len());
                v[i] = rng.gen();
            }
            let _ = Datagram::decode(&v);
            let junk: Vec<u8> = (0..rng.gen_range(0..80)).map(|_| rng.gen()).collect();
            let _ = Datagram::decode(&junk);
        }
    }

    #[test]
    fn update_size_matches_its_share_of_the_datagram() {
        let mut d = sample();
        let before = d.encode().len();
        let extra = d.gossip[0].clone();
        d.gossip.push(extra.clone());
        assert_eq!(d.encode().len() - before, update_size(&extra));
    }
}
