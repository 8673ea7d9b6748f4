//! Bytes as a node's UDP socket receives them: envelope (with the node's cluster
//! tag), then the SWIM datagram decoder and core; and the raw bytes as a payload.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    swimkv_fuzz::check_datagram(data);
});
