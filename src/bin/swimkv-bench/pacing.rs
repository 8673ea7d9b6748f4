//! Open-loop pacing for `--rate`: each connection sends its operations on a fixed
//! schedule (due times `start + offset + k × interval`) instead of back to back, and
//! latency is measured so that a slow server cannot hide its queueing.
//!
//! Invariants: the schedule is absolute, so a connection that falls behind (its previous
//! answer came after the next due time) sends at once and catches up instead of drifting
//! to a lower rate; an operation the server held up (the connection was still waiting for
//! the previous answer at the due time) is timed from its due time, as wrk2 does against
//! coordinated omission; an operation sent late only because the generator's timer woke
//! late (the connection was idle at the due time) is timed from its actual send, since that
//! delay is the generator's, not the server's. Pure: the caller passes every instant.

use std::time::{Duration, Instant};

/// One connection's schedule.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    interval: Duration,
    next: Instant,
}

impl Pacer {
    /// Connection `index` of `connections`, sharing `rate` operations per second from
    /// `start`: one operation every `connections / rate` seconds, the connections
    /// staggered evenly over one interval.
    pub(crate) fn new(start: Instant, rate: f64, index: usize, connections: usize) -> Pacer {
        let interval = Duration::from_secs_f64(connections as f64 / rate);
        let offset = interval.mul_f64(index as f64 / connections.max(1) as f64);
        Pacer {
            interval,
            next: start + offset,
        }
    }

    /// The due time of the next operation; moves the schedule on by one interval.
    pub(crate) fn due(&mut self) -> Instant {
        let due = self.next;
        self.next += self.interval;
        due
    }
}

/// Where an operation's latency is measured from: its `due` time when the connection
/// was still busy at that time (it became free at `free_at`), else the moment it was
/// actually `sent`.
pub(crate) fn latency_start(due: Instant, free_at: Instant, sent: Instant) -> Instant {
    if free_at > due {
        due
    } else {
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_share_the_rate_and_are_staggered_over_one_interval() {
        let t0 = Instant::now();
        // 4 connections at 400 ops/s: each sends every 10 ms, offsets 0, 2.5, 5, 7.5 ms.
        let firsts: Vec<Duration> = (0..4)
            .map(|i| Pacer::new(t0, 400.0, i, 4).due() - t0)
            .collect();
        assert_eq!(
            firsts,
            [0.0, 2.5, 5.0, 7.5].map(|ms| Duration::from_secs_f64(ms / 1e3))
        );
        let mut p = Pacer::new(t0, 400.0, 1, 4);
        let dues: Vec<Duration> = (0..3).map(|_| p.due() - t0).collect();
        assert_eq!(
            dues,
            [2.5, 12.5, 22.5].map(|ms| Duration::from_secs_f64(ms / 1e3))
        );
    }

    #[test]
    fn the_kth_due_time_is_start_plus_k_intervals_whenever_it_is_asked() {
        // The schedule does not depend on when operations were sent: a connection that
        // fell behind finds its next due times already past and catches up.
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 1000.0, 0, 1);
        for k in 0..1000u32 {
            assert_eq!(p.due(), t0 + Duration::from_millis(1) * k);
        }
    }

    #[test]
    fn a_held_up_operation_is_timed_from_its_due_time_and_a_late_timer_is_not_counted() {
        let due = Instant::now();
        let ms = Duration::from_millis;
        // The previous answer came 3 ms after the due time: the wait is the server's.
        assert_eq!(latency_start(due, due + ms(3), due + ms(3)), due);
        // The connection was idle; the timer fired 1 ms late: timed from the send.
        assert_eq!(latency_start(due, due - ms(2), due + ms(1)), due + ms(1));
    }
}
