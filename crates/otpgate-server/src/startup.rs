//! `Application::build`: configuration in, a bound listener and a router out. Tests build it on
//! port 0 with their own clock and provider; `main` builds it from the loaded configuration.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use otpgate_api::ErrorCode;
use otpgate_core::bot::{BotCheck, BotScope};
use otpgate_core::service::ServiceSettings;
use otpgate_core::{Clock, CodeHasher, SmsProvider, SystemClock, VerificationService};
use otpgate_sms::demo::DemoInbox;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::{Config, ConfigError, RequiredIn};
use crate::error::ApiError;
use crate::routes::receipts::Receipts;
use crate::routes::{AppInner, AppState, dev, ops, receipts, sessions, verifications, web};
use otpgate_session::{KeyRing, SessionConfig, SessionService};

/// Replacements for the parts that tests control.
#[derive(Default, Clone)]
pub struct Overrides {
    pub clock: Option<Arc<dyn Clock>>,
    pub provider: Option<Arc<dyn SmsProvider>>,
    /// The public router's middleware; every layer unless a benchmark removes some.
    pub layers: crate::layers::Layers,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] crate::stores::OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "otpgate",
        description = "Phone verification and sign-in: send a one-time code, check it, get a session."
    ),
    components(schemas(otpgate_api::ErrorBody, otpgate_api::ErrorDetail, otpgate_api::ErrorCode)),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

/// Declares the `bearer` security scheme that `/v1/me` refers to.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    /// Set when otpgate terminates TLS itself (`[tls]`).
    tls: Option<Arc<rustls::ServerConfig>>,
    /// `/metrics` and the detailed `/readyz`, when `http.admin_listen` is in force.
    admin: Option<(TcpListener, Router, SocketAddr)>,
    edge: crate::serve::EdgeSettings,
    trusted_proxies: crate::client_ip::TrustedProxies,
    sweeper: crate::retention::Sweeper,
    /// Background tasks (the retention sweeper) end when the application is gone.
    _alive: Arc<()>,
}

impl Application {
    pub async fn build(config: &Config, overrides: Overrides) -> Result<Application, StartError> {
        config.validate()?;
        crate::startup_warnings::log(config);
        crate::metrics::handle();
        let clock: Arc<dyn Clock> = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let stores = crate::store_metrics::instrument(crate::stores::open(config).await?);
        let hasher =
            CodeHasher::new(&crate::keys::hmac_key(config)?).map_err(|e| ConfigError::key("secrets.hmac_key", e))?;
        crate::keys::check_shared(config, &stores, &hasher, clock.now()).await?;

        type Built = (Arc<dyn SmsProvider>, Option<Arc<otpgate_sms::Router>>, Option<DemoInbox>, Receipts);
        let (provider, sms_router, inbox, receipts): Built = match overrides.provider {
            Some(provider) => (provider, None, None, Receipts::default()),
            None => {
                let built = crate::provider::build(config, &clock)?;
                (built.provider, Some(built.router), built.inbox, built.receipts)
            }
        };
        // The `[provider]` table's Twilio callback stays at `/v1/sms/status`; named providers
        // take theirs at `/v1/providers/{name}/receipts`.
        let status_callback =
            config.provider.twilio.as_ref().filter(|_| !config.uses_named_providers()).and_then(|t| {
                let url = t.messaging.as_ref()?.status_callback_url.clone()?;
                Some(crate::routes::sms::StatusCallback { url, auth_token: t.auth_token.clone()? })
            });
        let settings = ServiceSettings {
            policy: config.policy(),
            test_numbers: config.effective_test_numbers()?.into_iter().collect(),
            app_name: config.app_name.clone(),
            webotp_domain: config.webotp_domain.as_ref().map(|d| d.as_str().to_owned()),
            bot_check: bot_check(config)?,
            templates: config.message_templates()?,
        };
        let service = VerificationService::new(
            stores.verifications.clone(),
            stores.limits.clone(),
            provider.clone(),
            clock.clone(),
            hasher.clone(),
            settings,
        );
        let sessions = if config.sessions.enabled {
            let sessions = build_sessions(config, &stores, &hasher, &clock)?;
            // Before serving: the instances sharing the store must know our keys at once.
            sessions.publish_keys().await.map_err(|e| {
                crate::stores::OpenError::Store(otpgate_core::StoreError::Unavailable(format!(
                    "cannot publish the signing keys: {e}"
                )))
            })?;
            Some(Arc::new(sessions))
        } else {
            None
        };
        let state = AppState(Arc::new(AppInner {
            sessions: sessions.clone(),
            status_callback,
            service,
            store: stores.verifications.clone(),
            provider,
            router: sms_router,
            receipts,
            clock: clock.clone(),
            inbox,
            default_region: config.region(),
            idempotency: crate::stores::idempotency(config, &stores, &clock),
        }));
        let admin_addr = config.admin_listen();
        let oidc = crate::routes::oidc::build(config, &stores, &hasher, &clock, sessions.as_ref(), state.clone())?;
        let router = router(state.clone(), config, admin_addr.is_some(), oidc, overrides.layers)?;
        if let Some(sessions) = &sessions {
            spawn_key_reloader(Arc::downgrade(sessions), config.keys_file());
        }

        let tls = crate::tls::setup(&config.tls)?;
        let sweeper = crate::retention::Sweeper::new(&stores, clock.clone(), config.retention.window());
        let alive = Arc::new(());
        sweeper.clone().spawn(config.retention.interval(), Arc::downgrade(&alive));

        let addr = config.listen;
        let listener = crate::serve::bind(addr).map_err(|source| StartError::Listen { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen { addr, source })?;
        let admin = match admin_addr {
            Some(addr) => {
                let admin = crate::serve::bind(addr).map_err(|source| StartError::Listen { addr, source })?;
                let bound = admin.local_addr().map_err(|source| StartError::Listen { addr, source })?;
                Some((admin, admin_router(state), bound))
            }
            None => None,
        };
        Ok(Application {
            listener,
            router,
            local_addr,
            tls,
            admin,
            edge: config.edge(),
            trusted_proxies: config.http.trusted_proxies.clone(),
            sweeper,
            _alive: alive,
        })
    }

    /// The retention sweeper of this application (tests run it with a moved clock).
    pub fn sweeper(&self) -> crate::retention::Sweeper {
        self.sweeper.clone()
    }

    /// Whether this application serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Where `/metrics` and the detailed `/readyz` are served, when `http.admin_listen` is in
    /// force.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, _, addr)| *addr)
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        use crate::serve::{ServeOptions, serve};
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stopped| *stopped).await;
            }
        };
        let admin = self.admin.map(|(listener, router, addr)| {
            tracing::info!(addr = %addr, "otpgate admin listening (http: /metrics, /readyz, /healthz)");
            let options = ServeOptions {
                edge: self.edge.clone(),
                tls: None,
                trusted_proxies: self.trusted_proxies.clone(),
                name: "admin",
            };
            tokio::spawn(serve(listener, router, options, stopped()))
        });
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(addr = %self.local_addr, "otpgate listening ({scheme})");
        let options =
            ServeOptions { edge: self.edge, tls: self.tls, trusted_proxies: self.trusted_proxies, name: "public" };
        let public = serve(self.listener, self.router, options, stopped());
        tokio::pin!(public);
        let mut shutdown = std::pin::pin!(shutdown);
        let result = tokio::select! {
            result = &mut public => result,
            () = &mut shutdown => {
                let _ = stop_tx.send(true);
                public.await
            }
        };
        let _ = stop_tx.send(true);
        if let Some(admin) = admin {
            admin.await.map_err(std::io::Error::other)??;
        }
        result
    }
}

/// The bot verifier, where it is required and what passing it lifts, when `bot_check` is configured.
fn bot_check(config: &Config) -> Result<Option<BotCheck>, ConfigError> {
    let (Some(kind), Some(secret)) = (config.bot_check.kind, config.bot_check.secret.clone()) else {
        return Ok(None);
    };
    let verifier = crate::botcheck::HttpBotVerifier::new(kind, secret, config.bot_check.verify_url.clone())
        .map_err(|e| ConfigError::key("bot_check", e))?;
    let required = &config.bot_check.required_for;
    let scope = if required.contains(&RequiredIn::Everywhere) {
        BotScope::All
    } else {
        BotScope::Countries(required.iter().map(|entry| String::from(*entry)).collect())
    };
    Ok(Some(BotCheck {
        verifier: Arc::new(verifier),
        required: scope,
        limit_factor: config.bot_check.passed_limit_factor,
    }))
}

fn build_sessions(
    config: &Config,
    stores: &crate::stores::Stores,
    hasher: &CodeHasher,
    clock: &Arc<dyn Clock>,
) -> Result<SessionService, StartError> {
    let path = config.keys_file();
    let key_error = |e: otpgate_session::keys::KeyError| {
        ConfigError::key("sessions.keys_file", format!("({}): {e}", path.display()))
    };
    let keys = if config.is_production() {
        KeyRing::load(&path).map_err(key_error)?
    } else {
        // OpenID Connect signs RS256: development adds an RSA key to the file when missing.
        let (keys, generated) = if config.oidc.is_some() {
            KeyRing::load_or_generate_with_rsa(&path).map_err(key_error)?
        } else {
            KeyRing::load_or_generate(&path).map_err(key_error)?
        };
        if generated {
            tracing::info!(path = %path.display(), "generated development signing keys");
        }
        keys
    };
    let session_config = SessionConfig {
        issuer: config.sessions.issuer.clone(),
        audience: config.sessions.audience.clone(),
        access_ttl: Duration::from_secs(config.sessions.access_ttl_secs),
        refresh_ttl: Duration::from_secs(config.sessions.refresh_ttl_secs),
        refresh_reuse_grace: Duration::from_secs(config.sessions.refresh_reuse_grace_secs),
    };
    Ok(SessionService::new(stores.sessions.clone(), keys, hasher.clone(), clock.clone(), session_config))
}

/// Picks up `otpgate keys rotate` without a restart: the key file is re-read when it changes.
/// The task ends when the application (its last `SessionService`) is gone.
fn spawn_key_reloader(sessions: std::sync::Weak<SessionService>, path: std::path::PathBuf) {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    tokio::spawn(async move {
        let mut seen = modified(&path);
        loop {
            tokio::time::sleep(KEY_RELOAD_INTERVAL).await;
            let Some(sessions) = sessions.upgrade() else { return };
            let now = modified(&path);
            if now != seen {
                match KeyRing::load(&path) {
                    Ok(keys) => {
                        sessions.replace_keys(keys);
                        tracing::info!(path = %path.display(), "signing keys reloaded");
                        seen = now;
                        // Otherwise at the latest before the new key signs its first token.
                        if let Err(e) = sessions.publish_keys().await {
                            tracing::warn!(error = %e, "cannot publish the reloaded signing keys yet");
                        }
                    }
                    Err(e) => tracing::error!(path = %path.display(), error = %e, "cannot reload signing keys"),
                }
            }
        }
    });
}

/// How often the signing-key file is looked at.
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The OpenAPI document this build serves, generated from the handlers and wire types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(verifications::send_verification))
        .routes(routes!(verifications::check_verification))
        .routes(routes!(verifications::cancel_verification))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(dev::inbox))
        .routes(routes!(sessions::refresh))
        .routes(routes!(sessions::revoke))
        .routes(routes!(sessions::me, sessions::delete_me))
        .routes(routes!(sessions::jwks))
        .routes(routes!(crate::routes::sms::status_callback))
        .routes(routes!(receipts::receipt, receipts::receipt_in_query))
}

/// The admin listener's routes: metrics and readiness with its reasons, for Prometheus and the
/// operator's probes, off the public port.
fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(crate::metrics::render))
        .route("/readyz", get(ops::readyz))
        .route("/healthz", get(ops::healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::Extension(ops::ReadinessDetail::Reasons))
        .layer(middleware::from_fn(security_headers))
}

fn router(
    state: AppState,
    config: &Config,
    admin_elsewhere: bool,
    oidc: Option<Router>,
    layers: crate::layers::Layers,
) -> Result<Router, ConfigError> {
    let (api, openapi) = api_router().split_for_parts();
    let openapi_json = Arc::new(deployment_openapi_json(&openapi, config.codes.length));
    let timeout = Duration::from_secs(config.http.request_timeout_secs);
    let index = web::IndexPage::new(config.codes.length, config.http.page_api_base.as_ref());
    let api: Router = api
        .route(
            "/openapi.json",
            get(move || {
                let json = openapi_json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json.as_str().to_owned()) }
            }),
        )
        .route("/", index.route())
        .route("/app.js", get(web::app_js))
        .route("/otpgate.js", get(web::client_js))
        .route("/app.css", get(web::app_css))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // OpenID Connect, only with `[oidc]` (its routes carry their own state).
        .merge(oidc.unwrap_or_default());
    // With an admin listener, the public port keeps no metrics and only says ready or not:
    // limit hits and tripwire state would let an SMS pumper tune its traffic.
    let api = if admin_elsewhere {
        api.layer(axum::Extension(ops::ReadinessDetail::StatusOnly))
    } else {
        api.route("/metrics", get(crate::metrics::render)).layer(axum::Extension(ops::ReadinessDetail::Reasons))
    };
    // Innermost first. Every server applies all of them; only a benchmark build removes some
    // (`Overrides::layers`), here, once: no request asks which are on.
    let mut api = api;
    if layers.body_limit {
        api = api.layer(DefaultBodyLimit::max(config.http.body_limit_bytes));
    }
    if layers.catch_panic {
        api = api.layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::internal().into_response()
        }));
    }
    // The request id, metrics, access log, security headers and deadline are one middleware
    // (`request_id::middleware` with `EDGE`): one boxed future and one cloned service per
    // request instead of three. Only a benchmark that removes the headers or the deadline gets
    // them as layers of their own, to measure the other.
    let edge = layers.request_id && layers.security_headers && layers.deadline;
    if !edge && layers.deadline {
        api = api.layer(middleware::from_fn_with_state(timeout, deadline));
    }
    if !edge && layers.security_headers {
        api = api.layer(middleware::from_fn(security_headers));
    }
    // CORS and the transport rules are left out where they cannot act (no origins configured;
    // no TLS and no trusted proxy): each layer is a boxed future and a cloned service per request.
    let cors = crate::cors::Cors::new(&config.http.cors_allowed_origins);
    if layers.cors && cors.is_enabled() {
        api = api.layer(middleware::from_fn_with_state(cors, crate::cors::middleware));
    }
    let transport = crate::transport::Transport::from_config(config);
    if layers.transport && transport.acts() {
        api = api.layer(middleware::from_fn_with_state(Arc::new(transport), crate::transport::middleware));
    }
    if layers.request_id {
        let state = Arc::new(crate::request_id::Edge { resolver: config.client_ip_resolver(), timeout });
        use crate::request_id::middleware as m;
        api = match (layers.metrics, layers.access_log, edge) {
            (true, true, true) => api.layer(middleware::from_fn_with_state(state, m::<true, true, true>)),
            (true, true, false) => api.layer(middleware::from_fn_with_state(state, m::<true, true, false>)),
            (false, true, true) => api.layer(middleware::from_fn_with_state(state, m::<false, true, true>)),
            (true, false, true) => api.layer(middleware::from_fn_with_state(state, m::<true, false, true>)),
            // Only a benchmark removes layers, one at a time (or all, which removes this one).
            _ => return Err(ConfigError::key("layers", "remove one middleware layer at a time, or all")),
        };
    }
    Ok(api)
}

/// The served document describes this deployment: a code has exactly `codes.length` digits
/// (the wire type allows any length from 4 to 10), so a client generated from it, or a contract
/// fuzzer, sends what this server accepts.
fn deployment_openapi_json(openapi: &utoipa::openapi::OpenApi, code_length: usize) -> String {
    let Ok(mut doc) = serde_json::to_value(openapi) else { return "{}".to_owned() };
    if let Some(code) = doc.pointer_mut("/components/schemas/CheckVerificationRequest/properties/code") {
        code["pattern"] = serde_json::Value::from(format!("^[0-9]{{{code_length}}}$"));
        code["example"] = serde_json::Value::from(&"1234567890"[..code_length.min(10)]);
    }
    doc.to_string()
}

/// Whole-request deadline: a stuck request answers 503 in the API's shape instead of hanging.
async fn deadline(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    within(timeout, next.run(req)).await
}

/// `response` within `timeout`, or the deadline's 503.
pub(crate) async fn within(timeout: Duration, response: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(timeout, response).await {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(timeout_ms = timeout.as_millis() as u64, "request deadline exceeded");
            let mut e = ApiError::new(ErrorCode::ServiceUnavailable, "The request took too long. Please try again.");
            e.retry_after = Some(Duration::from_secs(1));
            e.into_response()
        }
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    add_security_headers(&mut response);
    response
}

/// `nosniff`, `DENY` framing and `no-store`, unless the handler set its own.
pub(crate) fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    headers.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "Not found.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "This method is not allowed on this path.")
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
