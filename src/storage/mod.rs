//! Storage: records with HLC versions, the replica rules, the engine seam with
//! its two engines (in memory and fjall on disk), hints, and the StorageActor
//! that owns them.
//!
//! `hlc.rs`, `record.rs`, `key.rs`, `engine.rs`, `memory.rs`, `segments.rs`, `held.rs`,
//! `hints.rs`, `ops.rs` and `replica.rs` are pure; `durable.rs` does disk I/O
//! through fjall, on the thread of `disk.rs` for fsyncs; `data_dir.rs` locks a
//! node's directory and keeps its identity (its start rule, `decide`, is pure); `actor.rs` is the actix shell.

pub mod actor;
pub mod data_dir;
pub mod disk;
pub mod durable;
pub mod engine;
pub mod held;
pub mod hints;
pub mod hlc;
pub mod key;
pub mod memory;
pub mod ops;
pub mod record;
pub mod replica;
pub mod segments;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod failures;

pub use engine::{Engine, StorageError};
pub use key::StoreKey;
pub use memory::MemoryStore;
pub use record::{Record, Version};
pub use replica::Replica;
