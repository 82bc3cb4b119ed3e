//! Abuse and cost defenses over HTTP: every send and check limit (429 + Retry-After, no provider
//! call, reset when the clock moves), client IPs behind trusted and untrusted proxies, sequential
//! sweeps, region policy, the conversion tripwire and the bot check.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use otpgate_server::Config;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn app_with(configure: impl FnOnce(&mut Config)) -> (TestApp, Arc<FakeProvider>) {
    let provider = FakeProvider::new(FakeBehaviour::Deliver);
    let app = spawn_with(
        |c| {
            no_limits(c);
            configure(c);
        },
        with_provider(provider.clone()),
    )
    .await;
    (app, provider)
}

/// Sends, then cancels at once so the resend cooldown never interferes.
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
