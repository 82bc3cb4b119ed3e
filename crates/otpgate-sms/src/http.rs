//! The one HTTP client all providers share: pooled keep-alive connections (a send rarely pays
//! for a TLS handshake), bounded connect and request times, rustls with aws-lc-rs.

use crate::config::{ConfigError, HttpConfig};
use std::time::Duration;

/// Builds the shared client. Clone the result freely: clones share the pool.
pub fn build_client(cfg: &HttpConfig) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout())
        .timeout(cfg.request_timeout())
        .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(cfg.pool_idle_timeout_secs))
        .tcp_keepalive(Duration::from_secs(60))
        .tcp_nodelay(true)
        // Twilio never redirects API calls; following one would hand our Basic credentials to
        // whatever host it names.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("otpgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError(format!("cannot build the HTTP client: {e}")))
}
