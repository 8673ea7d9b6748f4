//! Ending a node's run: the graceful leave (hand every key off, announce
//! `left`, record it, stop), started by `POST /cluster/leave`; and the stop
//! that keeps the data (flush and fsync, stop), which SIGTERM and Ctrl-C start
//! on a durable node. An in-memory node, or one run with
//! `--leave-on-terminate`, leaves on those signals instead: its data would be
//! gone, or it is meant to go for good.
//!
//! Invariant: a node leaves at most once; a second request is refused while the
//! first runs, and the process stops only after the handoff, the announcement
//! and the record of it in the data directory. A requested leave whose handoff
//! could not complete is refused and the node stays a member (its keys would
//! leave with it); a leave on a signal goes ahead anyway, the process must end.

use crate::membership::actor::{Leave, Stopping};
use crate::replication::stabilizer::HandOffAll;
pub use crate::replication::stabilizer::LeaveRefused;
use crate::storage::actor::{MarkLeft, SyncNow};
use actix::prelude::*;
use std::time::Duration;

/// Leave gracefully: hand every key off, announce `left`, stop the node.
/// Answers how many keys were handed off.
#[derive(Message)]
#[rtype(result = "Result<u64, LeaveRefused>")]
pub struct GracefulLeave {
    /// Leave even when the handoff could not complete (a signal: the process
    /// ends either way).
    pub force: bool,
}

/// Stop and keep the data: flush and fsync the store, stop the node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Runs a graceful leave or a stop, and stops the actor system afterwards.
pub struct Control {
    stabilizer: Recipient<HandOffAll>,
    membership: Recipient<Leave>,
    stopping: Recipient<Stopping>,
    sync: Recipient<SyncNow>,
    left: Recipient<MarkLeft>,
    leaving: bool,
}

impl Control {
    /// A leave that hands off through `stabilizer`, announces through
    /// `membership` and records it through `left`; a stop that announces through
    /// `stopping` and syncs through `sync`.
    pub fn new(
        stabilizer: Recipient<HandOffAll>,
        membership: Recipient<Leave>,
        stopping: Recipient<Stopping>,
        sync: Recipient<SyncNow>,
        left: Recipient<MarkLeft>,
    ) -> Control {
        Control {
            stabilizer,
            membership,
            stopping,
            sync,
            left,
            leaving: false,
        }
    }
}

impl Actor for Control {
    type Context = Context<Self>;
}

impl Handler<GracefulLeave> for Control {
    type Result = ResponseActFuture<Self, Result<u64, LeaveRefused>>;

    fn handle(&mut self, msg: GracefulLeave, _: &mut Context<Self>) -> Self::Result {
        let first = !self.leaving;
        self.leaving = true;
        let stabilizer = self.stabilizer.clone();
        let membership = self.membership.clone();
        let left = self.left.clone();
        let work = async move {
            if !first {
                return Err(LeaveRefused::AlreadyLeaving);
            }
            let handed = match stabilizer.send(HandOffAll { forced: msg.force }).await {
                Ok(Ok(n)) => n,
                Ok(Err(LeaveRefused::HandoffIncomplete(why))) if msg.force => {
                    log::warn!("handoff before leaving incomplete: {why}; leaving anyway");
                    0
                }
                Ok(Err(LeaveRefused::HandoffIncomplete(why))) => {
                    log::error!("leave refused: handoff incomplete ({why}); still a member");
                    return Err(LeaveRefused::HandoffIncomplete(why));
                }
                Ok(Err(refused)) => return Err(refused),
                Err(e) => return Err(LeaveRefused::Stopped(e.to_string())),
            };
            log::info!("handed off {handed} keys; announcing left");
            let _ = membership.send(Leave).await;
            match left.send(MarkLeft).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => log::error!(
                    "could not record the leave in the data directory ({why}): wipe it before starting this node again"
                ),
                Err(e) => log::error!("could not record the leave: {e}"),
            }
            Ok(handed)
        };
        Box::pin(work.into_actor(self).map(move |result, act, ctx| {
            if matches!(result, Err(LeaveRefused::HandoffIncomplete(_))) {
                act.leaving = false;
            }
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

impl Handler<Stop> for Control {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Stop, _: &mut Context<Self>) -> Self::Result {
        let sync = self.sync.clone();
        let stopping = self.stopping.clone();
        Box::pin(
            async move {
                // Members keep this node's place on the ring and hints for it.
                let _ = stopping.send(Stopping).await;
                match sync.send(SyncNow).await {
                    Ok(Ok(())) => log::info!(
                        "stopping; the data is on disk and this node keeps its place in the cluster (POST /cluster/leave leaves for good)"
                    ),
                    Ok(Err(why)) => log::error!("stopping; the last writes may not be on disk: {why}"),
                    Err(e) => log::error!("stopping; storage is gone: {e}"),
                }
            }
            .into_actor(self)
            .map(|(), _, ctx| {
                // A moment for the announcement's datagrams to leave.
                ctx.run_later(Duration::from_millis(200), |_, _| System::current().stop());
            }),
        )
    }
}

/// Waits for SIGTERM or SIGINT, then stops keeping the data (`leave`: leaves
/// gracefully; stops at once if that fails).
pub(super) async fn stop_on_signal(control: Addr<Control>, leave: bool) {
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
    if !leave {
        log::info!("signal received: syncing the data and stopping");
        let _ = control.send(Stop).await;
        return;
    }
    log::info!("signal received: handing data off and leaving the cluster");
    if let Ok(Err(why)) = control.send(GracefulLeave { force: true }).await {
        log::warn!("graceful leave failed: {why}; stopping anyway");
        System::current().stop();
    }
}
