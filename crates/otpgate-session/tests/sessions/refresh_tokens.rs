//! Refresh tokens: rotation, reuse detection that revokes the chain, the reuse grace under
//! concurrent refreshes, and malformed or revoked tokens.

use std::time::Duration;

use otpgate_core::Channel;
use otpgate_session::{SessionConfig, SessionError};
use serde_json::json;
use tokio::task::JoinSet;

use crate::harness::*;

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
