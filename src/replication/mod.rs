//! Replication: quorum reads and writes over the preference list of a key.
//!
//! `quorum.rs`, `coordinator.rs`, `placement.rs`, `rebalance.rs`, `handoff.rs` and
//! `stabilization.rs` are pure; `message.rs` holds the replica messages;
//! `actor.rs` (the coordinator) and `stabilizer.rs` (handoff, transitions,
//! anti-entropy) are the shells that route them locally or over peer RPC.

pub mod actor;
pub mod anti_entropy;
pub mod coordinator;
pub mod handoff;
pub mod haunted;
pub mod message;
pub mod peer;
pub mod placement;
pub mod quorum;
pub mod rebalance;
pub mod stabilization;
pub mod stabilizer;

pub use coordinator::{Condition, Outcome, WriteSpec};
pub use quorum::Consistency;
