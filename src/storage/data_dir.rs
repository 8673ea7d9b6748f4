//! A node's data directory: the engine's files, a lock, and `swimkv.json`, the
//! node's identity across restarts.
//!
//! Layout: `LOCK` (held with an exclusive file lock while a process uses the
//! directory, holding its pid), `swimkv.json` ([`Meta`]: format version, cluster
//! id, node name, store and process generations, the HLC mark, when the node
//! was last up, whether its store is still pending or has left, the members it
//! knew), `engine/` (fjall).
//!
//! [`decide`] is the pure rule of what a start does with what it finds: a new
//! directory starts a new store; one written by another cluster or node, in an
//! unknown format, or whose node was down longer than the tombstone grace period
//! is refused with a one-line reason; one whose node left, or never finished its
//! handoff, is wiped and starts again empty (pending); otherwise the node comes
//! back with its data and store, under a higher generation.
//!
//! Invariants: `swimkv.json` is replaced atomically (write, fsync, rename), so a
//! crash leaves the old or the new file, never a torn one; at most one process
//! holds a directory.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The format version this code reads and writes.
pub const FORMAT: u32 = 1;

const META: &str = "swimkv.json";
const LOCK: &str = "LOCK";
const ENGINE: &str = "engine";

/// A member recorded in the directory (a seed for the next start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Member name (`host:port`).
    pub name: String,
    /// Its store generation when last seen.
    pub store: u64,
    /// Its peer RPC port.
    pub peer_port: u16,
    /// It was dead (off the ring); otherwise it was on the ring (live or stopped).
    #[serde(default)]
    pub dead: bool,
}

/// What `swimkv.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// The cluster the data belongs to.
    pub cluster_id: String,
    /// The node name that wrote it.
    pub node: String,
    /// The generation of the store (the data).
    pub store: u64,
    /// The generation of the last process that used it.
    pub generation: u64,
    /// No version this node issued is above this (Unix ms); written ahead of use.
    pub hlc_mark_ms: u64,
    /// When the node was last known up (Unix ms).
    pub last_seen_ms: u64,
    /// The store has not completed its first handoff (it is incomplete).
    pub pending: bool,
    /// The node left the cluster: its data was handed off.
    pub left: bool,
    /// Members it knew (not left), other than itself.
    pub members: Vec<Recorded>,
}

/// What a start does with a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The meta to write before anything else runs.
    pub meta: Meta,
    /// Remove the engine's files first (the data must not be served).
    pub wipe: bool,
    /// The node comes back with its data (an ordinary replica that missed some writes).
    pub restored: bool,
    /// The HLC mark of the previous run (0 for none).
    pub previous_mark_ms: u64,
}

/// Who is starting.
#[derive(Clone, Debug)]
pub struct Starting<'a> {
    /// Cluster id.
    pub cluster_id: &'a str,
    /// Node name.
    pub node: &'a str,
    /// Wall clock now (Unix ms).
    pub now_ms: u64,
    /// The tombstone grace period (ms).
    pub grace_ms: u64,
    /// The node was given introducers.
    pub joins: bool,
}

fn hours(ms: u64) -> String {
    format!("{:.1} h", ms as f64 / 3_600_000.0)
}

/// What to do with the meta a directory holds (`None`: none; `engine_files`:
/// the engine directory is not empty).
pub fn decide(
    dir: &Path,
    previous: Option<Meta>,
    engine_files: bool,
    s: &Starting<'_>,
) -> Result<Decision, String> {
    let d = dir.display();
    let fresh = |generation: u64, members: Vec<Recorded>, mark: u64| {
        let pending = s.joins || !members.is_empty();
        Decision {
            meta: Meta {
                format: FORMAT,
                cluster_id: s.cluster_id.to_string(),
                node: s.node.to_string(),
                store: generation,
                generation,
                hlc_mark_ms: mark,
                last_seen_ms: s.now_ms,
                pending,
                left: false,
                members,
            },
            wipe: true,
            restored: false,
            previous_mark_ms: mark,
        }
    };
    let Some(m) = previous else {
        if engine_files {
            return Err(format!(
                "data directory {d} holds engine files but no {META}: it is not a swimkv data directory, or it is damaged; move it away (or wipe it) and start again"
            ));
        }
        return Ok(fresh(s.now_ms, Vec::new(), 0));
    };
    if m.format != FORMAT {
        return Err(format!(
            "data directory {d} is in format version {}, this swimkv reads version {FORMAT}",
            m.format
        ));
    }
    if m.cluster_id != s.cluster_id {
        return Err(format!(
            "data directory {d} belongs to cluster {:?}, this node is in cluster {:?}",
            m.cluster_id, s.cluster_id
        ));
    }
    if m.node != s.node {
        return Err(format!(
            "data directory {d} was written by node {}, this node is {}; give each node its own directory",
            m.node, s.node
        ));
    }
    let generation = s.now_ms.max(m.generation.saturating_add(1));
    if m.left || m.pending {
        // Its data was handed off (left), or it never held all of it (pending):
        // start over empty, as a pending replica.
        return Ok(fresh(generation, m.members, m.hlc_mark_ms));
    }
    let down = s.now_ms.saturating_sub(m.last_seen_ms);
    if down > s.grace_ms {
        return Err(format!(
            "data directory {d}: this node was down for {}, longer than the tombstone grace period ({}); it may hold keys whose deletion it never saw. Wipe the directory (rm -r {d}) and start the node again to rejoin empty",
            hours(down),
            hours(s.grace_ms)
        ));
    }
    Ok(Decision {
        meta: Meta {
            generation,
            last_seen_ms: s.now_ms,
            ..m.clone()
        },
        wipe: false,
        restored: true,
        previous_mark_ms: m.hlc_mark_ms,
    })
}

/// An open, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates (if needed) and locks `path`, decides what this start does with
    /// it, wipes the engine if so decided and writes the new meta.
    pub fn open(path: &Path, s: &Starting<'_>) -> Result<(DataDir, Decision), String> {
        let d = path.display();
        fs::create_dir_all(path).map_err(|e| format!("cannot create data directory {d}: {e}"))?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join(LOCK))
            .map_err(|e| format!("cannot open {}: {e}", path.join(LOCK).display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                return Err(format!(
                    "data directory {d} is in use by another swimkv process (pid {}); give each node its own --data-dir",
                    pid.trim()
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock data directory {d}: {e}"));
            }
        }
        let _ = lock.set_len(0);
        let _ = write!(lock, "{}", std::process::id());
        let previous = match fs::read(path.join(META)) {
            Ok(bytes) => Some(serde_json::from_slice::<Meta>(&bytes).map_err(|e| {
                format!("data directory {d}: {META} is unreadable ({e}); restore it from a backup or wipe the directory")
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {e}", path.join(META).display())),
        };
        let engine = path.join(ENGINE);
        let engine_files = fs::read_dir(&engine).is_ok_and(|mut entries| entries.next().is_some());
        let decision = decide(path, previous, engine_files, s)?;
        if decision.wipe && engine_files {
            fs::remove_dir_all(&engine)
                .map_err(|e| format!("cannot wipe {}: {e}", engine.display()))?;
        }
        let dir = DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        };
        dir.write_meta(&decision.meta, true)?;
        Ok((dir, decision))
    }

    /// Where the engine's files live.
    pub fn engine_path(&self) -> PathBuf {
        self.path.join(ENGINE)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces `swimkv.json` atomically (fsynced first when `sync`).
    pub fn write_meta(&self, meta: &Meta, sync: bool) -> Result<(), String> {
        let tmp = self.path.join(format!("{META}.tmp"));
        let write = || -> std::io::Result<()> {
            let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            if sync {
                f.sync_data()?;
            }
            fs::rename(&tmp, self.path.join(META))?;
            if sync {
                // The rename itself: fsync the directory (Unix; elsewhere a no-op).
                if let Ok(dir) = File::open(&self.path) {
                    let _ = dir.sync_all();
                }
            }
            Ok(())
        };
        write().map_err(|e| format!("cannot write {}: {e}", self.path.join(META).display()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const DAY: u64 = 86_400_000;

    fn starting(joins: bool) -> Starting<'static> {
        Starting {
            cluster_id: "c",
            node: "127.0.0.1:8001",
            now_ms: NOW,
            grace_ms: DAY,
            joins,
        }
    }

    fn meta() -> Meta {
        Meta {
            format: FORMAT,
            cluster_id: "c".into(),
            node: "127.0.0.1:8001".into(),
            store: 5,
            generation: NOW + 10,
            hlc_mark_ms: NOW + 20,
            last_seen_ms: NOW - 1_000,
            pending: false,
            left: false,
            members: vec![Recorded {
                name: "127.0.0.1:8002".into(),
                store: 7,
                peer_port: 18002,
                dead: false,
            }],
        }
    }

    fn dir() -> &'static Path {
        Path::new("/d")
    }

    #[test]
    fn a_new_directory_starts_a_new_store_pending_only_when_joining() {
        let d = decide(dir(), None, false, &starting(true)).unwrap();
        assert!(d.meta.pending && !d.restored && d.meta.store == NOW);
        let d = decide(dir(), None, false, &starting(false)).unwrap();
        assert!(!d.meta.pending, "a first node serves its own new store");
        assert!(
            decide(dir(), None, true, &starting(true)).is_err(),
            "engine files without meta"
        );
    }

    #[test]
    fn a_restart_keeps_the_store_and_takes_a_higher_generation() {
        let d = decide(dir(), Some(meta()), true, &starting(false)).unwrap();
        assert!(d.restored && !d.wipe && !d.meta.pending);
        assert_eq!(d.meta.store, 5);
        assert_eq!(
            d.meta.generation,
            NOW + 11,
            "past the last one though the clock is behind it"
        );
        assert_eq!(d.previous_mark_ms, NOW + 20);
        assert_eq!(d.meta.members, meta().members);
    }

    #[test]
    fn other_clusters_nodes_and_formats_are_refused() {
        for (m, what) in [
            (
                Meta {
                    cluster_id: "other".into(),
                    ..meta()
                },
                "cluster",
            ),
            (
                Meta {
                    node: "127.0.0.1:9".into(),
                    ..meta()
                },
                "node",
            ),
            (
                Meta {
                    format: FORMAT + 1,
                    ..meta()
                },
                "format",
            ),
        ] {
            let e = decide(dir(), Some(m), true, &starting(false)).unwrap_err();
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn down_longer_than_the_grace_period_is_refused_with_the_way_out() {
        let m = Meta {
            last_seen_ms: NOW - DAY - 1,
            ..meta()
        };
        let e = decide(dir(), Some(m), true, &starting(false)).unwrap_err();
        assert!(e.contains("grace period") && e.contains("rm -r /d"), "{e}");
        let m = Meta {
            last_seen_ms: NOW - DAY,
            ..meta()
        };
        assert!(decide(dir(), Some(m), true, &starting(false)).is_ok());
    }

    #[test]
    fn a_node_that_left_or_never_synced_starts_over_empty_and_pending() {
        for m in [
            Meta {
                left: true,
                ..meta()
            },
            Meta {
                pending: true,
                ..meta()
            },
        ] {
            let d = decide(dir(), Some(m), true, &starting(false)).unwrap();
            assert!(d.wipe && !d.restored && d.meta.pending, "{d:?}");
            assert_eq!(d.meta.store, d.meta.generation);
            assert!(d.meta.store > NOW + 10 && !d.meta.left);
            assert_eq!(
                d.previous_mark_ms,
                NOW + 20,
                "its clock still starts past the mark"
            );
        }
    }

    #[test]
    fn a_second_process_is_refused_and_meta_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, d) = DataDir::open(tmp.path(), &starting(false)).unwrap();
        let e = DataDir::open(tmp.path(), &starting(false)).unwrap_err();
        assert!(e.contains("in use by another swimkv process"), "{e}");
        drop(dir);
        let (_dir, again) = DataDir::open(tmp.path(), &starting(false)).unwrap();
        assert!(again.restored, "reopened after the first let go");
        assert_eq!(again.meta.store, d.meta.store);
    }
}
