//! Staying in touch: rejoining when alone, contacting seeds (introducers) and
//! dead members, answering processes this node does not know yet, forgetting
//! long-dead members. This is what merges the halves of a healed partition and
//! a first node that came back alone back into one cluster. Pure.

use super::*;

/// Unknown processes remembered as contacted before the memory is cleared.
const MAX_CONTACTED: usize = 4096;

/// About this many members ping each live seed every protocol period, besides
/// the probes (see [`Swim::watch_seeds`]).
const SEED_WATCHERS: u64 = 3;

impl Swim {
    pub(super) fn reconnect(&mut self, out: &mut Vec<Effect>) {
        out.push(Effect::Schedule {
            after_ms: self.config.reconnect_interval_ms,
            timer: Timer::Reconnect,
        });
        if self.leaving {
            return;
        }
        if self.live_count() == 1 {
            self.send_join(out);
        } else if let Some(intro) = self.introducers.choose(&mut self.rng).cloned() {
            // A push-pull with a seed now and then, live or not: heals a partition
            // whose halves forgot each other, and merges a seed that came back alone.
            self.send_state(out, intro, true);
        }
        let dead: Vec<String> = self
            .members
            .values()
            .filter(|m| matches!(m.state(), State::Dead | State::Stopped))
            .map(|m| m.update.name.clone())
            .collect();
        if let Some(to) = dead.choose(&mut self.rng).cloned() {
            self.send_state(out, to, true);
        }
        // A member stopped for longer than it can be caught up (its hints are
        // gone by then) is dead: its ranges move to the next members.
        let stopped_horizon = self.now.saturating_sub(self.config.stopped_timeout_ms);
        let expired: Vec<Update> = self
            .members
            .values()
            .filter(|m| m.state() == State::Stopped && m.last_change_ms < stopped_horizon)
            .map(|m| Update {
                state: State::Dead,
                ..m.update.clone()
            })
            .collect();
        for u in expired {
            if let Some(m) = self.members.get_mut(&u.name) {
                m.update = u.clone();
                m.last_change_ms = self.now;
            }
            out.push(Effect::Notify(Event::Died(u)));
        }
        let horizon = self.now.saturating_sub(self.config.dead_reclaim_ms);
        let forgotten: Vec<(String, State)> = self
            .members
            .values()
            .filter(|m| {
                !m.state().is_live() && m.state() != State::Stopped && m.last_change_ms < horizon
            })
            .map(|m| (m.update.name.clone(), m.state()))
            .collect();
        for (name, state) in forgotten {
            self.members.remove(&name);
            self.clock.forget(&name);
            if state == State::Dead {
                // Still a member of the cluster as far as the replication factor goes.
                self.departed.insert(name);
            }
        }
        let members = &self.members;
        self.hint_probed
            .retain(|name, _| members.contains_key(name));
        self.contacted.retain(|name, generation| {
            members
                .get(name)
                .is_none_or(|m| m.update.generation < *generation)
        });
    }

    /// Every protocol period: a seed this node does not hold live gets a join, so
    /// a seed that restarted alone learns of this cluster within a period; so
    /// does one member held dead, so the halves of a healed partition find each
    /// other within a period or two (the join is answered with state, in which a
    /// live member reads that it is held dead and refutes it). Live seeds are
    /// watched for a restart ([`Swim::watch_seeds`]). A member not
    /// joined yet asks its live seeds again, every period, until one answers
    /// as joined (a first node answers so only once its wait is over).
    pub(super) fn contact_seeds(&mut self, out: &mut Vec<Effect>) {
        if self.leaving {
            return;
        }
        let alone = self.live_count() == 1;
        let down: Vec<String> = self
            .introducers
            .iter()
            .filter(|i| !self.members.get(*i).is_some_and(|m| m.state().is_live()))
            .cloned()
            .collect();
        // Alone, the join retries contact every seed already.
        if let Some(seed) = down.choose(&mut self.rng).cloned().filter(|_| !alone) {
            self.send(out, seed, Body::Join);
        }
        let live: Vec<String> = self
            .introducers
            .iter()
            .filter(|i| **i != self.me.name && !down.contains(*i))
            .cloned()
            .collect();
        self.watch_seeds(&live, out);
        // Known to a seed that was not joined itself yet (a first node still in
        // its wait): ask again, until a seed's answer says it is joined.
        if !alone && !self.joined(self.now) {
            for seed in live {
                self.send(out, seed, Body::Join);
            }
        }
        let dead: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                matches!(m.state(), State::Dead | State::Stopped)
                    && !self.introducers.contains(&m.update.name)
            })
            .map(|m| m.update.name.clone())
            .collect();
        if let Some(to) = dead.choose(&mut self.rng).cloned() {
            self.send(out, to, Body::Join);
        }
    }

    /// A seed restarted in memory with its first command (no introducer) looks
    /// alive here until this node hears its new generation, and the probes
    /// alone may take several periods to ask it: meanwhile it waits its
    /// `first_node_wait_ms` and then serves as a new cluster. So each live seed
    /// gets a ping from about [`SEED_WATCHERS`] members every period, at any
    /// cluster size: its answer carries its generation, and a new one is
    /// answered with this node's state, which merges the seed back.
    fn watch_seeds(&mut self, live_seeds: &[String], out: &mut Vec<Effect>) {
        let others = (self.live_count() as u64).saturating_sub(1).max(1);
        for seed in live_seeds {
            if self.rng.gen_range(0..others) < SEED_WATCHERS {
                self.seq += 1;
                let ping = Body::Ping {
                    seq: self.seq,
                    wall_ms: self.wall_ms(),
                };
                self.send(out, seed.clone(), ping);
            }
        }
    }

    /// A datagram came from `from` at `generation`: if that process is unknown
    /// here (an unknown member, or a newer generation of a known one), send it this
    /// node's state and ask for its own, once per process.
    pub(super) fn answer_unknown(&mut self, from: &str, generation: u64, out: &mut Vec<Effect>) {
        if from == self.me.name || self.leaving {
            return;
        }
        let known = self.members.get(from).map(|m| m.update.generation);
        if known.is_some_and(|g| g >= generation)
            || self.contacted.get(from).is_some_and(|&g| g >= generation)
        {
            return;
        }
        if self.contacted.len() >= MAX_CONTACTED {
            self.contacted.clear();
        }
        self.contacted.insert(from.to_string(), generation);
        self.send_state(out, from.to_string(), true);
    }

    /// A live member this node learns of. A founder that learns of a member
    /// already holding data (not pending, and not one of its own joiners) was
    /// merged into an existing cluster: it becomes a pending replica (its keys
    /// taken alone are pushed to the cluster, and the cluster's keys to it,
    /// before it counts as an authority). That holds for its first member, and,
    /// within its `first_node_wait_ms`, also after it formed a cluster with new
    /// joiners: an in-memory first node restarted with its first command may
    /// hear from a new joiner before its old cluster reaches it (the lifecycle
    /// simulator found it staying a separate two-member cluster that answered
    /// 404 for existing keys).
    pub(super) fn first_member(&mut self, u: &Update, out: &mut Vec<Effect>) {
        let waiting = self.founder
            && self.now.saturating_sub(self.started_ms) < self.config.first_node_wait_ms;
        if !waiting {
            self.joiners.clear();
        }
        if !u.state.is_live() || (self.seen_others && !waiting) {
            return;
        }
        let first = !self.seen_others;
        self.seen_others = true;
        if first && self.founder && u.pending && !self.joined(self.now) {
            self.formed = true;
        }
        if waiting && u.pending {
            self.joiners.insert(u.name.clone());
        }
        if self.founder
            && !u.pending
            && !self.me.pending
            && !self.leaving
            && !self.merged
            && !self.joiners.contains(&u.name)
        {
            self.merged = true;
            self.me.pending = true;
            self.me.incarnation = self.me.incarnation.saturating_add(1);
            self.gossip.enqueue(self.me.clone(), true);
            out.push(Effect::Notify(Event::Updated(self.me.clone())));
        }
    }
}
