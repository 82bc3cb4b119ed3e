//! Access tokens: they verify against the published JWKS independently, forged and
//! out-of-bounds ones are refused, they expire, and session errors map to the domain's.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use otpgate_core::{Channel, Clock, OtpError, StoreError};
use otpgate_session::{
    KeyRing, SessionError, VerifyError, VerifyingKeys, verify_access_token, verify_access_token_with_leeway,
};
use serde_json::json;

use crate::harness::*;

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

#[test]
fn session_errors_map_to_the_domain_error() {
    assert!(matches!(OtpError::from(SessionError::Unauthorized), OtpError::Unauthorized));
    assert!(matches!(
        OtpError::from(SessionError::from(StoreError::Unavailable("down".into()))),
        OtpError::StoreUnavailable(_)
    ));
    assert!(matches!(OtpError::from(SessionError::Internal("bug".into())), OtpError::Internal(_)));
}
