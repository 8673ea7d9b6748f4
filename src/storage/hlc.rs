//! Hybrid logical clock: versions that respect causality under clock skew.
//!
//! A timestamp is 48 bits of physical milliseconds and a 16-bit logical counter
//! packed into a `u64`. Invariant: every value returned by [`Hlc::tick`] is strictly
//! greater than every value the clock returned or observed before, even when the
//! injected physical clock goes backwards. Pure: the physical time is an argument.

use super::record::Version;

const COUNTER_BITS: u32 = 16;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;
const MILLIS_MASK: u64 = (1 << 48) - 1;

/// Packs milliseconds and a counter into one HLC timestamp.
pub fn pack(millis: u64, counter: u64) -> u64 {
    ((millis & MILLIS_MASK) << COUNTER_BITS) | (counter & COUNTER_MASK)
}

/// The physical milliseconds part of an HLC timestamp.
pub fn millis_of(ts: u64) -> u64 {
    ts >> COUNTER_BITS
}

/// A hybrid logical clock owned by one node.
#[derive(Clone, Debug)]
pub struct Hlc {
    node: u64,
    last: u64,
}

impl Hlc {
    /// A clock for the node whose tiebreak id is `node`.
    pub fn new(node: u64) -> Hlc {
        Hlc { node, last: 0 }
    }

    /// The next version, given the physical time `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Version {
        let physical = pack(now_ms, 0);
        self.last = if physical > self.last {
            physical
        } else {
            // Same or earlier millisecond: count up (the counter carries into the
            // millisecond part when it overflows, which keeps the order total).
            self.last.saturating_add(1)
        };
        Version {
            ts: self.last,
            node: self.node,
        }
    }

    /// Moves the clock past a version seen from another node.
    pub fn observe(&mut self, seen: Version) {
        if seen.ts > self.last {
            self.last = seen.ts;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_stay_strictly_monotonic_when_the_clock_goes_backwards() {
        let mut hlc = Hlc::new(7);
        let times = [1_000u64, 1_000, 999, 500, 1_001, 1_001, 0, 2_000, 1_999];
        let mut prev = Version { ts: 0, node: 0 };
        for t in times {
            let v = hlc.tick(t);
            assert!(v > prev, "{v:?} after {prev:?} at t={t}");
            prev = v;
        }
    }

    #[test]
    fn a_later_physical_time_resets_the_counter() {
        let mut hlc = Hlc::new(1);
        hlc.tick(10);
        hlc.tick(10);
        let v = hlc.tick(11);
        assert_eq!(v.ts, pack(11, 0));
        assert_eq!(millis_of(v.ts), 11);
    }

    #[test]
    fn observing_a_remote_version_moves_the_clock_past_it() {
        let mut hlc = Hlc::new(1);
        let remote = Version {
            ts: pack(5_000, 3),
            node: 2,
        };
        hlc.observe(remote);
        let v = hlc.tick(10);
        assert!(v.ts > remote.ts);
    }
}
