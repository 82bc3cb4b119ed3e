//! The `[oidc]` configuration as the operator writes it ([`OidcConfig`]), and its validation into
//! the settings the protocol uses ([`OidcSettings`]): every error names the key it is about. The
//! rules for the issuer and for redirect URIs are in `uris`; the validated settings in `settings`.

mod settings;
mod uris;

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use self::settings::ClientSecret;
pub use self::settings::{Client, OidcSettings};
use self::uris::validate_issuer;
pub use self::uris::validate_redirect_uri;

/// How long an authorization code can be exchanged (OAuth 2.1 asks for a short life; the
/// issue, at most a minute).
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// `[oidc]`: present (with an `issuer`) switches OpenID Connect on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The public base URL of otpgate as the clients know it, the `iss` of every token:
    /// `https://login.example.com` (http only for loopback in development).
    pub issuer: String,
    /// Lifetime of the login session (the login cookie) in hours; within it, later
    /// authorizations skip the phone step. Default 12.
    #[serde(default = "default_login_session_hours")]
    pub login_session_hours: u64,
    /// Requests per minute each client may make to the token and revocation endpoints and the
    /// login step, across all of its users (a stolen client secret or a runaway app is slowed,
    /// not the other clients). Default 1200; 0 switches the limit off.
    #[serde(default = "default_client_requests_per_minute")]
    pub client_requests_per_minute: u32,
    /// `[[oidc.clients]]`.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
}

fn default_login_session_hours() -> u64 {
    12
}

fn default_client_requests_per_minute() -> u32 {
    1200
}

/// `[[oidc.clients]]`: one registered application.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The `client_id`: 1 to 64 characters of `A-Z a-z 0-9 - . _ ~`.
    pub id: String,
    /// Shown on the sign-in page ("… to continue to {name}").
    pub name: String,
    pub kind: ClientKind,
    /// Exact match; no wildcards. See the module docs for what is allowed.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser afterwards; exact match.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Confidential clients: the client secret (or `secret_file`), at least 32 characters of
    /// `A-Z a-z 0-9 - . _ ~` (so form encoding in Basic auth never changes it).
    #[serde(default, serialize_with = "redact")]
    pub secret: Option<SecretString>,
    /// Confidential clients: a file holding the secret (a trailing newline is ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("redirect_uris", &self.redirect_uris)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

fn redact<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// `public`: PKCE, no secret (browser and native apps). `confidential`: PKCE and a secret
/// (`client_secret_basic` or `client_secret_post`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    Public,
    Confidential,
}

/// Development allows http on loopback addresses everywhere; production only where RFC 8252
/// requires it (native apps' loopback redirects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    Development,
    Production,
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(key: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("config key `{key}`: {why}"))
}

const MIN_SECRET_LEN: usize = 32;
const MAX_LOGIN_SESSION_HOURS: u64 = 24 * 30;

/// RFC 3986 unreserved characters: what client ids and secrets may consist of.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

impl OidcConfig {
    /// Checks everything and reads the secret files. Refuses rather than fixes.
    pub fn validate(&self, deployment: Deployment) -> Result<OidcSettings, ConfigError> {
        validate_issuer(&self.issuer, deployment)?;
        if !(1..=MAX_LOGIN_SESSION_HOURS).contains(&self.login_session_hours) {
            return Err(bad("oidc.login_session_hours", format!("must be 1 to {MAX_LOGIN_SESSION_HOURS}")));
        }
        if self.clients.is_empty() {
            return Err(bad("oidc.clients", "register at least one client ([[oidc.clients]])"));
        }
        let mut clients: Vec<Client> = Vec::with_capacity(self.clients.len());
        for (i, client) in self.clients.iter().enumerate() {
            let client = client.validate(&format!("oidc.clients[{i}]"), deployment)?;
            if clients.iter().any(|c| c.id == client.id) {
                return Err(bad(&format!("oidc.clients[{i}].id"), format!("`{}` is registered twice", client.id)));
            }
            clients.push(client);
        }
        Ok(OidcSettings {
            issuer: self.issuer.clone(),
            login_session_ttl: Duration::from_secs(self.login_session_hours * 3600),
            client_requests_per_minute: self.client_requests_per_minute,
            clients,
        })
    }
}

impl ClientConfig {
    fn validate(&self, key: &str, deployment: Deployment) -> Result<Client, ConfigError> {
        if self.id.is_empty() || self.id.len() > 64 || !self.id.bytes().all(is_unreserved) {
            return Err(bad(&format!("{key}.id"), "must be 1 to 64 characters of A-Z a-z 0-9 - . _ ~"));
        }
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(bad(&format!("{key}.name"), "must be 1 to 100 printable characters"));
        }
        if self.redirect_uris.is_empty() {
            return Err(bad(&format!("{key}.redirect_uris"), "list at least one redirect URI"));
        }
        for (field, uris) in
            [("redirect_uris", &self.redirect_uris), ("post_logout_redirect_uris", &self.post_logout_redirect_uris)]
        {
            for (j, uri) in uris.iter().enumerate() {
                let at = format!("{key}.{field}[{j}]");
                validate_redirect_uri(uri, self.kind, deployment).map_err(|why| bad(&at, why))?;
                if uris[..j].contains(uri) {
                    return Err(bad(&at, "is listed twice"));
                }
            }
        }
        let secret = match (self.kind, &self.secret, &self.secret_file) {
            (ClientKind::Public, None, None) => None,
            (ClientKind::Public, _, _) => {
                return Err(bad(
                    &format!("{key}.secret"),
                    "a public client has no secret (use kind = \"confidential\")",
                ));
            }
            (ClientKind::Confidential, Some(_), Some(_)) => {
                return Err(bad(&format!("{key}.secret"), "set either secret or secret_file, not both"));
            }
            (ClientKind::Confidential, None, None) => {
                return Err(bad(&format!("{key}.secret"), "a confidential client needs a secret (or secret_file)"));
            }
            (ClientKind::Confidential, Some(secret), None) => {
                Some(check_secret(&format!("{key}.secret"), secret.expose_secret())?)
            }
            (ClientKind::Confidential, None, Some(path)) => {
                let at = format!("{key}.secret_file");
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad(&at, format!("cannot read {}: {e}", path.display())))?;
                Some(check_secret(&at, text.trim_end_matches(['\n', '\r']))?)
            }
        };
        Ok(Client {
            id: self.id.clone(),
            name: name.to_owned(),
            kind: self.kind,
            redirect_uris: self.redirect_uris.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            secret,
        })
    }
}

fn check_secret(key: &str, secret: &str) -> Result<ClientSecret, ConfigError> {
    if secret.len() < MIN_SECRET_LEN || !secret.bytes().all(is_unreserved) {
        return Err(bad(
            key,
            format!(
                "must be at least {MIN_SECRET_LEN} characters of A-Z a-z 0-9 - . _ ~ (e.g. `openssl rand -hex 32`)"
            ),
        ));
    }
    Ok(ClientSecret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Deployment::{Development, Production};

    fn client(kind: ClientKind, uris: &[&str]) -> ClientConfig {
        ClientConfig {
            id: "web".into(),
            name: "Example web app".into(),
            kind,
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            post_logout_redirect_uris: vec!["https://app.example.com/".into()],
            secret: (kind == ClientKind::Confidential).then(|| SecretString::from("s".repeat(40))),
            secret_file: None,
        }
    }

    fn config(clients: Vec<ClientConfig>) -> OidcConfig {
        OidcConfig {
            issuer: "https://login.example.com".into(),
            login_session_hours: 12,
            client_requests_per_minute: 1200,
            clients,
        }
    }

    fn error(config: &OidcConfig, deployment: Deployment) -> String {
        config.validate(deployment).unwrap_err().0
    }

    #[test]
    fn the_issue_example_parses_and_validates() {
        let toml = r#"
            issuer = "https://login.example.com"
            login_session_hours = 12
            [[clients]]
            id = "web"
            name = "Example web app"
            kind = "public"
            redirect_uris = ["https://app.example.com/callback"]
            post_logout_redirect_uris = ["https://app.example.com/"]
        "#;
        let config: OidcConfig = toml::from_str(toml).unwrap();
        let settings = config.validate(Production).unwrap();
        assert_eq!(settings.issuer(), "https://login.example.com");
        assert_eq!(settings.login_session_ttl(), Duration::from_secs(12 * 3600));
        let web = settings.client("web").unwrap();
        assert_eq!((web.name(), web.kind()), ("Example web app", ClientKind::Public));
        assert!(web.has_redirect_uri("https://app.example.com/callback"));
        assert!(web.has_post_logout_redirect_uri("https://app.example.com/"));
        assert!(!web.secret_matches(""), "a public client has no secret");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let json = serde_json::json!({ "issuer": "https://a.example", "clients": [], "extra": 1 });
        assert!(serde_json::from_value::<OidcConfig>(json).is_err());
        let json = serde_json::json!({ "issuer": "https://a.example", "clients": [
            { "id": "a", "name": "A", "kind": "public", "redirect_uris": [], "scopes": [] }
        ] });
        assert!(serde_json::from_value::<OidcConfig>(json).is_err());
        let json = serde_json::json!({ "issuer": "https://a.example", "clients": [
            { "id": "a", "name": "A", "kind": "secret", "redirect_uris": [] }
        ] });
        assert!(serde_json::from_value::<OidcConfig>(json).is_err(), "kind is public or confidential");
    }

    #[test]
    fn login_session_hours_defaults_to_12_and_is_bounded() {
        let json = serde_json::json!({ "issuer": "https://a.example" });
        assert_eq!(serde_json::from_value::<OidcConfig>(json).unwrap().login_session_hours, 12);
        for hours in [0, 721] {
            let mut c = config(vec![client(ClientKind::Public, &["https://app.example.com/cb"])]);
            c.login_session_hours = hours;
            assert!(error(&c, Production).contains("`oidc.login_session_hours`"));
        }
    }

    #[test]
    fn the_issuer_is_https_except_loopback_in_development() {
        let ok = |issuer: &str, d| {
            let mut c = config(vec![client(ClientKind::Public, &["https://app.example.com/cb"])]);
            c.issuer = issuer.into();
            c.validate(d).map(|_| ()).map_err(|e| e.0)
        };
        assert!(ok("https://login.example.com", Production).is_ok());
        assert!(ok("https://login.example.com/", Production).is_ok());
        assert!(ok("https://example.com/auth", Production).is_ok());
        assert!(ok("http://127.0.0.1:8080", Development).is_ok());
        assert!(ok("http://localhost:8080", Development).is_ok());
        for (issuer, d) in [
            ("http://127.0.0.1:8080", Production),
            ("http://login.example.com", Development),
            ("https://login.example.com?x=1", Production),
            ("https://login.example.com#x", Production),
            ("https://user:pw@login.example.com", Production),
            ("HTTPS://Login.Example.com", Production),
            ("login.example.com", Production),
            ("ftp://login.example.com", Production),
        ] {
            let e = ok(issuer, d).unwrap_err();
            assert!(e.starts_with("config key `oidc.issuer`"), "{issuer}: {e}");
        }
    }

    #[test]
    fn redirect_uris_are_checked_and_errors_name_the_key() {
        let uris = |kind, d, uri: &str| validate_redirect_uri(uri, kind, d);
        use ClientKind::{Confidential, Public};
        // https always; custom reverse-domain schemes for public (native) clients.
        assert!(uris(Confidential, Production, "https://app.example.com/callback").is_ok());
        assert!(uris(Public, Production, "https://app.example.com/callback?tenant=a").is_ok());
        assert!(uris(Public, Production, "com.example.app:/callback").is_ok());
        assert!(uris(Public, Production, "com.example.app://callback").is_ok());
        assert!(uris(Confidential, Production, "com.example.app:/callback").is_err());
        // Loopback http: anywhere in development; in production only public clients on an IP.
        assert!(uris(Confidential, Development, "http://localhost:3000/callback").is_ok());
        assert!(uris(Public, Production, "http://127.0.0.1:8400/callback").is_ok());
        assert!(uris(Public, Production, "http://[::1]:8400/callback").is_ok());
        assert!(uris(Public, Production, "http://localhost:8400/callback").is_err());
        assert!(uris(Confidential, Production, "http://127.0.0.1:8400/callback").is_err());
        assert!(uris(Public, Development, "http://app.example.com/callback").is_err());
        for bad in [
            "https://app.example.com/callback#frag",
            "https://*.example.com/callback",
            "https://app.example.com/*",
            "https://user@app.example.com/callback",
            "https://app.example.com",
            "HTTPS://app.example.com/callback",
            "/callback",
            "app.example.com/callback",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "myapp:/callback",
            " https://app.example.com/callback",
        ] {
            assert!(uris(Public, Development, bad).is_err(), "{bad}");
        }
        let c = config(vec![client(ClientKind::Public, &["https://app.example.com/cb", "https://x.example/#f"])]);
        assert!(error(&c, Production).starts_with("config key `oidc.clients[0].redirect_uris[1]`"));
        let mut c = config(vec![client(ClientKind::Public, &["https://app.example.com/cb"])]);
        c.clients[0].post_logout_redirect_uris = vec!["http://evil.example/".into()];
        assert!(error(&c, Production).starts_with("config key `oidc.clients[0].post_logout_redirect_uris[0]`"));
        let c = config(vec![client(ClientKind::Public, &["https://a.example/cb", "https://a.example/cb"])]);
        assert!(error(&c, Production).contains("listed twice"));
        let c = config(vec![client(ClientKind::Public, &[])]);
        assert!(error(&c, Production).starts_with("config key `oidc.clients[0].redirect_uris`"));
    }

    #[test]
    fn secrets_belong_to_confidential_clients_only() {
        let mut public = client(ClientKind::Public, &["https://app.example.com/cb"]);
        public.secret = Some(SecretString::from("s".repeat(40)));
        assert!(error(&config(vec![public]), Production).starts_with("config key `oidc.clients[0].secret`"));

        let mut confidential = client(ClientKind::Confidential, &["https://app.example.com/cb"]);
        confidential.secret = None;
        assert!(error(&config(vec![confidential.clone()]), Production).contains("needs a secret"));
        confidential.secret = Some(SecretString::from("short"));
        assert!(error(&config(vec![confidential.clone()]), Production).contains("at least 32"));
        confidential.secret = Some(SecretString::from(format!("{}+/=", "a".repeat(40))));
        assert!(error(&config(vec![confidential.clone()]), Production).contains("A-Z a-z 0-9"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("{}\n", "f".repeat(40))).unwrap();
        confidential.secret = None;
        confidential.secret_file = Some(file.clone());
        let settings = config(vec![confidential.clone()]).validate(Production).unwrap();
        let web = settings.client("web").unwrap();
        assert!(web.secret_matches(&"f".repeat(40)));
        assert!(!web.secret_matches(&format!("{}\n", "f".repeat(40))));
        assert!(!web.secret_matches(&"f".repeat(39)));
        confidential.secret = Some(SecretString::from("s".repeat(40)));
        assert!(error(&config(vec![confidential.clone()]), Production).contains("not both"));
        confidential.secret = None;
        confidential.secret_file = Some(dir.path().join("missing"));
        assert!(error(&config(vec![confidential]), Production).starts_with("config key `oidc.clients[0].secret_file`"));
    }

    #[test]
    fn client_ids_and_names_are_checked() {
        let mut a = client(ClientKind::Public, &["https://app.example.com/cb"]);
        assert!(error(&config(vec![a.clone(), a.clone()]), Production).contains("registered twice"));
        for id in ["", "has space", "colon:id", &"x".repeat(65)] {
            a.id = id.into();
            assert!(error(&config(vec![a.clone()]), Production).starts_with("config key `oidc.clients[0].id`"), "{id}");
        }
        a.id = "web".into();
        a.name = " ".into();
        assert!(error(&config(vec![a]), Production).starts_with("config key `oidc.clients[0].name`"));
        assert!(error(&config(vec![]), Production).starts_with("config key `oidc.clients`"));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_serialisation() {
        let c = client(ClientKind::Confidential, &["https://app.example.com/cb"]);
        let secret = "s".repeat(40);
        assert!(!format!("{c:?}").contains(&secret));
        assert!(!serde_json::to_string(&c).unwrap().contains(&secret));
        let settings = config(vec![c]).validate(Production).unwrap();
        assert!(!format!("{settings:?}").contains(&secret));
    }
}
