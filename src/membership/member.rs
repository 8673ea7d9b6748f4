//! Members and the precedence of membership updates.
//!
//! A member is named by the address of its UDP/HTTP port (`host:port`) and is
//! also identified by a generation (its start time): a restarted node comes back
//! with a higher generation and supersedes its old self. Updates about one member
//! are ordered by `(generation, incarnation, state)` with `alive < suspect <
//! stopped < dead < left`, which is exactly SWIM's rule (section 4.2): alive
//! overrides suspect only with a higher incarnation, suspect overrides alive at
//! the same incarnation, dead overrides both, and a graceful `left` beats
//! everything of its incarnation. `stopped` is a node's own announcement that it
//! stops and comes back with its data (a durable node's SIGTERM): it keeps its
//! place on the ring, is not probed, and a member that holds it stopped too
//! long declares it dead at the same incarnation, which overrides it.
//! A suspicion also names its accuser (the member whose probe failed), so that
//! Lifeguard counts independent accusers rather than the members relaying the
//! news; the accuser takes no part in the precedence.
//! Invariant: applying updates in any order converges to the greatest one. Pure.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A member's state as gossiped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Answers probes.
    Alive,
    /// Missed a probe; will be declared dead unless it refutes in time.
    Suspect,
    /// Stopped, keeping its data and its place on the ring; comes back as a
    /// replica that missed some writes.
    Stopped,
    /// Declared failed.
    Dead,
    /// Left the cluster gracefully.
    Left,
}

impl State {
    /// Lower-case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Suspect => "suspect",
            State::Stopped => "stopped",
            State::Dead => "dead",
            State::Left => "left",
        }
    }

    /// True for members that may answer (alive or suspect).
    pub fn is_live(self) -> bool {
        matches!(self, State::Alive | State::Suspect)
    }

    /// True for members that belong on the ring: live ones, and stopped ones
    /// (they keep their place while they are down).
    pub fn on_ring(self) -> bool {
        self.is_live() || self == State::Stopped
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of membership news, as gossiped and as exchanged in push-pull.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The member's name (`host:port` of its UDP/HTTP port).
    pub name: String,
    /// The member's generation (start time); a restart raises it.
    pub generation: u64,
    /// The member's incarnation; only the member itself raises it (refutation).
    pub incarnation: u64,
    /// The state this update asserts.
    pub state: State,
    /// The member's peer RPC port.
    pub peer_port: u16,
    /// Who suspects the member (suspect updates only; `None` otherwise).
    pub accuser: Option<String>,
    /// Generation of the member's store: equal to `generation` when this process
    /// started without data, older when it kept the data of an earlier process.
    pub store: u64,
    /// The member is a pending replica (it came back without its data and is
    /// still receiving its handoff). Changing it takes a new incarnation.
    pub pending: bool,
}

impl Update {
    /// The precedence key: a greater key overrides a smaller one.
    pub fn precedence(&self) -> (u64, u64, State) {
        (self.generation, self.incarnation, self.state)
    }

    /// True when this update should replace what `current` says.
    pub fn overrides(&self, current: &Update) -> bool {
        self.precedence() > current.precedence()
    }
}

/// A live member (alive or suspect), as the ring and the data layer see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveMember {
    /// Member name (`host:port`).
    pub name: String,
    /// Peer RPC address (`host:peer_port`).
    pub peer_addr: String,
    /// Generation of the member's store: it changes exactly when the member comes
    /// back without its data.
    pub store: u64,
    /// The member is a pending replica: it is still receiving its handoff.
    pub pending: bool,
}

impl LiveMember {
    /// The live member an update describes, its peer RPC address derived from its
    /// name's host and its peer port.
    pub fn of(update: &Update) -> LiveMember {
        let host = update
            .name
            .rsplit_once(':')
            .map_or(update.name.as_str(), |(h, _)| h);
        LiveMember {
            name: update.name.clone(),
            peer_addr: format!("{host}:{}", update.peer_port),
            store: update.store,
            pending: update.pending,
        }
    }
}

/// What this node knows of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The newest update applied.
    pub update: Update,
    /// When the state last changed (node-local milliseconds).
    pub last_change_ms: u64,
}

impl Member {
    /// The member's name.
    pub fn name(&self) -> &str {
        &self.update.name
    }

    /// The member's state.
    pub fn state(&self) -> State {
        self.update.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(generation: u64, incarnation: u64, state: State) -> Update {
        Update {
            name: "n".into(),
            generation,
            incarnation,
            state,
            peer_port: 1,
            accuser: None,
            store: generation,
            pending: false,
        }
    }

    #[test]
    fn swim_precedence_rules_hold() {
        use State::*;
        // Alive overrides suspect only with a higher incarnation.
        assert!(u(1, 2, Alive).overrides(&u(1, 1, Suspect)));
        assert!(!u(1, 1, Alive).overrides(&u(1, 1, Suspect)));
        // Suspect overrides alive at the same or a higher incarnation.
        assert!(u(1, 1, Suspect).overrides(&u(1, 1, Alive)));
        assert!(!u(1, 0, Suspect).overrides(&u(1, 1, Alive)));
        // Dead overrides alive and suspect of its incarnation.
        assert!(u(1, 1, Dead).overrides(&u(1, 1, Suspect)));
        assert!(u(1, 1, Dead).overrides(&u(1, 1, Alive)));
        // A refutation with a higher incarnation revives a dead member.
        assert!(u(1, 2, Alive).overrides(&u(1, 1, Dead)));
        // Left beats everything of its incarnation.
        assert!(u(1, 1, Left).overrides(&u(1, 1, Dead)));
        // A new generation supersedes anything of the old one.
        assert!(u(2, 0, Alive).overrides(&u(1, 9, Left)));
        // Nothing overrides itself (idempotence).
        assert!(!u(1, 1, Alive).overrides(&u(1, 1, Alive)));
    }
}
