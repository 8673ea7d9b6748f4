//! Handling one datagram: its piggybacked gossip, then its message (probes and
//! acks with their clock readings, ping-req relays, joins, full-state syncs,
//! broadcasts), then contact with a process not known yet. Pure.

use super::*;

impl Swim {
    /// A datagram arrived at `now`.
    pub fn on_datagram(&mut self, now: u64, d: Datagram, out: &mut Vec<Effect>) {
        self.now = now;
        let from = d.from;
        for u in d.gossip {
            self.apply(u, &from, out);
        }
        let joining = matches!(d.body, Body::Join);
        match d.body {
            Body::Ping { seq, wall_ms } => {
                let ack = Body::Ack {
                    seq,
                    echo_ms: wall_ms,
                    wall_ms: self.wall_ms(),
                };
                self.send(out, from.clone(), ack);
            }
            Body::Ack {
                seq,
                echo_ms,
                wall_ms,
            } => self.on_ack(&from, seq, echo_ms, wall_ms, out),
            Body::Nack { seq } => {
                if let Some(p) = self.probe.as_mut() {
                    if p.seq == seq && !p.nackers.contains(&from) {
                        p.nacks += 1;
                        p.nackers.push(from.clone());
                        self.stats.nacks += 1;
                    }
                }
            }
            Body::PingReq { seq, target } => {
                self.seq += 1;
                self.relays.insert(
                    self.seq,
                    Relay {
                        origin: from.clone(),
                        origin_seq: seq,
                    },
                );
                let ping = Body::Ping {
                    seq: self.seq,
                    wall_ms: self.wall_ms(),
                };
                self.send(out, target, ping);
                // Not scaled by this helper's own health: the nack must reach the
                // origin before its period ends, or the origin blames itself.
                out.push(Effect::Schedule {
                    after_ms: self.config.probe_timeout_ms * 4 / 5,
                    timer: Timer::RelayTimeout { seq: self.seq },
                });
            }
            Body::Join => {
                // A join from a process this node does not know yet (a member of
                // an existing cluster contacting a seed that came back alone)
                // asks for its state too.
                let unknown = self
                    .members
                    .get(&from)
                    .is_none_or(|m| m.update.generation < d.generation);
                self.send_state(out, from.clone(), unknown);
            }
            Body::Gossip => {}
            Body::Sync {
                reply,
                members,
                wall_ms,
                joined,
            } => {
                let now_wall = self.wall_ms();
                self.clock.record_one_way(&from, wall_ms, now_wall);
                for u in members {
                    self.apply_state(u, &from, out);
                }
                if from != self.me.name && joined {
                    self.got_state = true;
                }
                if reply {
                    self.send_state(out, from.clone(), false);
                }
            }
            Body::Broadcast { updates } => {
                for u in updates {
                    self.apply(u, &from, out);
                }
            }
        }
        if !joining {
            self.answer_unknown(&from, d.generation, out);
        }
    }

    fn on_ack(&mut self, from: &str, seq: u64, echo_ms: u64, wall_ms: u64, out: &mut Vec<Effect>) {
        let mut direct = false;
        if let Some(p) = self.probe.as_mut() {
            if p.seq == seq {
                p.acked = true;
                direct = p.target == from;
            }
        }
        let relay = self.relays.remove(&seq);
        if (direct || relay.is_some()) && echo_ms != 0 {
            // Our own ping, answered by the member pinged: a clock reading.
            let now_wall = self.wall_ms();
            self.clock.record(from, echo_ms, wall_ms, now_wall);
        }
        if let Some(relay) = relay {
            let ack = Body::Ack {
                seq: relay.origin_seq,
                echo_ms: 0,
                wall_ms: 0,
            };
            self.send(out, relay.origin, ack);
        }
    }

    /// Applies an entry of a full-state sync: a `dead` verdict from the other
    /// side of a partition becomes a suspicion the member can refute; an unknown
    /// member reported dead is remembered as dead (it is off the ring, but still a
    /// member of the cluster: it counts for the replication factor, and its data
    /// may be nowhere else); everything else applies as gossip.
    fn apply_state(&mut self, mut u: Update, from: &str, out: &mut Vec<Effect>) {
        if u.state == State::Dead && u.name != self.me.name {
            if !self.members.contains_key(&u.name) {
                self.departed.remove(&u.name);
                self.members.insert(
                    u.name.clone(),
                    Member {
                        update: Update {
                            accuser: None,
                            ..u.clone()
                        },
                        last_change_ms: self.now,
                    },
                );
                out.push(Effect::Notify(Event::Died(u)));
                return;
            }
            u.state = State::Suspect;
            u.accuser = Some(from.to_string());
        }
        self.apply(u, from, out);
    }
}
