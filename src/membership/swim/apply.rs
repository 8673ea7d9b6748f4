//! Applying membership news: precedence, events, the node's own refutation, and
//! the Lifeguard suspicion timeouts (start, independent confirmations, expiry).
//! Invariant: only this node raises its own incarnation. Pure.

use super::*;

impl Swim {
    /// Applies one update heard from `from` (a member name, or this node).
    pub(super) fn apply(&mut self, mut u: Update, from: &str, out: &mut Vec<Effect>) {
        if u.state != State::Suspect {
            u.accuser = None;
        } else if u.accuser.is_none() {
            u.accuser = Some(from.to_string());
        }
        if u.name == self.me.name {
            self.apply_about_me(u, out);
            return;
        }
        let Some(current) = self.members.get(&u.name) else {
            if u.state.on_ring() {
                self.insert_new(u, out);
            }
            return;
        };
        if !u.overrides(&current.update) {
            if u.state == State::Suspect && u.precedence() == current.update.precedence() {
                self.confirm(u, out);
            }
            return;
        }
        let old = current.update.clone();
        let new_generation = u.generation != old.generation;
        let changed = new_generation || u.state != old.state;
        let details =
            u.pending != old.pending || u.store != old.store || u.peer_port != old.peer_port;
        if let Some(m) = self.members.get_mut(&u.name) {
            m.update = u.clone();
            if changed {
                m.last_change_ms = self.now;
            }
        }
        self.gossip.enqueue(u.clone(), false);
        if u.state == State::Suspect {
            let tracked = self
                .suspicions
                .get(&u.name)
                .is_some_and(|s| s.generation == u.generation && s.incarnation == u.incarnation);
            if !tracked {
                self.start_suspicion(&u, out);
            }
        } else {
            self.suspicions.remove(&u.name);
        }
        if !changed {
            if details && u.state.is_live() {
                out.push(Effect::Notify(Event::Updated(u)));
            }
            return;
        }
        if u.state.is_live() {
            self.departed.remove(&u.name);
            self.first_member(&u, out);
        }
        let event = match u.state {
            State::Alive | State::Suspect if new_generation || !old.state.is_live() => {
                Event::Joined(u.clone())
            }
            State::Alive => Event::Recovered(u.clone()),
            State::Suspect => Event::Suspected(u.clone()),
            State::Stopped => Event::Stopped(u.clone()),
            State::Dead => Event::Died(u.clone()),
            State::Left => Event::Left(u.clone()),
        };
        if u.state.is_live() && !old.state.is_live() {
            self.add_to_probe_order(&u.name);
        }
        out.push(Effect::Notify(event));
    }

    pub(super) fn apply_about_me(&mut self, u: Update, out: &mut Vec<Effect>) {
        if self.leaving || u.generation != self.me.generation {
            return;
        }
        if u.state != State::Alive && u.incarnation >= self.me.incarnation {
            // An incarnation at the very top cannot be refuted; no honest member
            // sends one (incarnations grow by one per refutation), so it is ignored.
            let Some(next) = u.incarnation.checked_add(1) else {
                return;
            };
            self.me.incarnation = next;
            self.stats.refutations += 1;
            self.adjust_health(1);
            self.gossip.enqueue(self.me.clone(), true);
            // Also tell several members at once: waiting for the next probe or ack
            // could take periods (more with a raised local health), and each member
            // that hears it late may declare this node dead meanwhile.
            self.broadcast(self.me.clone(), out);
        }
    }

    /// A member not known before, live or stopped (down, but on the ring:
    /// remembered, not probed).
    pub(super) fn insert_new(&mut self, u: Update, out: &mut Vec<Effect>) {
        self.departed.remove(&u.name);
        let live = u.state.is_live();
        if live {
            self.first_member(&u, out);
        }
        self.members.insert(
            u.name.clone(),
            Member {
                update: u.clone(),
                last_change_ms: self.now,
            },
        );
        self.gossip.enqueue(u.clone(), false);
        if !live {
            out.push(Effect::Notify(Event::Stopped(u)));
            return;
        }
        self.add_to_probe_order(&u.name);
        if u.state == State::Suspect {
            self.start_suspicion(&u, out);
        }
        out.push(Effect::Notify(Event::Joined(u)));
    }

    pub(super) fn suspicion_bounds(&self) -> (u64, u64, usize) {
        let n = self.live_count();
        let min = suspicion::min_timeout_ms(
            self.config.suspicion_mult,
            n,
            self.config.protocol_period_ms,
        );
        if !self.config.lifeguard {
            return (min, min, 0);
        }
        let expected = self.config.indirect_probes.min(n.saturating_sub(2));
        (min, min * self.config.suspicion_max_mult, expected)
    }

    /// Starts tracking a suspicion. Its accuser is remembered but is not a
    /// confirmation: only further, independent accusers shorten the timeout.
    pub(super) fn start_suspicion(&mut self, u: &Update, out: &mut Vec<Effect>) {
        let (min, max, expected) = self.suspicion_bounds();
        let confirmations: BTreeSet<String> = u.accuser.iter().cloned().collect();
        let timeout = suspicion::timeout_ms(min, max, 0, expected);
        self.suspicions.insert(
            u.name.clone(),
            Suspicion {
                generation: u.generation,
                incarnation: u.incarnation,
                started_ms: self.now,
                confirmations,
                deadline_ms: self.now + timeout,
            },
        );
        out.push(Effect::Schedule {
            after_ms: timeout,
            timer: Timer::Suspicion {
                name: u.name.clone(),
                generation: u.generation,
                incarnation: u.incarnation,
            },
        });
    }

    /// `u` accuses a member already suspect at the same generation and incarnation.
    /// A new accuser is an independent confirmation (Lifeguard): it shortens the
    /// suspicion and is passed on, so that other members can count it too.
    pub(super) fn confirm(&mut self, u: Update, out: &mut Vec<Effect>) {
        if !self.config.lifeguard {
            return;
        }
        let Some(accuser) = u.accuser.clone() else {
            return;
        };
        let (min, max, expected) = self.suspicion_bounds();
        let now = self.now;
        let Some(s) = self.suspicions.get_mut(&u.name) else {
            return;
        };
        if s.generation != u.generation
            || s.incarnation != u.incarnation
            || !s.confirmations.insert(accuser)
        {
            return;
        }
        let confirmations = s.confirmations.len() - 1;
        let deadline = s.started_ms + suspicion::timeout_ms(min, max, confirmations, expected);
        if deadline < s.deadline_ms {
            s.deadline_ms = deadline;
            out.push(Effect::Schedule {
                after_ms: deadline.saturating_sub(now),
                timer: Timer::Suspicion {
                    name: u.name.clone(),
                    generation: s.generation,
                    incarnation: s.incarnation,
                },
            });
        }
        self.gossip.enqueue(u, false);
    }

    pub(super) fn suspicion_timer(
        &mut self,
        name: &str,
        generation: u64,
        incarnation: u64,
        out: &mut Vec<Effect>,
    ) {
        let Some(s) = self.suspicions.get(name) else {
            return;
        };
        if s.generation != generation || s.incarnation != incarnation || self.now < s.deadline_ms {
            return;
        }
        let Some(m) = self.members.get(name) else {
            return;
        };
        if m.state() != State::Suspect
            || m.update.generation != generation
            || m.update.incarnation != incarnation
        {
            return;
        }
        let dead = Update {
            state: State::Dead,
            accuser: None,
            ..m.update.clone()
        };
        self.stats.deaths += 1;
        let me = self.me.name.clone();
        self.apply(dead.clone(), &me, out);
        // Every survivor should learn it now, not when its own timer runs out.
        self.broadcast(dead, out);
    }
}
