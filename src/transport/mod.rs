//! Transports: the envelope (`wire.rs`, pure), UDP datagrams (`udp.rs`) and peer
//! RPC over TCP (`rpc.rs`), or over Unix sockets between nodes on one host
//! (`local.rs`). They move bytes and know no SWIM or replica message.

pub mod local;
pub mod rpc;
pub mod udp;
pub mod wire;
