//! swimkv: a distributed key-value store.
//!
//! Nodes find each other and detect failures with SWIM (with the Lifeguard
//! refinements), place keys on a murmur3 consistent-hashing ring with virtual
//! nodes, keep N replicas with quorum reads and writes and read repair, and serve
//! `POST/PUT/GET/DELETE /d/<key>` over HTTP. Every piece of mutable state is owned
//! by an actix actor that is a thin shell around a pure, deterministic core.
//!
//! # Layout
//!
//! - `config`, `cli`: settings and the command line; `advertise`: the address a
//!   wildcard-bound node gives its peers; `healthcheck`: `swimkv healthcheck <port>`.
//! - `node`: the only place that starts and wires actors.
//! - `membership`: SWIM core (`swim`, `member`, `gossip`, `suspicion`) and its actor.
//! - `ring`: murmur3 tokens, virtual nodes, preference lists, and the ring actor.
//! - `storage`: HLC versions, records, the in-memory store and its actor.
//! - `replication`: quorum arithmetic, the coordinator core and its actor.
//! - `transport`: the envelope (`wire`), UDP datagrams and peer RPC over TCP.
//! - `api`: HTTP routes, handlers, errors and the dashboard.
//! - `security`: client TLS, bearer tokens and roles, secret and certificate reloads.
//! - `metrics`: Prometheus metrics.
//!
//! Dependencies point one way: api → replication → ring → membership → transport,
//! with storage, config and metrics at the bottom.

pub mod advertise;
pub mod api;
pub mod cli;
pub mod config;
pub mod healthcheck;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod replication;
pub mod ring;
pub mod security;
pub mod storage;
pub mod transport;
