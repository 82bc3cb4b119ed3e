//! Every send and check limit: 429 with Retry-After before any provider call, reset when the
//! clock moves; failed checks per phone and per IP; a sequential sweep from one address.

use std::time::Duration;

use crate::common::*;
use otpgate_server::Config;
use serde_json::json;

use super::*;

#[tokio::test]
async fn every_send_limit_refuses_with_retry_after_before_the_provider_and_resets() {
    type Pick = fn(&mut Config) -> &mut otpgate_server::config::RateConfig;
    type PhoneFor = fn(u32) -> String;
    // Each limit at 2 per 60 s; phones chosen so only that limit can bite.
    let cases: Vec<(&str, Pick, PhoneFor)> = vec![
        ("phone_send", |c| &mut c.limits.phone_send, |_| us(1)),
        ("phone_send_hourly", |c| &mut c.limits.phone_send_hourly, |_| us(1)),
        ("phone_send_daily", |c| &mut c.limits.phone_send_daily, |_| us(1)),
        ("ip_send", |c| &mut c.limits.ip_send, |i| format!("+1212555{:04}", 100 + i)),
        ("ip_send_hourly", |c| &mut c.limits.ip_send_hourly, |i| format!("+1312555{:04}", 100 + i)),
        ("prefix_send", |c| &mut c.limits.prefix_send, |i| us(100 + i)),
        ("country_send", |c| &mut c.limits.country_send, |i| format!("+1646555{:04}", 100 + i)),
        ("global_send_hourly", |c| &mut c.limits.global_send_hourly, |i| format!("+44740012{:04}", 3000 + i)),
        ("global_send_daily", |c| &mut c.limits.global_send_daily, |i| format!("+1718555{:04}", 100 + i)),
    ];
    for (name, pick, phone_for) in cases {
        let (app, provider) = app_with(|c| {
            let rate = pick(c);
            rate.count = 2;
            rate.period_secs = 60;
        })
        .await;
        for i in 0..2 {
            let r = send_and_cancel(&app, &phone_for(i)).await;
            assert_eq!(r.status, 201, "{name}: {}", r.text);
        }
        let limited = send_and_cancel(&app, &phone_for(2)).await;
        assert_eq!((limited.status, limited.error_code().as_str()), (429, "rate_limited"), "{name}");
        assert_eq!(limited.header("retry-after").as_deref(), Some("30"), "{name}");
        assert_eq!(limited.json()["error"]["retry_after"], 30, "{name}");
        assert_eq!(provider.calls(), 2, "{name}: the refused send never reached the provider");
        app.advance(Duration::from_secs(29));
        assert_eq!(send_and_cancel(&app, &phone_for(3)).await.status, 429, "{name}: not before Retry-After");
        app.advance(Duration::from_secs(1));
        assert_eq!(
            send_and_cancel(&app, &phone_for(4)).await.status,
            201,
            "{name}: resets when the clock moves past it"
        );
    }
}

#[tokio::test]
async fn failed_checks_per_phone_accumulate_across_verifications_and_a_success_resets_them() {
    let (app, provider) = app_with(|c| {
        c.limits.phone_check_failures.count = 3;
        c.limits.phone_check_failures.period_secs = 3600;
    })
    .await;
    let phone = us(20);
    let id = app.send(&phone).await.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(app.check(&phone, "000001").await.error_code(), "invalid_code");
    assert_eq!(app.check(&phone, "000002").await.error_code(), "invalid_code");
    // Start over: a new verification does not wipe the phone's failures.
    app.request(app.client.delete(app.url(&format!("/v1/verifications/{id}")))).await;
    let fresh = app.send(&phone).await;
    assert_eq!(fresh.status, 201, "{}", fresh.text);
    assert_eq!(fresh.json()["attempts_left"], 5, "a new verification");
    assert_eq!(app.check(&phone, "000003").await.error_code(), "invalid_code");
    let locked = app.check(&phone, &provider.last_code()).await;
    assert_eq!((locked.status, locked.error_code().as_str()), (429, "rate_limited"), "locked, even for the right code");
    assert_eq!(locked.header("retry-after").as_deref(), Some("1200"), "one attempt returns after 20 minutes");

    // A success clears the count.
    app.advance(Duration::from_secs(1200));
    assert_eq!(app.send(&phone).await.status, 201, "the old code expired meanwhile");
    assert_eq!(app.check(&phone, &provider.last_code()).await.status, 200);
    app.advance(Duration::from_secs(60));
    app.send(&phone).await;
    for guess in ["000004", "000005", "000006"] {
        assert_eq!(app.check(&phone, guess).await.error_code(), "invalid_code", "a fresh allowance after the success");
    }
}

/// A check from its own client address (a trusted proxy in front of every test request).
async fn check_from(app: &TestApp, phone: &str, code: &str, client: &str) -> Reply {
    let req = app
        .client
        .post(app.url("/v1/verifications/check"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", client)
        .body(json!({ "phone": phone, "code": code }).to_string());
    app.request(req).await
}

#[tokio::test]
async fn a_stranger_cannot_lock_a_phone_without_a_live_verification() {
    // Default check limits: 20 failed checks per phone per hour, 30 checks per IP per minute.
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(
        |c| {
            c.http.trusted_proxies = otpgate_server::client_ip::TrustedProxies::parse(&["127.0.0.1"]).unwrap();
            // The phone's doubling resend cooldown would refuse the sends every 20 s below; it is
            // not what this test is about.
            c.codes.resend_cooldown_secs = 0;
        },
        with_provider(provider.clone()),
    )
    .await;
    let victim = us(40);
    // Many wrong checks from many addresses while the victim has no verification...
    for i in 0..40 {
        let r = check_from(&app, &victim, &format!("{:06}", 100_000 + i), &format!("198.51.100.{}", i % 4)).await;
        assert_eq!(r.error_code(), "verification_not_found", "{}", r.text);
    }
    // ...and after it died: 5 wrong codes kill it (those count), the rest compare nothing.
    assert_eq!(app.send(&victim).await.status, 201);
    for i in 0..30 {
        let r = check_from(&app, &victim, &format!("{:06}", 200_000 + i), &format!("203.0.113.{}", i % 3)).await;
        let expected = match i {
            0..4 => "invalid_code",
            _ => "too_many_attempts",
        };
        assert_eq!(r.error_code(), expected, "check {i}: {}", r.text);
    }
    app.advance(Duration::from_secs(120));
    assert_eq!(app.send(&victim).await.status, 201);
    let right = check_from(&app, &victim, &provider.last_code(), "192.0.2.1").await;
    assert_eq!(right.status, 200, "the victim signs in: {}", right.text);

    // Compared wrong codes still lock the phone, across verifications: 4 × 5 within 80 s.
    for round in 0..4 {
        app.advance(Duration::from_secs(20));
        assert_eq!(app.send(&victim).await.status, 201, "round {round}");
        for i in 0..5 {
            check_from(&app, &victim, &format!("{:06}", 300_000 + i), "192.0.2.2").await;
        }
    }
    app.advance(Duration::from_secs(20));
    assert_eq!(app.send(&victim).await.status, 201);
    let locked = check_from(&app, &victim, &provider.last_code(), "192.0.2.3").await;
    assert_eq!((locked.status, locked.error_code().as_str()), (429, "rate_limited"), "20 compared wrong codes lock it");
}

#[tokio::test]
async fn the_per_ip_check_limit_counts_every_check() {
    let (app, _) = app_with(|c| {
        c.limits.ip_check.count = 3;
        c.limits.ip_check.period_secs = 60;
    })
    .await;
    for i in 0..3 {
        assert_eq!(app.check(&us(50 + i), "000000").await.error_code(), "verification_not_found");
    }
    let r = app.check(&us(53), "000000").await;
    assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"), "checks finding nothing count too");
}

#[tokio::test]
async fn checks_per_ip_stop_one_client_guessing_across_many_phones() {
    let (app, _) = app_with(|c| {
        c.limits.ip_check.count = 3;
        c.limits.ip_check.period_secs = 60;
    })
    .await;
    for i in 0..3 {
        app.send(&us(30 + i)).await;
        assert_eq!(app.check(&us(30 + i), "000000").await.error_code(), "invalid_code");
    }
    app.send(&us(33)).await;
    let r = app.check(&us(33), "000000").await;
    assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"));
    assert_eq!(r.header("retry-after").as_deref(), Some("20"));
}

#[tokio::test]
async fn a_sequential_sweep_from_one_ip_trips_the_ip_and_prefix_limits() {
    // Default limits: the per-IP limit (10/min) stops the sweep first.
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(|_| {}, with_provider(provider.clone())).await;
    let mut accepted = 0;
    for i in 0..200 {
        let r = app.send(&us(1000 + i)).await;
        match r.status {
            201 => accepted += 1,
            429 => assert_eq!(r.error_code(), "rate_limited"),
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(accepted, 10, "the per-IP burst");
    assert_eq!(provider.calls(), 10);

    // With the IP limits off, the prefix limit (20/hour) stops the same sweep.
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(
        |c| {
            c.limits.ip_send.count = 0;
            c.limits.ip_send_hourly.count = 0;
        },
        with_provider(provider.clone()),
    )
    .await;
    let statuses: Vec<u16> = futures_statuses(&app, (0..200).map(|i| us(2000 + i)).collect()).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 20, "the per-prefix limit");
    assert_eq!(provider.calls(), 20);
}

async fn futures_statuses(app: &TestApp, phones: Vec<String>) -> Vec<u16> {
    let mut out = Vec::new();
    for p in phones {
        out.push(app.send(&p).await.status);
    }
    out
}
