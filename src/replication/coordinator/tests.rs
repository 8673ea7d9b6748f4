//! Unit tests of the coordinator core: quorums, spares, read repair, joint
//! quorums, stale refusals and retries, conditional writes.

use super::*;
use crate::storage::hlc::pack;

const NOW: u64 = 1_700_000_000_000;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

fn rec(ts: u64, v: &'static str) -> Record {
    Record::value(Version { ts, node: 1 }, Bytes::from_static(v.as_bytes()))
}

fn coordinator() -> Coordinator {
    Coordinator::new(9, 500)
}

fn value(v: &'static str) -> WriteSpec {
    WriteSpec::plain(Some(Bytes::from_static(v.as_bytes())))
}

fn replies(out: &[Effect]) -> Vec<&Outcome> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Reply { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect()
}

fn repairs(out: &[Effect]) -> Vec<&str> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Repair { to, .. } => Some(to.as_str()),
            _ => None,
        })
        .collect()
}

fn sends(out: &[Effect]) -> Vec<&str> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send { to, .. } => Some(to.as_str()),
            _ => None,
        })
        .collect()
}

/// The version and attempt of the last write sent.
fn last_put(out: &[Effect]) -> (Version, u32, PutCheck) {
    out.iter()
        .rev()
        .find_map(|e| match e {
            Effect::Send {
                attempt,
                request: ReplicaRequest::Put { record, check, .. },
                ..
            } => Some((record.version, *attempt, *check)),
            _ => None,
        })
        .expect("a write was sent")
}

fn answer(
    c: &mut Coordinator,
    op: OpId,
    attempt: u32,
    from: &str,
    r: ReplicaResponse,
) -> Vec<Effect> {
    let mut out = Vec::new();
    c.on_response(op, attempt, from, r, NOW, &mut out);
    out
}

#[test]
fn a_write_is_sent_to_every_replica_and_answered_at_w_acks() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write("k", value("v"), &[Group::new(names(3), 2)], NOW, &mut out);
    assert_eq!(sends(&out).len(), 3);
    let (version, attempt, check) = last_put(&out);
    assert_eq!((attempt, check), (0, PutCheck::Newer));
    assert!(answer(&mut c, op, 0, "n0", ReplicaResponse::Written).is_empty());
    let out = answer(&mut c, op, 0, "n1", ReplicaResponse::Written);
    assert_eq!(replies(&out), [&Outcome::Written { version, acks: 2 }]);
    let out = answer(&mut c, op, 0, "n2", ReplicaResponse::Written);
    assert!(replies(&out).is_empty(), "exactly one answer per operation");
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn duplicate_acks_from_one_replica_do_not_make_a_quorum() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write("k", value("v"), &[Group::new(names(3), 2)], NOW, &mut out);
    answer(&mut c, op, 0, "n0", ReplicaResponse::Written);
    assert!(replies(&answer(&mut c, op, 0, "n0", ReplicaResponse::Written)).is_empty());
}

#[test]
fn a_timeout_before_the_quorum_answers_unavailable_with_counts() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write("k", value("v"), &[Group::new(names(3), 2)], NOW, &mut out);
    answer(&mut c, op, 0, "n0", ReplicaResponse::Written);
    out.clear();
    c.on_timeout(op, &mut out);
    assert_eq!(
        replies(&out),
        [&Outcome::Unavailable {
            needed: 2,
            succeeded: 1,
            failed: 0,
            replicas: 3
        }]
    );
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn failures_that_make_the_quorum_impossible_answer_at_once() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read("k", &[Group::new(names(3), 2)], &mut out);
    let down = || ReplicaResponse::Error("down".into());
    let out = answer(&mut c, op, 0, "n0", down());
    assert!(replies(&out).is_empty(), "the spare n2 can still make it");
    let out = answer(&mut c, op, 0, "n1", down());
    assert_eq!(
        replies(&out),
        [&Outcome::Unavailable {
            needed: 2,
            succeeded: 0,
            failed: 2,
            replicas: 3
        }]
    );
}

#[test]
fn a_read_asks_only_r_replicas_and_a_failure_brings_in_a_spare() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read("k", &[Group::new(names(3), 2)], &mut out);
    assert_eq!(sends(&out), ["n0", "n1"]);
    let out = answer(&mut c, op, 0, "n1", ReplicaResponse::Error("down".into()));
    assert_eq!(sends(&out), ["n2"]);
    assert!(
        replies(&out).is_empty(),
        "the spare can still make the quorum"
    );
    answer(
        &mut c,
        op,
        0,
        "n0",
        ReplicaResponse::Read(Some(rec(1, "v"))),
    );
    let out = answer(
        &mut c,
        op,
        0,
        "n2",
        ReplicaResponse::Read(Some(rec(1, "v"))),
    );
    assert_eq!(replies(&out), [&Outcome::Read(Some(rec(1, "v")))]);
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn a_replica_that_is_not_authoritative_counts_as_failed_and_a_spare_is_asked() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read("k", &[Group::new(names(3), 2)], &mut out);
    let out = answer(&mut c, op, 0, "n0", ReplicaResponse::NotAuthoritative);
    assert_eq!(
        sends(&out),
        ["n2"],
        "a pending replica's 'missing' is no answer"
    );
    assert!(answer(&mut c, op, 0, "n1", ReplicaResponse::Read(None)).is_empty());
    let out = answer(
        &mut c,
        op,
        0,
        "n2",
        ReplicaResponse::Read(Some(rec(3, "v"))),
    );
    assert_eq!(replies(&out), [&Outcome::Read(Some(rec(3, "v")))]);
}

#[test]
fn a_slow_read_asks_its_spares() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read("k", &[Group::new(names(3), 2)], &mut out);
    answer(&mut c, op, 0, "n0", ReplicaResponse::Read(None));
    out.clear();
    c.on_slow(op, &mut out);
    assert_eq!(sends(&out), ["n2"]);
    let out = answer(
        &mut c,
        op,
        0,
        "n2",
        ReplicaResponse::Read(Some(rec(4, "v"))),
    );
    assert_eq!(replies(&out), [&Outcome::Read(Some(rec(4, "v")))]);
    assert_eq!(repairs(&out), ["n0"]);
}

#[test]
fn a_read_answers_the_newest_version_and_repairs_stale_and_missing_replicas() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read("k", &[Group::new(names(3), 2)], &mut out);
    c.on_slow(op, &mut out); // ask every replica
    answer(
        &mut c,
        op,
        0,
        "n0",
        ReplicaResponse::Read(Some(rec(1, "old"))),
    );
    let out = answer(
        &mut c,
        op,
        0,
        "n1",
        ReplicaResponse::Read(Some(rec(9, "new"))),
    );
    assert_eq!(replies(&out), [&Outcome::Read(Some(rec(9, "new")))]);
    assert_eq!(repairs(&out), ["n0"]);
    let out = answer(&mut c, op, 0, "n2", ReplicaResponse::Read(None));
    assert_eq!(
        repairs(&out),
        ["n2"],
        "a late missing replica is repaired too"
    );
}

#[test]
fn a_late_newer_answer_repairs_the_replicas_that_answered_before() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read("k", &[Group::new(names(3), 1)], &mut out);
    c.on_slow(op, &mut out);
    answer(&mut c, op, 0, "n0", ReplicaResponse::Read(None));
    let out = answer(
        &mut c,
        op,
        0,
        "n1",
        ReplicaResponse::Read(Some(rec(3, "v"))),
    );
    assert_eq!(repairs(&out), ["n0"]);
    assert!(replies(&out).is_empty());
}

#[test]
fn a_read_of_a_missing_key_answers_none_without_repairs() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read("k", &[Group::new(names(2), 2)], &mut out);
    answer(&mut c, op, 0, "n0", ReplicaResponse::Read(None));
    let out = answer(&mut c, op, 0, "n1", ReplicaResponse::Read(None));
    assert_eq!(replies(&out), [&Outcome::Read(None)]);
    assert!(repairs(&out).is_empty());
}

#[test]
fn during_a_transition_a_write_needs_a_quorum_in_both_groups() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let new = Group::new(vec!["b".into(), "c".into(), "d".into()], 2);
    let settled = Group::new(vec!["b".into(), "c".into()], 2);
    let op = c.write("k", value("v"), &[new, settled], NOW, &mut out);
    assert_eq!(sends(&out).len(), 3, "each replica is asked once");
    answer(&mut c, op, 0, "d", ReplicaResponse::Written);
    let out = answer(&mut c, op, 0, "b", ReplicaResponse::Written);
    assert!(
        replies(&out).is_empty(),
        "two acks of the new list but one of the settled list"
    );
    let out = answer(&mut c, op, 0, "c", ReplicaResponse::Written);
    assert_eq!(replies(&out).len(), 1);
}

#[test]
fn a_group_that_can_no_longer_reach_its_quorum_fails_the_request_at_once() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let new = Group::new(vec!["c".into(), "d".into(), "e".into()], 2);
    let settled = Group::new(vec!["c".into()], 2); // two of its three members are dead
    c.read("k", &[new, settled], &mut out);
    assert_eq!(
        replies(&out),
        [&Outcome::Unavailable {
            needed: 2,
            succeeded: 0,
            failed: 0,
            replicas: 1
        }]
    );
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn fewer_live_replicas_than_the_write_quorum_answers_unavailable_at_once() {
    let mut c = coordinator();
    let mut out = Vec::new();
    c.write("k", value("v"), &[Group::new(names(1), 2)], NOW, &mut out);
    assert!(sends(&out).is_empty(), "nothing is written anywhere");
    assert!(matches!(
        replies(&out)[..],
        [Outcome::Unavailable {
            needed: 2,
            replicas: 1,
            ..
        }]
    ));
    let mut out = Vec::new();
    c.read("k", &[Group::new(vec![], 1)], &mut out);
    assert_eq!(replies(&out).len(), 1);
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn a_write_refused_as_stale_is_written_again_past_the_refused_version() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write(
        "k",
        value("later"),
        &[Group::new(names(3), 2)],
        NOW,
        &mut out,
    );
    let (first, _, _) = last_put(&out);
    // Another coordinator wrote this key in the same millisecond with a higher node id.
    let held = Version {
        ts: first.ts,
        node: first.node + 1,
    };
    answer(&mut c, op, 0, "n0", ReplicaResponse::Written);
    let out = answer(&mut c, op, 0, "n1", ReplicaResponse::Stale(held));
    assert_eq!(
        sends(&out).len(),
        3,
        "every replica gets the second attempt"
    );
    let (second, attempt, _) = last_put(&out);
    assert_eq!(attempt, 1);
    assert!(second > held, "{second} must be past the refused {held}");
    // An ack of the first attempt does not count for the second.
    assert!(replies(&answer(&mut c, op, 0, "n2", ReplicaResponse::Written)).is_empty());
    answer(&mut c, op, 1, "n0", ReplicaResponse::Written);
    let out = answer(&mut c, op, 1, "n1", ReplicaResponse::Written);
    assert_eq!(
        replies(&out),
        [&Outcome::Written {
            version: second,
            acks: 2
        }]
    );
    assert_eq!(c.stats().stale_retries, 1);
}

#[test]
fn retries_are_bounded_and_a_refusal_is_never_an_ack() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write("k", value("v"), &[Group::new(names(3), 2)], NOW, &mut out);
    for attempt in 0..MAX_WRITE_ATTEMPTS {
        let (v, a, _) = last_put(&out);
        assert_eq!(a, attempt);
        let newer = Version {
            ts: v.ts + 1,
            node: 1,
        };
        out = answer(&mut c, op, a, "n0", ReplicaResponse::Stale(newer));
        assert!(replies(&out).is_empty());
        if attempt + 1 < MAX_WRITE_ATTEMPTS {
            assert_eq!(sends(&out).len(), 3, "attempt {attempt} is retried");
        } else {
            assert!(sends(&out).is_empty(), "the last refusal is not retried");
            // It is a failure; the other two replicas can still make W.
            out = answer(&mut c, op, a, "n1", ReplicaResponse::Stale(newer));
            assert!(matches!(
                replies(&out)[..],
                [Outcome::Unavailable { failed: 2, .. }]
            ));
        }
    }
    assert_eq!(c.stats().stale_retries, u64::from(MAX_WRITE_ATTEMPTS - 1));
}

#[test]
fn a_version_too_far_ahead_of_the_clock_is_not_observed_nor_written_past() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write("k", value("v"), &[Group::new(names(3), 2)], NOW, &mut out);
    let future = Version {
        ts: pack(NOW + 120_000, 0),
        node: 1,
    };
    let out = answer(&mut c, op, 0, "n0", ReplicaResponse::Stale(future));
    assert!(
        sends(&out).is_empty(),
        "a refusal from the future is not retried"
    );
    assert_eq!(c.stats().not_observed, 1);
    let mut out = Vec::new();
    c.write("k2", value("v"), &[Group::new(names(3), 2)], NOW, &mut out);
    let (v, _, _) = last_put(&out);
    assert!(millis_of(v.ts) <= NOW + 1, "the clock did not jump: {v}");
}

fn put_answers(c: &mut Coordinator, op: OpId, attempt: u32, from: &[&str]) -> Vec<Effect> {
    let mut out = Vec::new();
    for f in from {
        out.extend(answer(c, op, attempt, f, ReplicaResponse::Written));
    }
    out
}

#[test]
fn a_create_only_write_reads_first_and_writes_only_over_an_absent_key() {
    let mut c = coordinator();
    let spec = WriteSpec {
        condition: Some(Condition::Absent),
        ..value("new")
    };
    let mut out = Vec::new();
    let op = c.write("k", spec.clone(), &[Group::new(names(3), 2)], NOW, &mut out);
    assert!(out.iter().all(|e| matches!(
        e,
        Effect::Send {
            request: ReplicaRequest::Read { .. },
            ..
        }
    )));
    answer(&mut c, op, 0, "n0", ReplicaResponse::Read(None));
    let tomb = Record::tombstone(Version { ts: 5, node: 1 });
    let out = answer(
        &mut c,
        op,
        0,
        "n1",
        ReplicaResponse::Read(Some(tomb.clone())),
    );
    let (_, attempt, check) = last_put(&out);
    assert_eq!(
        (attempt, check),
        (1, PutCheck::Expect(Some(tomb.version))),
        "a tombstone is absent; the replicas check it is still the newest"
    );
    let out = put_answers(&mut c, op, 1, &["n0", "n1"]);
    assert!(matches!(
        replies(&out)[..],
        [Outcome::Written { acks: 2, .. }]
    ));

    // Over an existing live key: 412 with its version, nothing written.
    let mut out = Vec::new();
    let op = c.write("k", spec, &[Group::new(names(3), 2)], NOW, &mut out);
    answer(
        &mut c,
        op,
        0,
        "n0",
        ReplicaResponse::Read(Some(rec(7, "old"))),
    );
    let out = answer(&mut c, op, 0, "n1", ReplicaResponse::Read(None));
    assert_eq!(
        replies(&out),
        [&Outcome::PreconditionFailed {
            current: Some(rec(7, "old").version)
        }]
    );
    assert!(out.iter().all(|e| !matches!(
        e,
        Effect::Send {
            request: ReplicaRequest::Put { .. },
            ..
        }
    )));
}

#[test]
fn an_expired_value_counts_as_absent_for_create_only() {
    let mut c = coordinator();
    let spec = WriteSpec {
        condition: Some(Condition::Absent),
        ..value("new")
    };
    let mut out = Vec::new();
    let op = c.write("k", spec, &[Group::new(names(1), 1)], NOW, &mut out);
    let expired = rec(3, "old").expiring(Some(NOW - 1));
    let out = answer(&mut c, op, 0, "n0", ReplicaResponse::Read(Some(expired)));
    assert_eq!(last_put(&out).1, 1, "the write goes ahead");
}

#[test]
fn if_match_writes_over_the_exact_version_and_a_replica_conflict_is_412_never_retried() {
    let mut c = coordinator();
    let current = rec(pack(NOW - 50, 0), "cur");
    let spec = WriteSpec {
        condition: Some(Condition::Matches(current.version)),
        ..value("next")
    };
    let mut out = Vec::new();
    let op = c.write("k", spec.clone(), &[Group::new(names(3), 2)], NOW, &mut out);
    answer(
        &mut c,
        op,
        0,
        "n0",
        ReplicaResponse::Read(Some(current.clone())),
    );
    let out = answer(
        &mut c,
        op,
        0,
        "n1",
        ReplicaResponse::Read(Some(current.clone())),
    );
    let (written, attempt, check) = last_put(&out);
    assert_eq!(
        (attempt, check),
        (1, PutCheck::Expect(Some(current.version)))
    );
    assert!(written > current.version);
    let sneaked = Version {
        ts: current.version.ts + 3,
        node: 4,
    };
    let out = answer(&mut c, op, 1, "n2", ReplicaResponse::Conflict(sneaked));
    assert_eq!(
        replies(&out),
        [&Outcome::PreconditionFailed {
            current: Some(sneaked)
        }]
    );
    assert!(sends(&out).is_empty(), "never retried");
    assert!(replies(&put_answers(&mut c, op, 1, &["n0", "n1"])).is_empty());

    // A stale ETag: 412 straight from the read.
    let mut out = Vec::new();
    let stale = WriteSpec {
        condition: Some(Condition::Matches(Version { ts: 1, node: 1 })),
        ..value("x")
    };
    let op = c.write("k", stale, &[Group::new(names(1), 1)], NOW, &mut out);
    let out = answer(
        &mut c,
        op,
        0,
        "n0",
        ReplicaResponse::Read(Some(current.clone())),
    );
    assert_eq!(
        replies(&out),
        [&Outcome::PreconditionFailed {
            current: Some(current.version)
        }]
    );
    assert_eq!(c.stats().precondition_failed, 2);
}
