//! Graceful leave: hand every key off, announce `left`, stop the node; started by
//! `POST /cluster/leave`, SIGTERM or SIGINT.
//!
//! Invariant: a node leaves at most once; a second request is refused while the
//! first runs, and the process stops only after the handoff and the announcement.

use crate::membership::actor::Leave;
use crate::replication::stabilizer::HandOffAll;
use actix::prelude::*;
use std::time::Duration;

/// Leave gracefully: hand every key off, announce `left`, stop the node.
/// Answers how many keys were handed off.
#[derive(Message)]
#[rtype(result = "Result<u64, String>")]
pub struct GracefulLeave;

/// Runs a graceful leave and stops the actor system afterwards.
pub struct Control {
    stabilizer: Recipient<HandOffAll>,
    membership: Recipient<Leave>,
    leaving: bool,
}

impl Control {
    /// A leave that hands off through `stabilizer` and announces through `membership`.
    pub fn new(stabilizer: Recipient<HandOffAll>, membership: Recipient<Leave>) -> Control {
        Control {
            stabilizer,
            membership,
            leaving: false,
        }
    }
}

impl Actor for Control {
    type Context = Context<Self>;
}

impl Handler<GracefulLeave> for Control {
    type Result = ResponseActFuture<Self, Result<u64, String>>;

    fn handle(&mut self, _: GracefulLeave, _: &mut Context<Self>) -> Self::Result {
        let first = !self.leaving;
        self.leaving = true;
        let stabilizer = self.stabilizer.clone();
        let membership = self.membership.clone();
        let work = async move {
            if !first {
                return Err("already leaving".to_string());
            }
            let handed = match stabilizer.send(HandOffAll).await {
                Ok(Ok(n)) => n,
                Ok(Err(why)) => {
                    log::warn!("handoff before leaving incomplete: {why}");
                    0
                }
                Err(e) => return Err(e.to_string()),
            };
            log::info!("handed off {handed} keys; announcing left");
            let _ = membership.send(Leave).await;
            Ok(handed)
        };
        Box::pin(work.into_actor(self).map(|result, _, ctx| {
            if result.is_ok() {
                ctx.run_later(Duration::from_millis(500), |_, _| {
                    log::info!("left the cluster; stopping");
                    System::current().stop();
                });
            }
            result
        }))
    }
}

/// Waits for SIGTERM or SIGINT, then leaves gracefully (stops at once if that fails).
pub(super) async fn stop_on_signal(control: Recipient<GracefulLeave>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    log::info!("signal received: handing data off and leaving the cluster");
    if let Ok(Err(why)) = control.send(GracefulLeave).await {
        log::warn!("graceful leave failed: {why}; stopping anyway");
        System::current().stop();
    }
}
