//! Region policy and non-geographic numbers refused before the provider, and the conversion
//! tripwire.

use super::*;

#[tokio::test]
async fn region_policy_refuses_before_the_provider() {
    let (app, provider) = app_with(|c| c.regions.deny = vec!["GB".parse().unwrap()]).await;
    let r = app.send("+447400123456").await;
    assert_eq!((r.status, r.error_code().as_str()), (422, "unsupported_region"));
    let premium = app.send("+19002345678").await;
    assert_eq!(premium.error_code(), "unsupported_region", "premium-rate numbers are refused by default");
    let toll_free = app.send("+18002345678").await;
    assert_eq!(toll_free.error_code(), "unsupported_region");
    assert_eq!(provider.calls(), 0);
    assert_eq!(app.send(&us(600)).await.status, 201);

    let (app, provider) = app_with(|c| c.regions.allow = Some(vec!["GB".parse().unwrap()])).await;
    assert_eq!(app.send(&us(601)).await.error_code(), "unsupported_region");
    assert_eq!(app.send("+447400123456").await.status, 201);
    assert_eq!(provider.calls(), 1);
}

#[tokio::test]
async fn non_geographic_numbers_are_refused_by_default_before_any_limit_or_provider() {
    // Satellite (+881 Iridium, +870 Inmarsat) and international networks (+882, +883): the
    // numbering plan calls most of them mobile, with region `001`.
    let non_geographic = ["+881612345678", "+870301234567", "+8823421234", "+883510012345"];
    // One send allowed per hour, per IP and over all: a refused send must not use them up.
    let (app, provider) = app_with(|c| {
        c.limits.global_send_hourly.count = 1;
        c.limits.ip_send_hourly.count = 1;
    })
    .await;
    for number in non_geographic {
        for _ in 0..3 {
            let r = app.send(number).await;
            assert_eq!((r.status, r.error_code().as_str()), (422, "unsupported_region"), "{number}: {}", r.text);
        }
    }
    assert_eq!(provider.calls(), 0);
    assert_eq!(app.send(&us(610)).await.status, 201, "the limits were not touched by the refused sends");
    assert_eq!(app.send(&us(611)).await.error_code(), "rate_limited", "and they do count real sends");

    // An operator who wants them lists the kinds to refuse without `non_geographic`.
    let (app, provider) = app_with(|c| c.regions.refused_kinds = vec!["premium_rate".parse().unwrap()]).await;
    assert_eq!(app.send(non_geographic[0]).await.status, 201);
    assert_eq!(provider.calls(), 1);
}

#[tokio::test]
async fn a_pumping_run_trips_the_tripwire_and_a_normal_one_does_not() {
    // Pumping: many sends to one country, no approvals.
    let (app, provider) = app_with(tripwire_on).await;
    let mut statuses = Vec::new();
    for i in 0..40 {
        statuses.push(app.send(&format!("+44740012{:04}", 4000 + i)).await);
    }
    let accepted = statuses.iter().filter(|r| r.status == 201).count();
    assert_eq!(accepted, 22, "20 sends to reach the minimum volume, then the trickle of 2");
    let last = statuses.last().unwrap();
    assert_eq!((last.status, last.error_code().as_str()), (429, "rate_limited"));
    assert_eq!(provider.calls(), 22);
    // Other countries are not affected.
    assert_eq!(app.send(&us(700)).await.status, 201);

    // A normal run: about 70% of codes are approved.
    let (app, provider) = app_with(tripwire_on).await;
    for i in 0..40 {
        let phone = us(800 + i);
        assert_eq!(app.send(&phone).await.status, 201, "send {i}");
        if i % 10 < 7 {
            assert_eq!(app.check(&phone, &provider.last_code()).await.status, 200);
        }
    }
    assert_eq!(provider.calls(), 40);
}
