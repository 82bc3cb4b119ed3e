//! Abuse and cost defenses over HTTP: every send and check limit (429 + Retry-After, no provider
//! call, reset when the clock moves), client IPs behind trusted and untrusted proxies, sequential
//! sweeps, region policy, the conversion tripwire and the bot check.

mod bot_check;
mod client_ip;
mod limits;
mod policy;

use std::sync::Arc;

use crate::common::*;
use otpgate_server::Config;

pub(super) async fn app_with(configure: impl FnOnce(&mut Config)) -> (TestApp, Arc<FakeProvider>) {
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
pub(super) async fn send_and_cancel(app: &TestApp, phone: &str) -> Reply {
    let r = app.send(phone).await;
    if r.status == 201 {
        let id = r.json()["id"].as_str().unwrap().to_owned();
        app.request(app.client.delete(app.url(&format!("/v1/verifications/{id}")))).await;
    }
    r
}

pub(super) fn us(n: u32) -> String {
    format!("+1415555{:04}", n)
}

pub(super) fn tripwire_on(c: &mut Config) {
    c.tripwire.enabled = true;
    c.tripwire.min_sends = 20;
    c.tripwire.min_approval_rate = 0.2;
    c.tripwire.trickle.count = 2;
    c.tripwire.trickle.period_secs = 3600;
}
