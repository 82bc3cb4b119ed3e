//! Sessions end to end over the real SQLite store, with time moved by a manual clock. Access
//! tokens are checked against the published JWKS with an independent implementation
//! (ed25519-dalek and a hand-written JWS parser), not only with our own verifier.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use otpgate_core::provider::{MessageTemplates, ProviderError, SendReceipt};
use otpgate_core::{
    Approved, Channel, Clock, Code, CodeHasher, ManualClock, OtpError, OutgoingCode, PhoneNumber, Policy, SendRequest,
    ServiceSettings, SessionStore, SmsProvider, StoreError, VerificationService, VerificationStore,
};
use otpgate_session::{
    BoundRefresh, KeyRing, RefreshBinding, Session, SessionConfig, SessionError, SessionService, VerifyError,
    VerifyingKeys, verify_access_token, verify_access_token_with_leeway,
};
use otpgate_store::SqliteStore;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::task::JoinSet;

const ISS: &str = "https://auth.example.test";
const AUD: &str = "example-app";

struct Harness {
    service: Arc<SessionService>,
    store: SqliteStore,
    clock: ManualClock,
    keys: KeyRing,
    approvals: Approvals,
    dir: tempfile::TempDir,
}

/// Approvals the way the server gets them, since `Approved` has no other way in: a send, and a
/// check of the code that went out, by a verification service over the same store. It has a
/// clock of its own, moved two days on before each approval, so the send limits and cooldowns of
/// earlier approvals never stand in the way and the sessions' clock is left alone.
struct Approvals {
    service: VerificationService,
    outbox: Arc<Outbox>,
    clock: ManualClock,
}

/// A provider that keeps the last code it was given.
#[derive(Default)]
struct Outbox(Mutex<Option<Code>>);

#[async_trait::async_trait]
impl SmsProvider for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn supports(&self, _: Channel) -> bool {
        true
    }

    async fn send(&self, msg: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        *self.0.lock().unwrap() = Some(msg.code.clone());
        Ok(SendReceipt::default())
    }
}

impl Approvals {
    fn new(store: &SqliteStore) -> Self {
        let (outbox, clock) = (Arc::new(Outbox::default()), ManualClock::starting_now());
        let settings = ServiceSettings {
            policy: Policy::default(),
            test_numbers: HashMap::new(),
            app_name: "Test".into(),
            webotp_domain: None,
            templates: MessageTemplates::default(),
            bot_check: None,
        };
        let service = VerificationService::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            outbox.clone(),
            Arc::new(clock.clone()),
            CodeHasher::new(&[7u8; 32]).unwrap(),
            settings,
        );
        Approvals { service, outbox, clock }
    }

    /// `phone`'s code sent over `channel` and checked.
    async fn approve(&self, phone: &PhoneNumber, channel: Channel) -> Approved {
        self.clock.advance(Duration::from_secs(2 * 86_400));
        let req = SendRequest { phone: phone.clone(), channel, locale: None, client_ip: None, bot_token: None };
        self.service.send(req).await.expect("send");
        let code = self.outbox.0.lock().unwrap().take().expect("a code went out");
        self.service.check(phone, code.expose(), None).await.expect("approved")
    }
}

fn config() -> SessionConfig {
    SessionConfig { issuer: ISS.into(), audience: AUD.into(), ..SessionConfig::default() }
}

async fn harness() -> Harness {
    harness_with(config()).await
}

async fn harness_with(config: SessionConfig) -> Harness {
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
    let approvals = Approvals::new(&store);
    Harness { service, store, clock, keys, approvals, dir }
}

fn phone(n: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1415555{n:04}"), None).unwrap()
}

fn now_of(clock: &ManualClock) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(clock.now().0 as u64)
}

fn jwks_json(h: &Harness) -> String {
    serde_json::to_string(&h.service.jwks()).unwrap()
}

fn parts(token: &str) -> (Value, Value, Vec<u8>) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3, "a JWS in compact form");
    let json = |s: &str| serde_json::from_slice::<Value>(&B64.decode(s).unwrap()).unwrap();
    (json(p[0]), json(p[1]), B64.decode(p[2]).unwrap())
}

/// An independent check: find the key by `kid` in the JWKS JSON, verify the Ed25519 signature
/// over `header.payload` with ed25519-dalek (strict), and answer the claims.
fn independent_verify(token: &str, jwks: &str) -> Result<Value, String> {
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

fn encode_json(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", encode_json(header), encode_json(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

async fn sign_in(h: &Harness, n: u32) -> (otpgate_core::User, Session) {
    let approved = h.approvals.approve(&phone(n), Channel::Sms).await;
    let (user, _, session) = h.service.issue_for_approved(approved).await.unwrap().into_parts();
    (user, session)
}

#[tokio::test]
async fn issued_access_tokens_verify_against_the_jwks_independently() {
    let h = harness().await;
    let issued = h.service.issue_for_approved(h.approvals.approve(&phone(1), Channel::Sms).await).await.unwrap();
    assert!(issued.created());
    assert!(issued.user().id.as_str().starts_with("usr_"));
    let s = issued.session();
    assert_eq!((s.token_type, s.expires_in, s.refresh_expires_in), ("Bearer", 900, 2_592_000));
    assert!(s.refresh_token.starts_with("rt_") && s.refresh_token.len() == 35);

    let (header, _, _) = parts(&s.access_token);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], h.keys.current().kid());
    let claims = independent_verify(&s.access_token, &jwks_json(&h)).expect("independent verification");
    assert_eq!(claims["iss"], ISS);
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["sub"], issued.user().id.as_str());
    assert_eq!(claims["phone_number"], "+14155550001");
    assert_eq!(claims["phone_number_verified"], true);
    assert_eq!(claims["amr"], json!(["sms"]));
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 900);
    assert_eq!(claims["iat"].as_u64().unwrap(), h.clock.now().0 as u64 / 1000);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    // Our own verifier, fed from the same JWKS document a remote service would fetch.
    let keys = VerifyingKeys::from_jwks_json(&jwks_json(&h)).unwrap();
    let ours = verify_access_token(&s.access_token, &keys, ISS, AUD, now_of(&h.clock)).unwrap();
    assert_eq!(ours.sub, issued.user().id.as_str());
    assert_eq!(&h.service.me(&s.access_token).await.unwrap(), issued.user());

    // Same phone again: the same user, not created.
    let again = h.service.issue_for_approved(h.approvals.approve(&phone(1), Channel::Whatsapp).await).await.unwrap();
    assert!(!again.created());
    assert_eq!(again.user(), issued.user());
    assert_eq!(independent_verify(&again.session().access_token, &jwks_json(&h)).unwrap()["amr"], json!(["whatsapp"]));
}

#[tokio::test]
async fn forged_and_out_of_bounds_tokens_are_refused() {
    let h = harness().await;
    let (_, s) = sign_in(&h, 2).await;
    let keys = h.service.verifying_keys();
    let now = now_of(&h.clock);
    let verify = |t: &str| verify_access_token(t, &keys, ISS, AUD, now);
    let (header, claims, _) = parts(&s.access_token);
    let sig_part = s.access_token.rsplit('.').next().unwrap();

    // Tampered payload, original signature.
    let mut evil = claims.clone();
    evil["phone_number"] = json!("+14155550999");
    let tampered = format!("{}.{}.{sig_part}", encode_json(&header), encode_json(&evil));
    assert_eq!(verify(&tampered), Err(VerifyError::BadSignature));
    assert!(independent_verify(&tampered, &jwks_json(&h)).is_err(), "the independent check agrees");

    // alg: none, with and without a signature part.
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    for t in [
        format!("{}.{}.", encode_json(&none_header), encode_json(&claims)),
        format!("{}.{}", encode_json(&none_header), encode_json(&claims)),
        format!("{}.{}.{sig_part}", encode_json(&none_header), encode_json(&claims)),
    ] {
        assert!(verify(&t).is_err(), "alg none: {t}");
    }

    // HS256 "signed" with the public key, raw and as its base64url text.
    let public = h.keys.current().public_key();
    let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]});
    for secret in [public.as_slice(), B64.encode(public).as_bytes()] {
        assert_eq!(verify(&hs256(&hs_header, &claims, secret)), Err(VerifyError::WrongAlgorithm));
    }

    // Signed by a key that is not in the set, under the set's kid and under its own.
    let stranger = KeyRing::generate().unwrap();
    let mut stranger_claims: otpgate_session::AccessClaims = serde_json::from_value(claims.clone()).unwrap();
    let own_kid = stranger.sign(&stranger_claims).unwrap();
    assert_eq!(verify(&own_kid), Err(VerifyError::UnknownKey));
    let (_, p2, s2) = parts(&own_kid);
    let borrowed_kid = format!("{}.{}.{}", encode_json(&header), encode_json(&p2), B64.encode(s2));
    assert_eq!(verify(&borrowed_kid), Err(VerifyError::BadSignature));

    // Properly signed by our key, but for someone else.
    let ring = &h.keys;
    stranger_claims.aud = "another-app".into();
    assert_eq!(verify(&ring.sign(&stranger_claims).unwrap()), Err(VerifyError::WrongAudience));
    stranger_claims.aud = AUD.into();
    stranger_claims.iss = "https://evil.example".into();
    assert_eq!(verify(&ring.sign(&stranger_claims).unwrap()), Err(VerifyError::WrongIssuer));
    stranger_claims.iss = ISS.into();
    stranger_claims.phone_number_verified = false;
    assert!(verify(&ring.sign(&stranger_claims).unwrap()).is_err(), "phone_number_verified must be true");

    // A required claim missing (nbf), though correctly signed by our key.
    let mut no_nbf = claims.clone();
    no_nbf.as_object_mut().unwrap().remove("nbf");
    assert_eq!(verify(&sign_raw(ring, &no_nbf)), Err(VerifyError::Malformed));
    assert!(verify(&sign_raw(ring, &claims)).is_ok(), "the raw signer itself is sound");

    // Junk.
    for junk in ["", "a.b.c", "....", "eyJ.eyJ.", &"x".repeat(10_000)] {
        assert_eq!(verify(junk), Err(VerifyError::Malformed), "{junk:.20}");
    }

    // Every one of them is `unauthorized` at /v1/me too.
    for t in [tampered, own_kid, borrowed_kid, hs256(&hs_header, &claims, public)] {
        assert!(matches!(h.service.me(&t).await, Err(SessionError::Unauthorized)));
    }
}

/// Signs arbitrary JSON claims with the ring's current key, read from its key file and used
/// through ed25519-dalek (to build tokens our claim type would never produce).
fn sign_raw(ring: &KeyRing, claims: &Value) -> String {
    use ed25519_dalek::Signer;
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": ring.current().kid()});
    let input = format!("{}.{}", encode_json(&header), encode_json(claims));
    let file: Value = serde_json::from_str(&ring.to_json()).unwrap();
    let der = B64.decode(file["current"]["private_key"].as_str().unwrap()).unwrap();
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der).unwrap();
    format!("{input}.{}", B64.encode(key.sign(input.as_bytes()).to_bytes()))
}

#[tokio::test]
async fn access_tokens_expire_and_are_not_valid_before_issue() {
    let h = harness().await;
    let (_, s) = sign_in(&h, 3).await;
    let keys = h.service.verifying_keys();
    let issued_at = now_of(&h.clock);

    h.clock.advance(Duration::from_secs(899));
    assert!(h.service.me(&s.access_token).await.is_ok(), "valid until the last second");
    h.clock.advance(Duration::from_secs(1));
    assert!(matches!(h.service.me(&s.access_token).await, Err(SessionError::Unauthorized)));
    assert_eq!(verify_access_token(&s.access_token, &keys, ISS, AUD, now_of(&h.clock)), Err(VerifyError::Expired));
    // A little leeway for a remote service with a skewed clock, but only what it asks for.
    assert!(
        verify_access_token_with_leeway(&s.access_token, &keys, ISS, AUD, now_of(&h.clock), Duration::from_secs(5))
            .is_ok()
    );

    let before = issued_at - Duration::from_secs(2);
    assert_eq!(verify_access_token(&s.access_token, &keys, ISS, AUD, before), Err(VerifyError::NotYetValid));
    assert!(verify_access_token_with_leeway(&s.access_token, &keys, ISS, AUD, before, Duration::from_secs(5)).is_ok());
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_chain() {
    let h = harness().await;
    let (user, first) = sign_in(&h, 4).await;
    h.clock.advance(Duration::from_secs(60));

    let second = h.service.refresh(&first.refresh_token).await.expect("first use");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(h.service.me(&second.access_token).await.unwrap(), user);
    let claims = independent_verify(&second.access_token, &jwks_json(&h)).unwrap();
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["amr"], json!(["sms"]));

    // The spent token comes back after the reuse grace (10 s): refused, and the token that
    // replaced it dies with it.
    h.clock.advance(Duration::from_secs(10));
    assert!(matches!(h.service.refresh(&first.refresh_token).await, Err(SessionError::Unauthorized)));
    assert!(matches!(h.service.refresh(&second.refresh_token).await, Err(SessionError::Unauthorized)));

    // Another sign-in of the same user is another chain and is unaffected.
    let (_, other) = sign_in(&h, 4).await;
    assert!(h.service.refresh(&other.refresh_token).await.is_ok());
}

#[tokio::test]
async fn refresh_keeps_the_sign_in_channel_and_expires() {
    let h = harness().await;
    let issued = h.service.issue_for_approved(h.approvals.approve(&phone(5), Channel::Call).await).await.unwrap();
    let next = h.service.refresh(&issued.session().refresh_token).await.unwrap();
    assert_eq!(independent_verify(&next.access_token, &jwks_json(&h)).unwrap()["amr"], json!(["call"]));
    h.clock.advance(Duration::from_secs(30 * 86_400));
    assert!(matches!(h.service.refresh(&next.refresh_token).await, Err(SessionError::Unauthorized)));
}

/// A lost answer, two tabs, a retrying page: the same refresh token presented 2 or 10 times at
/// once (or again within the grace) gets one new session, the very same tokens for everyone.
#[tokio::test]
async fn concurrent_refreshes_of_one_token_all_get_the_same_session() {
    let h = harness().await;
    for (n, racers) in [(6, 2), (7, 10)] {
        let (_, s) = sign_in(&h, n).await;
        h.clock.advance(Duration::from_secs(1));
        let mut tasks = JoinSet::new();
        for _ in 0..racers {
            let (service, token) = (h.service.clone(), s.refresh_token.clone());
            tasks.spawn(async move { service.refresh(&token).await });
        }
        let mut sessions = Vec::new();
        while let Some(r) = tasks.join_next().await {
            sessions.push(r.unwrap().unwrap_or_else(|e| panic!("{racers} racers: {e:?}")));
        }
        assert!(sessions.iter().all(|x| *x == sessions[0]), "{racers} racers: one session for all");
        // A late retry within the grace too; the session works and its refresh token rotates on.
        h.clock.advance(Duration::from_secs(9));
        assert_eq!(h.service.refresh(&s.refresh_token).await.unwrap(), sessions[0]);
        assert!(h.service.me(&sessions[0].access_token).await.is_ok());
        assert!(h.service.refresh(&sessions[0].refresh_token).await.is_ok());
    }
}

/// With the grace off (`refresh_reuse_grace = 0`), concurrent refreshes of one token succeed
/// once, and the repeats revoke the chain (the behaviour before the grace).
#[tokio::test]
async fn without_a_grace_concurrent_refreshes_succeed_once_and_revoke() {
    let h = harness_with(SessionConfig { refresh_reuse_grace: Duration::ZERO, ..config() }).await;
    let (_, s) = sign_in(&h, 6).await;
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let (service, token) = (h.service.clone(), s.refresh_token.clone());
        tasks.spawn(async move { service.refresh(&token).await });
    }
    let mut winners = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(session) => winners.push(session),
            Err(SessionError::Unauthorized) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert!(matches!(h.service.refresh(&winners[0].refresh_token).await, Err(SessionError::Unauthorized)));
}

#[tokio::test]
async fn malformed_and_revoked_refresh_tokens_are_unauthorized() {
    let h = harness().await;
    let (_, s) = sign_in(&h, 7).await;
    for junk in ["", "rt_", "rt_short", "xx_0123456789abcdefghij0123456789ab", &s.refresh_token.to_uppercase()] {
        assert!(matches!(h.service.refresh(junk).await, Err(SessionError::Unauthorized)), "{junk}");
        h.service.revoke(junk).await.expect("revoking junk is not an error");
    }
    h.service.revoke(&s.refresh_token).await.unwrap();
    assert!(matches!(h.service.refresh(&s.refresh_token).await, Err(SessionError::Unauthorized)));
    h.service.revoke(&s.refresh_token).await.expect("twice is fine");
}

#[tokio::test]
async fn key_rotation_keeps_existing_tokens_valid_until_they_expire() {
    let h = harness().await;
    let (_, before) = sign_in(&h, 8).await;
    let old_kid = h.keys.current().kid().to_owned();

    let mut rotated = h.keys.clone();
    rotated.rotate().unwrap();
    h.service.replace_keys(rotated.clone());
    let jwks = jwks_json(&h);
    assert_eq!(h.service.jwks().keys.len(), 2, "current and previous are published");

    assert!(independent_verify(&before.access_token, &jwks).is_ok());
    assert!(h.service.me(&before.access_token).await.is_ok(), "nobody is logged out");
    let after = h.service.refresh(&before.refresh_token).await.unwrap();
    let (header, _, _) = parts(&after.access_token);
    assert_eq!(header["kid"], rotated.current().kid());
    assert_ne!(header["kid"], old_kid.as_str());
    assert!(independent_verify(&after.access_token, &jwks).is_ok());

    // The old-key token still ends at its own expiry.
    h.clock.advance(Duration::from_secs(900));
    assert!(matches!(h.service.me(&before.access_token).await, Err(SessionError::Unauthorized)));

    // A second rotation drops the first key from the ring. It was published, so the set lists it
    // until the tokens it signed have expired (plus two minutes of renewal margin), then no more.
    rotated.rotate().unwrap();
    h.service.replace_keys(rotated);
    assert!(h.service.jwks().find(&old_kid).is_some(), "still published");
    h.clock.advance(Duration::from_secs(125));
    assert!(h.service.jwks().find(&old_kid).is_none());
}

#[tokio::test]
async fn deleting_me_erases_the_user_and_stops_their_tokens_at_once() {
    let h = harness().await;
    let (user, s) = sign_in(&h, 9).await;
    let me = h.service.me(&s.access_token).await.unwrap();
    assert_eq!(me, user);

    // A pending verification for the phone, to be erased with the user.
    let p = phone(9);
    let code = otpgate_core::Code::parse("123456", 6).unwrap();
    let new = otpgate_core::NewCode {
        id: otpgate_core::VerificationId::generate(),
        phone: p.clone(),
        channel: Channel::Sms,
        code_digest: Some(CodeHasher::new(&[1u8; 32]).unwrap().digest(&p, &code)),
    };
    h.store.issue(new, h.clock.now(), &otpgate_core::Policy::default()).await.unwrap();
    assert!(h.store.resend_wait(&p, h.clock.now()).await.unwrap().is_some());

    h.service.delete_me(&s.access_token).await.unwrap();
    assert!(matches!(h.service.me(&s.access_token).await, Err(SessionError::Unauthorized)), "token dead at once");
    assert!(matches!(h.service.delete_me(&s.access_token).await, Err(SessionError::Unauthorized)));
    assert!(matches!(h.service.refresh(&s.refresh_token).await, Err(SessionError::Unauthorized)));
    assert_eq!(h.store.resend_wait(&p, h.clock.now()).await.unwrap(), None, "pending verification erased");

    let again = h.service.issue_for_approved(h.approvals.approve(&p, Channel::Sms).await).await.unwrap();
    assert!(again.created(), "a new sign-up");
    assert_ne!(again.user().id, user.id);
    assert!(matches!(h.service.me(&s.access_token).await, Err(SessionError::Unauthorized)), "old id stays dead");
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_digests() {
    let h = harness().await;
    let mut tokens = Vec::new();
    for n in 10..15 {
        let (_, s) = sign_in(&h, n).await;
        let next = h.service.refresh(&s.refresh_token).await.unwrap();
        tokens.push(s.refresh_token);
        tokens.push(next.refresh_token);
    }
    h.store.close().await;
    // The database, its WAL and anything else SQLite left in the directory.
    let mut dump = Vec::new();
    for entry in std::fs::read_dir(h.dir.path()).unwrap() {
        dump.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(dump.len() > 4096);
    for t in &tokens {
        let random = &t.as_bytes()[3..];
        assert!(!dump.windows(random.len()).any(|w| w == random), "token text found at rest");
    }
    // No `rt_` followed by a token's worth of base62 anywhere.
    let token_like = dump.windows(35).any(|w| w.starts_with(b"rt_") && w[3..].iter().all(u8::is_ascii_alphanumeric));
    assert!(!token_like, "something token-shaped is stored");
}

#[test]
fn session_errors_map_to_the_domain_error() {
    assert!(matches!(OtpError::from(SessionError::Unauthorized), OtpError::Unauthorized));
    assert!(matches!(
        OtpError::from(SessionError::from(StoreError::Unavailable("down".into()))),
        OtpError::StoreUnavailable(_)
    ));
    assert!(matches!(OtpError::from(SessionError::Internal("bug".into())), OtpError::Internal(_)));
}

#[test]
fn session_debug_redacts_tokens() {
    let s = Session {
        access_token: "eyJsecret".into(),
        token_type: "Bearer",
        expires_in: 900,
        refresh_token: "rt_secret".into(),
        refresh_expires_in: 1,
    };
    let text = format!("{s:?}");
    assert!(!text.contains("secret"));
}

/// Another instance on the same store: its own key file, the same HMAC key (as the hot store
/// enforces), the same clock.
fn sibling(h: &Harness, keys: KeyRing, hmac_key: [u8; 32]) -> SessionService {
    SessionService::new(
        Arc::new(h.store.clone()),
        keys,
        CodeHasher::new(&hmac_key).unwrap(),
        Arc::new(h.clock.clone()),
        config(),
    )
}

/// Instances sharing a durable store publish their public keys there: each one's JWKS lists the
/// other's key, and each accepts the other's access tokens, whatever key files they were given;
/// a rotation on one reaches the other before the new key signs anything.
#[tokio::test]
async fn instances_sharing_a_store_serve_one_jwks_and_accept_each_others_tokens() {
    let h = harness().await;
    h.service.publish_keys().await.unwrap();
    let other = sibling(&h, KeyRing::generate().unwrap(), [5u8; 32]);
    other.publish_keys().await.unwrap();
    let (a_kid, b_kid) = (h.keys.current().kid().to_owned(), other.verifying_keys().kids().next().unwrap().to_owned());
    assert_ne!(a_kid, b_kid, "two key files");

    let (user, from_a) = sign_in(&h, 20).await;
    let from_b =
        other.issue_for_approved(h.approvals.approve(&phone(20), Channel::Sms).await).await.unwrap().into_parts().2;
    // Each instance accepts the other's token (A learns B's key on the unknown kid).
    assert_eq!(other.me(&from_a.access_token).await.unwrap(), user);
    assert_eq!(h.service.me(&from_b.access_token).await.unwrap(), user);
    // One JWKS: both list both keys, and an independent verifier takes either token with either.
    for jwks in [h.service.current_jwks().await, other.current_jwks().await] {
        let json = serde_json::to_string(&jwks).unwrap();
        assert!(jwks.find(&a_kid).is_some() && jwks.find(&b_kid).is_some(), "{json}");
        assert!(independent_verify(&from_a.access_token, &json).is_ok());
        assert!(independent_verify(&from_b.access_token, &json).is_ok());
    }

    // A rotation on B (the file reloaded): A accepts the new key's first token at once.
    let mut rotated = KeyRing::from_json(&KeyRing::generate().unwrap().to_json()).unwrap();
    rotated.rotate().unwrap();
    other.replace_keys(rotated.clone());
    let after = other.refresh(&from_b.refresh_token).await.unwrap();
    assert_eq!(parts(&after.access_token).0["kid"], rotated.current().kid());
    assert_eq!(h.service.me(&after.access_token).await.unwrap(), user);
    assert!(h.service.current_jwks().await.find(rotated.current().kid()).is_some());
}

/// Write access to the store is not enough to add a verifying key: a key published without the
/// HMAC key is ignored, and tokens it signs are refused.
#[tokio::test]
async fn a_key_published_without_the_hmac_key_is_ignored() {
    let h = harness().await;
    let forger = sibling(&h, KeyRing::generate().unwrap(), [6u8; 32]);
    forger.publish_keys().await.unwrap();
    let forged =
        forger.issue_for_approved(h.approvals.approve(&phone(21), Channel::Sms).await).await.unwrap().into_parts().2;
    let forged_kid = forger.verifying_keys().kids().next().unwrap().to_owned();
    assert!(h.service.current_jwks().await.find(&forged_kid).is_none());
    assert!(matches!(h.service.me(&forged.access_token).await, Err(SessionError::Unauthorized)));
}

fn rsa_ring() -> KeyRing {
    static RING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KeyRing::from_json(RING.get_or_init(|| KeyRing::generate_with_rsa().unwrap().to_json())).unwrap()
}

async fn harness_with_rsa() -> Harness {
    let h = harness().await;
    let keys = rsa_ring();
    h.service.replace_keys(keys.clone());
    Harness { keys, ..h }
}

/// RSA keys are shared like the Ed25519 ones: an RS256 token one instance signs verifies at the
/// other (which reads the key from the store), and both JWKS list both RSA keys; a key published
/// without the HMAC key is not taken.
#[tokio::test]
async fn rsa_keys_are_published_and_resolved_across_instances() {
    let h = harness_with_rsa().await;
    let mut other_keys = KeyRing::generate().unwrap();
    other_keys.add_rsa().unwrap();
    let other = sibling(&h, other_keys.clone(), [5u8; 32]);
    let token = other.sign_rs256("JWT", &json!({ "sub": "x", "exp": 4_000_000_000u64 })).await.unwrap();
    let kid = parts(&token).0["kid"].as_str().unwrap().to_owned();
    assert_eq!(kid, other_keys.rsa_current().unwrap().kid());
    let key = h.service.rs256_key(&kid).await.expect("published before it signed");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.required_spec_claims.clear();
    assert!(jsonwebtoken::decode::<Value>(&token, &key, &validation).is_ok());
    let jwks = h.service.current_jwks().await;
    assert!(jwks.find(&kid).is_some() && jwks.find(h.keys.rsa_current().unwrap().kid()).is_some());
    // The shared RSA key never becomes an EdDSA verifying key.
    assert!(!h.service.verifying_keys().kids().any(|k| k == kid));
    assert!(h.service.rs256_key(h.keys.current().kid()).await.is_none(), "an Ed25519 kid is no RSA key");

    let forger = sibling(&h, rsa_ring_other(), [6u8; 32]);
    let forged = forger.sign_rs256("JWT", &json!({})).await.unwrap();
    let forged_kid = parts(&forged).0["kid"].as_str().unwrap().to_owned();
    assert!(h.service.rs256_key(&forged_kid).await.is_none());
}

fn rsa_ring_other() -> KeyRing {
    static RING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KeyRing::from_json(RING.get_or_init(|| KeyRing::generate_with_rsa().unwrap().to_json())).unwrap()
}

#[tokio::test]
async fn signing_rs256_without_an_rsa_key_is_an_internal_error() {
    let h = harness().await;
    assert!(!h.service.can_sign_rs256());
    assert!(matches!(h.service.sign_rs256("JWT", &json!({})).await, Err(SessionError::Internal(_))));
}

/// Bound refresh tokens (OpenID Connect grants): rotate like the JSON API's, with the reuse
/// grace and reuse detection, and are valid only under their own binding.
#[tokio::test]
async fn bound_refresh_tokens_rotate_and_stay_in_their_binding() {
    let h = harness().await;
    let (user, api_session) = sign_in(&h, 30).await;
    let web = RefreshBinding::new("ort_g1.", b"web".to_vec());
    let prepared = h.service.prepare_refresh(&web, Channel::Sms);
    assert!(prepared.token().starts_with("ort_g1.") && prepared.token().len() == 7 + 32);
    assert!(!format!("{prepared:?}").contains(prepared.token()));
    assert!(h.service.store_refresh_for(&user, &prepared).await.unwrap());

    // Another client, another prefix, the JSON API: none of them takes the token.
    let app = RefreshBinding::new("ort_g1.", b"app".to_vec());
    assert!(matches!(h.service.rotate_bound(prepared.token(), &app).await.unwrap(), BoundRefresh::Invalid));
    let other_prefix = RefreshBinding::new("ort_g2.", b"web".to_vec());
    assert!(matches!(h.service.rotate_bound(prepared.token(), &other_prefix).await.unwrap(), BoundRefresh::Invalid));
    assert!(matches!(h.service.refresh(prepared.token()).await, Err(SessionError::Unauthorized)));
    assert!(matches!(h.service.rotate_bound(&api_session.refresh_token, &web).await.unwrap(), BoundRefresh::Invalid));

    let BoundRefresh::Rotated { user: got, channel, refresh_token: next, .. } =
        h.service.rotate_bound(prepared.token(), &web).await.unwrap()
    else {
        panic!("a live bound token rotates")
    };
    assert_eq!((got.id, channel), (user.id.clone(), Channel::Sms));
    assert!(next.starts_with("ort_g1.") && next != prepared.token());
    // A repeat within the grace: the same successor.
    let BoundRefresh::Rotated { refresh_token: again, .. } =
        h.service.rotate_bound(prepared.token(), &web).await.unwrap()
    else {
        panic!("a repeat within the grace")
    };
    assert_eq!(again, next);
    // Past the grace: reuse revokes the family, the successor with it.
    h.clock.advance(Duration::from_secs(11));
    assert!(matches!(h.service.rotate_bound(prepared.token(), &web).await.unwrap(), BoundRefresh::Reused));
    assert!(matches!(h.service.rotate_bound(&next, &web).await.unwrap(), BoundRefresh::Invalid));
    // The JSON API's own session lives on.
    assert!(h.service.refresh(&api_session.refresh_token).await.is_ok());
}

#[tokio::test]
async fn bound_families_are_revoked_by_any_of_their_tokens() {
    let h = harness().await;
    let (user, _) = sign_in(&h, 31).await;
    let web = RefreshBinding::new("ort_g3.", b"web".to_vec());
    let first = h.service.prepare_refresh(&web, Channel::Call);
    assert!(h.service.store_refresh_for(&user, &first).await.unwrap());
    let BoundRefresh::Rotated { refresh_token: next, channel, .. } =
        h.service.rotate_bound(first.token(), &web).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(channel, Channel::Call, "the family keeps its channel");
    // Revoking by the first (spent) token's digest ends the live successor.
    assert!(h.service.revoke_family_of(&first.digest()).await.unwrap());
    assert!(matches!(h.service.rotate_bound(&next, &web).await.unwrap(), BoundRefresh::Invalid));

    let second = h.service.prepare_refresh(&web, Channel::Sms);
    assert!(h.service.store_refresh_for(&user, &second).await.unwrap());
    assert!(!h.service.revoke_bound(second.token(), &RefreshBinding::new("ort_g3.", b"app".to_vec())).await.unwrap());
    assert!(!h.service.revoke_bound("junk", &web).await.unwrap());
    assert!(h.service.revoke_bound(second.token(), &web).await.unwrap());
    assert!(matches!(h.service.rotate_bound(second.token(), &web).await.unwrap(), BoundRefresh::Invalid));
}

/// A bound family is only ever stored for the user it was prepared for: if that user was erased
/// meanwhile, nothing usable is stored and no user is left behind.
#[tokio::test]
async fn a_bound_token_is_not_stored_for_an_erased_user() {
    let h = harness().await;
    let (user, session) = sign_in(&h, 32).await;
    h.service.delete_me(&session.access_token).await.unwrap();
    let web = RefreshBinding::new("ort_g4.", b"web".to_vec());
    let prepared = h.service.prepare_refresh(&web, Channel::Sms);
    assert!(!h.service.store_refresh_for(&user, &prepared).await.unwrap());
    assert!(matches!(h.service.rotate_bound(prepared.token(), &web).await.unwrap(), BoundRefresh::Invalid));
    assert!(h.service.find_user(&user.id).await.unwrap().is_none());
    let records = h.store.export_user_by_phone(&phone(32)).await.unwrap();
    assert!(records.is_none(), "no user was made for the erased phone: {records:?}");
}
