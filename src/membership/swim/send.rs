//! Sending: every datagram the core produces, with piggybacked gossip within the
//! datagram budget, full state in budget-sized chunks (join answers, push-pull),
//! and immediate broadcasts of urgent news. Invariant: no datagram exceeds the
//! payload budget. Pure.

use super::*;

impl Swim {
    /// Sends `update` at once to lambda * log(n) random live members (at least 3),
    /// for news that must not wait for the next probe: a leave, a refutation, a
    /// death. Gossip then carries it further.
    pub(super) fn broadcast(&mut self, update: Update, out: &mut Vec<Effect>) {
        let mut live = self.live_names();
        live.shuffle(&mut self.rng);
        let fanout =
            (retransmit_limit(self.config.retransmit_mult, self.live_count()) as usize).max(3);
        for to in live.into_iter().take(fanout) {
            let body = Body::Broadcast {
                updates: vec![update.clone()],
            };
            self.send_raw(out, to, body, false);
        }
    }

    /// This node's full state (itself included) cut into datagram-sized chunks.
    pub(super) fn state_chunks(&self) -> Vec<Vec<Update>> {
        let budget = self
            .payload_budget
            .saturating_sub(self.base_size(&Body::Sync {
                reply: true,
                members: Vec::new(),
                wall_ms: u64::MAX,
                joined: true,
            }));
        let mut chunks = vec![Vec::new()];
        let mut used = 0;
        let all = std::iter::once(&self.me).chain(self.members.values().map(|m| &m.update));
        for u in all {
            let size = update_size(u);
            if used + size > budget && used > 0 {
                chunks.push(Vec::new());
                used = 0;
            }
            used += size;
            if let Some(last) = chunks.last_mut() {
                last.push(u.clone());
            }
        }
        chunks
    }

    pub(super) fn send_state(&mut self, out: &mut Vec<Effect>, to: String, reply: bool) {
        for (i, members) in self.state_chunks().into_iter().enumerate() {
            self.send_raw(
                out,
                to.clone(),
                Body::Sync {
                    reply: reply && i == 0,
                    members,
                    wall_ms: self.wall_ms(),
                    joined: self.joined(self.now),
                },
                false,
            );
        }
    }

    pub(super) fn base_size(&self, body: &Body) -> usize {
        Datagram {
            from: self.me.name.clone(),
            generation: self.me.generation,
            body: body.clone(),
            gossip: Vec::new(),
        }
        .encode()
        .len()
            + LIST_OVERHEAD
    }

    pub(super) fn send(&mut self, out: &mut Vec<Effect>, to: String, body: Body) {
        self.send_raw(out, to, body, true);
    }

    pub(super) fn send_raw(
        &mut self,
        out: &mut Vec<Effect>,
        to: String,
        body: Body,
        piggyback: bool,
    ) {
        let mut budget = self.payload_budget.saturating_sub(self.base_size(&body));
        let mut gossip = Vec::new();
        // Joins carry the joiner; a member we hold as suspect or dead hears so first
        // (buddy system), so it can refute at once.
        if matches!(body, Body::Join) {
            budget = budget.saturating_sub(update_size(&self.me));
            gossip.push(self.me.clone());
        }
        if let Some(m) = self.members.get(&to) {
            if matches!(m.state(), State::Suspect | State::Dead)
                && (self.config.lifeguard || m.state() == State::Dead)
            {
                let size = update_size(&m.update);
                if size <= budget {
                    budget -= size;
                    gossip.push(m.update.clone());
                }
            }
        }
        if piggyback {
            let limit = retransmit_limit(self.config.retransmit_mult, self.live_count());
            gossip.extend(self.gossip.select(budget, limit));
        }
        self.stats.datagrams += 1;
        out.push(Effect::Send {
            to,
            datagram: Datagram {
                from: self.me.name.clone(),
                generation: self.me.generation,
                body,
                gossip,
            },
        });
    }
}
