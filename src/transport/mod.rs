//! Transports: the envelope (`wire.rs`, pure), UDP datagrams (`udp.rs`) and peer
//! RPC over TCP (`rpc.rs`). They move bytes and know no SWIM or replica message.

pub mod rpc;
pub mod udp;
pub mod wire;
