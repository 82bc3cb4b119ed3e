//! Built-in HTTPS: rustls with the aws-lc-rs provider (the one crypto provider in the tree),
//! TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1` (axum's server speaks both).
//!
//! The certificate is served through a resolver that holds the current chain and key behind a
//! lock, so `tls.cert_file` / `tls.key_file` can be replaced under a running server: the files
//! are looked at every `tls.reload_interval_secs` and on SIGHUP, and a pair that loads and
//! matches is swapped in for new handshakes. The listener is never dropped, connections already
//! open keep their certificate, and a pair that fails to load (a half-written renewal) leaves the
//! old one in place until the next look.
//!
//! Handshakes run in each connection's own task with a deadline (`tls.handshake_timeout_secs`)
//! and a cap per client address (`tls.max_handshakes_per_ip`); see `serve`. A silent or slow
//! client never holds up `accept` for everyone else.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM certificate chain and private key and checks that they belong together. Errors
/// name the file, never its content.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("config key `tls.cert_file` ({}): {e}", cert_file.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "config key `tls.cert_file` ({}): no PEM certificate in it",
            cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError(format!("config key `tls.key_file` ({}): {e}", key_file.display())))?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| {
        TlsError(format!(
            "config key `tls.key_file` ({}): the key does not load or does not match the certificate: {e}",
            key_file.display()
        ))
    })
}

/// Serves whichever certificate was loaded last.
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert").field("cert_file", &self.cert_file).field("key_file", &self.key_file).finish()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

impl ReloadingCert {
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<ReloadingCert>, TlsError> {
        let key = load_certified_key(cert_file, key_file)?;
        Ok(Arc::new(ReloadingCert {
            current: RwLock::new(Arc::new(key)),
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
        }))
    }

    /// Loads the files again; on success new handshakes get the new certificate.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// The DER of the certificate served now (for tests and logs).
    pub fn current_certificate(&self) -> Vec<u8> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner()).clone();
        current.cert.first().map(|c| c.as_ref().to_vec()).unwrap_or_default()
    }

    /// What identifies the files' current version: modification time and length of both.
    fn stamp(&self) -> Option<[(SystemTime, u64); 2]> {
        let of = |p: &Path| std::fs::metadata(p).and_then(|m| Ok((m.modified()?, m.len()))).ok();
        Some([of(&self.cert_file)?, of(&self.key_file)?])
    }
}

/// Loads the configured certificate and starts watching it; `None` without `[tls]`.
pub fn setup(config: &crate::config::TlsConfig) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let Some((cert_file, key_file)) = config.files() else { return Ok(None) };
    let cert = ReloadingCert::load(cert_file, key_file)?;
    spawn_reloader(&cert, Duration::from_secs(config.reload_interval_secs));
    Ok(Some(server_config(cert)?))
}

/// rustls settings: TLS 1.3 and 1.2 only, ALPN h2 then http/1.1, no client certificates.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reloads the certificate when its files change (looked at every `interval`) or on SIGHUP.
/// Ends when the resolver is gone (the server stopped).
pub fn spawn_reloader(cert: &Arc<ReloadingCert>, interval: Duration) {
    let weak: Weak<ReloadingCert> = Arc::downgrade(cert);
    let mut seen = cert.stamp();
    // Registered before this returns, so a SIGHUP right after start is not lost (or fatal).
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::spawn(async move {
        let mut failed_at = None;
        loop {
            #[cfg(unix)]
            let signalled = {
                let hup = async {
                    match hangup.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(interval) => false,
                    _ = hup => true,
                }
            };
            #[cfg(not(unix))]
            let signalled = {
                tokio::time::sleep(interval).await;
                false
            };
            let Some(cert) = weak.upgrade() else { return };
            let now = cert.stamp();
            if !signalled && (now == seen || now.is_none() || now == failed_at) {
                continue;
            }
            match cert.reload() {
                Ok(()) => {
                    tracing::info!(
                        cert_file = %cert.cert_file.display(),
                        trigger = if signalled { "sighup" } else { "file change" },
                        "TLS certificate reloaded"
                    );
                    seen = now;
                    failed_at = None;
                }
                Err(e) => {
                    // Logged once per version of the files; the old certificate stays.
                    tracing::error!(error = %e, "cannot reload the TLS certificate; still serving the previous one");
                    failed_at = now;
                }
            }
        }
    });
}
