//! Bound refresh tokens (OpenID Connect grants): rotation and reuse within their binding, family
//! revocation, and no family stored for an erased user.

use std::time::Duration;

use otpgate_core::{Channel, SessionStore};
use otpgate_session::{BoundRefresh, RefreshBinding, SessionError};

use crate::harness::*;

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
