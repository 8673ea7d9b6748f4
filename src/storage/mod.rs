//! Storage: records with HLC versions in an in-memory store, owned by the StorageActor.
//!
//! `hlc.rs`, `record.rs` and `memory.rs` are pure; `actor.rs` is the actix shell.

pub mod actor;
pub mod hlc;
pub mod memory;
pub mod ops;
pub mod record;

pub use memory::{Applied, MemoryStore};
pub use record::{Record, Version};
