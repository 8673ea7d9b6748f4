//! The bearer tokens file: `<token> <role> [<key-prefix>]` per line, `#` comments.
//!
//! Roles nest: `admin` includes `write`, which includes `read`. A prefix limits
//! a token to keys that start with it. [pure]
//!
//! Invariants: a [`TokenTable`] keeps no token in the clear, only its BLAKE3
//! hash, so a lookup compares hashes (whose equality is constant-time) and a
//! token's bytes never reach a log or a `Debug` print; parsing never panics and
//! names the line of every malformed entry.

use std::collections::HashMap;
use std::fmt;

/// What a token may do. Ordered: a higher role includes every lower one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read keys and the cluster's membership and ring.
    Read,
    /// Read, write and delete keys.
    Write,
    /// Everything, including the node's local data and leaving the cluster.
    Admin,
}

impl Role {
    /// The role's name in the tokens file.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?} (read, write or admin)")),
        }
    }
}

/// What one token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Its role.
    pub role: Role,
    /// The key prefix it is limited to, if any.
    pub prefix: Option<String>,
}

/// A malformed line of a tokens file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong (never the token itself).
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The tokens a node accepts, by the hash of each token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TokenTable {
    grants: HashMap<[u8; 32], Grant>,
}

impl fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenTable({} tokens)", self.grants.len())
    }
}

fn hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Tokens shorter than this are refused: they could be guessed.
pub const MIN_TOKEN_BYTES: usize = 16;

fn parse_line(line: &str) -> Result<Option<(String, Grant)>, String> {
    let line = line.split_once('#').map_or(line, |(before, _)| before);
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        [] => Ok(None),
        [_] => Err("a token needs a role: <token> <role> [<key-prefix>]".into()),
        [token, role, rest @ ..] => {
            if rest.len() > 1 {
                return Err("too many fields: <token> <role> [<key-prefix>]".into());
            }
            if token.len() < MIN_TOKEN_BYTES {
                return Err(format!(
                    "token shorter than {MIN_TOKEN_BYTES} bytes (too easy to guess)"
                ));
            }
            let role = role.parse::<Role>()?;
            Ok(Some((
                (*token).to_string(),
                Grant {
                    role,
                    prefix: rest.first().map(|p| (*p).to_string()),
                },
            )))
        }
    }
}

impl TokenTable {
    /// Parses a whole tokens file; the first malformed line (or a token given
    /// twice) refuses it.
    pub fn parse(text: &str) -> Result<TokenTable, LineError> {
        let (table, errors) = TokenTable::parse_lenient(text);
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(table),
        }
    }

    /// Parses a tokens file, skipping malformed lines (a reload keeps serving
    /// the valid ones) and answering what was skipped.
    pub fn parse_lenient(text: &str) -> (TokenTable, Vec<LineError>) {
        let mut table = TokenTable::default();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            match parse_line(line) {
                Ok(None) => {}
                Ok(Some((token, grant))) => {
                    if table.grants.insert(hash(&token), grant).is_some() {
                        errors.push(LineError {
                            line: line_no,
                            message: "this token is already given on an earlier line".into(),
                        });
                    }
                }
                Err(message) => errors.push(LineError {
                    line: line_no,
                    message,
                }),
            }
        }
        (table, errors)
    }

    /// What `token` grants, if it is known.
    pub fn lookup(&self, token: &str) -> Option<&Grant> {
        self.grants.get(&hash(token))
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// True when no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# ops tokens
r-0123456789abcdef read
w-0123456789abcdef write app/   # the app's writer

a-0123456789abcdef admin
";

    #[test]
    fn a_file_gives_each_token_its_role_and_prefix() {
        let t = TokenTable::parse(FILE).expect("valid file");
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.lookup("w-0123456789abcdef"),
            Some(&Grant {
                role: Role::Write,
                prefix: Some("app/".into())
            })
        );
        assert_eq!(
            t.lookup("a-0123456789abcdef").map(|g| g.role),
            Some(Role::Admin)
        );
        assert_eq!(t.lookup("r-0123456789abcde"), None);
        assert_eq!(t.lookup(""), None);
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
    }

    #[test]
    fn a_malformed_line_is_named_by_its_number_and_skipped_on_a_lenient_parse() {
        let text = "r-0123456789abcdef read\nx-0123456789abcdef superuser\nshort read\nlonely-0123456789\n";
        let err = TokenTable::parse(text).expect_err("malformed");
        assert_eq!(err.line, 2);
        assert!(err.message.contains("superuser"), "{err}");
        let (t, errors) = TokenTable::parse_lenient(text);
        assert_eq!(t.len(), 1);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3, 4]);
        assert!(errors.iter().all(|e| !e.message.contains("0123456789")));
    }

    #[test]
    fn a_token_given_twice_is_refused_and_debug_shows_no_token() {
        let text = "r-0123456789abcdef read\nr-0123456789abcdef admin\n";
        assert_eq!(TokenTable::parse(text).map_err(|e| e.line), Err(2));
        let t = TokenTable::parse(FILE).expect("valid");
        assert!(!format!("{t:?}").contains("0123456789"));
    }
}
