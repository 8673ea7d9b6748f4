//! Calling one replica over peer RPC: encode, send, bound the wait, decode.
//!
//! Invariant: every call resolves to a [`ReplicaResponse`]; transport failures,
//! timeouts and undecodable answers become `ReplicaResponse::Error`.

use super::message::{ReplicaRequest, ReplicaResponse};
use crate::transport::rpc::RpcClient;
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

/// Encodes a replica request for peer RPC.
pub fn encode_request(request: &ReplicaRequest) -> Bytes {
    Bytes::from(postcard::to_allocvec(request).unwrap_or_default())
}

/// Encodes a replica response for peer RPC.
pub fn encode_response(response: &ReplicaResponse) -> Bytes {
    Bytes::from(postcard::to_allocvec(response).unwrap_or_default())
}

/// Decodes a replica response from peer RPC; garbage becomes an error response.
pub fn decode_response(bytes: &[u8]) -> ReplicaResponse {
    postcard::from_bytes(bytes)
        .unwrap_or_else(|_| ReplicaResponse::Error("undecodable response".into()))
}

/// Sends `request` to the peer RPC address `addr` (`None`: not on the ring) and
/// waits at most `timeout` for the answer.
pub fn call(
    rpc: &RpcClient,
    addr: Option<&str>,
    request: &ReplicaRequest,
    timeout: Duration,
) -> impl Future<Output = ReplicaResponse> + 'static {
    let call = addr.map(|a| rpc.call(a, encode_request(request)));
    async move {
        let Some(call) = call else {
            return ReplicaResponse::Error("not on the ring".into());
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(bytes)) => decode_response(&bytes),
            Ok(Err(e)) => ReplicaResponse::Error(e.to_string()),
            Err(_) => ReplicaResponse::Error("timeout".into()),
        }
    }
}
