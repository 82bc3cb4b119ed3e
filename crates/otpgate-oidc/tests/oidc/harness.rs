//! One provider per test: its own SQLite file, clock and in-memory OIDC store; the RSA key ring
//! is generated once per run (a few hundred milliseconds each) and shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use otpgate_core::oidc::OidcStore;
use otpgate_core::{Approved, Channel, Clock, CodeHasher, ManualClock, PhoneNumber, User};
use otpgate_oidc::config::{ClientConfig, ClientKind, Deployment, OidcConfig};
use otpgate_oidc::{ActiveLogin, MemoryOidcStore, OidcService, Params, TokenFailure, TokenResponse};
use otpgate_session::{KeyRing, SessionConfig, SessionService};
use otpgate_store::SqliteStore;
use otpgate_test_support::approvals::Approvals;
use serde_json::Value;

pub const ISSUER: &str = "https://login.example.com";
pub const WEB_REDIRECT: &str = "https://app.example.com/callback";
pub const SRV_REDIRECT: &str = "https://srv.example.com/cb";
pub const SECRET: &str = "s3cr3t-0123456789-abcdefghijklmnop";
/// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub struct Provider {
    pub oidc: Arc<OidcService>,
    pub sessions: Arc<SessionService>,
    pub clock: ManualClock,
    pub store: SqliteStore,
    pub keys: KeyRing,
    approvals: Approvals,
    _dir: tempfile::TempDir,
}

pub fn rsa_ring() -> KeyRing {
    static RING: OnceLock<String> = OnceLock::new();
    KeyRing::from_json(RING.get_or_init(|| KeyRing::generate_with_rsa().unwrap().to_json())).unwrap()
}

pub fn client(id: &str, kind: ClientKind, redirect: &str) -> ClientConfig {
    ClientConfig {
        id: id.into(),
        name: format!("The {id} app"),
        kind,
        redirect_uris: vec![redirect.into()],
        post_logout_redirect_uris: vec!["https://app.example.com/".into()],
        secret: (kind == ClientKind::Confidential).then(|| SECRET.to_owned().into()),
        secret_file: None,
    }
}

pub async fn provider() -> Provider {
    provider_with_store(Arc::new(MemoryOidcStore::new())).await
}

pub async fn provider_with_store(oidc_store: Arc<dyn OidcStore>) -> Provider {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("otpgate.db")).await.unwrap();
    let clock = ManualClock::starting_now();
    let keys = rsa_ring();
    let hasher = CodeHasher::new(&[9u8; 32]).unwrap();
    let sessions = Arc::new(SessionService::new(
        Arc::new(store.clone()),
        keys.clone(),
        hasher.clone(),
        Arc::new(clock.clone()),
        SessionConfig { issuer: ISSUER.into(), audience: "otpgate".into(), ..SessionConfig::default() },
    ));
    let settings = OidcConfig {
        issuer: ISSUER.into(),
        login_session_hours: 12,
        client_requests_per_minute: 1200,
        clients: vec![
            client("web", ClientKind::Public, WEB_REDIRECT),
            client("srv", ClientKind::Confidential, SRV_REDIRECT),
            client("other", ClientKind::Public, WEB_REDIRECT),
        ],
    }
    .validate(Deployment::Production)
    .unwrap();
    let oidc = Arc::new(OidcService::new(settings, sessions.clone(), oidc_store, hasher));
    let approvals = Approvals::new(Arc::new(store.clone()), Arc::new(store.clone()));
    Provider { oidc, sessions, clock, store, keys, approvals, _dir: dir }
}

pub fn phone(n: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1415555{n:04}"), None).unwrap()
}

pub fn form(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

pub fn query(location: &str) -> HashMap<String, String> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// A client's credentials as it sends them: (Authorization header, body fields).
pub struct Creds {
    pub header: Option<String>,
    pub body: Vec<(&'static str, String)>,
}

pub fn public(id: &str) -> Creds {
    Creds { header: None, body: vec![("client_id", id.to_owned())] }
}

pub fn srv_basic() -> Creds {
    Creds { header: Some(basic("srv", SECRET)), body: vec![] }
}

pub fn srv_post() -> Creds {
    Creds { header: None, body: vec![("client_id", "srv".into()), ("client_secret", SECRET.into())] }
}

impl Provider {
    /// The phone sign-in as the page runs it: an approved check (the user is created or found)
    /// and a login session.
    pub async fn sign_in(&self, n: u32) -> (User, ActiveLogin, String) {
        let issued = self.sessions.issue_for_approved(self.approve(n).await).await.unwrap();
        let (cookie, login) = self.oidc.start_login_session(&issued).await.unwrap();
        (issued.into_parts().0, login, cookie)
    }

    /// An approved check of `phone(n)`'s code, sent by SMS.
    pub async fn approve(&self, n: u32) -> Approved {
        self.approvals.approve(&phone(n), Channel::Sms).await
    }

    /// An authorization request of `client` (extra parameters may override), answered for
    /// `login`: the code and the whole redirect query.
    pub async fn code(
        &self,
        client: &str,
        redirect: &str,
        scope: &str,
        login: &ActiveLogin,
        extra: &[(&str, &str)],
    ) -> HashMap<String, String> {
        let mut pairs = vec![
            ("client_id", client),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "xyz/ABC=1&2"),
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        for (k, v) in extra {
            pairs.retain(|(n, _)| n != k);
            pairs.push((k, v));
        }
        let request = self.oidc.authorize(&form(&pairs)).unwrap();
        let location = self.oidc.issue_code(&request, login).await.unwrap();
        assert!(location.starts_with(&format!("{redirect}?")), "{location}");
        query(&location)
    }

    pub async fn exchange(
        &self,
        creds: &Creds,
        code: &str,
        redirect: &str,
        verifier: &str,
    ) -> Result<TokenResponse, TokenFailure> {
        let mut body: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.into()),
            ("redirect_uri", redirect.into()),
            ("code_verifier", verifier.into()),
        ];
        body.extend(creds.body.iter().cloned());
        self.oidc.token(creds.header.as_deref(), &Params::from_pairs(body)).await
    }

    pub async fn refresh(
        &self,
        creds: &Creds,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, TokenFailure> {
        let mut body: Vec<(&str, String)> =
            vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh_token.into())];
        if let Some(scope) = scope {
            body.push(("scope", scope.into()));
        }
        body.extend(creds.body.iter().cloned());
        self.oidc.token(creds.header.as_deref(), &Params::from_pairs(body)).await
    }

    /// Sign-in, authorization and exchange in one: the tokens of a fresh grant.
    pub async fn grant(&self, n: u32, scope: &str) -> (User, TokenResponse) {
        let (user, login, _) = self.sign_in(n).await;
        let q = self.code("web", WEB_REDIRECT, scope, &login, &[]).await;
        let tokens = self.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await.unwrap();
        (user, tokens)
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    pub fn now_secs(&self) -> u64 {
        (self.clock.now().0 / 1000) as u64
    }

    /// What a relying party does: fetch the JWKS, pick the key by `kid`, verify RS256 with
    /// jsonwebtoken, the issuer and the audience. Answers the header and the claims.
    pub async fn verify_as_relying_party(&self, token: &str, audience: &str) -> (Value, Value) {
        let jwks_json = serde_json::to_string(&self.sessions.current_jwks().await).unwrap();
        let jwks: JwkSet = serde_json::from_str(&jwks_json).unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the signing key is in the JWKS");
        let raw: Value = serde_json::to_value(jwk).unwrap();
        assert_eq!(
            (raw["kty"].as_str(), raw["alg"].as_str(), raw["use"].as_str()),
            (Some("RSA"), Some("RS256"), Some("sig"))
        );
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        // The relying party's clock is the provider's (a manual one here).
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims;
        assert!(claims["exp"].as_u64().unwrap() > self.now_secs(), "not expired");
        (serde_json::to_value(decode_part(token, 0)).unwrap(), claims)
    }
}

pub fn decode_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub fn refused(result: Result<TokenResponse, TokenFailure>) -> otpgate_oidc::TokenError {
    match result {
        Err(TokenFailure::Refused(e)) => e,
        Err(TokenFailure::Server(e)) => panic!("server error: {e}"),
        Ok(r) => panic!("issued: {r:?}"),
    }
}

/// Counts what `metrics::counter!` records on this thread (for current-thread tests).
#[derive(Default, Clone)]
pub struct Counters(Arc<Mutex<HashMap<String, u64>>>);

struct CounterHandle(Arc<Mutex<HashMap<String, u64>>>, String);

impl metrics::CounterFn for CounterHandle {
    fn increment(&self, value: u64) {
        *self.0.lock().unwrap().entry(self.1.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.0.lock().unwrap().insert(self.1.clone(), value);
    }
}

impl metrics::Recorder for Counters {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        metrics::Counter::from_arc(Arc::new(CounterHandle(self.0.clone(), name)))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

impl Counters {
    pub fn get(&self, event: &str, outcome: &str, client: &str) -> u64 {
        let key = format!("otpgate_oidc_events_total{{client={client},event={event},outcome={outcome}}}");
        self.0.lock().unwrap().get(&key).copied().unwrap_or(0)
    }
}
