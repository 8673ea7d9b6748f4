//! SIGHUP: re-read the tokens file, the cluster secret file and the TLS
//! certificate, each on its own, so that one bad file does not hold back the others.
//!
//! Invariant: a reload never leaves a node with less than it had: a tokens file
//! keeps its valid lines (each malformed one is logged by number, never its
//! token), a secret file that does not parse and a certificate that does not
//! load are logged and the old ones stay.

use super::{read_secret_file, Security};
use crate::metrics::{Metrics, OutcomeLabels};
use crate::security::tokens::TokenTable;
use crate::transport::wire::{parse_secrets, Seal};

/// What one reload did, for the log and for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Tokens now accepted, when the tokens file was read.
    pub tokens: Option<usize>,
    /// Cluster secrets now accepted, when the secret file was read and valid.
    pub secrets: Option<usize>,
    /// True when a certificate was loaded.
    pub certificate: bool,
    /// What could not be used (file and reason, never a secret).
    pub problems: Vec<String>,
}

/// Re-reads every file of `security`; the cluster secrets go into `seal`.
pub fn reload(security: &Security, seal: &Seal) -> Reloaded {
    let mut done = Reloaded::default();
    if let (Some(path), Some(auth)) = (&security.files.auth_tokens, &security.auth) {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let (table, errors) = TokenTable::parse_lenient(&text);
                for e in errors {
                    done.problems.push(format!(
                        "tokens file {}: {e} (line ignored)",
                        path.display()
                    ));
                }
                done.tokens = Some(table.len());
                auth.replace(table);
            }
            Err(e) => done.problems.push(format!(
                "cannot read the tokens file {}: {e}; keeping the tokens loaded before",
                path.display()
            )),
        }
    }
    if let Some(path) = &security.files.cluster_secret_file {
        let secrets = read_secret_file(path)
            .and_then(|list| parse_secrets(&list).map_err(|e| e.to_string()))
            .and_then(|secrets| {
                seal.rekey(&secrets).map_err(|e| e.to_string())?;
                Ok(secrets.len())
            });
        match secrets {
            Ok(n) => done.secrets = Some(n),
            Err(e) => done.problems.push(format!(
                "cluster secret file {}: {e}; keeping the secrets loaded before",
                path.display()
            )),
        }
    }
    if let Some(tls) = &security.tls {
        match tls.reload() {
            Ok(()) => done.certificate = true,
            Err(e) => done
                .problems
                .push(format!("{e}; keeping the certificate loaded before")),
        }
    }
    done
}

/// Shows what a node accepts now in `metrics` (token and secret counts).
pub fn publish(security: &Security, seal: &Seal, metrics: &Metrics) {
    let tokens = security.auth.as_ref().map_or(0, |a| a.table().len());
    metrics.auth_tokens.set(tokens as i64);
    metrics.cluster_secrets.set(seal.secrets() as i64);
}

/// Reloads on every SIGHUP until the process ends (nothing to do off Unix).
pub async fn reload_on_sighup(security: std::sync::Arc<Security>, seal: Seal, metrics: Metrics) {
    publish(&security, &seal, &metrics);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            log::warn!("cannot listen for SIGHUP: files will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            let done = reload(&security, &seal);
            for p in &done.problems {
                log::error!("SIGHUP reload: {p}");
            }
            publish(&security, &seal, &metrics);
            let outcome = if done.problems.is_empty() {
                "ok"
            } else {
                "partial"
            };
            metrics
                .reloads
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
            log::info!(
                "SIGHUP reload: tokens {:?}, cluster secrets {:?}, certificate reloaded: {}",
                done.tokens,
                done.secrets,
                done.certificate
            );
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (security, seal, metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecurityConfig;
    use crate::transport::wire::Kind;

    #[test]
    fn a_reload_takes_new_tokens_and_secrets_and_keeps_the_old_on_a_bad_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        let secret = dir.path().join("secret");
        std::fs::write(&tokens, "a-0123456789abcdef admin\n").expect("write");
        std::fs::write(&secret, "old-secret\n").expect("write");
        let files = SecurityConfig {
            auth_tokens: Some(tokens.clone()),
            cluster_secret_file: Some(secret.clone()),
            ..SecurityConfig::default()
        };
        let security = Security::open(&files).expect("open");
        let seal = Seal::with_secrets("swimkv", Some(vec!["old-secret".into()]));
        let auth = security.auth.clone().expect("auth");

        std::fs::write(&tokens, "b-0123456789abcdef read\nbad line\n").expect("write");
        std::fs::write(&secret, "new-secret\nold-secret\n").expect("write");
        let done = reload(&security, &seal);
        assert_eq!((done.tokens, done.secrets), (Some(1), Some(2)));
        assert_eq!(done.problems.len(), 1, "{:?}", done.problems);
        assert!(auth.table().lookup("a-0123456789abcdef").is_none());
        assert!(auth.table().lookup("b-0123456789abcdef").is_some());
        let signed_new = Seal::new("swimkv", Some("new-secret"));
        assert!(signed_new.decode(seal.encode(Kind::Swim, 0, b"x")).is_ok());

        std::fs::write(&secret, "short").expect("write");
        std::fs::remove_file(&tokens).expect("remove");
        let done = reload(&security, &seal);
        assert_eq!((done.tokens, done.secrets), (None, None));
        assert_eq!(done.problems.len(), 2, "{:?}", done.problems);
        assert!(signed_new.decode(seal.encode(Kind::Swim, 0, b"x")).is_ok());
        assert!(auth.table().lookup("b-0123456789abcdef").is_some());
    }
}
