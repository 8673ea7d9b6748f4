//! One handoff walk over the local store, from a settled ring to a target ring,
//! as a state machine: read a page, push each key to the members its plan names,
//! drop the keys whose every push was acknowledged, read the next page.
//!
//! Invariants: at most one page is being pushed at a time; a key is dropped only
//! if every push of it was acknowledged (and the shell drops it only if its
//! version did not change meanwhile); the walk ends exactly once, with the number
//! of keys pushed or the first failure (a failed push does not stop the walk: the
//! rest is still handed off, and the walk is reported incomplete); a walk to a
//! ring without members (a leave of the last member it sees) that finds keys is
//! incomplete: they have nowhere to go. Pure.

use super::rebalance::plan_key;
use crate::ring::hash::token;
use crate::ring::ring::Ring;
use crate::storage::{Record, Version};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What the walk asks the shell to do.
#[derive(Clone, Debug, PartialEq)]
pub enum WalkEffect {
    /// Read up to `limit` keys after `after`, then call [`Walk::on_page`]; wait
    /// `delay_ms` first (the throttle between batches).
    ReadPage {
        /// Start strictly after this key.
        after: Option<String>,
        /// Keys per page.
        limit: usize,
        /// Pause before reading.
        delay_ms: u64,
    },
    /// Send these records to `to` (a merge), then call [`Walk::on_pushed`].
    Push {
        /// Member name.
        to: String,
        /// Keys and records.
        records: Vec<(String, Record)>,
    },
    /// Drop these keys if their version is still the one pushed.
    Drop(Vec<(String, Version)>),
    /// The walk ended: keys pushed, or why it is incomplete.
    Done(Result<u64, String>),
}

/// Where one walk goes and how it proceeds.
#[derive(Clone, Debug)]
pub struct WalkPlan {
    /// This node.
    pub me: String,
    /// Replication factor.
    pub n: usize,
    /// Holders that stream each key to a member new in its list (N − W + 1:
    /// one of them holds every acknowledged write; see `plan_key`).
    pub pushers: usize,
    /// The ring whose lists the keys are on.
    pub settled: Arc<Ring>,
    /// The ring they move to.
    pub target: Arc<Ring>,
    /// Drop keys this node no longer replicates once handed off.
    pub drop_local: bool,
    /// This node holds data the cluster may lack though it is new on the ring.
    pub push_own: bool,
    /// A graceful leave's walk: every key goes to its whole list on the target
    /// ring, since this node's copies go away with it and a remaining replica
    /// may have missed the latest write (its hint not delivered, or the replica
    /// since restarted empty).
    pub hand_over_all: bool,
    /// A leave's walk fails when the target ring has fewer members than this:
    /// each key must keep a write quorum of copies once this node is gone (a
    /// node leaving the two-member side of a partition would otherwise leave
    /// every key it holds with one copy, which one crash then loses).
    pub min_targets: usize,
    /// Keys per page.
    pub batch: usize,
    /// Pause between pages, in milliseconds.
    pub pause_ms: u64,
}

/// One walk in progress.
#[derive(Debug)]
pub struct Walk {
    plan: WalkPlan,
    after: Option<String>,
    outstanding: BTreeSet<String>,
    acked: BTreeSet<String>,
    to_drop: Vec<(String, Version, Vec<String>)>,
    moved: u64,
    failed: Option<String>,
    done: bool,
}

impl Walk {
    /// A walk following `plan`; the effects start it.
    pub fn start(plan: WalkPlan) -> (Walk, Vec<WalkEffect>) {
        let first = WalkEffect::ReadPage {
            after: None,
            limit: plan.batch,
            delay_ms: 0,
        };
        let walk = Walk {
            plan,
            after: None,
            outstanding: BTreeSet::new(),
            acked: BTreeSet::new(),
            to_drop: Vec::new(),
            moved: 0,
            failed: None,
            done: false,
        };
        (walk, vec![first])
    }

    /// The ring this walk hands off to.
    pub fn target(&self) -> &Arc<Ring> {
        &self.plan.target
    }

    /// True once the walk reported [`WalkEffect::Done`].
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// A page of the store arrived (empty: the walk reached the end).
    pub fn on_page(&mut self, page: Vec<(String, Record)>) -> Vec<WalkEffect> {
        if self.done || !self.outstanding.is_empty() {
            return Vec::new();
        }
        let Some((last, _)) = page.last() else {
            self.done = true;
            return vec![WalkEffect::Done(match self.failed.take() {
                Some(why) => Err(why),
                None => Ok(self.moved),
            })];
        };
        self.after = Some(last.clone());
        let p = &self.plan;
        if p.target.is_empty() && self.failed.is_none() {
            // A leave with nobody left on the ring: its keys would go with it.
            self.failed = Some("no other live member to hand the keys to".into());
        } else if p.target.len() < p.min_targets && self.failed.is_none() {
            self.failed = Some(format!(
                "only {} other live members to hand the keys to, and a key needs {} copies",
                p.target.len(),
                p.min_targets
            ));
        }
        let mut batches: BTreeMap<String, Vec<(String, Record)>> = BTreeMap::new();
        for (key, record) in page {
            let t = token(key.as_bytes());
            let mut plan = plan_key(&p.me, t, &p.settled, &p.target, p.n, p.pushers, p.push_own);
            if p.hand_over_all {
                plan.push_to = p
                    .target
                    .preference_list(t, p.n)
                    .into_iter()
                    .filter(|m| *m != p.me)
                    .map(str::to_string)
                    .collect();
            }
            for t in &plan.push_to {
                batches
                    .entry(t.clone())
                    .or_default()
                    .push((key.clone(), record.clone()));
            }
            if plan.drop_local && p.drop_local {
                self.to_drop.push((key, record.version, plan.push_to));
            }
        }
        self.acked.clear();
        self.outstanding = batches.keys().cloned().collect();
        let mut out: Vec<WalkEffect> = batches
            .into_iter()
            .map(|(to, records)| WalkEffect::Push { to, records })
            .collect();
        if out.is_empty() {
            out.extend(self.next_page());
        }
        out
    }

    /// The push of `count` records to `to` was acknowledged (`ok`) or failed.
    pub fn on_pushed(&mut self, to: &str, ok: bool, count: u64) -> Vec<WalkEffect> {
        if self.done || !self.outstanding.remove(to) {
            return Vec::new();
        }
        if ok {
            self.moved += count;
            self.acked.insert(to.to_string());
        } else if self.failed.is_none() {
            self.failed = Some(format!("push to {to} failed"));
        }
        if self.outstanding.is_empty() {
            self.next_page()
        } else {
            Vec::new()
        }
    }

    fn next_page(&mut self) -> Vec<WalkEffect> {
        let acked = &self.acked;
        let drops: Vec<(String, Version)> = std::mem::take(&mut self.to_drop)
            .into_iter()
            .filter(|(_, _, targets)| {
                !targets.is_empty() && targets.iter().all(|t| acked.contains(t))
            })
            .map(|(k, v, _)| (k, v))
            .collect();
        let mut out = Vec::new();
        if !drops.is_empty() {
            out.push(WalkEffect::Drop(drops));
        }
        out.push(WalkEffect::ReadPage {
            after: self.after.clone(),
            limit: self.plan.batch,
            delay_ms: self.plan.pause_ms,
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ring(members: &[&str]) -> Arc<Ring> {
        Arc::new(Ring::with_stores(
            1,
            members.iter().map(|m| (m.to_string(), 1)),
            16,
        ))
    }

    fn plan(me: &str, settled: Arc<Ring>, target: Arc<Ring>) -> WalkPlan {
        WalkPlan {
            me: me.into(),
            n: 3,
            pushers: 1,
            settled,
            target,
            drop_local: true,
            push_own: false,
            hand_over_all: false,
            min_targets: 0,
            batch: 2,
            pause_ms: 5,
        }
    }

    fn records(keys: &[&str]) -> Vec<(String, Record)> {
        keys.iter()
            .map(|k| {
                (
                    k.to_string(),
                    Record::value(Version { ts: 1, node: 1 }, Bytes::new()),
                )
            })
            .collect()
    }

    #[test]
    fn an_empty_store_ends_the_walk_at_once() {
        let r = ring(&["a", "b"]);
        let (mut w, out) = Walk::start(plan("a", r.clone(), r));
        assert!(matches!(
            out[..],
            [WalkEffect::ReadPage { after: None, .. }]
        ));
        assert_eq!(w.on_page(Vec::new()), [WalkEffect::Done(Ok(0))]);
        assert!(w.is_done());
        assert!(w.on_page(Vec::new()).is_empty(), "exactly one end");
    }

    #[test]
    fn the_last_member_leaving_with_keys_reports_them_stranded() {
        let alone = ring(&["a"]);
        let nobody = ring(&[]);
        let (mut w, _) = Walk::start(plan("a", alone.clone(), nobody.clone()));
        let out = w.on_page(records(&["k1", "k2"]));
        assert!(
            !out.iter().any(|e| matches!(e, WalkEffect::Push { .. })),
            "nobody to push to: {out:?}"
        );
        assert!(matches!(
            &w.on_page(Vec::new())[..],
            [WalkEffect::Done(Err(why))] if why.contains("no other live member")
        ));
        // With an empty store, the last member may leave.
        let (mut w, _) = Walk::start(plan("a", alone, nobody));
        assert_eq!(w.on_page(Vec::new()), [WalkEffect::Done(Ok(0))]);
    }

    #[test]
    fn a_leaving_member_pushes_each_key_drops_it_once_acknowledged_and_reads_on() {
        let old = ring(&["a", "b", "c", "d"]);
        let new = ring(&["b", "c", "d"]);
        let (mut w, _) = Walk::start(plan("a", old.clone(), new.clone()));
        let keys: Vec<String> = (0..50)
            .map(|i| format!("k{i}"))
            .filter(|k| old.locate(k.as_bytes(), 3).contains(&"a"))
            .take(2)
            .collect();
        let page = records(&[keys[0].as_str(), keys[1].as_str()]);
        let out = w.on_page(page);
        let pushes: Vec<(String, usize)> = out
            .iter()
            .filter_map(|e| match e {
                WalkEffect::Push { to, records } => Some((to.clone(), records.len())),
                _ => None,
            })
            .collect();
        assert!(!pushes.is_empty());
        let mut out = Vec::new();
        for (to, count) in &pushes {
            assert!(out.is_empty(), "the next page waits for every push");
            out = w.on_pushed(to, true, *count as u64);
        }
        assert!(matches!(&out[0], WalkEffect::Drop(d) if d.len() == 2));
        assert!(matches!(
            &out[1],
            WalkEffect::ReadPage { after: Some(a), delay_ms: 5, .. } if *a == keys[1]
        ));
        assert_eq!(
            w.on_page(Vec::new()),
            [WalkEffect::Done(Ok(pushes
                .iter()
                .map(|p| p.1 as u64)
                .sum()))]
        );
    }

    #[test]
    fn a_graceful_leave_hands_each_key_to_its_whole_new_list() {
        // a, b, c hold every key (N=3 of 3). Without a the lists are {b, c}: no
        // member is new in them, yet b or c may have missed the latest write.
        let with_me = ring(&["a", "b", "c"]);
        let without = ring(&["b", "c"]);
        let mut leave = plan("a", with_me.clone(), without.clone());
        leave.drop_local = false;
        leave.hand_over_all = true;
        let (mut w, _) = Walk::start(leave);
        let mut to: Vec<String> = w
            .on_page(records(&["k1"]))
            .into_iter()
            .filter_map(|e| match e {
                WalkEffect::Push { to, .. } => Some(to),
                _ => None,
            })
            .collect();
        to.sort();
        assert_eq!(to, ["b", "c"]);
        // An ordinary walk of the same change pushes nothing: b and c stay.
        let (mut w, _) = Walk::start(plan("a", with_me, without));
        assert!(!w
            .on_page(records(&["k1"]))
            .iter()
            .any(|e| matches!(e, WalkEffect::Push { .. })));
    }

    #[test]
    fn a_failed_push_keeps_the_key_and_reports_the_walk_incomplete() {
        let old = ring(&["a", "b", "c", "d"]);
        let new = ring(&["b", "c", "d"]);
        let (mut w, _) = Walk::start(plan("a", old.clone(), new));
        let key = (0..50)
            .map(|i| format!("k{i}"))
            .find(|k| old.locate(k.as_bytes(), 3).contains(&"a"))
            .expect("a key of a");
        let out = w.on_page(records(&[key.as_str()]));
        let WalkEffect::Push { to, .. } = &out[0] else {
            panic!("a push: {out:?}");
        };
        let out = w.on_pushed(&to.clone(), false, 1);
        assert!(
            matches!(out.last(), Some(WalkEffect::ReadPage { .. })),
            "{out:?}"
        );
        assert!(
            out.iter().all(|e| !matches!(e, WalkEffect::Drop(_))),
            "nothing dropped"
        );
        assert!(matches!(
            w.on_page(Vec::new())[..],
            [WalkEffect::Done(Err(_))]
        ));
    }
}
