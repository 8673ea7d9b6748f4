//! Security of a node: client TLS, bearer tokens with roles, and the files that
//! SIGHUP re-reads (tokens, cluster secrets, the TLS certificate).
//!
//! Files: `tokens.rs` parses the tokens file [pure]; `access.rs` says which role
//! each route needs and decides one request [pure]; `tls.rs` loads and serves
//! the certificate; `reload.rs` re-reads everything on SIGHUP. The HTTP side of
//! the decision is `api/auth.rs`; the peer side (MACs keyed by the cluster
//! secrets) is `transport/wire.rs`.
//!
//! Invariant: every file is read in full and checked before it replaces what a
//! node serves with; at start a bad file stops the node with its name (and line),
//! on reload it is logged and the node keeps what it had (tokens: the valid lines).

pub mod access;
pub mod reload;
pub mod tls;
pub mod tokens;

use crate::config::SecurityConfig;
use access::{Need, Refusal};
use std::path::Path;
use std::sync::{Arc, RwLock};
use tokens::TokenTable;

/// The tokens a node accepts now, shared by every HTTP worker and swapped whole on reload.
#[derive(Clone, Debug)]
pub struct Auth {
    tokens: Arc<RwLock<Arc<TokenTable>>>,
    /// Protect the otherwise open routes (`/health`, `/ready`, `/metrics`, `/`) too.
    pub everything: bool,
}

impl Auth {
    /// Accepts the tokens of `table`.
    pub fn new(table: TokenTable, everything: bool) -> Auth {
        Auth {
            tokens: Arc::new(RwLock::new(Arc::new(table))),
            everything,
        }
    }

    /// The current table.
    pub fn table(&self) -> Arc<TokenTable> {
        match self.tokens.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the table for the requests that arrive afterwards.
    pub fn replace(&self, table: TokenTable) {
        let table = Arc::new(table);
        match self.tokens.write() {
            Ok(mut t) => *t = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
    }

    /// Decides a request that needs `need` and carries `authorization`.
    pub fn check(&self, need: &Need, authorization: Option<&str>) -> Result<(), Refusal> {
        if *need == Need::Open {
            return Ok(());
        }
        access::decide(&self.table(), authorization, need)
    }
}

/// Reads a tokens file, refusing it whole when a line is malformed.
pub fn read_tokens(path: &Path) -> Result<TokenTable, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the tokens file {}: {e}", path.display()))?;
    TokenTable::parse(&text).map_err(|e| format!("tokens file {}: {e}", path.display()))
}

/// Reads a cluster secret file: a comma-separated list (newlines count as commas).
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the cluster secret file {}: {e}",
            path.display()
        )
    })?;
    Ok(text.lines().collect::<Vec<_>>().join(","))
}

/// What a node serves its clients with: tokens and TLS certificate, opened at
/// start from the files of its [`SecurityConfig`].
#[derive(Debug)]
pub struct Security {
    /// The files, for reloads.
    pub files: SecurityConfig,
    /// Client authentication, when `--auth-tokens` was given.
    pub auth: Option<Auth>,
    /// The TLS certificate, when `--tls-cert` and `--tls-key` were given.
    pub tls: Option<Arc<tls::CertResolver>>,
}

impl Security {
    /// Opens every file `files` names; the first that cannot be used refuses the start.
    pub fn open(files: &SecurityConfig) -> Result<Security, String> {
        let auth = match &files.auth_tokens {
            Some(path) => Some(Auth::new(read_tokens(path)?, files.auth_everything)),
            None => None,
        };
        let tls = match (&files.tls_cert, &files.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(tls::CertResolver::open(cert, key)?)),
            _ => None,
        };
        Ok(Security {
            files: files.clone(),
            auth,
            tls,
        })
    }
}
