//! The bot check: enforced where configured, and what a passed check lifts (a shared budget one
//! attacker used up), within bounds.

use crate::common::*;
use otpgate_server::Config;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

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
        c.bot_check.required_for = vec!["GB".parse().unwrap()];
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
    c.bot_check.required_for = required_for.iter().map(|c| c.parse().unwrap()).collect();
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
