//! The sessions under test: a `SessionService` over a fresh SQLite store with a manual clock,
//! and the tools to read and forge tokens without our own verifier (ed25519-dalek, a JWS parser).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use otpgate_core::{Channel, Clock, CodeHasher, ManualClock, PhoneNumber};
use otpgate_session::{KeyRing, Session, SessionConfig, SessionService};
use otpgate_store::SqliteStore;
use otpgate_test_support::approvals::Approvals;
use serde_json::{Value, json};
use sha2::Sha256;

pub const ISS: &str = "https://auth.example.test";
pub const AUD: &str = "example-app";

pub struct Harness {
    pub service: Arc<SessionService>,
    pub store: SqliteStore,
    pub clock: ManualClock,
    pub keys: KeyRing,
    /// Approvals through a real send and check over the same store (`Approved` has no other way in).
    pub approvals: Arc<Approvals>,
    pub dir: tempfile::TempDir,
}

pub fn config() -> SessionConfig {
    SessionConfig { issuer: ISS.into(), audience: AUD.into(), ..SessionConfig::default() }
}

pub async fn harness() -> Harness {
    harness_with(config()).await
}

pub async fn harness_with(config: SessionConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("sessions.db")).await.unwrap();
    let clock = ManualClock::starting_now();
    let keys = KeyRing::generate().unwrap();
    let service = Arc::new(SessionService::new(
        Arc::new(store.clone()),
        keys.clone(),
        CodeHasher::new(&[5u8; 32]).unwrap(),
        Arc::new(clock.clone()),
        config,
    ));
    let approvals = Arc::new(Approvals::new(Arc::new(store.clone()), Arc::new(store.clone())));
    Harness { service, store, clock, keys, approvals, dir }
}

pub fn phone(n: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1415555{n:04}"), None).unwrap()
}

pub fn now_of(clock: &ManualClock) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(clock.now().0 as u64)
}

pub fn jwks_json(h: &Harness) -> String {
    serde_json::to_string(&h.service.jwks()).unwrap()
}

pub fn parts(token: &str) -> (Value, Value, Vec<u8>) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3, "a JWS in compact form");
    let json = |s: &str| serde_json::from_slice::<Value>(&B64.decode(s).unwrap()).unwrap();
    (json(p[0]), json(p[1]), B64.decode(p[2]).unwrap())
}

/// An independent check: find the key by `kid` in the JWKS JSON, verify the Ed25519 signature
/// over `header.payload` with ed25519-dalek (strict), and answer the claims.
pub fn independent_verify(token: &str, jwks: &str) -> Result<Value, String> {
    let (header, claims, sig) = parts(token);
    if header["alg"] != "EdDSA" {
        return Err(format!("alg {}", header["alg"]));
    }
    let jwks: Value = serde_json::from_str(jwks).unwrap();
    let jwk =
        jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).ok_or("kid not in the JWKS")?;
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    let x: [u8; 32] = B64.decode(jwk["x"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
    let sig = ed25519_dalek::Signature::from_slice(&sig).map_err(|e| e.to_string())?;
    let signing_input = token.rsplit_once('.').unwrap().0;
    key.verify_strict(signing_input.as_bytes(), &sig).map_err(|e| e.to_string())?;
    Ok(claims)
}

pub fn encode_json(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

pub fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", encode_json(header), encode_json(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

pub async fn sign_in(h: &Harness, n: u32) -> (otpgate_core::User, Session) {
    let approved = h.approvals.approve(&phone(n), Channel::Sms).await;
    let (user, _, session) = h.service.issue_for_approved(approved).await.unwrap().into_parts();
    (user, session)
}

/// Signs arbitrary JSON claims with the ring's current key, read from its key file and used
/// through ed25519-dalek (to build tokens our claim type would never produce).
pub fn sign_raw(ring: &KeyRing, claims: &Value) -> String {
    use ed25519_dalek::Signer;
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": ring.current().kid()});
    let input = format!("{}.{}", encode_json(&header), encode_json(claims));
    let file: Value = serde_json::from_str(&ring.to_json()).unwrap();
    let der = B64.decode(file["current"]["private_key"].as_str().unwrap()).unwrap();
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der).unwrap();
    format!("{input}.{}", B64.encode(key.sign(input.as_bytes()).to_bytes()))
}

/// Another instance on the same store: its own key file, the same HMAC key (as the hot store
/// enforces), the same clock.
pub fn sibling(h: &Harness, keys: KeyRing, hmac_key: [u8; 32]) -> SessionService {
    SessionService::new(
        Arc::new(h.store.clone()),
        keys,
        CodeHasher::new(&hmac_key).unwrap(),
        Arc::new(h.clock.clone()),
        config(),
    )
}

pub fn rsa_ring() -> KeyRing {
    static RING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KeyRing::from_json(RING.get_or_init(|| KeyRing::generate_with_rsa().unwrap().to_json())).unwrap()
}

pub async fn harness_with_rsa() -> Harness {
    let h = harness().await;
    let keys = rsa_ring();
    h.service.replace_keys(keys.clone());
    Harness { keys, ..h }
}

pub fn rsa_ring_other() -> KeyRing {
    static RING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KeyRing::from_json(RING.get_or_init(|| KeyRing::generate_with_rsa().unwrap().to_json())).unwrap()
}
