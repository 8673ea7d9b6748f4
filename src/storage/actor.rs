//! The StorageActor: owns this node's [`Replica`] (over its engine) and its hint
//! log, serves replica requests, and decides when a write is acknowledged.
//!
//! Every read, write and batch of the local replica goes through it, whether it
//! comes from this node's coordinator or a peer. Over a durable engine, a write
//! is acknowledged only once the engine's journal holds it in the operating
//! system (it survives kill -9): the acknowledgement waits in a queue, and once
//! the actor has drained its mailbox one journal flush covers every write of the
//! drain (group commit). Under `--sync always` the acknowledgements wait further,
//! for an fsync on the disk thread that covers them; one fsync is in flight at a
//! time, and the writes that arrive meanwhile share the next. Under `periodic` a
//! timer fsyncs every `--sync-interval-ms`. A failed fsync stops the node.
//!
//! Invariants: the store only changes by storing or merging records (see
//! `replica.rs`), so the order in which requests arrive cannot lose a newer
//! version; no write is answered `Written` before the flush (and, under
//! `always`, the fsync) covering it succeeded; an engine error is answered as an
//! error, never as `Written`.

use super::data_dir::{DataDir, Meta, Recorded};
use super::disk::DiskThread;
use super::engine::{Engine, Syncer};
use super::hints::{Hint, HintKey, HintLog};
use super::ops::{ReplicaRequest, ReplicaResponse};
use super::record::{Record, Version};
use super::replica::{Replica, ReplicaStats};
use crate::config::{SyncMode, PEER_PORT_OFFSET};
use crate::membership::actor::MembershipChanged;
use crate::metrics::{ErrorKindLabels, MemberLabels, Metrics};
use crate::ring::ownership::Ownership;
use actix::dev::{MessageResponse, OneshotSender};
use actix::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Runs one replica request against the local store.
#[derive(Message, Debug)]
#[rtype(result = "ReplicaResponse")]
pub struct LocalOp(pub ReplicaRequest);

/// A page of the local store, for `/cluster/local` and stabilization.
#[derive(Message, Debug)]
#[rtype(result = "Vec<(String, Record)>")]
pub struct LocalPage {
    /// Start strictly after this key (from the first key when `None`), in ring order.
    pub after: Option<String>,
    /// At most this many keys.
    pub limit: usize,
}

/// Drops keys whose local version is still the one handed off.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct DropHandedOff(pub Vec<(String, Version)>);

/// The replica's authority: `false` while its handoff is still arriving.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetAuthority(pub bool);

/// The rings this node owns keys on (see [`Replica::set_ownership`]).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetOwnership(pub Ownership);

/// A graceful leave started (`true`): refuse every write from now on; or it was
/// given up (`false`): take writes again.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetLeaving(pub bool);

/// Keep hints `(member, key, record)` for members that missed a write; answers
/// how many were kept (the rest did not fit).
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct StoreHints(pub Vec<(String, String, Record)>);

/// The oldest hints held for one member, and every member with hints.
#[derive(Message, Debug)]
#[rtype(result = "Vec<(HintKey, Hint)>")]
pub struct HintsFor {
    /// The member.
    pub to: String,
    /// At most this many.
    pub limit: usize,
}

/// Members hints are held for.
#[derive(Message, Debug)]
#[rtype(result = "Vec<String>")]
pub struct HintedMembers;

/// Hints delivered: remove them.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct HintsDelivered(pub Vec<HintKey>);

/// Flush and fsync everything written so far (a stop that keeps the data);
/// answers once it is on disk, or why not.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct SyncNow;

/// The node leaves the cluster for good (its handoff is done): record it, so
/// that the next start begins empty; answers once it is on disk.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct MarkLeft;

/// The data directory a StorageActor keeps its meta in.
#[derive(Debug)]
pub struct DataDirState {
    /// The open, locked directory.
    pub dir: Arc<DataDir>,
    /// The meta written at start.
    pub meta: Meta,
    /// The mark on disk, shared with the coordinator (its write ceiling).
    pub ceiling_ms: Arc<AtomicU64>,
    /// How far ahead of the clock each new mark is, in ms.
    pub mark_ahead_ms: u64,
    /// How far ahead of the clock a version can be (the clock-offset bound), in ms.
    pub max_offset_ms: u64,
}

/// How often the meta (HLC mark, last seen, members) is rewritten.
pub const META_INTERVAL: Duration = Duration::from_millis(250);

/// Wall-clock milliseconds since the Unix epoch (0 before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How the StorageActor runs.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// Tombstones older than this are collected, in ms.
    pub tombstone_grace_ms: u64,
    /// Hints older than this are dropped, in ms.
    pub hint_window_ms: u64,
    /// Hints kept at most.
    pub max_hints: usize,
    /// When writes reach the disk (durable engines only).
    pub sync: SyncMode,
    /// Background fsync interval under [`SyncMode::Periodic`], in ms.
    pub sync_interval_ms: u64,
    /// Where fsyncs run (durable engines only).
    pub disk: Option<DiskThread>,
}

/// The meta of the data directory, kept current.
struct MetaKeeper {
    state: DataDirState,
    writing: bool,
    peer_ports: std::collections::BTreeMap<String, u16>,
    failing: bool,
    stopped: bool,
}

impl StorageOptions {
    /// Options for an in-memory replica.
    pub fn in_memory(tombstone_grace_ms: u64, max_hints: usize) -> StorageOptions {
        StorageOptions {
            tombstone_grace_ms,
            hint_window_ms: tombstone_grace_ms / 2,
            max_hints,
            sync: SyncMode::None,
            sync_interval_ms: 1000,
            disk: None,
        }
    }
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Acknowledgements waiting for the journal flush that covers their write.
type Waiting = Rc<RefCell<Vec<(Option<OneshotSender<ReplicaResponse>>, ReplicaResponse)>>>;

/// The answer to a [`LocalOp`]: now, or once the write is durable.
pub enum Reply {
    /// Answer at once.
    Now(ReplicaResponse),
    /// Answer after the next journal flush (and fsync under `always`).
    Later(Waiting, ReplicaResponse),
}

impl MessageResponse<StorageActor, LocalOp> for Reply {
    fn handle(self, ctx: &mut Context<StorageActor>, tx: Option<OneshotSender<ReplicaResponse>>) {
        match self {
            Reply::Now(response) => {
                if let Some(tx) = tx {
                    let _ = tx.send(response);
                }
            }
            Reply::Later(waiting, response) => {
                let first = {
                    let mut w = waiting.borrow_mut();
                    w.push((tx, response));
                    w.len() == 1
                };
                if first {
                    // Runs once the mailbox is drained: one flush for the lot.
                    ctx.notify(Flush);
                }
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

/// Records read per sweep step at least (the sweep visits the whole store
/// about four times per tombstone grace period, and at least this many a second).
const SWEEP_MIN_PER_SECOND: usize = 100;

/// Owns the local replica.
pub struct StorageActor {
    replica: Replica<Box<dyn Engine>>,
    hints: HintLog,
    metrics: Metrics,
    options: StorageOptions,
    reported: ReplicaStats,
    syncer: Option<Syncer>,
    waiting: Waiting,
    /// Flushed, waiting for an fsync (`always`).
    unsynced: Vec<(Option<OneshotSender<ReplicaResponse>>, ReplicaResponse)>,
    syncing: bool,
    /// Writes since the last fsync started.
    dirty: u64,
    backlog_members: Vec<String>,
    meta: Option<MetaKeeper>,
}

impl StorageActor {
    /// An actor over `replica` and its engine's hints.
    pub fn new(
        replica: Replica<Box<dyn Engine>>,
        metrics: Metrics,
        options: StorageOptions,
        data_dir: Option<DataDirState>,
    ) -> StorageActor {
        metrics
            .pending_replica
            .set(i64::from(!replica.is_authoritative()));
        let hints = HintLog::open(replica.engine(), options.max_hints).unwrap_or_else(|e| {
            log::error!("hints could not be read ({e}); starting without them");
            HintLog::default()
        });
        let syncer = replica.engine().syncer();
        let actor = StorageActor {
            replica,
            hints,
            metrics,
            options,
            reported: ReplicaStats::default(),
            syncer,
            waiting: Rc::new(RefCell::new(Vec::new())),
            unsynced: Vec::new(),
            syncing: false,
            dirty: 0,
            backlog_members: Vec::new(),
            meta: data_dir.map(|state| MetaKeeper {
                state,
                writing: false,
                peer_ports: Default::default(),
                failing: false,
                stopped: false,
            }),
        };
        actor.gauges();
        actor.hint_gauges_set();
        actor
    }

    fn durable(&self) -> bool {
        self.syncer.is_some()
    }

    fn gauges(&self) {
        self.metrics.keys_stored.set(self.replica.len() as i64);
        self.metrics.keys_live.set(self.replica.live_len() as i64);
    }

    fn hint_gauges_set(&self) {
        self.metrics.hints_pending.set(self.hints.total() as i64);
        for (member, n) in self.hints.backlog() {
            self.metrics
                .hints_backlog
                .get_or_create(&MemberLabels {
                    member: member.clone(),
                })
                .set(*n as i64);
        }
    }

    fn hint_gauges(&mut self) {
        let now: Vec<String> = self.hints.backlog().keys().cloned().collect();
        for gone in self.backlog_members.iter().filter(|m| !now.contains(m)) {
            self.metrics
                .hints_backlog
                .get_or_create(&MemberLabels {
                    member: gone.clone(),
                })
                .set(0);
        }
        self.backlog_members = now;
        self.hint_gauges_set();
    }

    fn count_refusals(&mut self) {
        let now = self.replica.stats();
        let was = std::mem::replace(&mut self.reported, now);
        let m = &self.metrics;
        m.reads_not_authoritative
            .inc_by(now.not_authoritative - was.not_authoritative);
        m.writes_refused_stale.inc_by(now.stale - was.stale);
        m.writes_refused_conflict
            .inc_by(now.conflicts - was.conflicts);
        m.versions_too_far_ahead
            .inc_by(now.too_far_ahead - was.too_far_ahead);
        let (e, w) = (now.errors, was.errors);
        for (kind, n) in [
            ("disk_full", e.disk_full - w.disk_full),
            ("io", e.io - w.io),
            ("corrupt", e.corrupt - w.corrupt),
            ("failed", e.failed - w.failed),
        ] {
            if n > 0 {
                m.storage_errors
                    .get_or_create(&ErrorKindLabels { kind })
                    .inc_by(n);
            }
        }
    }

    fn storage_error(&self, e: &super::engine::StorageError) {
        self.metrics
            .storage_errors
            .get_or_create(&ErrorKindLabels { kind: e.kind() })
            .inc();
    }

    /// Runs one replica request.
    pub fn run(&mut self, request: ReplicaRequest) -> ReplicaResponse {
        let writes = request.writes();
        let response = self.replica.serve(request, unix_ms());
        if writes {
            self.gauges();
        }
        if !matches!(
            response,
            ReplicaResponse::Read(_) | ReplicaResponse::Written
        ) {
            self.count_refusals();
        }
        response
    }

    /// The journal flush that covers every write drained so far: their
    /// acknowledgements go out now, or after the next fsync under `always`.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let acks = std::mem::take(&mut *self.waiting.borrow_mut());
        if acks.is_empty() {
            return;
        }
        self.dirty += acks.len() as u64;
        match self.replica.engine().persist() {
            Err(e) => {
                log::error!("journal flush failed: {e}; the writes it covered are refused");
                self.storage_error(&e);
                answer(acks, |_| ReplicaResponse::Error(format!("storage: {e}")));
            }
            Ok(()) => {
                self.metrics.journal_flushes.inc();
                if self.options.sync == SyncMode::Always {
                    self.unsynced.extend(acks);
                    self.fsync(ctx);
                } else {
                    answer(acks, |r| r);
                }
            }
        }
    }

    /// Starts an fsync on the disk thread unless one is in flight; its
    /// completion answers the acknowledgements it covers and starts the next.
    fn fsync(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            return;
        }
        let (Some(syncer), Some(disk)) = (self.syncer.clone(), self.options.disk.clone()) else {
            answer(std::mem::take(&mut self.unsynced), |r| r);
            return;
        };
        let covered = std::mem::take(&mut self.unsynced);
        let writes = std::mem::take(&mut self.dirty);
        self.syncing = true;
        let job = disk.run(move || {
            let started = Instant::now();
            syncer.sync().map(|()| started.elapsed())
        });
        ctx.spawn(job.into_actor(self).map(move |result, act, ctx| {
            act.syncing = false;
            match result {
                Some(Ok(took)) => {
                    act.metrics.fsync_seconds.observe(took.as_secs_f64());
                    act.metrics.writes_per_fsync.observe(writes as f64);
                    answer(covered, |r| r);
                    if !act.unsynced.is_empty() {
                        act.fsync(ctx);
                    }
                }
                failed => {
                    let why = match failed {
                        Some(Err(e)) => e.to_string(),
                        _ => "the disk thread is gone".to_string(),
                    };
                    answer(covered, |_| ReplicaResponse::Error(format!("fsync: {why}")));
                    answer(std::mem::take(&mut act.unsynced), |_| {
                        ReplicaResponse::Error(format!("fsync: {why}"))
                    });
                    log::error!(
                        "fsync failed: {why}. Stopping: after a failed fsync the engine's state on disk can no longer be trusted. Fix the disk and start the node again; it recovers from its journal"
                    );
                    System::current().stop_with_code(3);
                }
            }
        }));
    }

    /// Rewrites the meta on the disk thread with a new HLC mark ahead of the
    /// clock; once written, the mark becomes the coordinator's ceiling.
    fn write_meta(&mut self, ctx: &mut Context<Self>) {
        let Some(keeper) = &mut self.meta else {
            return;
        };
        let Some(disk) = self.options.disk.clone() else {
            return;
        };
        if keeper.writing || keeper.stopped {
            return;
        }
        let now = unix_ms();
        let meta = &mut keeper.state.meta;
        meta.hlc_mark_ms = meta.hlc_mark_ms.max(now + keeper.state.mark_ahead_ms);
        meta.last_seen_ms = now;
        let (dir, snapshot) = (keeper.state.dir.clone(), meta.clone());
        let sync = self.options.sync != SyncMode::None;
        keeper.writing = true;
        let job = disk.run(move || {
            dir.write_meta(&snapshot, sync)
                .map(|()| snapshot.hlc_mark_ms)
        });
        ctx.spawn(job.into_actor(self).map(|result, act, _| {
            let Some(keeper) = &mut act.meta else {
                return;
            };
            keeper.writing = false;
            match result {
                Some(Ok(mark)) => {
                    keeper.state.ceiling_ms.store(mark, Ordering::Relaxed);
                    if keeper.failing {
                        log::info!("the data directory's meta is written again");
                    }
                    keeper.failing = false;
                }
                Some(Err(why)) => {
                    if !keeper.failing {
                        log::error!(
                            "{why}: writes are refused once the clock passes the last mark on disk"
                        );
                    }
                    keeper.failing = true;
                }
                None => {}
            }
        }));
    }

    fn sweep(&mut self) {
        let now_ms = unix_ms();
        let pass_s = (self.options.tombstone_grace_ms / 4_000).max(1) as usize;
        let budget = (self.replica.len() / pass_s).clamp(SWEEP_MIN_PER_SECOND, 100_000);
        let cutoff = now_ms.saturating_sub(self.options.tombstone_grace_ms);
        match self.replica.sweep(now_ms, cutoff, budget) {
            Ok(swept) => {
                self.metrics.expired_collected.inc_by(swept.expired as u64);
                if swept.collected > 0 || swept.expired > 0 {
                    log::debug!(
                        "{} expired values turned into tombstones; {} tombstones older than the grace period collected",
                        swept.expired, swept.collected
                    );
                    self.gauges();
                }
            }
            Err(e) => {
                self.storage_error(&e);
                log::warn!("sweep failed: {e}");
            }
        }
    }

    fn expire_hints(&mut self) {
        if self.hints.total() == 0 {
            return;
        }
        let cutoff = unix_ms().saturating_sub(self.options.hint_window_ms);
        match self.hints.expire(self.replica.engine_mut(), cutoff) {
            Ok(n) if n > 0 => {
                log::info!("{n} hints older than the hint window dropped (anti-entropy repairs what they carried)");
                self.metrics.hints_expired.inc_by(n as u64);
                self.hint_gauges();
            }
            Ok(_) => {}
            Err(e) => self.storage_error(&e),
        }
    }
}

fn answer(
    acks: Vec<(Option<OneshotSender<ReplicaResponse>>, ReplicaResponse)>,
    response: impl Fn(ReplicaResponse) -> ReplicaResponse,
) {
    for (tx, r) in acks {
        if let Some(tx) = tx {
            let _ = tx.send(response(r));
        }
    }
}

impl Actor for StorageActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
        ctx.run_interval(Duration::from_secs(1), |act, _| act.sweep());
        ctx.run_interval(META_INTERVAL, |act, ctx| act.write_meta(ctx));
        ctx.run_interval(Duration::from_secs(60), |act, _| act.expire_hints());
        ctx.run_interval(Duration::from_secs(10), |act, _| {
            act.metrics
                .storage_disk_bytes
                .set(act.replica.engine().disk_bytes() as i64);
        });
        if self.durable() && self.options.sync == SyncMode::Periodic {
            let every = Duration::from_millis(self.options.sync_interval_ms.max(1));
            ctx.run_interval(every, |act, ctx| {
                if act.dirty > 0 && !act.syncing {
                    if let Err(e) = act.replica.engine().persist() {
                        act.storage_error(&e);
                    }
                    act.fsync(ctx);
                }
            });
        }
    }
}

impl Handler<LocalOp> for StorageActor {
    type Result = Reply;

    fn handle(&mut self, msg: LocalOp, _: &mut Context<Self>) -> Reply {
        let writes = msg.0.writes();
        let response = self.run(msg.0);
        if writes && self.durable() && response == ReplicaResponse::Written {
            Reply::Later(self.waiting.clone(), response)
        } else {
            Reply::Now(response)
        }
    }
}

impl Handler<Flush> for StorageActor {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

impl Handler<SyncNow> for StorageActor {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, _: SyncNow, ctx: &mut Context<Self>) -> Self::Result {
        self.flush(ctx);
        let persisted = self.replica.engine().persist().map_err(|e| e.to_string());
        let job = match (persisted, self.syncer.clone(), self.options.disk.clone()) {
            (Err(e), _, _) => Err(e),
            (Ok(()), Some(syncer), Some(disk)) => Ok(Some(disk.run(move || syncer.sync()))),
            (Ok(()), _, _) => Ok(None),
        };
        // No version is issued after a stop: the mark can come down to the
        // highest one possible now, so the next start need not wait for it.
        let last_meta = match (&mut self.meta, self.options.disk.clone()) {
            (Some(keeper), Some(disk)) => {
                let now = unix_ms();
                // This node writes nothing more, and the mark stays where it is.
                keeper.state.ceiling_ms.store(0, Ordering::Relaxed);
                keeper.stopped = true;
                let meta = &mut keeper.state.meta;
                meta.hlc_mark_ms = meta.hlc_mark_ms.min(now + keeper.state.max_offset_ms);
                meta.last_seen_ms = now;
                let (dir, meta) = (keeper.state.dir.clone(), meta.clone());
                Some(disk.run(move || dir.write_meta(&meta, true)))
            }
            _ => None,
        };
        Box::pin(
            async move {
                let synced = match job {
                    Err(e) => Err(e),
                    Ok(None) => Ok(()),
                    Ok(Some(job)) => match job.await {
                        Some(Ok(())) => Ok(()),
                        Some(Err(e)) => Err(e.to_string()),
                        None => Err("the disk thread is gone".into()),
                    },
                };
                if let Some(written) = last_meta {
                    if let Some(Err(e)) = written.await {
                        log::warn!("{e}");
                    }
                }
                synced
            }
            .into_actor(self),
        )
    }
}

impl Handler<LocalPage> for StorageActor {
    type Result = MessageResult<LocalPage>;

    fn handle(&mut self, msg: LocalPage, _: &mut Context<Self>) -> Self::Result {
        match self.replica.page(msg.after.as_deref(), msg.limit) {
            Ok(page) => MessageResult(page),
            Err(e) => {
                self.storage_error(&e);
                log::warn!("reading a page of the store failed: {e}");
                MessageResult(Vec::new())
            }
        }
    }
}

impl Handler<DropHandedOff> for StorageActor {
    type Result = usize;

    fn handle(&mut self, msg: DropHandedOff, _: &mut Context<Self>) -> usize {
        let dropped = self.replica.remove_if_versions(msg.0).unwrap_or_else(|e| {
            self.storage_error(&e);
            log::warn!("dropping handed-off keys failed: {e}");
            0
        });
        self.gauges();
        dropped
    }
}

impl Handler<SetAuthority> for StorageActor {
    type Result = ();

    fn handle(&mut self, msg: SetAuthority, _: &mut Context<Self>) {
        if msg.0 != self.replica.is_authoritative() {
            log::info!(
                "{}",
                if msg.0 {
                    "handoff complete: this replica is an authority on its keys"
                } else {
                    "this replica is pending: reads are answered 'not authoritative' until its handoff completes"
                }
            );
        }
        self.replica.set_authoritative(msg.0);
        self.metrics.pending_replica.set(i64::from(!msg.0));
        if let Some(keeper) = &mut self.meta {
            // The store is complete from now on: a restart keeps it.
            keeper.state.meta.pending &= !msg.0;
        }
    }
}

impl Handler<SetOwnership> for StorageActor {
    type Result = ();

    fn handle(&mut self, msg: SetOwnership, _: &mut Context<Self>) {
        self.replica.set_ownership(msg.0);
    }
}

impl Handler<SetLeaving> for StorageActor {
    type Result = ();

    fn handle(&mut self, msg: SetLeaving, _: &mut Context<Self>) {
        self.replica.set_leaving(msg.0);
    }
}

impl Handler<StoreHints> for StorageActor {
    type Result = usize;

    fn handle(&mut self, msg: StoreHints, _: &mut Context<Self>) -> usize {
        let offered = msg.0.len();
        let kept = self
            .hints
            .store(self.replica.engine_mut(), msg.0, unix_ms())
            .unwrap_or_else(|e| {
                self.storage_error(&e);
                log::warn!("storing hints failed: {e}");
                0
            });
        self.metrics.hints_dropped.inc_by((offered - kept) as u64);
        self.hint_gauges();
        kept
    }
}

impl Handler<HintsFor> for StorageActor {
    type Result = MessageResult<HintsFor>;

    fn handle(&mut self, msg: HintsFor, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.hints
                .oldest(self.replica.engine(), &msg.to, msg.limit)
                .unwrap_or_else(|e| {
                    self.storage_error(&e);
                    Vec::new()
                }),
        )
    }
}

impl Handler<HintedMembers> for StorageActor {
    type Result = MessageResult<HintedMembers>;

    fn handle(&mut self, _: HintedMembers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.hints.backlog().keys().cloned().collect())
    }
}

impl Handler<HintsDelivered> for StorageActor {
    type Result = ();

    fn handle(&mut self, msg: HintsDelivered, _: &mut Context<Self>) {
        let delivered = msg.0.len() as u64;
        match self.hints.remove(self.replica.engine_mut(), msg.0) {
            Ok(()) => {
                self.metrics.hints_delivered.inc_by(delivered);
            }
            Err(e) => self.storage_error(&e),
        }
        self.hint_gauges();
    }
}

impl Handler<MembershipChanged> for StorageActor {
    type Result = ();

    fn handle(&mut self, msg: MembershipChanged, _: &mut Context<Self>) {
        let Some(keeper) = &mut self.meta else {
            return;
        };
        if !msg.joined {
            return;
        }
        let me = keeper.state.meta.node.clone();
        for m in &msg.live {
            if let Some(port) = port_of(&m.peer_addr) {
                keeper.peer_ports.insert(m.name.clone(), port);
            }
        }
        for r in &keeper.state.meta.members {
            keeper
                .peer_ports
                .entry(r.name.clone())
                .or_insert(r.peer_port);
        }
        for m in &msg.stopped {
            if let Some(p) = port_of(&m.peer_addr) {
                keeper.peer_ports.insert(m.name.clone(), p);
            }
        }
        let ports = &keeper.peer_ports;
        let port = |name: &str| {
            ports
                .get(name)
                .copied()
                .unwrap_or_else(|| port_of(name).map_or(0, |p| p.wrapping_add(PEER_PORT_OFFSET)))
        };
        let mut members: Vec<Recorded> = msg
            .live
            .iter()
            .chain(&msg.stopped)
            .map(|m| (m.name.clone(), m.store, false))
            .chain(msg.dead.iter().map(|(n, s)| (n.clone(), *s, true)))
            .filter(|(name, _, _)| *name != me)
            .map(|(name, store, dead)| Recorded {
                peer_port: port(&name),
                name,
                store,
                dead,
            })
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members.dedup_by(|a, b| a.name == b.name);
        keeper.state.meta.members = members;
    }
}

impl Handler<MarkLeft> for StorageActor {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, _: MarkLeft, _: &mut Context<Self>) -> Self::Result {
        let (Some(keeper), Some(disk)) = (&mut self.meta, self.options.disk.clone()) else {
            return Box::pin(async { Ok(()) });
        };
        keeper.state.meta.left = true;
        keeper.state.meta.last_seen_ms = unix_ms();
        let (dir, meta) = (keeper.state.dir.clone(), keeper.state.meta.clone());
        let job = disk.run(move || dir.write_meta(&meta, true));
        Box::pin(async move {
            job.await
                .unwrap_or_else(|| Err("the disk thread is gone".into()))
        })
    }
}
