//! The authorization code flow with PKCE, the token answers, the ID token's claims, refresh,
//! replay and expiry, client authentication, UserInfo.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::oidc::{AuthorizationCode, CodeExchange, ConsumeOutcome, LoginSession, OidcStore};
use otpgate_core::{CodeDigest, SessionStore, StoreError, Timestamp};
use otpgate_oidc::claims::at_hash;
use otpgate_oidc::{
    BearerError, Decision, MemoryOidcStore, OidcService, TokenErrorCode, TokenFailure, TokenResponse, UserinfoFailure,
};

use crate::harness::*;

#[tokio::test]
async fn the_code_flow_issues_tokens_a_relying_party_accepts() {
    let p = provider().await;
    let (user, login, _) = p.sign_in(1).await;
    let q = p.code("web", WEB_REDIRECT, "openid phone offline_access", &login, &[]).await;
    assert_eq!(q["state"], "xyz/ABC=1&2", "state echoed exactly");
    assert_eq!(q["iss"], ISSUER);
    assert!(q["code"].starts_with("oc_"));

    let tokens = p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await.unwrap();
    assert_eq!((tokens.token_type, tokens.expires_in), ("Bearer", 900));
    assert_eq!(tokens.scope, "openid phone offline_access");
    assert!(tokens.refresh_token.as_deref().is_some_and(|r| r.starts_with("ort_")));
    let body = serde_json::to_value(&tokens).unwrap();
    for field in ["access_token", "token_type", "expires_in", "refresh_token", "id_token", "scope"] {
        assert!(body.get(field).is_some(), "{field} in the RFC 6749 §5.1 answer");
    }

    let id_token = tokens.id_token.as_deref().unwrap();
    let (header, claims) = p.verify_as_relying_party(id_token, "web").await;
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], p.keys.rsa_current().unwrap().kid());
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], user.id.as_str(), "the JSON API's user id");
    assert_eq!(claims["aud"], "web");
    assert_eq!(claims["iat"], p.now_secs());
    assert_eq!(claims["exp"], p.now_secs() + 900);
    assert_eq!(claims["auth_time"], (login.auth_time().0 / 1000) as u64);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["amr"], serde_json::json!(["sms"]));
    assert_eq!(claims["at_hash"], at_hash(&tokens.access_token));
    assert_eq!(claims["phone_number"], "+14155550001");
    assert_eq!(claims["phone_number_verified"], true);

    let (header, access) = p.verify_as_relying_party(&tokens.access_token, "web").await;
    assert_eq!(header["typ"], "at+jwt", "RFC 9068");
    assert_eq!(access["client_id"], "web");
    assert_eq!(access["scope"], "openid phone offline_access");
    assert_eq!(access["sub"], user.id.as_str());
    assert!(access["jti"].as_str().is_some_and(|j| j.len() >= 22));
    assert!(access.get("phone_number").is_none(), "no phone number in the bearer token");

    let info = p.oidc.userinfo(Some(&tokens.access_token)).await.unwrap();
    let info = serde_json::to_value(info).unwrap();
    assert_eq!(
        info,
        serde_json::json!({ "sub": user.id.as_str(), "phone_number": "+14155550001", "phone_number_verified": true })
    );
}

#[tokio::test]
async fn without_phone_or_offline_access_there_are_no_phone_claims_and_no_refresh_token() {
    let p = provider().await;
    let (user, tokens) = p.grant(2, "openid profile email").await;
    assert_eq!(tokens.scope, "openid", "unknown scopes are ignored");
    assert!(tokens.refresh_token.is_none());
    let (_, claims) = p.verify_as_relying_party(tokens.id_token.as_deref().unwrap(), "web").await;
    assert!(claims.get("phone_number").is_none() && claims.get("phone_number_verified").is_none());
    let info = serde_json::to_value(p.oidc.userinfo(Some(&tokens.access_token)).await.unwrap()).unwrap();
    assert_eq!(info, serde_json::json!({ "sub": user.id.as_str() }));
}

#[tokio::test]
async fn pkce_is_verified_and_a_malformed_request_spends_no_code() {
    let p = provider().await;
    let (_, login, _) = p.sign_in(3).await;
    let q = p.code("web", WEB_REDIRECT, "openid", &login, &[]).await;
    // Missing or malformed verifier: the request is refused before the code is touched.
    let e = refused(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, "").await);
    assert_eq!(e.code, TokenErrorCode::InvalidRequest);
    let e = refused(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, "short").await);
    assert_eq!(e.code, TokenErrorCode::InvalidRequest);
    assert!(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await.is_ok(), "the RFC 7636 verifier");

    // A wrong verifier is invalid_grant, and the code is spent by the attempt.
    let q = p.code("web", WEB_REDIRECT, "openid", &login, &[]).await;
    let wrong = VERIFIER.replace('d', "e");
    let e = refused(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, &wrong).await);
    assert_eq!(e.code, TokenErrorCode::InvalidGrant);
    let e = refused(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await);
    assert_eq!(e.code, TokenErrorCode::InvalidGrant);
    // `plain` PKCE: the challenge as the verifier does not pass.
    let q = p.code("web", WEB_REDIRECT, "openid", &login, &[]).await;
    assert_eq!(
        refused(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, CHALLENGE).await).code,
        TokenErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_and_redirect_uri() {
    let p = provider().await;
    let (_, login, _) = p.sign_in(4).await;
    let q = p.code("web", WEB_REDIRECT, "openid", &login, &[]).await;
    let e = refused(p.exchange(&public("other"), &q["code"], WEB_REDIRECT, VERIFIER).await);
    assert_eq!(e.code, TokenErrorCode::InvalidGrant, "another client");
    let q = p.code("web", WEB_REDIRECT, "openid", &login, &[]).await;
    let e = refused(p.exchange(&public("web"), &q["code"], "https://app.example.com/callback2", VERIFIER).await);
    assert_eq!(e.code, TokenErrorCode::InvalidGrant, "another redirect URI");
    let e = refused(p.exchange(&public("web"), "oc_notacode", WEB_REDIRECT, VERIFIER).await);
    assert_eq!(e.code, TokenErrorCode::InvalidGrant);
    let e = refused(p.exchange(&public("web"), &format!("oc_{}", "A".repeat(32)), WEB_REDIRECT, VERIFIER).await);
    assert_eq!(e.code, TokenErrorCode::InvalidGrant);
}

#[tokio::test]
async fn codes_expire_after_a_minute() {
    let p = provider().await;
    let (_, login, _) = p.sign_in(5).await;
    let q = p.code("web", WEB_REDIRECT, "openid", &login, &[]).await;
    p.advance(Duration::from_secs(59));
    assert!(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await.is_ok());
    let q = p.code("web", WEB_REDIRECT, "openid", &login, &[]).await;
    p.advance(Duration::from_secs(60));
    let e = refused(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await);
    assert_eq!(e.code, TokenErrorCode::InvalidGrant);
}

/// A second use of a code is refused and revokes what the first use issued: the refresh tokens
/// (their whole family, rotated or not) and the access tokens at UserInfo.
#[tokio::test(flavor = "current_thread")]
async fn a_replayed_code_revokes_every_token_issued_from_it() {
    let counters = Counters::default();
    let _recorder = metrics::set_default_local_recorder(&counters);
    let p = provider().await;
    let (_, login, _) = p.sign_in(6).await;
    let q = p.code("web", WEB_REDIRECT, "openid phone offline_access", &login, &[]).await;
    let first = p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await.unwrap();
    // The app refreshes once; the attacker replays the code afterwards.
    let rotated = p.refresh(&public("web"), first.refresh_token.as_deref().unwrap(), None).await.unwrap();
    assert!(p.oidc.userinfo(Some(&rotated.access_token)).await.is_ok());
    // Another grant of the same user is not touched.
    let q2 = p.code("web", WEB_REDIRECT, "openid offline_access", &login, &[]).await;
    let unrelated = p.exchange(&public("web"), &q2["code"], WEB_REDIRECT, VERIFIER).await.unwrap();

    let e = refused(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await);
    assert_eq!(e.code, TokenErrorCode::InvalidGrant);
    assert_eq!(counters.get("oidc.replay", "grant_revoked", "web"), 1);

    for token in [&first.access_token, &rotated.access_token] {
        assert!(matches!(p.oidc.userinfo(Some(token)).await, Err(UserinfoFailure::Refused(BearerError::InvalidToken))));
    }
    let e = refused(p.refresh(&public("web"), rotated.refresh_token.as_deref().unwrap(), None).await);
    assert_eq!(e.code, TokenErrorCode::InvalidGrant, "the live refresh token of the family is revoked");
    // A replay by another client (or a third use) revokes again and stays refused.
    assert_eq!(
        refused(p.exchange(&public("other"), &q["code"], WEB_REDIRECT, VERIFIER).await).code,
        TokenErrorCode::InvalidGrant
    );

    assert!(p.oidc.userinfo(Some(&unrelated.access_token)).await.is_ok());
    assert!(p.refresh(&public("web"), unrelated.refresh_token.as_deref().unwrap(), None).await.is_ok());
    assert_eq!(counters.get("oidc.token", "issued", "web"), 2);
    assert_eq!(counters.get("oidc.refresh", "issued", "web"), 2);
    assert_eq!(counters.get("oidc.authorize", "code_issued", "web"), 2);
    assert_eq!(counters.get("oidc.token", "invalid_grant", "web"), 1);
    assert_eq!(counters.get("oidc.token", "invalid_grant", "other"), 1);
}

/// The OIDC store, with a replay of the code run right after the first use consumed it (before
/// that use stored its refresh token or signed anything): the interleaving where the replay finds
/// no refresh token to revoke yet.
struct ReplayMidExchange {
    inner: MemoryOidcStore,
    service: OnceLock<Weak<OidcService>>,
    code: Mutex<Option<String>>,
    replay: Mutex<Option<Result<TokenResponse, TokenFailure>>>,
}

#[async_trait]
impl OidcStore for ReplayMidExchange {
    async fn create_code(&self, d: &CodeDigest, c: &AuthorizationCode, keep: Timestamp) -> Result<(), StoreError> {
        self.inner.create_code(d, c, keep).await
    }
    async fn code(&self, d: &CodeDigest, now: Timestamp) -> Result<Option<AuthorizationCode>, StoreError> {
        self.inner.code(d, now).await
    }
    async fn consume_code(
        &self,
        d: &CodeDigest,
        e: &CodeExchange,
        now: Timestamp,
    ) -> Result<ConsumeOutcome, StoreError> {
        let outcome = self.inner.consume_code(d, e, now).await?;
        let armed = self.code.lock().unwrap().take();
        if let (ConsumeOutcome::Consumed(_), Some(code)) = (&outcome, armed) {
            let service = self.service.get().and_then(Weak::upgrade).unwrap();
            let body = form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "web"),
                ("code", &code),
                ("redirect_uri", WEB_REDIRECT),
                ("code_verifier", VERIFIER),
            ]);
            let replay = service.token(None, &body).await;
            *self.replay.lock().unwrap() = Some(replay);
        }
        Ok(outcome)
    }
    async fn revoke_token_id(&self, id: &str, until: Timestamp, now: Timestamp) -> Result<(), StoreError> {
        self.inner.revoke_token_id(id, until, now).await
    }
    async fn any_revoked(&self, ids: &[&str], now: Timestamp) -> Result<bool, StoreError> {
        self.inner.any_revoked(ids, now).await
    }
    async fn create_login_session(&self, d: &CodeDigest, s: &LoginSession) -> Result<(), StoreError> {
        self.inner.create_login_session(d, s).await
    }
    async fn login_session(&self, d: &CodeDigest, now: Timestamp) -> Result<Option<LoginSession>, StoreError> {
        self.inner.login_session(d, now).await
    }
    async fn end_login_session(&self, d: &CodeDigest) -> Result<bool, StoreError> {
        self.inner.end_login_session(d).await
    }
}

#[tokio::test]
async fn a_replay_racing_the_first_exchange_leaves_no_usable_token() {
    let store = Arc::new(ReplayMidExchange {
        inner: MemoryOidcStore::new(),
        service: OnceLock::new(),
        code: Mutex::new(None),
        replay: Mutex::new(None),
    });
    let p = provider_with_store(store.clone()).await;
    store.service.set(Arc::downgrade(&p.oidc)).ok();
    let (_, login, _) = p.sign_in(7).await;
    let q = p.code("web", WEB_REDIRECT, "openid offline_access", &login, &[]).await;
    *store.code.lock().unwrap() = Some(q["code"].clone());
    let first = p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await;
    let replay = store.replay.lock().unwrap().take().expect("the replay ran inside the first exchange");
    assert_eq!(refused(replay).code, TokenErrorCode::InvalidGrant);
    assert_eq!(refused(first).code, TokenErrorCode::InvalidGrant, "the first use issues nothing either");
}

#[tokio::test]
async fn refresh_rotates_keeps_auth_time_and_detects_reuse() {
    let p = provider().await;
    let (user, tokens) = p.grant(8, "openid phone offline_access").await;
    let (_, first_claims) = p.verify_as_relying_party(tokens.id_token.as_deref().unwrap(), "web").await;
    p.advance(Duration::from_secs(600));
    let r1 = tokens.refresh_token.clone().unwrap();
    let refreshed = p.refresh(&public("web"), &r1, None).await.unwrap();
    let r2 = refreshed.refresh_token.clone().unwrap();
    assert_ne!(r1, r2, "rotated");
    assert_eq!(refreshed.scope, "openid phone offline_access");
    let (_, claims) = p.verify_as_relying_party(refreshed.id_token.as_deref().unwrap(), "web").await;
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["auth_time"], first_claims["auth_time"], "the original authentication (Core §12.2)");
    assert_eq!(claims["iat"], p.now_secs());
    assert!(claims.get("nonce").is_none(), "no nonce in a refreshed ID token");
    assert_eq!(claims["at_hash"], at_hash(&refreshed.access_token));
    assert_eq!(claims["phone_number"], "+14155550008");

    // Within the grace the same refresh token gets the same successor (a lost answer).
    let again = p.refresh(&public("web"), &r1, None).await.unwrap();
    assert_eq!(again.refresh_token.as_deref(), Some(r2.as_str()));
    // Past it, reuse revokes the chain and the grant's access tokens.
    p.advance(Duration::from_secs(11));
    assert_eq!(refused(p.refresh(&public("web"), &r1, None).await).code, TokenErrorCode::InvalidGrant);
    assert_eq!(refused(p.refresh(&public("web"), &r2, None).await).code, TokenErrorCode::InvalidGrant);
    assert!(p.oidc.userinfo(Some(&refreshed.access_token)).await.is_err());
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client_and_scope() {
    let p = provider().await;
    let (_, tokens) = p.grant(9, "openid offline_access").await;
    let r = tokens.refresh_token.unwrap();
    assert_eq!(refused(p.refresh(&public("other"), &r, None).await).code, TokenErrorCode::InvalidGrant);
    assert_eq!(refused(p.refresh(&srv_basic(), &r, None).await).code, TokenErrorCode::InvalidGrant);
    assert_eq!(refused(p.refresh(&public("web"), &r, Some("openid phone")).await).code, TokenErrorCode::InvalidScope);
    // A token altered to claim the phone scope is unknown.
    let forged = r.replacen(".0.", ".1.", 1);
    assert_eq!(refused(p.refresh(&public("web"), &forged, None).await).code, TokenErrorCode::InvalidGrant);
    // The JSON API does not take it either.
    assert!(p.sessions.refresh(&r).await.is_err());
    // Narrowing is allowed; without openid there is no ID token, and UserInfo says so.
    let narrow = p.refresh(&public("web"), &r, Some("offline_access")).await.unwrap();
    assert_eq!(narrow.scope, "offline_access");
    assert!(narrow.id_token.is_none());
    assert!(matches!(
        p.oidc.userinfo(Some(&narrow.access_token)).await,
        Err(UserinfoFailure::Refused(BearerError::InsufficientScope))
    ));
    // The refresh token keeps the whole grant.
    let full = p.refresh(&public("web"), narrow.refresh_token.as_deref().unwrap(), None).await.unwrap();
    assert_eq!(full.scope, "openid offline_access");
}

#[tokio::test]
async fn confidential_clients_authenticate_with_basic_or_post() {
    let p = provider().await;
    let (_, login, _) = p.sign_in(10).await;
    for creds in [srv_basic(), srv_post()] {
        let q = p.code("srv", SRV_REDIRECT, "openid offline_access", &login, &[]).await;
        let tokens = p.exchange(&creds, &q["code"], SRV_REDIRECT, VERIFIER).await.unwrap();
        assert!(p.refresh(&creds, tokens.refresh_token.as_deref().unwrap(), None).await.is_ok());
    }
    let q = p.code("srv", SRV_REDIRECT, "openid", &login, &[]).await;
    let wrong = Creds { header: Some(basic("srv", &SECRET.replace('s', "S"))), body: vec![] };
    let e = refused(p.exchange(&wrong, &q["code"], SRV_REDIRECT, VERIFIER).await);
    assert_eq!((e.code, e.status()), (TokenErrorCode::InvalidClient, 401));
    assert_eq!(e.www_authenticate().as_deref(), Some("Basic realm=\"otpgate\""));
    // Without its secret, as if it were public.
    assert_eq!(
        refused(p.exchange(&public("srv"), &q["code"], SRV_REDIRECT, VERIFIER).await).code,
        TokenErrorCode::InvalidClient
    );
    // The failed authentications did not spend the code.
    assert!(p.exchange(&srv_basic(), &q["code"], SRV_REDIRECT, VERIFIER).await.is_ok());
    // A public client presenting a secret is refused.
    let q = p.code("web", WEB_REDIRECT, "openid", &login, &[]).await;
    let with_secret = Creds { header: None, body: vec![("client_id", "web".into()), ("client_secret", SECRET.into())] };
    assert_eq!(
        refused(p.exchange(&with_secret, &q["code"], WEB_REDIRECT, VERIFIER).await).code,
        TokenErrorCode::InvalidClient
    );
}

#[tokio::test]
async fn unsupported_grants_and_malformed_requests() {
    let p = provider().await;
    let token = |body: &[(&str, &str)]| {
        let oidc = p.oidc.clone();
        let body = form(body);
        async move { refused(oidc.token(None, &body).await).code }
    };
    assert_eq!(token(&[("client_id", "web")]).await, TokenErrorCode::InvalidRequest);
    assert_eq!(token(&[("client_id", "web"), ("grant_type", "password")]).await, TokenErrorCode::UnsupportedGrantType);
    assert_eq!(
        token(&[("client_id", "web"), ("grant_type", "client_credentials")]).await,
        TokenErrorCode::UnsupportedGrantType
    );
    assert_eq!(
        token(&[("client_id", "web"), ("grant_type", "authorization_code")]).await,
        TokenErrorCode::InvalidRequest
    );
    assert_eq!(token(&[("grant_type", "authorization_code")]).await, TokenErrorCode::InvalidClient);
    assert_eq!(token(&[("client_id", "nobody"), ("grant_type", "refresh_token")]).await, TokenErrorCode::InvalidClient);
}

#[tokio::test]
async fn userinfo_refuses_anything_but_a_live_access_token_of_a_live_user() {
    let p = provider().await;
    let refused_with = |r: Result<_, UserinfoFailure>| match r {
        Err(UserinfoFailure::Refused(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused_with(p.oidc.userinfo(None).await), BearerError::Missing);
    assert_eq!(refused_with(p.oidc.userinfo(Some("junk")).await), BearerError::InvalidToken);
    let (user, tokens) = p.grant(11, "openid phone").await;
    // An ID token is no access token (other `typ`), nor is the JSON API's EdDSA token.
    assert_eq!(refused_with(p.oidc.userinfo(tokens.id_token.as_deref()).await), BearerError::InvalidToken);
    let api = p.sessions.issue_for_approved(p.approve(11).await).await.unwrap().into_parts().2;
    assert_eq!(refused_with(p.oidc.userinfo(Some(&api.access_token)).await), BearerError::InvalidToken);
    // Nor is an OIDC access token a JSON API token.
    assert!(p.sessions.me(&tokens.access_token).await.is_err());
    // A tampered token.
    let mut parts: Vec<String> = tokens.access_token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    assert_eq!(refused_with(p.oidc.userinfo(Some(&parts.join("."))).await), BearerError::InvalidToken);
    // Expired.
    p.advance(Duration::from_secs(899));
    assert!(p.oidc.userinfo(Some(&tokens.access_token)).await.is_ok());
    p.advance(Duration::from_secs(1));
    assert_eq!(refused_with(p.oidc.userinfo(Some(&tokens.access_token)).await), BearerError::InvalidToken);
    // An erased user's token stops at once.
    let (_, fresh) = p.grant(11, "openid").await;
    p.store.delete_user(&user.id).await.unwrap();
    assert_eq!(refused_with(p.oidc.userinfo(Some(&fresh.access_token)).await), BearerError::InvalidToken);
    assert_eq!(BearerError::InvalidToken.status(), 401);
    assert!(BearerError::InvalidToken.www_authenticate().contains("error=\"invalid_token\""));
    assert_eq!(BearerError::Missing.www_authenticate(), "Bearer realm=\"otpgate\"");
    assert_eq!(BearerError::InsufficientScope.status(), 403);
}

#[tokio::test]
async fn tokens_signed_before_a_key_rotation_stay_valid() {
    let p = provider().await;
    let (_, tokens) = p.grant(12, "openid offline_access").await;
    let mut rotated = p.keys.clone();
    rotated.rotate().unwrap();
    p.sessions.replace_keys(rotated.clone());
    assert!(p.oidc.userinfo(Some(&tokens.access_token)).await.is_ok());
    p.verify_as_relying_party(tokens.id_token.as_deref().unwrap(), "web").await;
    let refreshed = p.refresh(&public("web"), tokens.refresh_token.as_deref().unwrap(), None).await.unwrap();
    let (header, _) = p.verify_as_relying_party(refreshed.id_token.as_deref().unwrap(), "web").await;
    assert_eq!(header["kid"], rotated.rsa_current().unwrap().kid(), "new tokens use the new key");
}

#[tokio::test]
async fn login_sessions_give_single_sign_on_until_they_end() {
    let p = provider().await;
    let (user, _, cookie) = p.sign_in(13).await;
    let params = form(&[
        ("client_id", "web"),
        ("redirect_uri", WEB_REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("prompt", "none"),
        ("state", "s1"),
    ]);
    let request = p.oidc.authorize(&params).unwrap();
    let login = p.oidc.login_session(Some(&cookie)).await.unwrap().expect("a live session");
    assert_eq!(login.user(), &user);
    assert_eq!(p.oidc.decide(&request, Some(&login)), Decision::Issue);
    let q = query(&p.oidc.issue_code(&request, &login).await.unwrap());
    assert!(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await.is_ok());

    for junk in [None, Some(""), Some("ls_short"), Some(&format!("ls_{}", "x".repeat(32)))] {
        assert_eq!(p.oidc.login_session(junk).await.unwrap(), None);
    }
    p.advance(Duration::from_secs(12 * 3600 - 1));
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_some());
    p.advance(Duration::from_secs(1));
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_none(), "login_session_hours = 12");
    let Decision::Refuse(e) = p.oidc.decide(&request, None) else { panic!("prompt=none without a session") };
    let q = query(&e.location());
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("login_required", "s1"));

    let (_, _, cookie) = p.sign_in(14).await;
    assert!(p.oidc.end_login_session(&cookie).await.unwrap());
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_none());
    // A session whose user was erased is no session.
    let (user, _, cookie) = p.sign_in(15).await;
    p.store.delete_user(&user.id).await.unwrap();
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_none());
}

#[tokio::test]
async fn a_code_for_a_user_erased_before_the_exchange_issues_nothing() {
    let p = provider().await;
    let (user, login, _) = p.sign_in(16).await;
    let q = p.code("web", WEB_REDIRECT, "openid offline_access", &login, &[]).await;
    p.store.delete_user(&user.id).await.unwrap();
    assert_eq!(
        refused(p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await).code,
        TokenErrorCode::InvalidGrant
    );
    assert!(p.sessions.find_user(&user.id).await.unwrap().is_none());
}

#[tokio::test]
async fn discovery_and_the_jwks_agree() {
    let p = provider().await;
    let doc = serde_json::to_value(p.oidc.metadata()).unwrap();
    assert_eq!(doc["issuer"], ISSUER);
    let jwks = serde_json::to_value(p.sessions.current_jwks().await).unwrap();
    let rsa: Vec<_> = jwks["keys"].as_array().unwrap().iter().filter(|k| k["kty"] == "RSA").collect();
    assert_eq!(rsa.len(), 1);
    assert_eq!(rsa[0]["kid"], p.keys.rsa_current().unwrap().kid());
    assert!(p.oidc.check_keys().is_ok());
}
