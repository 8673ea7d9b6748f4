//! Bytes as a peer RPC connection delivers them: the length-delimited codec with
//! the node's frame limit, the envelope, then ReplicaRequest / ReplicaResponse.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    swimkv_fuzz::check_rpc(data);
});
