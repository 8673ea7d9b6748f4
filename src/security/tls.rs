//! TLS for the client API: a certificate chain and private key from PEM files,
//! served through rustls (ring as the crypto provider, no OpenSSL).
//!
//! Invariants: a [`CertResolver`] always holds a certificate whose key matched
//! it when loaded; [`CertResolver::reload`] swaps in a new pair for the
//! connections that start afterwards, and a pair that fails to load leaves the
//! old one in place.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The crypto provider every TLS endpoint of swimkv uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a certificate chain (`cert`, PEM, leaf first) and its private key (`key`, PEM).
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read TLS certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "no certificate in {} (expected PEM `BEGIN CERTIFICATE`)",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read TLS private key {}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| {
        format!(
            "TLS certificate {} and key {}: {e}",
            cert.display(),
            key.display()
        )
    })
}

/// Serves the current certificate to every handshake; reloaded on SIGHUP.
#[derive(Debug)]
pub struct CertResolver {
    files: (PathBuf, PathBuf),
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// A resolver for the pair in `cert` and `key`, loaded now.
    pub fn open(cert: &Path, key: &Path) -> Result<CertResolver, String> {
        let loaded = load(cert, key)?;
        Ok(CertResolver {
            files: (cert.to_path_buf(), key.to_path_buf()),
            current: RwLock::new(Arc::new(loaded)),
        })
    }

    /// Loads the files again; on failure the old certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let loaded = Arc::new(load(&self.files.0, &self.files.1)?);
        match self.current.write() {
            Ok(mut c) => *c = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
        Ok(())
    }

    /// The rustls server configuration that serves this resolver's certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, String> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_malformed_files_are_refused_with_their_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let err = load(&cert, &key).expect_err("missing files");
        assert!(err.contains("cert.pem"), "{err}");
        std::fs::write(&cert, "not a certificate").expect("write");
        std::fs::write(&key, "not a key").expect("write");
        let err = load(&cert, &key).expect_err("garbage");
        assert!(err.contains("cert.pem"), "{err}");
    }
}
