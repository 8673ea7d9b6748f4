//! Opening a node's store: the data directory and its engine (durable), or a
//! new in-memory store, with the identity and clock bounds they imply.
//!
//! A durable start locks the directory, applies its start rule
//! ([`crate::storage::data_dir::decide`]), waits (at most a few seconds) for
//! the wall clock to come within half the clock-offset bound of the HLC mark of
//! the previous run, opens fjall, rebuilds the digests in one scan, and writes
//! a new mark ahead of use before anything can issue a version. Invariant: no
//! version this node issues is lower than one a previous run issued, nor above
//! the mark on disk.

use super::{Identity, StartError};
use crate::config::Config;
use crate::replication::actor::ClockMark;
use crate::storage::actor::{unix_ms, DataDirState, StorageOptions};
use crate::storage::data_dir::{DataDir, Recorded, Starting};
use crate::storage::disk::DiskThread;
use crate::storage::durable::{DurableOptions, FjallEngine};
use crate::storage::{Engine, Replica};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Recently written keys whose version a durable replica keeps in memory
/// (about 100 bytes each, at most twice this many).
const HELD_CACHE_KEYS: usize = 16_384;

/// The longest a start waits for its clock to pass the previous run's mark.
const MAX_MARK_WAIT_MS: u64 = 5_000;

/// What a node's storage starts with: the replica over its engine, how the
/// StorageActor runs, the clock bounds and the members its directory recorded.
pub struct NodeStore {
    /// The replica (its authority is set from the identity).
    pub replica: Replica<Box<dyn Engine>>,
    /// How the StorageActor runs.
    pub options: StorageOptions,
    /// The data directory's meta, for a durable node.
    pub data_dir: Option<DataDirState>,
    /// Bounds of the coordinator's clock.
    pub clock: ClockMark,
    /// Members recorded in the data directory (seeds, held dead until they answer).
    pub recorded: Vec<Recorded>,
    /// The node came back with its data.
    pub restored: bool,
}

impl NodeStore {
    /// A new, empty in-memory store of generation `identity.store`.
    pub fn in_memory(config: &Config, identity: &Identity) -> NodeStore {
        let replica = Replica::new(identity.store, config.replication.max_clock_offset_ms);
        NodeStore {
            replica: replica.boxed(),
            options: StorageOptions::in_memory(
                config.replication.tombstone_grace_ms,
                config.stabilize.max_hints,
            ),
            data_dir: None,
            clock: ClockMark::unbounded(),
            recorded: Vec::new(),
            restored: false,
        }
    }

    /// Opens the store `config` asks for, as node `name`: the identity it
    /// starts with and the store.
    pub fn open(config: &Config, name: &str) -> Result<(Identity, NodeStore), StartError> {
        let now = unix_ms();
        let joins = !config.introducers.is_empty();
        let Some(path) = &config.storage.data_dir else {
            let identity = Identity::fresh(now, joins);
            return Ok((identity, NodeStore::in_memory(config, &identity)));
        };
        open_durable(config, name, path, now, joins)
    }
}

fn open_durable(
    config: &Config,
    name: &str,
    path: &Path,
    now: u64,
    joins: bool,
) -> Result<(Identity, NodeStore), StartError> {
    let max_offset = config.replication.max_clock_offset_ms;
    let starting = Starting {
        cluster_id: &config.cluster_id,
        node: name,
        now_ms: now,
        grace_ms: config.replication.tombstone_grace_ms,
        joins,
    };
    let (dir, decision) = DataDir::open(path, &starting).map_err(StartError)?;
    if decision.wipe && decision.previous_mark_ms > 0 {
        log::info!(
            "data directory {}: {}; starting empty, as a pending replica",
            path.display(),
            if decision.meta.left {
                "this node left the cluster"
            } else {
                "the previous run never completed its handoff"
            }
        );
    }
    // Versions start past the previous mark; peers refuse versions more than
    // the offset bound ahead of their clocks, so wait until it is near.
    let mark = decision.previous_mark_ms;
    let wait = mark.saturating_sub(unix_ms() + max_offset / 2);
    if wait > MAX_MARK_WAIT_MS {
        log::warn!(
            "the clock is {wait} ms behind the HLC mark of the previous run (did it step back?); versions continue past the mark"
        );
    } else if wait > 0 {
        log::info!("waiting {wait} ms for the clock to reach the HLC mark of the previous run");
        std::thread::sleep(Duration::from_millis(wait));
    }
    let opened = Instant::now();
    let options = DurableOptions {
        cache_bytes: config.storage.cache_mb.saturating_mul(1024 * 1024),
        ..DurableOptions::default()
    };
    let engine = FjallEngine::open(&dir.engine_path(), options).map_err(|e| {
        StartError(format!(
            "cannot open the storage engine in {}: {e}",
            dir.engine_path().display()
        ))
    })?;
    let engine: Box<dyn Engine> = Box::new(engine);
    let replica = Replica::open(engine, decision.meta.store, max_offset)
        .map_err(|e| {
            StartError(format!(
                "cannot read the store in {}: {e}",
                dir.engine_path().display()
            ))
        })?
        .with_held_cache(HELD_CACHE_KEYS);
    log::info!(
        "data directory {}: {} keys ({} live) opened in {} ms{}",
        path.display(),
        replica.len(),
        replica.live_len(),
        opened.elapsed().as_millis(),
        if decision.restored { ", restored" } else { "" }
    );
    let mut meta = decision.meta;
    let mark_ahead_ms = max_offset + 1_000;
    meta.hlc_mark_ms = meta.hlc_mark_ms.max(unix_ms() + mark_ahead_ms);
    dir.write_meta(&meta, true).map_err(StartError)?;
    let ceiling = Arc::new(AtomicU64::new(meta.hlc_mark_ms));
    let identity = Identity {
        generation: meta.generation,
        store: meta.store,
        pending: meta.pending,
    };
    let disk = DiskThread::start()
        .map_err(|e| StartError(format!("cannot start the disk thread: {e}")))?;
    let grace = config.replication.tombstone_grace_ms;
    let store = NodeStore {
        replica,
        options: StorageOptions {
            tombstone_grace_ms: grace,
            hint_window_ms: config.storage.hint_window_ms.min(grace / 2),
            max_hints: config.stabilize.max_hints,
            sync: config.storage.sync,
            sync_interval_ms: config.storage.sync_interval_ms,
            disk: Some(disk),
        },
        clock: ClockMark {
            floor_ms: mark,
            ceiling_ms: ceiling.clone(),
        },
        recorded: meta.members.clone(),
        restored: decision.restored,
        data_dir: Some(DataDirState {
            dir: Arc::new(dir),
            meta,
            ceiling_ms: ceiling,
            mark_ahead_ms,
            max_offset_ms: max_offset,
        }),
    };
    Ok((identity, store))
}
