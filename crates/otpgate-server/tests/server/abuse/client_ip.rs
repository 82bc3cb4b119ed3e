//! The client address behind proxies: spoofed forwarding headers earn nothing, a trusted proxy
//! is believed, only the configured header is read, and an IPv6 /64 is one client.

use crate::common::*;
use otpgate_server::Config;
use serde_json::json;

use super::*;

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
        c.http.trusted_proxies = otpgate_server::client_ip::TrustedProxies::parse(&["127.0.0.1"]).unwrap();
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
    c.http.trusted_proxies = otpgate_server::client_ip::TrustedProxies::parse(&["127.0.0.1"]).unwrap();
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
        c.http.trusted_proxies = otpgate_server::client_ip::TrustedProxies::parse(&["127.0.0.1"]).unwrap();
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
