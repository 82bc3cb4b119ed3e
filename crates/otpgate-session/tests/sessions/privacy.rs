//! What is kept and what goes: erasure stops a user's tokens at once, refresh tokens are stored
//! only as digests, and a session's `Debug` shows no token.

use otpgate_core::{Channel, Clock, CodeHasher, Verifications};
use otpgate_session::{Session, SessionError};

use crate::harness::*;

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
