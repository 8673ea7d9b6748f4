//! Probing: one member per protocol period in shuffled round-robin order (hinted
//! members first, at most every other period and once per member per cycle, so
//! the round-robin advances at least every other period), the ping-req round
//! through helpers, and the verdict when the next period starts (an unanswered
//! probe makes its target suspect; helpers' nacks confirm it). Pure, like the
//! rest of the core.

use super::*;

impl Swim {
    pub(super) fn protocol_period(&mut self, out: &mut Vec<Effect>) {
        self.finish_probe(out);
        self.contact_seeds(out);
        self.round += 1;
        let mult = self.multiplier();
        out.push(Effect::Schedule {
            after_ms: self.config.protocol_period_ms * mult,
            timer: Timer::Protocol { round: self.round },
        });
        if self.leaving {
            return;
        }
        let Some(target) = self.next_target() else {
            return;
        };
        self.seq += 1;
        self.stats.probes += 1;
        self.probe = Some(Probe {
            seq: self.seq,
            target: target.clone(),
            acked: false,
            expected_nacks: 0,
            nacks: 0,
            nackers: Vec::new(),
        });
        let ping = Body::Ping {
            seq: self.seq,
            wall_ms: self.wall_ms(),
        };
        self.send(out, target, ping);
        out.push(Effect::Schedule {
            after_ms: self.config.probe_timeout_ms * mult,
            timer: Timer::ProbeTimeout { seq: self.seq },
        });
    }

    pub(super) fn next_target(&mut self) -> Option<String> {
        // Hinted members take at most every other period, so the round-robin goes
        // on whatever the hints say, at worst at half speed (detection stays bounded).
        let take_hinted = !self.probe_was_hinted;
        self.probe_was_hinted = false;
        while take_hinted && !self.hinted.is_empty() {
            let name = self
                .hinted
                .swap_remove(self.rng.gen_range(0..self.hinted.len()));
            if self.members.get(&name).is_some_and(|m| m.state().is_live()) {
                self.probe_was_hinted = true;
                self.hint_probed.insert(name.clone(), self.round);
                return Some(name);
            }
        }
        for _ in 0..2 {
            while self.probe_index < self.probe_order.len() {
                let name = self.probe_order[self.probe_index].clone();
                self.probe_index += 1;
                if self.members.get(&name).is_some_and(|m| m.state().is_live()) {
                    return Some(name);
                }
            }
            self.probe_order = self.live_names();
            self.probe_order.shuffle(&mut self.rng);
            self.probe_index = 0;
        }
        None
    }

    pub(super) fn finish_probe(&mut self, out: &mut Vec<Effect>) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        if probe.acked {
            self.adjust_health(-1);
            return;
        }
        let missed = i64::from(probe.expected_nacks.saturating_sub(probe.nacks));
        self.adjust_health(if probe.expected_nacks > 0 { missed } else { 1 });
        let Some(m) = self.members.get(&probe.target) else {
            return;
        };
        let me = self.me.name.clone();
        let accusation = Update {
            state: State::Suspect,
            accuser: Some(me.clone()),
            ..m.update.clone()
        };
        match m.state() {
            State::Alive => {
                self.stats.suspicions += 1;
                self.apply(accusation.clone(), &me, out);
                // Each helper that nacked failed to reach the target on its own: an
                // independent confirmation, so the suspicion starts shorter.
                for helper in probe.nackers {
                    let confirmation = Update {
                        accuser: Some(helper),
                        ..accusation.clone()
                    };
                    self.confirm(confirmation, out);
                }
                // Buddy system: tell the suspect at once, so that it can refute
                // before the suspicion has spread and gathered confirmations.
                if self.config.lifeguard {
                    let body = Body::Broadcast {
                        updates: vec![accusation],
                    };
                    self.send_raw(out, probe.target, body, false);
                }
            }
            // Already suspect: this failed probe is an independent confirmation.
            State::Suspect => self.confirm(accusation, out),
            State::Stopped | State::Dead | State::Left => {}
        }
    }

    pub(super) fn probe_timeout(&mut self, seq: u64, out: &mut Vec<Effect>) {
        let Some(probe) = self.probe.as_ref() else {
            return;
        };
        if probe.seq != seq || probe.acked {
            return;
        }
        let target = probe.target.clone();
        let mut helpers: Vec<String> = self
            .members
            .values()
            .filter(|m| m.state() == State::Alive && m.update.name != target)
            .map(|m| m.update.name.clone())
            .collect();
        helpers.shuffle(&mut self.rng);
        helpers.truncate(self.config.indirect_probes);
        if let Some(p) = self.probe.as_mut() {
            p.expected_nacks = if self.config.lifeguard {
                helpers.len() as u32
            } else {
                0
            };
        }
        for h in helpers {
            self.stats.ping_reqs += 1;
            self.send(
                out,
                h,
                Body::PingReq {
                    seq,
                    target: target.clone(),
                },
            );
        }
    }

    /// Queues `name`, if alive and not being probed now, to be probed before the
    /// round-robin continues. Only the order changes: the verdict still comes
    /// from a probe. With several hinted members each period picks one at random,
    /// so that members hinted together are probed first by different members.
    /// A member probed because of a hint is not probed for another hint until a
    /// round-robin cycle (one period per live member) has passed, so a member
    /// whose peer port keeps refusing costs at most one extra probe per cycle.
    pub(super) fn probe_next(&mut self, name: &str) {
        let cycle = self.live_count() as u64;
        if self
            .probe
            .as_ref()
            .is_some_and(|p| p.target == name && !p.acked)
            || self.hinted.iter().any(|h| h == name)
            || self
                .hint_probed
                .get(name)
                .is_some_and(|&round| self.round < round + cycle)
            || self
                .members
                .get(name)
                .is_none_or(|m| m.state() != State::Alive)
        {
            return;
        }
        self.hinted.push(name.to_string());
    }

    pub(super) fn add_to_probe_order(&mut self, name: &str) {
        // Insert at a random position of the remaining round (SWIM section 4.3).
        let lo = self.probe_index.min(self.probe_order.len());
        let at = self.rng.gen_range(lo..=self.probe_order.len());
        self.probe_order.insert(at, name.to_string());
    }
}
