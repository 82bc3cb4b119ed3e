//! The validated `[oidc]` configuration: what the protocol reads.

use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ClientKind;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub(super) issuer: String,
    pub(super) login_session_ttl: Duration,
    pub(super) client_requests_per_minute: u32,
    pub(super) clients: Vec<Client>,
}

impl OidcSettings {
    /// Exactly as configured: the `iss` of every token and the `issuer` of discovery.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The issuer without a trailing slash, to append endpoint paths to (OpenID Connect
    /// Discovery §4.1).
    pub fn base_url(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    pub fn login_session_ttl(&self) -> Duration {
        self.login_session_ttl
    }

    /// Per client; 0: no limit.
    pub fn client_requests_per_minute(&self) -> u32 {
        self.client_requests_per_minute
    }

    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    pub fn clients(&self) -> &[Client] {
        &self.clients
    }
}

/// A registered client.
#[derive(Clone)]
pub struct Client {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) kind: ClientKind,
    pub(super) redirect_uris: Vec<String>,
    pub(super) post_logout_redirect_uris: Vec<String>,
    pub(super) secret: Option<ClientSecret>,
}

impl Client {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    /// Exact string comparison: no normalisation, no prefix, no wildcard.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// Constant time (on SHA-256 digests, so the length of the secret does not show either).
    /// Always false for a public client.
    pub fn secret_matches(&self, presented: &str) -> bool {
        self.secret.as_ref().is_some_and(|s| s.matches(presented))
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("id", &self.id).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// A client secret, kept only as its SHA-256 (it is high-entropy: 32+ characters).
#[derive(Clone)]
pub(super) struct ClientSecret([u8; 32]);

impl ClientSecret {
    pub(super) fn new(secret: &str) -> Self {
        ClientSecret(Sha256::digest(secret.as_bytes()).into())
    }

    fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&presented).into()
    }
}
