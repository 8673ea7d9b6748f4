//! Quorum arithmetic: how many replica answers a request needs.
//!
//! Invariant: the number needed is at least 1 and at most the number of replicas
//! asked, so a request on a cluster smaller than N can still complete when every
//! replica answers (the replication factor is capped at the number of members).

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

/// Answers needed out of `replicas` for a configured quorum `configured` at `level`.
pub fn needed(level: Consistency, configured: usize, replicas: usize) -> usize {
    let want = match level {
        Consistency::One => 1,
        Consistency::Quorum => configured,
        Consistency::All => replicas,
    };
    want.clamp(1, replicas.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_table() {
        // (level, configured, replicas) -> needed
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
    fn levels_parse_and_unknown_levels_are_refused() {
        assert_eq!("one".parse(), Ok(Consistency::One));
        assert_eq!("quorum".parse(), Ok(Consistency::Quorum));
        assert_eq!("all".parse(), Ok(Consistency::All));
        assert!("most".parse::<Consistency>().is_err());
    }
}
