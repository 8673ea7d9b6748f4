//! UDP datagrams: the socket SWIM speaks over, with envelope checks and counters.
//!
//! The receive loop hands every datagram whose envelope is valid to a recipient and
//! counts the rest by reason; sends never block (a full socket buffer drops the
//! datagram, as the network may). Invariant: no input from the network panics.

use super::wire::{Kind, Seal, WireError};
use actix::prelude::*;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

/// Receive buffer size: larger than any UDP datagram, so none is ever truncated.
pub const MAX_RECEIVE: usize = 65_536;

/// A valid datagram's payload and the address it came from.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Inbound {
    /// The sender's socket address.
    pub from: SocketAddr,
    /// The payload inside the envelope.
    pub payload: Bytes,
}

/// Datagram counters, by direction and reason.
#[derive(Debug, Default)]
pub struct UdpCounters {
    /// Datagrams received with a valid envelope.
    pub received: AtomicU64,
    /// Datagrams sent.
    pub sent: AtomicU64,
    /// Datagrams dropped on the way out (socket buffer full, unresolvable address).
    pub send_dropped: AtomicU64,
    /// Datagrams refused on the way in, by reason label.
    pub refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl UdpCounters {
    /// Counts a refused datagram under `reason`.
    pub fn refuse(&self, reason: &'static str) {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Refused datagrams by reason.
    pub fn refused_snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.refused.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Receives datagrams sealed with `seal` forever and delivers them to `to`.
pub async fn receive_loop(
    socket: Arc<UdpSocket>,
    seal: Seal,
    to: Recipient<Inbound>,
    counters: Arc<UdpCounters>,
) {
    let mut buf = vec![0u8; MAX_RECEIVE];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                log::debug!("udp receive error: {e}");
                continue;
            }
        };
        match seal.decode(Bytes::copy_from_slice(&buf[..len])) {
            Ok(env) if env.kind == Kind::Swim => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                if to
                    .try_send(Inbound {
                        from,
                        payload: env.payload,
                    })
                    .is_err()
                {
                    counters.refuse("mailbox_full");
                }
            }
            Ok(_) => counters.refuse(WireError::UnknownKind.label()),
            Err(e) => counters.refuse(e.label()),
        }
    }
}

/// Sends one SWIM payload without blocking; counts it as sent or dropped.
pub fn send(
    socket: &UdpSocket,
    seal: &Seal,
    to: SocketAddr,
    payload: &[u8],
    counters: &UdpCounters,
) {
    let bytes = seal.encode(Kind::Swim, 0, payload);
    match socket.try_send_to(&bytes, to) {
        Ok(_) => counters.sent.fetch_add(1, Ordering::Relaxed),
        Err(_) => counters.send_dropped.fetch_add(1, Ordering::Relaxed),
    };
}
