//! Prometheus metrics at `GET /metrics`. The domain and the providers record through the
//! `metrics` facade; this module installs the one process-wide recorder and renders it. Labels
//! carry routes, outcomes, countries and scopes, never a phone number, code, token or address.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often recorded histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Latency buckets in seconds: sub-millisecond to the provider deadline.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the recorder once per process (several apps in one test process share it). `None`
/// when another recorder was installed first (metrics then go there).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS);
            let recorder = builder.ok()?.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // The recorder keeps every histogram sample until an upkeep folds it into buckets,
            // and `build_recorder` (unlike `install`) starts no upkeep: with nobody scraping
            // `/metrics`, memory grew with every request (~6 MiB a minute at 1,000 requests/s in
            // bench/soak.sh). A plain thread, so it outlives any one runtime.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("otpgate-metrics".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// `GET /metrics`: Prometheus text format.
pub async fn render() -> impl IntoResponse {
    let body = handle().map(PrometheusHandle::render).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}
