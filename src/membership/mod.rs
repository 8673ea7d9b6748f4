//! Membership: SWIM with Lifeguard refinements.
//!
//! `member.rs`, `gossip.rs`, `suspicion.rs`, `clock.rs` and `swim.rs` are the pure
//! core; `message.rs` is the datagram format; `actor.rs` owns the UDP socket and
//! the timers.

pub mod actor;
pub mod clock;
pub mod gossip;
pub mod member;
pub mod message;
pub mod suspicion;
pub mod swim;

pub use member::{LiveMember, Member, State, Update};
pub use swim::{Effect, Event, Swim, Timer};
