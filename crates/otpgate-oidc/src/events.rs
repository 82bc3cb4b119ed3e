//! Security events: one structured log line per authorization, code exchange, refresh, replay,
//! revocation and logout (`event = "oidc.…"`, with the client, the outcome and, where known, the
//! user id — never a token, a code or a phone number), and the counter
//! `otpgate_oidc_events_total{event, outcome, client}` that `/metrics` exports. The client label
//! is a configured client id or `unknown`, so its values are bounded by the configuration.

use tracing::{info, warn};

use crate::config::OidcSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Authorize,
    Token,
    Refresh,
    Replay,
    Revoke,
    Logout,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Authorize => "oidc.authorize",
            Event::Token => "oidc.token",
            Event::Refresh => "oidc.refresh",
            Event::Replay => "oidc.replay",
            Event::Revoke => "oidc.revoke",
            Event::Logout => "oidc.logout",
        }
    }
}

pub const METRIC: &str = "otpgate_oidc_events_total";

/// The client label: the id if it is configured, else `unknown`.
pub(crate) fn client_label(settings: &OidcSettings, client_id: Option<&str>) -> String {
    client_id.filter(|id| settings.client(id).is_some()).unwrap_or("unknown").to_owned()
}

/// Logs and counts one event. `refused` outcomes log at warn level.
pub(crate) fn record(event: Event, outcome: &'static str, client: &str, user: Option<&str>, refused: bool) {
    metrics::counter!(METRIC, "event" => event.as_str(), "outcome" => outcome, "client" => client.to_owned())
        .increment(1);
    let user = user.unwrap_or("-");
    if refused {
        warn!(event = event.as_str(), outcome, client, user, "OpenID Connect request refused");
    } else {
        info!(event = event.as_str(), outcome, client, user, "OpenID Connect");
    }
}
