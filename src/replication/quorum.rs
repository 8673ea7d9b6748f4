//! Quorum arithmetic: how many replica answers a request needs.
//!
//! Invariant: the number needed is at least 1 and at most the replication factor
//! in effect, which shrinks below N only when the cluster has fewer than N members
//! that have not left (a first node alone, or members that left gracefully), never
//! because members are dead or unreachable. A preference list with fewer live
//! replicas than needed makes the request fail: nothing is ever acknowledged with
//! fewer than W copies.

use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Per-request consistency level (`?consistency=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// One replica answers.
    One,
    /// The configured R (reads) or W (writes).
    #[default]
    Quorum,
    /// Every replica of the preference list answers.
    All,
}

impl FromStr for Consistency {
    type Err = String;
    fn from_str(s: &str) -> Result<Consistency, String> {
        match s {
            "one" => Ok(Consistency::One),
            "quorum" => Ok(Consistency::Quorum),
            "all" => Ok(Consistency::All),
            other => Err(format!(
                "unknown consistency level {other:?}: use one, quorum or all"
            )),
        }
    }
}

/// Answers needed for a configured quorum `configured` at `level` when the
/// replication factor in effect is `n`.
pub fn needed(level: Consistency, configured: usize, n: usize) -> usize {
    let want = match level {
        Consistency::One => 1,
        Consistency::Quorum => configured,
        Consistency::All => n,
    };
    want.clamp(1, n.max(1))
}

/// The replication factor in effect: `n`, or fewer when the cluster has fewer
/// members that have not left (dead and unreachable members count).
pub fn effective_n(n: usize, members_not_left: usize) -> usize {
    n.min(members_not_left.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_table() {
        // (level, configured, replication factor in effect) -> needed
        let rows = [
            (Consistency::One, 2, 3, 1),
            (Consistency::Quorum, 2, 3, 2),
            (Consistency::All, 2, 3, 3),
            (Consistency::Quorum, 2, 1, 1),
            (Consistency::All, 2, 2, 2),
            (Consistency::Quorum, 3, 5, 3),
            (Consistency::One, 1, 0, 1),
        ];
        for (level, configured, replicas, want) in rows {
            assert_eq!(
                needed(level, configured, replicas),
                want,
                "{level:?} {configured} {replicas}"
            );
        }
    }

    #[test]
    fn the_replication_factor_shrinks_only_with_the_members_that_have_not_left() {
        assert_eq!(effective_n(3, 5), 3);
        assert_eq!(effective_n(3, 2), 2);
        assert_eq!(effective_n(3, 1), 1, "a first node alone");
        assert_eq!(effective_n(3, 0), 1);
    }

    #[test]
    fn levels_parse_and_unknown_levels_are_refused() {
        assert_eq!("one".parse(), Ok(Consistency::One));
        assert_eq!("quorum".parse(), Ok(Consistency::Quorum));
        assert_eq!("all".parse(), Ok(Consistency::All));
        assert!("most".parse::<Consistency>().is_err());
    }
}
