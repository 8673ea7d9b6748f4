//! Replica messages as the replication layer speaks them.
//!
//! The request and response types belong to the storage layer (`storage::ops`),
//! which serves them; coordinators and stabilizers send them over peer RPC.

pub use crate::storage::ops::{PutCheck, ReplicaRequest, ReplicaResponse};
