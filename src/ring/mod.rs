//! The consistent-hashing ring: murmur3 tokens, virtual nodes, preference lists.
//!
//! `hash.rs`, `ring.rs`, `snapshot.rs` and `ownership.rs` are pure; `actor.rs` rebuilds the ring
//! on membership events.

pub mod actor;
pub mod hash;
pub mod ownership;
pub mod ring;
pub mod snapshot;

pub use snapshot::RingSnapshot;
