//! Abuse and cost defenses over HTTP: every send and check limit (429 + Retry-After, no provider
//! call, reset when the clock moves), client IPs behind trusted and untrusted proxies, sequential
//! sweeps, region policy, the conversion tripwire and the bot check.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use otpgate_server::Config;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn app_with(configure: impl FnOnce(&mut Config)) -> (TestApp, Arc<FakeProvider>) {
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(
        |c| {
            no_limits(c);
            // The resend cooldown is not a limit these tests are about (and a cancel no longer
            // lifts it): off, unless a test sets it.
            c.codes.resend_cooldown_secs = 0;
            configure(c);
        },
        with_provider(provider.clone()),
    )
    .await;
    (app, provider)
}

/// Sends, then cancels at once so the phone's live verification never interferes.
async fn send_and_cancel(app: &TestApp, phone: &str) -> Reply {
    let r = app.send(phone).await;
    if r.status == 201 {
        let id = r.json()["id"].as_str().unwrap().to_owned();
        app.request(app.client.delete(app.url(&format!("/v1/verifications/{id}")))).await;
    }
    r
}

fn us(n: u32) -> String {
    format!("+1415555{:04}", n)
}

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
            c.http.trusted_proxies = vec!["127.0.0.1".into()];
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

async fn send_from(app: &TestApp, phone: &str, forwarded_for: &str) -> u16 {
    let req = app
        .client
        .post(app.url("/v1/verifications"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", forwarded_for)
        .body(json!({ "phone": phone }).to_string());
    app.request(req).await.status
}

#[tokio::test]
async fn spoofed_forwarding_headers_earn_nothing_but_a_trusted_proxy_is_believed() {
    let ip_only = |c: &mut Config| {
        c.limits.ip_send.count = 3;
        c.limits.ip_send.period_secs = 60;
    };
    // No trusted proxies: the socket peer is the client whatever X-Forwarded-For says.
    let (app, _) = app_with(ip_only).await;
    let accepted = {
        let mut n = 0;
        for i in 0..10 {
            n += usize::from(send_from(&app, &us(300 + i), &format!("198.51.100.{i}")).await == 201);
        }
        n
    };
    assert_eq!(accepted, 3, "rotating a spoofed X-Forwarded-For earns no quota");

    // Behind a trusted proxy (127.0.0.1 here), each real client has its own quota...
    let (app, _) = app_with(|c| {
        ip_only(c);
        c.http.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    for i in 0..10 {
        assert_eq!(send_from(&app, &us(400 + i), &format!("198.51.100.{i}")).await, 201, "client {i}");
    }
    // ...and one real client is still counted as one, whatever it prepends.
    let mut accepted = 0;
    for i in 0..10 {
        accepted += usize::from(send_from(&app, &us(500 + i), &format!("10.9.9.{i}, 203.0.113.5")).await == 201);
    }
    assert_eq!(accepted, 3);
}

/// A send from the proxy at 127.0.0.1 carrying `headers` (what the proxy and the client wrote).
async fn send_with_headers(app: &TestApp, phone: &str, headers: &[(&str, String)]) -> u16 {
    let mut req = app
        .client
        .post(app.url("/v1/verifications"))
        .header("content-type", "application/json")
        .body(json!({ "phone": phone }).to_string());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    app.request(req).await.status
}

/// `ip_send` at 10 a minute, everything else off, behind a proxy at 127.0.0.1.
fn ten_per_ip_behind_a_proxy(c: &mut Config) {
    c.limits.ip_send.count = 10;
    c.limits.ip_send.period_secs = 60;
    c.http.trusted_proxies = vec!["127.0.0.1".into()];
}

#[tokio::test]
async fn a_client_sent_forwarded_header_earns_no_quota_behind_an_x_forwarded_for_proxy() {
    // The proxy appends the real client to X-Forwarded-For and passes the client's own
    // `Forwarded` through: 14 sends, each claiming another address, are still one client.
    let (app, provider) = app_with(ten_per_ip_behind_a_proxy).await;
    let mut accepted = 0;
    for n in 0..14 {
        let headers = [
            ("forwarded", format!("for=203.0.113.{n}")),
            ("x-forwarded-for", format!("198.51.100.{n}, 192.0.2.10")),
            ("x-real-ip", format!("203.0.113.{n}")),
        ];
        accepted += usize::from(send_with_headers(&app, &us(600 + n), &headers).await == 201);
    }
    assert_eq!(accepted, 10, "ip_send allows 10 per client");
    assert_eq!(provider.calls(), 10);
}

#[tokio::test]
async fn the_configured_client_ip_header_is_the_only_one_read() {
    use otpgate_server::client_ip::ClientIpHeader;
    for (header, name) in [(ClientIpHeader::Forwarded, "forwarded"), (ClientIpHeader::XRealIp, "x-real-ip")] {
        let (app, _) = app_with(|c| {
            ten_per_ip_behind_a_proxy(c);
            c.http.client_ip_header = header;
        })
        .await;
        let real = |n: u32| match header {
            ClientIpHeader::Forwarded => format!(r#"for="[2001:db8:{n}::1]:4711";proto=https"#),
            _ => format!("198.51.100.{n}"),
        };
        // Twelve clients, each with its own address in the configured header, each sending
        // once: all through, whatever the other headers say.
        for n in 0..12 {
            let headers = [(name, real(n)), ("x-forwarded-for", "192.0.2.10".to_owned())];
            assert_eq!(send_with_headers(&app, &us(700 + n), &headers).await, 201, "{name}: client {n}");
        }
        // One client rotating the headers it does not control stays one client.
        let mut accepted = 0;
        for n in 0..12 {
            let headers = [(name, real(99)), ("x-forwarded-for", format!("192.0.2.{n}"))];
            let forwarded = ("forwarded", format!("for=192.0.2.{n}"));
            let headers: Vec<_> =
                headers.into_iter().chain((header != ClientIpHeader::Forwarded).then_some(forwarded)).collect();
            accepted += usize::from(send_with_headers(&app, &us(800 + n), &headers).await == 201);
        }
        assert_eq!(accepted, 10, "{name}");
    }
}

#[tokio::test]
async fn an_ipv6_slash_64_is_one_client_and_two_are_two() {
    let (app, provider) = app_with(ten_per_ip_behind_a_proxy).await;
    let mut accepted = 0;
    for n in 1..=15 {
        let xff = [("x-forwarded-for", format!("2001:db8:1:2::{n:x}"))];
        accepted += usize::from(send_with_headers(&app, &us(900 + n), &xff).await == 201);
    }
    assert_eq!(accepted, 10, "15 addresses of one /64 share one quota");
    let mut accepted = 0;
    for n in 1..=15 {
        let xff = [("x-forwarded-for", format!("2001:db8:1:3::{n:x}"))];
        accepted += usize::from(send_with_headers(&app, &us(950 + n), &xff).await == 201);
    }
    assert_eq!(accepted, 10, "another /64 has its own quota");
    // IPv4-mapped IPv6 is the IPv4 address: one client, however it is written.
    let mut accepted = 0;
    for n in 0..12 {
        let ip = if n % 2 == 0 { "198.51.100.9".to_owned() } else { "::ffff:198.51.100.9".to_owned() };
        accepted += usize::from(send_with_headers(&app, &us(1000 + n), &[("x-forwarded-for", ip)]).await == 201);
    }
    assert_eq!(accepted, 10);
    assert_eq!(provider.calls(), 30);

    // A configured /56 puts two /64s of it together.
    let (app, _) = app_with(|c| {
        ten_per_ip_behind_a_proxy(c);
        c.http.ipv6_prefix_len = otpgate_core::Ipv6Prefix::new(56).unwrap();
    })
    .await;
    let mut accepted = 0;
    for n in 1..=15 {
        let xff = [("x-forwarded-for", format!("2001:db8:1:{:x}::1", 0x200 + n))];
        accepted += usize::from(send_with_headers(&app, &us(1100 + n), &xff).await == 201);
    }
    assert_eq!(accepted, 10, "2001:db8:1:201::/64 … 2001:db8:1:20f::/64 are one /56");
}

#[tokio::test]
async fn checks_per_ip_count_an_ipv6_slash_64_as_one_client() {
    let (app, _) = app_with(|c| {
        c.limits.ip_check.count = 5;
        c.limits.ip_check.period_secs = 60;
        c.http.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let mut limited = 0;
    for n in 1..=8u32 {
        let req = app
            .client
            .post(app.url("/v1/verifications/check"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", format!("2001:db8:5:6::{n:x}"))
            .body(json!({ "phone": us(1200 + n), "code": "000000" }).to_string());
        limited += usize::from(app.request(req).await.status == 429);
    }
    assert_eq!(limited, 3, "8 checks from one /64 against ip_check 5");
}

#[tokio::test]
async fn region_policy_refuses_before_the_provider() {
    let (app, provider) = app_with(|c| c.regions.deny = vec!["GB".into()]).await;
    let r = app.send("+447400123456").await;
    assert_eq!((r.status, r.error_code().as_str()), (422, "unsupported_region"));
    let premium = app.send("+19002345678").await;
    assert_eq!(premium.error_code(), "unsupported_region", "premium-rate numbers are refused by default");
    let toll_free = app.send("+18002345678").await;
    assert_eq!(toll_free.error_code(), "unsupported_region");
    assert_eq!(provider.calls(), 0);
    assert_eq!(app.send(&us(600)).await.status, 201);

    let (app, provider) = app_with(|c| c.regions.allow = Some(vec!["GB".into()])).await;
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
    let (app, provider) = app_with(|c| c.regions.refused_kinds = vec!["premium_rate".into()]).await;
    assert_eq!(app.send(non_geographic[0]).await.status, 201);
    assert_eq!(provider.calls(), 1);
}

fn tripwire_on(c: &mut Config) {
    c.tripwire.enabled = true;
    c.tripwire.min_sends = 20;
    c.tripwire.min_approval_rate = 0.2;
    c.tripwire.trickle.count = 2;
    c.tripwire.trickle.period_secs = 3600;
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

#[tokio::test]
async fn the_bot_check_is_enforced_where_configured() {
    let verifier = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("response=good"))
        .and(body_string_contains("secret=bot-secret"))
        .and(body_string_contains("remoteip=127.0.0.1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "success": true })))
        .mount(&verifier)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "success": false })))
        .mount(&verifier)
        .await;
    let url = format!("{}/siteverify", verifier.uri());
    let (app, provider) = app_with(|c| {
        c.bot_check.kind = Some(otpgate_server::config::BotCheckKind::Turnstile);
        c.bot_check.secret = Some("bot-secret".to_owned().into());
        c.bot_check.required_for = vec!["GB".into()];
        c.bot_check.verify_url = Some(url);
    })
    .await;
    let gb = "+447400123456";
    let missing = app.send(gb).await;
    assert_eq!((missing.status, missing.error_code().as_str()), (400, "invalid_request"));
    assert_eq!(missing.json()["error"]["field"], "bot_token");
    let bad = app.post_json("/v1/verifications", &json!({ "phone": gb, "bot_token": "bad" })).await;
    assert_eq!(bad.error_code(), "invalid_request");
    assert_eq!(provider.calls(), 0, "no provider call without a passed challenge");
    let good = app.post_json("/v1/verifications", &json!({ "phone": gb, "bot_token": "good" })).await;
    assert_eq!(good.status, 201, "{}", good.text);
    assert_eq!(app.send(&us(900)).await.status, 201, "not required for other countries");
}

/// A fake Turnstile: `good` passes, anything else fails.
async fn bot_verifier() -> MockServer {
    let verifier = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("response=good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "success": true })))
        .mount(&verifier)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "success": false })))
        .mount(&verifier)
        .await;
    verifier
}

fn with_bot_check(c: &mut Config, verifier: &MockServer, required_for: &[&str]) {
    c.bot_check.kind = Some(otpgate_server::config::BotCheckKind::Turnstile);
    c.bot_check.secret = Some("bot-secret".to_owned().into());
    c.bot_check.required_for = required_for.iter().map(|c| (*c).to_owned()).collect();
    c.bot_check.verify_url = Some(format!("{}/siteverify", verifier.uri()));
}

async fn send_with_token(app: &TestApp, phone: &str, token: &str) -> Reply {
    let r = app.post_json("/v1/verifications", &json!({ "phone": phone, "bot_token": token })).await;
    if r.status == 201 {
        let id = r.json()["id"].as_str().unwrap().to_owned();
        app.request(app.client.delete(app.url(&format!("/v1/verifications/{id}")))).await;
    }
    r
}

#[tokio::test]
async fn a_passed_bot_check_lifts_a_shared_budget_that_one_attacker_used_up() {
    type Configure = fn(&mut Config);
    type PhoneFor = fn(u32) -> String;
    // The prefix limit (20 into +1212555xxxx deny the block), a country limit, the tripwire.
    let cases: Vec<(&str, Configure, PhoneFor, usize)> = vec![
        ("prefix_send", |c| c.limits.prefix_send.count = 20, |i| format!("+1212555{:04}", 100 + i), 20),
        (
            "country_send",
            |c| {
                c.limits.country_send.count = 5;
                c.limits.country_send.period_secs = 3600;
            },
            |i| format!("+44740012{:04}", 100 + i),
            5,
        ),
        ("tripwire", tripwire_on, |i| format!("+33612{:06}", 100 + i), 22),
    ];
    for (name, configure, phone, budget) in cases {
        let verifier = bot_verifier().await;
        let (app, provider) = app_with(|c| {
            configure(c);
            // Asked only of sends a shared budget refuses.
            with_bot_check(c, &verifier, &[]);
        })
        .await;
        for i in 0..budget {
            let r = send_and_cancel(&app, &phone(i as u32)).await;
            assert_eq!(r.status, 201, "{name} {i}: no challenge within the budget: {}", r.text);
        }
        let victim = phone(budget as u32);
        let missing = send_and_cancel(&app, &victim).await;
        assert_eq!(
            (missing.status, missing.error_code().as_str()),
            (400, "invalid_request"),
            "{name}: {}",
            missing.text
        );
        assert_eq!(missing.json()["error"]["field"], "bot_token", "{name}");
        let failed = send_with_token(&app, &victim, "bad").await;
        assert_eq!((failed.status, failed.json()["error"]["field"].as_str()), (400, Some("bot_token")), "{name}");
        assert_eq!(provider.calls(), budget, "{name}: nothing sent without a passed challenge");
        let passed = send_with_token(&app, &victim, "good").await;
        assert_eq!(passed.status, 201, "{name}: {}", passed.text);
        assert_eq!(provider.calls(), budget + 1, "{name}");
    }
}

#[tokio::test]
async fn what_a_passed_bot_check_buys_is_bounded() {
    let verifier = bot_verifier().await;
    let block = |i: u32| format!("+1212555{:04}", 200 + i);
    // Prefix limit 2/hour, so a passed check allows 2 × 3 = 6 more per hour; the global spend
    // cap of 7 sends/hour still holds for them.
    let (app, provider) = app_with(|c| {
        c.limits.prefix_send = otpgate_server::config::RateConfig { count: 2, period_secs: 3600 };
        c.limits.global_send_hourly = otpgate_server::config::RateConfig { count: 7, period_secs: 3600 };
        c.bot_check.passed_limit_factor = 3;
        with_bot_check(c, &verifier, &[]);
    })
    .await;
    for i in 0..2 {
        assert_eq!(send_and_cancel(&app, &block(i)).await.status, 201);
    }
    for i in 2..7 {
        assert_eq!(send_with_token(&app, &block(i), "good").await.status, 201, "lifted send {i}");
    }
    // The global budget is used up: no challenge is offered, even with a passing token.
    let verifications = verifier.received_requests().await.unwrap().len();
    for r in [send_and_cancel(&app, &block(7)).await, send_with_token(&app, &block(8), "good").await] {
        assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"), "{}", r.text);
    }
    assert_eq!(verifier.received_requests().await.unwrap().len(), verifications, "no token verified for nothing");
    assert_eq!(provider.calls(), 7);

    // The allowance itself: 2 + 6 per hour into one block, then 429 whatever the token.
    let (app, provider) = app_with(|c| {
        c.limits.prefix_send = otpgate_server::config::RateConfig { count: 2, period_secs: 3600 };
        c.limits.ip_send = otpgate_server::config::RateConfig { count: 100, period_secs: 60 };
        c.bot_check.passed_limit_factor = 3;
        with_bot_check(c, &verifier, &[]);
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(send_with_token(&app, &block(i), "good").await.status);
    }
    assert_eq!(statuses, [201, 201, 201, 201, 201, 201, 201, 201, 429, 429, 429, 429]);
    assert_eq!(provider.calls(), 8);
    // The per-IP limit applies to lifted sends too.
    let (app, _) = app_with(|c| {
        c.limits.prefix_send = otpgate_server::config::RateConfig { count: 1, period_secs: 3600 };
        c.limits.ip_send = otpgate_server::config::RateConfig { count: 3, period_secs: 60 };
        with_bot_check(c, &verifier, &[]);
    })
    .await;
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for i in 0..5 {
            out.push(send_with_token(&app, &block(i), "good").await.status);
        }
        out
    };
    assert_eq!(statuses, [201, 201, 201, 429, 429], "1 within the prefix limit, 2 lifted, then the IP's limit");
}

#[tokio::test]
async fn a_required_bot_check_is_verified_once_and_lifts_a_shared_budget() {
    let verifier = bot_verifier().await;
    let (app, provider) = app_with(|c| {
        c.limits.prefix_send = otpgate_server::config::RateConfig { count: 1, period_secs: 3600 };
        with_bot_check(c, &verifier, &["*"]);
    })
    .await;
    assert_eq!(send_with_token(&app, "+12125550301", "good").await.status, 201);
    assert_eq!(send_with_token(&app, "+12125550302", "good").await.status, 201, "past the prefix limit");
    assert_eq!(
        verifier.received_requests().await.unwrap().len(),
        2,
        "one verification per send: tokens are single use"
    );
    assert_eq!(provider.calls(), 2);
}

#[tokio::test]
async fn without_a_bot_check_or_with_a_factor_of_zero_a_shared_budget_still_refuses() {
    let verifier = bot_verifier().await;
    for with_check in [false, true] {
        let (app, provider) = app_with(|c| {
            c.limits.prefix_send = otpgate_server::config::RateConfig { count: 1, period_secs: 3600 };
            if with_check {
                with_bot_check(c, &verifier, &[]);
                c.bot_check.passed_limit_factor = 0;
            }
        })
        .await;
        assert_eq!(send_and_cancel(&app, "+12125550401").await.status, 201);
        let r = send_with_token(&app, "+12125550402", "good").await;
        assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"), "bot check: {with_check}");
        assert_eq!(provider.calls(), 1);
    }
}
