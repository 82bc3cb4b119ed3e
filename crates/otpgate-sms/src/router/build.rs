//! Building the providers a configuration names, over one shared HTTP client, and the router
//! over them.

use std::collections::BTreeMap;
use std::sync::Arc;

use otpgate_core::{Clock, SmsProvider};

use super::config::check_name;
use super::{ProviderConfig, RouteConfig, Router, intern};
use crate::config::{ConfigError, HttpConfig};
use crate::demo::{DemoInbox, DemoProvider};
use crate::sinch::Sinch;
use crate::vonage::Vonage;
use crate::webhook::Webhook;
use crate::{TwilioMessaging, TwilioVerify};

/// What `build` makes: the router, and the demo inbox when a `demo` provider is configured.
pub struct Built {
    pub router: Arc<Router>,
    pub inbox: Option<DemoInbox>,
}

/// One pooled client for every provider: the shortest connect timeout and the largest idle
/// pool any of them asks for (request timeouts stay per provider, applied per request).
pub fn shared_client(providers: &BTreeMap<String, ProviderConfig>) -> Result<reqwest::Client, ConfigError> {
    let mut http = HttpConfig::default();
    let mut first = true;
    for h in providers.values().filter_map(ProviderConfig::http) {
        if first {
            http = h.clone();
            first = false;
        } else {
            http.connect_timeout_ms = http.connect_timeout_ms.min(h.connect_timeout_ms);
            http.pool_max_idle_per_host = http.pool_max_idle_per_host.max(h.pool_max_idle_per_host);
            http.pool_idle_timeout_secs = http.pool_idle_timeout_secs.max(h.pool_idle_timeout_secs);
        }
    }
    crate::http::build_client(&http)
}

/// Builds every named provider (in name order) and the router over them. Errors name the
/// provider or the route.
pub fn build(
    providers: &BTreeMap<String, ProviderConfig>,
    routes: &[RouteConfig],
    clock: Arc<dyn Clock>,
) -> Result<Built, ConfigError> {
    let http = shared_client(providers)?;
    let mut built: Vec<(&'static str, Arc<dyn SmsProvider>)> = Vec::new();
    let mut inbox = None;
    for (name, cfg) in providers {
        check_name(name)?;
        let at = |e: ConfigError| ConfigError(format!("providers.{name}: {e}"));
        cfg.validate().map_err(at)?;
        let name = intern(name);
        let provider: Arc<dyn SmsProvider> = match cfg {
            ProviderConfig::Demo => {
                let demo = DemoProvider::new(clock.clone());
                inbox = Some(demo.inbox());
                Arc::new(demo)
            }
            ProviderConfig::TwilioVerify(t) => {
                Arc::new(TwilioVerify::named(name, t, http.clone(), clock.clone()).map_err(at)?)
            }
            ProviderConfig::TwilioMessaging(t) => {
                Arc::new(TwilioMessaging::named(name, t, http.clone(), clock.clone()).map_err(at)?)
            }
            ProviderConfig::Vonage(v) => Arc::new(Vonage::new(name, v, http.clone(), clock.clone()).map_err(at)?),
            ProviderConfig::Sinch(s) => Arc::new(Sinch::new(name, s, http.clone(), clock.clone()).map_err(at)?),
            ProviderConfig::Webhook(w) => Arc::new(Webhook::new(name, w, http.clone(), clock.clone()).map_err(at)?),
        };
        built.push((name, provider));
    }
    let router = Router::new(built, routes)?;
    Ok(Built { router: Arc::new(router), inbox })
}
