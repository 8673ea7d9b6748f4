//! Shared test support. Each integration test that needs it says `mod support;`.
//!
//! `sim` is a deterministic, single-threaded simulator of many SWIM cores over a
//! seeded virtual network; `world` simulates whole nodes (SWIM, ring,
//! stabilizer, coordinator and replica cores) the same way (see their docs).

#![allow(dead_code)]

pub mod sim;
pub mod world;

/// The seeds a test runs: `1..=count`, or `1..=$SWIMKV_SIM_SEEDS` (from `$SWIMKV_SIM_FIRST` instead of 1 when set), or only
/// `$SWIMKV_SIM_SEED` when set.
pub fn seeds(count: u64) -> Vec<u64> {
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    // SWIMKV_SIM_FIRST moves the range: seeds FIRST..FIRST+count-1.
    let first = env("SWIMKV_SIM_FIRST").unwrap_or(1);
    match (env("SWIMKV_SIM_SEED"), env("SWIMKV_SIM_SEEDS")) {
        (Some(seed), _) => vec![seed],
        (None, Some(n)) => (first..first + n).collect(),
        (None, None) => (first..first + count).collect(),
    }
}
