//! Clock offsets of peers, estimated from ping/ack timing as NTP does.
//!
//! A ping carries the sender's wall clock `t0`; the ack echoes it and adds the
//! responder's wall clock `t1`; the sender reads its clock `t3` when the ack
//! arrives. The peer's offset is `t1 - (t0 + t3) / 2`, with an error of at most
//! half the round trip `t3 - t0`. Of the last [`SAMPLES`] samples the one with
//! the shortest round trip is kept (queueing delay only ever adds error).
//!
//! A node whose clock is known to disagree with more than half of its live
//! peers, by more than the bound, is the odd one out: [`ClockWatch::skewed`]. A
//! peer not measured yet counts as agreeing, so a verdict needs measurements of
//! most of the cluster, not merely of the first peer heard from.
//!
//! Invariants: estimates older than [`STALE_MS`] are ignored; no sample with a
//! negative round trip is taken. Pure: every time is an argument.

use std::collections::{BTreeMap, VecDeque};

/// Samples kept per peer.
pub const SAMPLES: usize = 8;

/// The round trip a one-way reading counts as (it loses to any ping/ack sample
/// faster than this).
pub const ONE_WAY_RTT_MS: u64 = 2_000;

/// An estimate not refreshed for this long no longer counts.
pub const STALE_MS: u64 = 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    offset_ms: i64,
    rtt_ms: u64,
    at_ms: u64,
}

/// Offset estimates of every peer.
#[derive(Clone, Debug, Default)]
pub struct ClockWatch {
    peers: BTreeMap<String, VecDeque<Sample>>,
}

impl ClockWatch {
    /// No estimates yet.
    pub fn new() -> ClockWatch {
        ClockWatch::default()
    }

    /// Records one exchange with `peer`: ping sent at local wall clock `t0`,
    /// answered at the peer's wall clock `t1`, ack received at local `t3`.
    pub fn record(&mut self, peer: &str, t0: u64, t1: u64, t3: u64) {
        if t3 < t0 || t0 == 0 || t1 == 0 {
            return;
        }
        let rtt_ms = t3 - t0;
        let midpoint = i128::from(t0) + i128::from(rtt_ms) / 2;
        let offset = (i128::from(t1) - midpoint).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        let samples = self.peers.entry(peer.to_string()).or_default();
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(Sample {
            offset_ms: offset as i64,
            rtt_ms,
            at_ms: t3,
        });
    }

    /// Records a one-way reading: a message sent at the peer's wall clock
    /// `remote_ms` arrived at local `local_ms`. Its error is the unknown transit
    /// time, so it counts as a sample with a round trip of [`ONE_WAY_RTT_MS`]:
    /// a first estimate that any ping/ack exchange replaces.
    pub fn record_one_way(&mut self, peer: &str, remote_ms: u64, local_ms: u64) {
        if remote_ms == 0 || local_ms < ONE_WAY_RTT_MS / 2 {
            return;
        }
        let t0 = local_ms - ONE_WAY_RTT_MS / 2;
        self.record(peer, t0, remote_ms, t0 + ONE_WAY_RTT_MS);
    }

    /// Forgets a peer (it left or was reclaimed).
    pub fn forget(&mut self, peer: &str) {
        self.peers.remove(peer);
    }

    /// The best current estimate of `peer`'s offset (its clock minus ours), in
    /// milliseconds, at local wall clock `now_ms`.
    pub fn offset(&self, peer: &str, now_ms: u64) -> Option<i64> {
        self.peers
            .get(peer)?
            .iter()
            .filter(|s| now_ms.saturating_sub(s.at_ms) <= STALE_MS)
            .min_by_key(|s| s.rtt_ms)
            .map(|s| s.offset_ms)
    }

    /// Every peer with a fresh estimate, and its offset in milliseconds.
    pub fn offsets(&self, now_ms: u64) -> Vec<(&str, i64)> {
        self.peers
            .keys()
            .filter_map(|p| self.offset(p, now_ms).map(|o| (p.as_str(), o)))
            .collect()
    }

    /// True when more than half of the live peers `live` are known to be more
    /// than `max_ms` away from this node's clock: this clock is the one that is
    /// off. A live peer without a fresh estimate counts as agreeing, so a node
    /// that has measured only the one odd peer (right after it started) does not
    /// take itself for the odd one. False without any live peer (a node alone
    /// cannot tell).
    pub fn skewed<'a>(
        &self,
        max_ms: u64,
        now_ms: u64,
        live: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let (mut peers, mut far) = (0usize, 0usize);
        for peer in live {
            peers += 1;
            if self
                .offset(peer, now_ms)
                .is_some_and(|o| o.unsigned_abs() > max_ms)
            {
                far += 1;
            }
        }
        peers > 0 && far * 2 > peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_the_responder_clock_minus_the_midpoint_of_the_exchange() {
        let mut c = ClockWatch::new();
        // The peer runs 120 s ahead; the round trip takes 10 ms, 4 ms out.
        c.record("p", 1_000_000, 1_120_004, 1_000_010);
        assert_eq!(c.offset("p", 1_000_010), Some(119_999));
        c.record("q", 1_000_000, 999_505, 1_000_010);
        assert_eq!(c.offset("q", 1_000_010), Some(-500));
    }

    #[test]
    fn the_shortest_round_trip_of_the_recent_samples_wins() {
        let mut c = ClockWatch::new();
        c.record("p", 1_000, 1_600, 1_200); // 200 ms round trip: offset 500 +- 100
        c.record("p", 2_000, 2_052, 2_004); // 4 ms: offset 50
        c.record("p", 3_000, 3_400, 3_300);
        assert_eq!(c.offset("p", 3_300), Some(50));
        for i in 0..SAMPLES as u64 {
            c.record("p", 10_000 + i, 10_000 + i + 900, 10_000 + i + 100);
        }
        assert_eq!(c.offset("p", 11_000), Some(850), "old samples rotate out");
    }

    #[test]
    fn a_one_way_reading_gives_a_first_estimate_that_a_ping_replaces() {
        let mut c = ClockWatch::new();
        c.record_one_way("p", 5_000_120_000, 5_000_000_010);
        assert_eq!(c.offset("p", 5_000_000_010), Some(119_990));
        c.record("p", 5_000_000_100, 5_000_120_105, 5_000_000_110);
        assert_eq!(c.offset("p", 5_000_000_110), Some(120_000));
        c.record_one_way("q", 0, 5_000_000_000);
        assert_eq!(
            c.offset("q", 5_000_000_000),
            None,
            "no clock in the message"
        );
    }

    #[test]
    fn stale_and_impossible_samples_do_not_count() {
        let mut c = ClockWatch::new();
        c.record("p", 1_000, 1_000, 900); // answer before the question
        c.record("z", 0, 5, 10); // no clock in the ping
        assert_eq!(c.offset("p", 1_000), None);
        assert_eq!(c.offset("z", 10), None);
        c.record("p", 1_000, 1_000, 1_002);
        assert!(c.offset("p", 1_002 + STALE_MS).is_some());
        assert_eq!(c.offset("p", 1_003 + STALE_MS), None);
        c.forget("p");
        assert!(c.offsets(1_002).is_empty());
    }

    #[test]
    fn a_node_is_skewed_only_when_most_of_its_peers_disagree_with_it() {
        let mut fast = ClockWatch::new();
        let mut normal = ClockWatch::new();
        for (i, peer) in ["a", "b", "c", "d"].iter().enumerate() {
            let t = 1_000_000 + i as u64;
            // The fast node sees every peer 120 s behind.
            fast.record(peer, t, t - 120_000, t + 2);
            // A normal node sees the fast one 120 s ahead and the others in step.
            let off = if i == 0 { 120_000 } else { 0 };
            normal.record(peer, t, t + off, t + 2);
        }
        let peers = ["a", "b", "c", "d"];
        assert!(fast.skewed(500, 1_000_010, peers));
        assert!(!normal.skewed(500, 1_000_010, peers));
        assert!(
            !ClockWatch::new().skewed(500, 0, []),
            "no live peer, no verdict"
        );
    }

    #[test]
    fn a_node_that_has_measured_only_the_odd_peer_is_not_the_odd_one() {
        let mut c = ClockWatch::new();
        let t = 1_000_000;
        // Right after start only the fast peer "a" has been measured.
        c.record("a", t, t + 120_000, t + 2);
        assert!(!c.skewed(500, t + 2, ["a", "b", "c", "d"]));
        assert!(
            c.skewed(500, t + 2, ["a"]),
            "with one peer, both refuse: who is off cannot be told"
        );
        // Once most peers are measured far away, this clock is the odd one.
        let mut fast = ClockWatch::new();
        fast.record("a", t, t - 120_000, t + 2);
        assert!(!fast.skewed(500, t + 2, ["a", "b", "c", "d"]));
        fast.record("b", t, t - 120_000, t + 2);
        fast.record("c", t, t - 120_000, t + 2);
        assert!(fast.skewed(500, t + 2, ["a", "b", "c", "d"]));
        // A peer no longer live does not count either way.
        assert!(!fast.skewed(500, t + 2, ["d", "e"]));
    }
}
