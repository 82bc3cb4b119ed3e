//! What the public port shows: with an admin listener (`http.admin_listen`), `/metrics` and the
//! reasons of `/readyz` are served only there; the public port answers `/metrics` with 404 and
//! `/readyz` with its status alone. Without one (development's default) everything stays on
//! the one port.

use std::sync::Arc;

use crate::common::*;
use async_trait::async_trait;
use otpgate_core::provider::SendReceipt;
use otpgate_core::{Channel, OutgoingCode, ProviderError, SmsProvider};
use otpgate_server::{Config, Environment, Overrides};
use serde_json::json;

fn admin_on_a_free_port(c: &mut Config) {
    c.http.admin_listen = Some("127.0.0.1:0".parse().unwrap());
}

async fn get(url: String) -> Reply {
    let resp = reqwest::get(&url).await.expect("answered");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    Reply { status, headers, text: resp.text().await.unwrap() }
}

#[tokio::test]
async fn with_an_admin_listener_the_public_port_shows_no_metrics_and_no_readiness_detail() {
    let app = spawn_with(admin_on_a_free_port, Overrides::default()).await;
    let admin = app.admin_base.clone().expect("an admin listener");
    assert_ne!(admin, app.base);
    app.send("+14155550190").await;

    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 404);
    assert_eq!(metrics.error_code(), "not_found", "in the API's error shape: {}", metrics.text);
    assert!(!metrics.text.contains("otpgate_"), "{}", metrics.text);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), json!({"status": "ready"}), "status only");
    assert_eq!(app.get("/healthz").await.status, 200, "liveness stays public");

    let metrics = get(format!("{admin}/metrics")).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("otpgate_sends_total"), "{}", metrics.text);
    let ready = get(format!("{admin}/readyz")).await;
    let detail = json!({"status": "ready", "reasons": [], "providers": [{"name": "demo", "status": "ready"}]});
    assert_eq!((ready.status, ready.json()), (200, detail));
    assert_eq!(get(format!("{admin}/healthz")).await.status, 200);
    let other = get(format!("{admin}/v1/verifications")).await;
    assert_eq!(other.status, 404, "the API is not on the admin listener");
}

/// A provider that cannot send (its credentials were rejected).
struct Rejected;

#[async_trait]
impl SmsProvider for Rejected {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn supports(&self, _: Channel) -> bool {
        true
    }
    async fn send(&self, _: &OutgoingCode) -> Result<SendReceipt, ProviderError> {
        Err(ProviderError::Unavailable { retry_after: None })
    }
    async fn readiness(&self) -> Result<(), String> {
        Err("credentials rejected".into())
    }
}

#[tokio::test]
async fn not_ready_says_why_only_on_the_admin_listener() {
    let overrides = Overrides { provider: Some(Arc::new(Rejected)), ..Overrides::default() };
    let app = spawn_with(admin_on_a_free_port, overrides).await;
    let public = app.get("/readyz").await;
    assert_eq!((public.status, public.json()), (503, json!({"status": "not_ready"})));
    assert!(!public.text.contains("credentials"));
    let admin = get(format!("{}/readyz", app.admin_base.as_ref().unwrap())).await;
    assert_eq!(admin.status, 503);
    assert_eq!(admin.json()["reasons"], json!(["provider fake: credentials rejected"]));
}

#[tokio::test]
async fn without_an_admin_listener_everything_stays_on_the_one_port() {
    let overrides = Overrides { provider: Some(Arc::new(Rejected)), ..Overrides::default() };
    let app = spawn_with(|_| {}, overrides).await;
    assert!(app.admin_base.is_none(), "development has no admin listener by default");
    assert_eq!(app.get("/metrics").await.status, 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["reasons"], json!(["provider fake: credentials rejected"]));
}

#[test]
fn production_defaults_to_a_loopback_admin_listener_and_development_to_none() {
    let development = Config::default();
    assert_eq!(development.admin_listen(), None);
    let production = Config { environment: Environment::Production, ..Config::default() };
    assert_eq!(production.admin_listen(), Some("127.0.0.1:9090".parse().unwrap()));
    let mut chosen = production.clone();
    chosen.http.admin_listen = Some("10.0.0.5:9100".parse().unwrap());
    assert_eq!(chosen.admin_listen(), Some("10.0.0.5:9100".parse().unwrap()));

    let env = |v: &str| vec![("OTPGATE_HTTP__ADMIN_LISTEN".to_owned(), v.to_owned())];
    let loaded = Config::load_from(None, &env("127.0.0.1:9191")).unwrap();
    assert_eq!(loaded.admin_listen(), Some("127.0.0.1:9191".parse().unwrap()));
    let err = Config::load_from(None, &env("localhost")).unwrap_err().to_string();
    assert!(err.contains("`http.admin_listen`"), "{err}");
}
