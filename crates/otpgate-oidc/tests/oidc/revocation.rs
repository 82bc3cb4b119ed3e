//! Token revocation (RFC 7009): 200 for anything once the client is authenticated; a refresh
//! token revokes its grant, an access token itself; other clients' tokens are left alone.

use otpgate_oidc::{BearerError, Params, TokenErrorCode, TokenFailure, UserinfoFailure};

use crate::harness::*;

async fn revoke(p: &Provider, creds: &Creds, token: &str, hint: Option<&str>) -> Result<(), TokenFailure> {
    let mut body: Vec<(&str, String)> = vec![("token", token.into())];
    if let Some(hint) = hint {
        body.push(("token_type_hint", hint.into()));
    }
    body.extend(creds.body.iter().cloned());
    p.oidc.revoke(creds.header.as_deref(), &Params::from_pairs(body)).await
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_grant() {
    let p = provider().await;
    let (_, tokens) = p.grant(40, "openid offline_access").await;
    let refresh = tokens.refresh_token.clone().unwrap();
    // Another client revoking it: 200, and nothing happens.
    revoke(&p, &public("other"), &refresh, Some("refresh_token")).await.unwrap();
    let rotated = p.refresh(&public("web"), &refresh, None).await.unwrap();
    let refresh = rotated.refresh_token.clone().unwrap();
    // The owner revokes it (with a wrong hint: both kinds are tried).
    revoke(&p, &public("web"), &refresh, Some("access_token")).await.unwrap();
    assert_eq!(refused(p.refresh(&public("web"), &refresh, None).await).code, TokenErrorCode::InvalidGrant);
    for access in [&tokens.access_token, &rotated.access_token] {
        assert!(matches!(
            p.oidc.userinfo(Some(access)).await,
            Err(UserinfoFailure::Refused(BearerError::InvalidToken))
        ));
    }
}

#[tokio::test]
async fn revoking_an_access_token_ends_only_that_token() {
    let p = provider().await;
    let (_, tokens) = p.grant(41, "openid offline_access").await;
    revoke(&p, &public("other"), &tokens.access_token, None).await.unwrap();
    assert!(p.oidc.userinfo(Some(&tokens.access_token)).await.is_ok(), "not the other client's to revoke");
    revoke(&p, &public("web"), &tokens.access_token, None).await.unwrap();
    assert!(p.oidc.userinfo(Some(&tokens.access_token)).await.is_err());
    let refreshed = p.refresh(&public("web"), tokens.refresh_token.as_deref().unwrap(), None).await.unwrap();
    assert!(p.oidc.userinfo(Some(&refreshed.access_token)).await.is_ok(), "the grant lives on");
}

#[tokio::test]
async fn unknown_tokens_are_fine_but_the_client_must_authenticate() {
    let p = provider().await;
    for junk in ["junk", "ort_x", "rt_abcdefghijklmnopqrstuvwxyz012345", "a.b.c"] {
        revoke(&p, &public("web"), junk, None).await.unwrap();
    }
    revoke(&p, &srv_basic(), "junk", None).await.unwrap();
    let wrong = Creds { header: Some(basic("srv", "wrong-secret-wrong-secret-wrong-secret")), body: vec![] };
    let e = refused(revoke(&p, &wrong, "junk", None).await.map(|_| unreachable_response()));
    assert_eq!((e.code, e.status()), (TokenErrorCode::InvalidClient, 401));
    let e = refused(p.oidc.revoke(None, &form(&[("client_id", "web")])).await.map(|_| unreachable_response()));
    assert_eq!(e.code, TokenErrorCode::InvalidRequest);
}

fn unreachable_response() -> otpgate_oidc::TokenResponse {
    panic!("revocation succeeded where it must not")
}
