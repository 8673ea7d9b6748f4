//! The dissemination queue: membership updates waiting to be piggybacked.
//!
//! Holds at most one update per member (a newer one replaces an older one). Each
//! datagram takes the most important updates first — this node's own refutation,
//! then suspicions, deaths and leaves, then alive news — and among equals those
//! sent the fewest times, newest first, until the byte budget is full. Invariants:
//! an update is sent at most `limit` times and then dropped; a selection never
//! exceeds the budget it was given. Pure.

use super::member::{State, Update};
use super::message::update_size;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Entry {
    update: Update,
    size: usize,
    transmits: u32,
    class: u8,
    seq: u64,
}

/// Updates waiting to be gossiped.
#[derive(Clone, Debug, Default)]
pub struct Gossip {
    entries: BTreeMap<String, Entry>,
    seq: u64,
}

/// The number of times each update is sent: `lambda * ceil(log10(n + 1))`.
pub fn retransmit_limit(lambda: u32, members: usize) -> u32 {
    let mut log = 0u32;
    let mut x = members + 1;
    while x > 1 {
        x = x.div_ceil(10);
        log += 1;
    }
    lambda * log.max(1)
}

impl Gossip {
    /// An empty queue.
    pub fn new() -> Gossip {
        Gossip::default()
    }

    /// Queues `update`, replacing any older news of the same member. `own` marks
    /// this node's news about itself (a refutation), which goes first.
    pub fn enqueue(&mut self, update: Update, own: bool) {
        let class = if own {
            0
        } else {
            match update.state {
                State::Suspect | State::Stopped | State::Dead | State::Left => 1,
                State::Alive => 2,
            }
        };
        self.seq += 1;
        let size = update_size(&update);
        self.entries.insert(
            update.name.clone(),
            Entry {
                update,
                size,
                transmits: 0,
                class,
                seq: self.seq,
            },
        );
    }

    /// Takes the updates for one datagram: at most `budget` encoded bytes, each
    /// update sent at most `limit` times in all.
    pub fn select(&mut self, budget: usize, limit: u32) -> Vec<Update> {
        let mut order: Vec<(&String, &Entry)> = self.entries.iter().collect();
        order.sort_by_key(|(_, e)| (e.class, e.transmits, std::cmp::Reverse(e.seq)));
        let mut left = budget;
        let mut chosen = Vec::new();
        for (name, e) in order {
            if e.size <= left {
                left -= e.size;
                chosen.push(name.clone());
            }
            if left < 16 {
                break;
            }
        }
        let mut out = Vec::with_capacity(chosen.len());
        for name in chosen {
            if let Some(e) = self.entries.get_mut(&name) {
                e.transmits += 1;
                out.push(e.update.clone());
                if e.transmits >= limit {
                    self.entries.remove(&name);
                }
            }
        }
        out
    }

    /// Updates waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(name: &str, state: State) -> Update {
        Update {
            name: name.into(),
            generation: 1,
            incarnation: 1,
            state,
            peer_port: 1,
            accuser: None,
            store: 1,
            pending: false,
        }
    }

    #[test]
    fn own_refutation_goes_before_suspicions_before_alive_news() {
        let mut g = Gossip::new();
        g.enqueue(up("a", State::Alive), false);
        g.enqueue(up("s", State::Suspect), false);
        g.enqueue(up("me", State::Alive), true);
        let names: Vec<_> = g.select(10_000, 5).into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["me", "s", "a"]);
    }

    #[test]
    fn each_update_is_sent_at_most_limit_times() {
        let mut g = Gossip::new();
        g.enqueue(up("a", State::Alive), false);
        let sent: usize = (0..10).map(|_| g.select(10_000, 3).len()).sum();
        assert_eq!(sent, 3);
        assert!(g.is_empty());
    }

    #[test]
    fn a_selection_never_exceeds_its_budget() {
        let mut g = Gossip::new();
        for i in 0..200 {
            g.enqueue(up(&format!("127.0.0.1:{}", 8000 + i), State::Alive), false);
        }
        for budget in [0, 10, 40, 100, 1000] {
            let total: usize = g.select(budget, 100).iter().map(update_size).sum();
            assert!(total <= budget, "{total} > {budget}");
        }
    }

    #[test]
    fn newer_news_of_a_member_replaces_older_news() {
        let mut g = Gossip::new();
        g.enqueue(up("a", State::Alive), false);
        g.enqueue(up("a", State::Dead), false);
        assert_eq!(g.len(), 1);
        assert_eq!(g.select(10_000, 5)[0].state, State::Dead);
    }

    #[test]
    fn the_retransmit_limit_grows_with_the_log_of_the_cluster() {
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 24), 8);
        assert_eq!(retransmit_limit(4, 1000), 16);
    }
}
