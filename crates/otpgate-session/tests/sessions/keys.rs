//! Signing keys: rotation keeps issued tokens valid, instances sharing a store publish and accept
//! each other's keys (Ed25519 and RSA) only under the HMAC key.

use std::time::Duration;

use otpgate_core::Channel;
use otpgate_session::{KeyRing, SessionError};
use serde_json::{Value, json};

use crate::harness::*;

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

#[tokio::test]
async fn signing_rs256_without_an_rsa_key_is_an_internal_error() {
    let h = harness().await;
    assert!(!h.service.can_sign_rs256());
    assert!(matches!(h.service.sign_rs256("JWT", &json!({})).await, Err(SessionError::Internal(_))));
}
