//! Replication: quorum reads and writes over the preference list of a key.
//!
//! `quorum.rs` and `coordinator.rs` are pure; `message.rs` holds the replica
//! messages; `actor.rs` is the shell that routes them locally or over peer RPC.

pub mod actor;
pub mod anti_entropy;
pub mod coordinator;
pub mod message;
pub mod peer;
pub mod quorum;
pub mod rebalance;
pub mod stabilizer;

pub use coordinator::Outcome;
pub use quorum::Consistency;
