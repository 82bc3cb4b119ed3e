//! RP-initiated logout: the hint, the exact post-logout redirect URI, `state`, and the end of the
//! login session.

use std::time::Duration;

use otpgate_oidc::{LogoutError, LogoutFailure, LogoutOutcome};
use otpgate_session::KeyRing;

use crate::harness::*;

fn refused(result: Result<LogoutOutcome, LogoutFailure>) -> LogoutError {
    match result {
        Err(LogoutFailure::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_logout_with_the_id_token_hint_ends_the_session_and_redirects_exactly() {
    let counters = Counters::default();
    let _recorder = metrics::set_default_local_recorder(&counters);
    let p = provider().await;
    let (_, login, cookie) = p.sign_in(30).await;
    let q = p.code("web", WEB_REDIRECT, "openid", &login, &[]).await;
    let tokens = p.exchange(&public("web"), &q["code"], WEB_REDIRECT, VERIFIER).await.unwrap();
    let hint = tokens.id_token.unwrap();
    // An expired hint still names the app and the user (RP-Initiated Logout §2).
    p.advance(Duration::from_secs(3600));
    let params = form(&[
        ("id_token_hint", &hint),
        ("post_logout_redirect_uri", "https://app.example.com/"),
        ("state", "bye 1&2"),
    ]);
    let outcome = p.oidc.logout(&params, Some(&cookie), false).await.unwrap();
    let LogoutOutcome::SignedOut { redirect: Some(redirect) } = outcome else { panic!("{outcome:?}") };
    assert!(redirect.starts_with("https://app.example.com/?"), "{redirect}");
    assert_eq!(query(&redirect)["state"], "bye 1&2");
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_none(), "the login session is over");
    assert_eq!(counters.get("oidc.logout", "signed_out", "web"), 1, "the client the hint names");

    // Without a redirect URI: signed out, and otpgate shows the page.
    let (_, _, cookie) = p.sign_in(30).await;
    let outcome = p.oidc.logout(&form(&[("id_token_hint", &hint)]), Some(&cookie), false).await.unwrap();
    assert_eq!(outcome, LogoutOutcome::SignedOut { redirect: None });
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_none());
}

#[tokio::test]
async fn without_proof_of_the_app_the_user_confirms_first() {
    let p = provider().await;
    let (_, _, cookie) = p.sign_in(31).await;
    let params =
        form(&[("client_id", "web"), ("post_logout_redirect_uri", "https://app.example.com/"), ("state", "s")]);
    let outcome = p.oidc.logout(&params, Some(&cookie), false).await.unwrap();
    assert_eq!(outcome, LogoutOutcome::Confirm { client_name: Some("The web app".into()) });
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_some(), "nothing ended before the confirmation");
    let outcome = p.oidc.logout(&params, Some(&cookie), true).await.unwrap();
    assert_eq!(outcome, LogoutOutcome::SignedOut { redirect: Some("https://app.example.com/?state=s".into()) });
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_none());

    // A hint of another user than the signed-in one: confirm too.
    let (_, other_tokens) = p.grant(32, "openid").await;
    let (_, _, cookie) = p.sign_in(33).await;
    let params = form(&[("id_token_hint", other_tokens.id_token.as_deref().unwrap())]);
    assert!(matches!(p.oidc.logout(&params, Some(&cookie), false).await.unwrap(), LogoutOutcome::Confirm { .. }));
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_some());
}

#[tokio::test]
async fn bad_hints_and_unregistered_redirects_are_refused_on_the_page() {
    let p = provider().await;
    let (_, tokens) = p.grant(34, "openid").await;
    let hint = tokens.id_token.unwrap();
    let (_, _, cookie) = p.sign_in(34).await;
    let logout = |pairs: Vec<(&'static str, String)>| {
        let oidc = p.oidc.clone();
        let cookie = cookie.clone();
        async move { oidc.logout(&otpgate_oidc::Params::from_pairs(pairs), Some(&cookie), true).await }
    };
    for uri in [
        "https://evil.example/",
        "https://app.example.com",
        "https://app.example.com/?x=1",
        "https://app.example.com/#f",
    ] {
        let e = refused(logout(vec![("id_token_hint", hint.clone()), ("post_logout_redirect_uri", uri.into())]).await);
        assert_eq!(e, LogoutError::UnregisteredPostLogoutRedirectUri, "{uri}");
    }
    let e = refused(logout(vec![("post_logout_redirect_uri", "https://app.example.com/".into())]).await);
    assert_eq!(e, LogoutError::RedirectWithoutClient);
    let e = refused(logout(vec![("id_token_hint", hint.clone()), ("client_id", "other".into())]).await);
    assert_eq!(e, LogoutError::ClientMismatch);
    let e = refused(logout(vec![("client_id", "nobody".into())]).await);
    assert_eq!(e, LogoutError::UnknownClient);
    // Not an ID token of ours: garbage, an access token, one signed by a stranger's key.
    let stranger = KeyRing::generate_with_rsa().unwrap();
    let mut claims = crate::harness::decode_part(&hint, 1);
    claims["sub"] = "usr_someoneelse0000000".into();
    let forged = stranger.sign_rs256("JWT", &claims).unwrap();
    for bad in ["junk".to_owned(), tokens.access_token.clone(), forged] {
        assert_eq!(refused(logout(vec![("id_token_hint", bad)]).await), LogoutError::InvalidIdTokenHint);
    }
    assert!(p.oidc.login_session(Some(&cookie)).await.unwrap().is_some(), "no refusal ended the session");
}
