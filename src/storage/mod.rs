//! Storage: records with HLC versions, the replica rules and the in-memory store,
//! owned by the StorageActor.
//!
//! `hlc.rs`, `record.rs`, `memory.rs`, `ops.rs` and `replica.rs` are pure;
//! `actor.rs` is the actix shell.

pub mod actor;
pub mod hlc;
pub mod memory;
pub mod ops;
pub mod record;
pub mod replica;

pub use memory::{Applied, MemoryStore};
pub use record::{Record, Version};
pub use replica::Replica;
