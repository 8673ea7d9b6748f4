//! The stabilizer core: data follows membership.
//!
//! On every ring change it walks the local store ([`Walk`]) and hands each key to
//! the members that are new in its preference list; keys this node no longer
//! replicates are dropped once their new owners acknowledged them and the ring
//! they went to settled (a transition cut short by another change must leave
//! the settled replicas whole); when a walk
//! completes it tells every member (`Synced`). It tracks the [`Transition`] from
//! the settled ring to the current one and publishes the [`Placement`]
//! coordinators use. It decides this node's authority: a node that came back
//! without its data is pending until every member reported its handoff for the
//! current ring, and only then counts as an authority on its keys. It runs the
//! graceful leave's last walk.
//!
//! Invariants: at most one walk runs at a time (a newer ring replaces the running
//! walk; every step is idempotent, so walking again resumes it); a node that
//! stopped being pending never becomes pending again unless it is a first node
//! merged into an existing cluster; once leaving, no other walk starts. Pure:
//! time is an argument, effects are returned.

use super::handoff::{Walk, WalkEffect, WalkPlan};
use super::placement::Placement;
use super::quorum::effective_n;
use super::rebalance::{fingerprint, Transition, FORMER_STORE};
use crate::config::StabilizeConfig;
use crate::ring::ring::Ring;
use crate::ring::snapshot::RingSnapshot;
use crate::storage::Version;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Delay before a walk that failed is tried again, in milliseconds.
pub const WALK_RETRY_MS: u64 = 1_000;

/// A graceful leave whose last walk could not hand every key off (a target
/// did not take a batch) walks again, every [`WALK_RETRY_MS`], at most this many
/// times before it reports the failure: leaving with keys not handed off would
/// take their copies out of the cluster. A requested leave is then given up (the
/// node takes writes again and stays a member); a forced one (a signal: the
/// process ends either way) keeps refusing writes.
pub const LEAVE_WALK_ATTEMPTS: u32 = 20;

/// A member in transition repeats its report every tick; a settled member
/// answers one member's reports for its ring at most this often.
pub const ANSWER_EVERY_MS: u64 = 5_000;

/// What the core asks the shell to do.
#[derive(Clone, Debug)]
pub enum StabilizeEffect {
    /// Hand the coordinator this placement.
    Publish(Placement),
    /// Carry out a step of walk `walk` and report back with [`Stabilizer::on_page`]
    /// or [`Stabilizer::on_pushed`].
    Walk {
        /// Which walk.
        walk: u64,
        /// The step.
        effect: WalkEffect,
    },
    /// Tell these members (name, peer address) that this node handed off its data
    /// for the ring `fingerprint`, and which rings haunt its reads.
    AnnounceSynced {
        /// The ring's fingerprint.
        fingerprint: u64,
        /// Members and their peer RPC addresses.
        to: Vec<(String, String)>,
        /// The members (and stores) of every ring that haunts reads here.
        haunted: Vec<Vec<(String, u64)>>,
    },
    /// The local replica is (`true`) or is not yet an authority on its keys.
    Authority(bool),
    /// This node's handoff completed: stop announcing it as a pending replica.
    MarkSynced,
    /// A graceful leave started (`true`): the local replica must refuse writes
    /// from now on; or it was given up (`false`): take writes again.
    SetLeaving(bool),
    /// The graceful leave's walk ended: keys handed off, or why not all were.
    LeaveDone(Result<u64, String>),
}

/// The stabilizer's state.
#[derive(Debug)]
pub struct Stabilizer {
    me: String,
    n: usize,
    w: usize,
    config: StabilizeConfig,
    transition: Option<Transition>,
    snapshot: Option<RingSnapshot>,
    walk: Option<(u64, Walk)>,
    walks: u64,
    /// Keys a transition walk handed off and would have dropped, with the
    /// fingerprint of the ring they went to: dropped once that ring settles,
    /// forgotten when another ring replaces it first.
    deferred_drops: Option<(u64, Vec<(String, Version)>)>,
    /// Members told, in answer to their report, that this node is settled on
    /// the same ring, and when (at most every [`ANSWER_EVERY_MS`] each: two
    /// settled members answering each other stop after one round).
    answered: BTreeMap<String, (u64, u64)>,
    synced_for: Option<u64>,
    retry_at: Option<u64>,
    leaving: Option<u64>,
    leave_forced: bool,
    leave_attempts: u32,
    leave_retry_at: Option<u64>,
    push_own: bool,
    synced_once: bool,
    serving: bool,
    /// The graceful leave handed everything off (or was forced): this node
    /// coordinates nothing any more, whatever its view.
    left: bool,
    now: u64,
}

impl Stabilizer {
    /// The stabilizer of node `me` keeping `n` replicas, acknowledging writes at `w`.
    pub fn new(me: String, n: usize, w: usize, config: StabilizeConfig) -> Stabilizer {
        Stabilizer {
            me,
            n,
            w,
            config,
            transition: None,
            snapshot: None,
            walk: None,
            walks: 0,
            deferred_drops: None,
            answered: BTreeMap::new(),
            synced_for: None,
            retry_at: None,
            leaving: None,
            leave_forced: false,
            leave_attempts: 0,
            leave_retry_at: None,
            push_own: false,
            synced_once: false,
            serving: false,
            left: false,
            now: 0,
        }
    }

    /// True while this node is a pending replica.
    pub fn is_pending(&self) -> bool {
        self.transition.as_ref().is_some_and(Transition::is_pending)
    }

    /// True while a ring transition is under way.
    pub fn in_transition(&self) -> bool {
        self.transition
            .as_ref()
            .is_some_and(|t| t.previous().is_some())
    }

    /// True while a handoff walk runs.
    pub fn walking(&self) -> bool {
        self.walk.is_some()
    }

    /// Members of the current ring that have not reported their handoff yet.
    pub fn waiting_for(&self) -> Vec<String> {
        self.transition
            .as_ref()
            .filter(|t| t.previous().is_some())
            .map(|t| t.waiting_for().into_iter().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The placement coordinators should use now.
    pub fn placement(&self) -> Option<Placement> {
        let (t, s) = (self.transition.as_ref()?, self.snapshot.as_ref()?);
        let previous = t.previous().cloned();
        let returning = previous.as_ref().and_then(|settled| {
            // The other side's ring: the members back on the current ring that
            // were not on the settled one, and those of its members that are
            // dead again (they may hold the other side's latest writes).
            let back: Vec<(String, u64)> = s
                .ring
                .identities()
                .filter(|(m, _)| *m != self.me && !s.is_pending(m) && settled.store_of(m).is_none())
                .map(|(m, store)| (m.to_string(), store))
                .collect();
            let gone = s
                .dead
                .iter()
                .filter(|(m, _)| settled.store_of(m).is_none())
                .cloned();
            let all: Vec<(String, u64)> = back.iter().cloned().chain(gone).collect();
            (!back.is_empty() && all.len() >= 2)
                .then(|| Arc::new(Ring::with_stores(s.ring.epoch(), all, s.ring.vnodes())))
        });
        Some(Placement {
            current: s.clone(),
            previous,
            returning,
            haunted: t.haunted(),
            serving: self.serving,
        })
    }

    /// True once this node may coordinate (see [`Placement::serving`]).
    pub fn serving(&self) -> bool {
        self.serving
    }

    fn publish(&mut self, out: &mut Vec<StabilizeEffect>) {
        // Serving from the first time the view is settled after joining (a first
        // node alone is settled from the start).
        if self.left {
            self.serving = false;
        } else if !self.serving {
            let joined = self.snapshot.as_ref().is_some_and(|s| s.joined);
            let settled = self
                .transition
                .as_ref()
                .is_some_and(|t| t.previous().is_none());
            self.serving = joined && settled;
        }
        if let Some(p) = self.placement() {
            out.push(StabilizeEffect::Publish(p));
        }
    }

    /// A new ring at `now_ms`; `merged`: this node is a first node merged into an
    /// existing cluster (its own keys must reach the cluster).
    pub fn on_ring(
        &mut self,
        snapshot: RingSnapshot,
        merged: bool,
        now_ms: u64,
        out: &mut Vec<StabilizeEffect>,
    ) {
        self.now = now_ms;
        let returning_before = self.placement().and_then(|p| p.returning);
        let ring = snapshot.ring.clone();
        let me_pending = snapshot.is_pending(&self.me);
        self.snapshot = Some(snapshot);
        self.push_own |= merged;
        let changed = match &mut self.transition {
            None => {
                let timeout = self.config.transition_timeout_ms;
                let t = if me_pending {
                    Transition::pending(ring, &self.me, timeout, now_ms)
                } else {
                    Transition::new(ring, timeout)
                };
                self.transition = Some(t.with_quorum(self.n, self.w));
                out.push(StabilizeEffect::Authority(!me_pending));
                true
            }
            Some(t) => {
                let pending = self
                    .snapshot
                    .as_ref()
                    .map(|s| s.pending.clone())
                    .unwrap_or_default();
                let changed = t.on_ring(ring, &pending, now_ms);
                if me_pending && !t.is_pending() && !self.synced_once {
                    // A first node that served alone, merged into a cluster.
                    t.become_pending(&self.me, now_ms);
                    out.push(StabilizeEffect::Authority(false));
                    true
                } else {
                    changed
                }
            }
        };
        if !self.synced_once {
            if let (Some(t), Some(s)) = (&mut self.transition, &self.snapshot) {
                if !s.dead.is_empty() {
                    let store = if t.is_pending() {
                        FORMER_STORE
                    } else {
                        s.ring.store_of(&self.me).unwrap_or(FORMER_STORE)
                    };
                    t.haunt_from_start(s.all_members(&self.me, store));
                }
            }
        }
        if let Some(theirs) = returning_before {
            // The members that came back holding the other side's writes are
            // gone again before they handed them over (a partition right after a
            // heal): their ring haunts reads until they are back.
            if self.placement().and_then(|p| p.returning).is_none() {
                if let Some(t) = &mut self.transition {
                    t.keep_haunting(theirs);
                }
            }
        }
        self.publish(out);
        if changed {
            self.synced_for = None;
            self.deferred_drops = None;
            self.answered.clear();
            self.start_walk(out);
        }
    }

    /// Member `from` finished its handoff for the ring with `print`; the rings
    /// that haunt its reads are `haunted`.
    pub fn on_synced(
        &mut self,
        from: &str,
        print: u64,
        haunted: Vec<Vec<(String, u64)>>,
        out: &mut Vec<StabilizeEffect>,
    ) {
        if let Some(t) = &mut self.transition {
            if !haunted.is_empty() {
                let vnodes = t.current().vnodes();
                let epoch = t.current().epoch();
                t.adopt_haunted(
                    haunted
                        .into_iter()
                        .map(|ids| Ring::with_stores(epoch, ids, vnodes))
                        .collect(),
                );
                self.publish(out);
            }
        }
        let due = self
            .answered
            .get(from)
            .is_none_or(|&(p, at)| p != print || self.now.saturating_sub(at) >= ANSWER_EVERY_MS);
        if from != self.me && !self.in_transition() && self.synced_for == Some(print) && due {
            self.answered.insert(from.to_string(), (print, self.now));
            // A member in transition to the ring this node is settled on waits
            // for this node's report, which it gave before that member's ring
            // changed (a member back from a pause: this node never saw it gone).
            self.announce_to(print, Some(from), out);
        }
        if self
            .transition
            .as_mut()
            .is_some_and(|t| t.on_synced(from, print))
        {
            log::info!("ring transition settled: every member handed off its data");
            self.on_settled(out);
        }
    }

    /// Time passes (the shell calls this about once a second).
    pub fn on_tick(&mut self, now_ms: u64, out: &mut Vec<StabilizeEffect>) {
        self.now = now_ms;
        if self.transition.as_mut().is_some_and(|t| t.on_tick(now_ms)) {
            log::warn!(
                "ring transition not reported complete by every member in time; settling anyway"
            );
            self.on_settled(out);
        }
        if self.retry_at.is_some_and(|at| now_ms >= at) {
            self.retry_at = None;
            self.start_walk(out);
        }
        if self.leave_retry_at.is_some_and(|at| now_ms >= at) {
            self.leave_retry_at = None;
            self.leaving = None;
            let forced = self.leave_forced;
            self.leave(forced, out);
        }
        if self.in_transition() && self.walk.is_none() {
            // Repeat our report: a member may have learned of this ring after it.
            self.announce(out);
        }
    }

    fn on_settled(&mut self, out: &mut Vec<StabilizeEffect>) {
        self.publish(out);
        if !self.synced_once && !self.is_pending() {
            self.synced_once = true;
            self.push_own = false;
            out.push(StabilizeEffect::Authority(true));
            out.push(StabilizeEffect::MarkSynced);
        }
        let settled = self.transition.as_ref().map(|t| fingerprint(t.current()));
        if let Some((print, keys)) = self.deferred_drops.take() {
            if Some(print) == settled && !keys.is_empty() {
                out.push(StabilizeEffect::Walk {
                    walk: self.walks,
                    effect: WalkEffect::Drop(keys),
                });
            }
        }
        // Writes made during the transition also reached the settled replicas:
        // walk once more to hand off and drop the copies this node no longer owns.
        self.start_walk(out);
    }

    /// Holders that stream each key to a newcomer: N − W + 1, so that one of
    /// them holds every write acknowledged at W.
    fn pushers(&self) -> usize {
        self.n.saturating_sub(self.w.min(self.n)) + 1
    }

    fn start_walk(&mut self, out: &mut Vec<StabilizeEffect>) {
        let Some(t) = &self.transition else {
            return;
        };
        if self.leaving.is_some() {
            return;
        }
        let plan = WalkPlan {
            me: self.me.clone(),
            n: self.n,
            pushers: self.pushers(),
            settled: t.settled().clone(),
            target: t.current().clone(),
            drop_local: true,
            push_own: self.push_own,
            hand_over_all: false,
            min_targets: 0,
            batch: self.config.batch_keys,
            pause_ms: self.config.pause_ms,
        };
        // A running walk is replaced: its late answers are ignored by their id.
        self.begin(plan, out);
    }

    fn begin(&mut self, plan: WalkPlan, out: &mut Vec<StabilizeEffect>) -> u64 {
        self.walks += 1;
        let id = self.walks;
        let (walk, effects) = Walk::start(plan);
        self.walk = Some((id, walk));
        out.extend(
            effects
                .into_iter()
                .map(|effect| StabilizeEffect::Walk { walk: id, effect }),
        );
        id
    }

    fn announce(&mut self, out: &mut Vec<StabilizeEffect>) {
        let Some(print) = self.synced_for else {
            return;
        };
        self.announce_to(print, None, out);
        let me = self.me.clone();
        self.on_synced(&me, print, Vec::new(), out);
    }

    /// Reports this node's handoff for ring `print` to `only`, or to every peer.
    fn announce_to(&mut self, print: u64, only: Option<&str>, out: &mut Vec<StabilizeEffect>) {
        let Some(s) = &self.snapshot else {
            return;
        };
        let to: Vec<(String, String)> = s
            .peers
            .iter()
            .filter(|(name, _)| **name != self.me && only.is_none_or(|o| o == name.as_str()))
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        if to.is_empty() {
            return;
        }
        let haunted = self
            .transition
            .as_ref()
            .map(|t| {
                t.haunted()
                    .iter()
                    .map(|h| h.identities().map(|(m, s)| (m.to_string(), s)).collect())
                    .collect()
            })
            .unwrap_or_default();
        out.push(StabilizeEffect::AnnounceSynced {
            fingerprint: print,
            to,
            haunted,
        });
    }

    /// A page of the store arrived for walk `walk`.
    pub fn on_page(
        &mut self,
        walk: u64,
        page: Vec<(String, crate::storage::Record)>,
        out: &mut Vec<StabilizeEffect>,
    ) {
        let effects = match &mut self.walk {
            Some((id, w)) if *id == walk => w.on_page(page),
            _ => return,
        };
        self.carry(walk, effects, out);
    }

    /// A push of walk `walk` to `to` ended.
    pub fn on_pushed(
        &mut self,
        walk: u64,
        to: &str,
        ok: bool,
        count: u64,
        out: &mut Vec<StabilizeEffect>,
    ) {
        let effects = match &mut self.walk {
            Some((id, w)) if *id == walk => w.on_pushed(to, ok, count),
            _ => return,
        };
        self.carry(walk, effects, out);
    }

    fn carry(&mut self, walk: u64, effects: Vec<WalkEffect>, out: &mut Vec<StabilizeEffect>) {
        for effect in effects {
            match effect {
                WalkEffect::Done(result) => self.walk_done(walk, result, out),
                WalkEffect::Drop(keys) if self.in_transition() => {
                    // Copies are dropped only once the ring they went to settled:
                    // a transition cut short by another ring change must leave
                    // every settled replica holding what it held (coordinators
                    // count on the settled lists).
                    let Some(target) = self.transition.as_ref().map(|t| fingerprint(t.current()))
                    else {
                        continue;
                    };
                    match &mut self.deferred_drops {
                        Some((print, held)) if *print == target => held.extend(keys),
                        _ => self.deferred_drops = Some((target, keys)),
                    }
                }
                effect => out.push(StabilizeEffect::Walk { walk, effect }),
            }
        }
    }

    fn walk_done(
        &mut self,
        walk: u64,
        result: Result<u64, String>,
        out: &mut Vec<StabilizeEffect>,
    ) {
        let target = self.walk.take().map(|(_, w)| fingerprint(w.target()));
        if self.leaving == Some(walk) {
            match result {
                Err(why) if self.leave_attempts + 1 < LEAVE_WALK_ATTEMPTS => {
                    self.leave_attempts += 1;
                    log::warn!(
                        "leave handoff incomplete ({why}); walking again in 1 s (attempt {} of {LEAVE_WALK_ATTEMPTS})",
                        self.leave_attempts + 1
                    );
                    self.leave_retry_at = Some(self.now + WALK_RETRY_MS);
                }
                Err(why) if !self.leave_forced => {
                    // Given up: still a member, so take writes and hand off again.
                    log::warn!(
                        "leave handoff incomplete after {LEAVE_WALK_ATTEMPTS} walks ({why}); staying a member"
                    );
                    self.leaving = None;
                    self.leave_attempts = 0;
                    out.push(StabilizeEffect::SetLeaving(false));
                    out.push(StabilizeEffect::LeaveDone(Err(why)));
                    self.start_walk(out);
                }
                result => {
                    // Gone: its view is not kept up any more (a node that left
                    // right after a heal went on coordinating with the view of
                    // its side, and acknowledged a write on one real replica).
                    self.left = true;
                    self.publish(out);
                    out.push(StabilizeEffect::LeaveDone(result));
                }
            }
            return;
        }
        let current = self.transition.as_ref().map(|t| fingerprint(t.current()));
        match result {
            Ok(moved) if target.is_some() && target == current => {
                if moved > 0 {
                    log::info!("handoff complete: {moved} keys streamed (walk {walk})");
                }
                self.synced_for = current;
                self.announce(out);
            }
            Ok(_) => self.start_walk(out),
            Err(why) => {
                log::info!("handoff walk incomplete ({why}); retrying in 1 s");
                self.retry_at = Some(self.now + WALK_RETRY_MS);
            }
        }
    }

    /// Starts a graceful leave: the replica refuses writes from now on, and one
    /// last walk hands every key to the members that own it without this node.
    /// Answers with [`StabilizeEffect::LeaveDone`]; a leave that could not hand
    /// everything off is given up (writes are taken again) before it answers,
    /// unless `forced` (then writes stay refused: the node goes anyway).
    pub fn leave(&mut self, forced: bool, out: &mut Vec<StabilizeEffect>) {
        let Some(current) = self.transition.as_ref().map(|t| t.current().clone()) else {
            self.left = true;
            self.publish(out);
            out.push(StabilizeEffect::LeaveDone(Ok(0)));
            return;
        };
        if self.leaving.is_some() {
            return;
        }
        self.leave_forced = forced;
        out.push(StabilizeEffect::SetLeaving(true));
        let others = current
            .identities()
            .filter(|(m, _)| *m != self.me)
            .map(|(m, s)| (m.to_string(), s));
        let without_me = Arc::new(Ring::with_stores(
            current.epoch() + 1,
            others,
            current.vnodes(),
        ));
        // Once this node is gone, the replication factor in effect counts one
        // member fewer, and W is at most that: so many copies must remain.
        let not_left_after = self
            .snapshot
            .as_ref()
            .map_or(0, |s| s.members_not_left.saturating_sub(1));
        let plan = WalkPlan {
            me: self.me.clone(),
            n: self.n,
            pushers: self.pushers(),
            settled: current,
            target: without_me,
            drop_local: false,
            push_own: false,
            hand_over_all: true,
            min_targets: self.w.min(effective_n(self.n, not_left_after)),
            batch: self.config.batch_keys,
            pause_ms: self.config.pause_ms,
        };
        self.leaving = Some(self.walks + 1);
        self.begin(plan, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::LiveMember;
    use crate::replication::handoff::WalkEffect;
    use crate::storage::{Record, Version};

    fn member(name: &str) -> LiveMember {
        LiveMember {
            name: name.to_string(),
            peer_addr: name.to_string(),
            store: 1,
            pending: false,
        }
    }

    /// Runs the walks of `s` to their end: every page is `keys` once, then empty;
    /// a push succeeds when `push_ok`. Answers the leave's outcome, if one came.
    fn run_walks(
        s: &mut Stabilizer,
        mut out: Vec<StabilizeEffect>,
        keys: &[(String, Record)],
        push_ok: bool,
        told: &mut Option<bool>,
    ) -> Option<Result<u64, String>> {
        let mut served = std::collections::BTreeSet::new();
        for _ in 0..1_000 {
            let effect = out.pop()?;
            match effect {
                StabilizeEffect::LeaveDone(result) => {
                    // What the replica was told along with the outcome, if anything.
                    *told = out.iter().rev().find_map(|e| match e {
                        StabilizeEffect::SetLeaving(on) => Some(*on),
                        _ => None,
                    });
                    return Some(result);
                }
                StabilizeEffect::Walk { walk, effect } => {
                    let mut more = Vec::new();
                    match effect {
                        WalkEffect::ReadPage { .. } => {
                            let page = if served.insert(walk) {
                                keys.to_vec()
                            } else {
                                Vec::new()
                            };
                            s.on_page(walk, page, &mut more);
                        }
                        WalkEffect::Push { to, records } => {
                            s.on_pushed(walk, &to, push_ok, records.len() as u64, &mut more)
                        }
                        _ => {}
                    }
                    out.extend(more);
                }
                _ => {}
            }
        }
        None
    }

    /// The stabilizer of `a:1` on a ring of `names` keeping `n` replicas (W = 2),
    /// and `count` keys for its walks to find.
    fn member_a_of(names: &[&str], n: usize, count: usize) -> (Stabilizer, Vec<(String, Record)>) {
        member_a_among(names, names.len(), n, count)
    }

    /// [`member_a_of`] in a cluster of `not_left` members (the others down).
    fn member_a_among(
        names: &[&str],
        not_left: usize,
        n: usize,
        count: usize,
    ) -> (Stabilizer, Vec<(String, Record)>) {
        let live: Vec<LiveMember> = names.iter().map(|m| member(m)).collect();
        let mut s = Stabilizer::new("a:1".into(), n, 2, StabilizeConfig::default());
        let mut out = Vec::new();
        s.on_ring(
            RingSnapshot::new(1, &live, 16, not_left),
            false,
            0,
            &mut out,
        );
        let version = Version {
            ts: 1 << 16,
            node: 1,
        };
        let keys = (0..count)
            .map(|i| {
                (
                    format!("k{i}"),
                    Record::value(version, bytes::Bytes::from_static(b"v")),
                )
            })
            .collect();
        (s, keys)
    }

    #[test]
    fn a_settled_member_answers_reports_for_its_ring_so_a_transition_back_to_it_settles() {
        // b came back to a's ring (a never saw it go): b waits for a's report.
        let live: Vec<LiveMember> = ["a:1", "b:1", "c:1"].iter().map(|m| member(m)).collect();
        let mut s = Stabilizer::new("a:1".into(), 3, 2, StabilizeConfig::default());
        let mut out = Vec::new();
        s.on_ring(RingSnapshot::new(1, &live, 16, 3), false, 0, &mut out);
        let mut told = None;
        let _ = run_walks(&mut s, out, &[], true, &mut told);
        let print = fingerprint(&s.placement().expect("placed").current.ring);
        let to_b = |out: &[StabilizeEffect]| {
            out.iter()
                .filter(|e| {
                    matches!(e, StabilizeEffect::AnnounceSynced { fingerprint, to, .. }
                        if *fingerprint == print && to.len() == 1 && to[0].0 == "b:1")
                })
                .count()
        };
        let mut out = Vec::new();
        s.on_synced("b:1", print, Vec::new(), &mut out);
        assert_eq!(to_b(&out), 1, "{out:?}");
        let mut out = Vec::new();
        s.on_synced("b:1", print, Vec::new(), &mut out);
        assert_eq!(to_b(&out), 0, "not again within 5 s: {out:?}");
        // b still waits (a lost answer, or b went through another change).
        let mut out = Vec::new();
        s.on_tick(ANSWER_EVERY_MS, &mut out);
        s.on_synced("b:1", print, Vec::new(), &mut out);
        assert_eq!(to_b(&out), 1, "answered again after 5 s: {out:?}");
        let mut out = Vec::new();
        s.on_synced("c:1", print ^ 1, Vec::new(), &mut out);
        assert!(out.is_empty(), "a report for another ring is not answered");
    }

    #[test]
    fn a_leave_whose_handoff_fails_walks_again_instead_of_leaving_with_the_keys() {
        let (mut s, keys) = member_a_of(&["a:1", "b:1", "c:1", "d:1"], 3, 50);
        assert!(s.serving(), "a settled member coordinates");
        let mut told = None;
        let mut out = Vec::new();
        s.leave(false, &mut out);
        assert_eq!(
            run_walks(&mut s, out, &keys, false, &mut told),
            None,
            "left though a push failed"
        );
        // A second later the leave walks again; this time every push lands.
        let mut out = Vec::new();
        s.on_tick(WALK_RETRY_MS, &mut out);
        assert!(s.serving(), "it coordinates while its leave is under way");
        match run_walks(&mut s, out, &keys, true, &mut told) {
            Some(Ok(moved)) => assert!(moved > 0, "nothing handed off"),
            other => panic!("the second walk did not end the leave: {other:?}"),
        }
        // Gone: it coordinates nothing any more, and its coordinator hears so.
        assert!(!s.serving(), "a node that left still coordinates");
        assert!(s.placement().is_some_and(|p| !p.serving));
    }

    #[test]
    fn a_leave_that_keeps_failing_is_given_up_and_the_node_stays_a_member() {
        let (outcome, told, mut s) = keep_failing(false);
        assert!(matches!(outcome, Some(Err(_))), "{outcome:?}");
        assert_eq!(told, Some(false), "the replica still refuses writes");
        assert!(s.serving(), "a member that stays coordinates");
        // Given up: no longer leaving, so the operator can leave again later.
        let mut out = Vec::new();
        s.leave(false, &mut out);
        assert!(
            out.iter()
                .any(|e| matches!(e, StabilizeEffect::SetLeaving(true))),
            "still leaving after the leave was given up: {out:?}"
        );
    }

    /// A leave (`forced` or not) whose pushes all land (`push_ok`) or all fail,
    /// walked again every retry while it is under way: its outcome, and what
    /// the replica was told with it.
    fn leave_walking(
        s: &mut Stabilizer,
        keys: &[(String, Record)],
        forced: bool,
        push_ok: bool,
    ) -> (Option<Result<u64, String>>, Option<bool>) {
        let mut told = None;
        let mut out = Vec::new();
        s.leave(forced, &mut out);
        let mut outcome = run_walks(s, out, keys, push_ok, &mut told);
        for attempt in 1..LEAVE_WALK_ATTEMPTS as u64 + 2 {
            if outcome.is_some() {
                break;
            }
            let mut out = Vec::new();
            s.on_tick(attempt * WALK_RETRY_MS, &mut out);
            outcome = run_walks(s, out, keys, push_ok, &mut told);
        }
        (outcome, told)
    }

    /// The outcome of a leave whose pushes all land.
    fn leave_until_done(
        s: &mut Stabilizer,
        keys: &[(String, Record)],
    ) -> Option<Result<u64, String>> {
        leave_walking(s, keys, false, true).0
    }

    #[test]
    fn a_leave_that_would_leave_keys_with_fewer_copies_than_a_write_quorum_is_given_up() {
        // a and b are the live side of a four-member cluster (the other two cut
        // off): with a gone, b alone would hold every key a holds.
        let (mut s, keys) = member_a_among(&["a:1", "b:1"], 4, 3, 20);
        match leave_until_done(&mut s, &keys) {
            Some(Err(why)) => assert!(why.contains("a key needs 2 copies"), "{why}"),
            other => panic!("the leave went ahead: {other:?}"),
        }
        assert!(s.serving(), "given up: still a member");
        // In a cluster of two, a leave shrinks the replication factor (and W)
        // to one: it goes ahead.
        let (mut s, keys) = member_a_among(&["a:1", "b:1"], 2, 3, 20);
        assert!(
            matches!(leave_until_done(&mut s, &keys), Some(Ok(moved)) if moved > 0),
            "a member of a two-member cluster could not leave"
        );
    }

    /// A leave (`forced` or not) whose every walk fails: its outcome, what the
    /// replica was told with it, and the stabilizer.
    fn keep_failing(forced: bool) -> (Option<Result<u64, String>>, Option<bool>, Stabilizer) {
        let (mut s, keys) = member_a_of(&["a:1", "b:1", "c:1"], 2, 20);
        let (outcome, told) = leave_walking(&mut s, &keys, forced, false);
        (outcome, told, s)
    }

    #[test]
    fn a_forced_leave_that_keeps_failing_goes_on_refusing_writes() {
        let (outcome, told, mut s) = keep_failing(true);
        assert!(matches!(outcome, Some(Err(_))), "{outcome:?}");
        assert_ne!(told, Some(false), "a forced leave took writes again");
        // Still leaving: a second leave does not start.
        let mut out = Vec::new();
        s.leave(true, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
