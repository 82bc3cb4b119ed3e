//! How an authorization request is refused: on otpgate's own page ([`PageError`]) when the client
//! or its redirect URI cannot be trusted, otherwise back at the redirect URI
//! ([`RedirectError`]).

use crate::config::Client;

/// Error codes of RFC 6749 §4.1.2.1 and OpenID Connect Core §3.1.2.6 that otpgate answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeErrorCode {
    InvalidRequest,
    UnsupportedResponseType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    LoginRequired,
    AccessDenied,
    RequestNotSupported,
    RequestUriNotSupported,
    RegistrationNotSupported,
}

impl AuthorizeErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizeErrorCode::InvalidRequest => "invalid_request",
            AuthorizeErrorCode::UnsupportedResponseType => "unsupported_response_type",
            AuthorizeErrorCode::InvalidScope => "invalid_scope",
            AuthorizeErrorCode::ServerError => "server_error",
            AuthorizeErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            AuthorizeErrorCode::LoginRequired => "login_required",
            AuthorizeErrorCode::AccessDenied => "access_denied",
            AuthorizeErrorCode::RequestNotSupported => "request_not_supported",
            AuthorizeErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            AuthorizeErrorCode::RegistrationNotSupported => "registration_not_supported",
        }
    }
}

/// Why a request is refused on otpgate's page (never redirected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("the request names no client (client_id is missing)")]
    MissingClientId,
    #[error("the client is not registered")]
    UnknownClient,
    #[error("the request has no redirect_uri")]
    MissingRedirectUri,
    #[error("the redirect_uri is not registered for this client")]
    UnregisteredRedirectUri,
    #[error("parameter `{0}` is repeated or too long")]
    BadParameter(&'static str),
}

impl PageError {
    /// A stable name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            PageError::MissingClientId => "missing_client_id",
            PageError::UnknownClient => "unknown_client",
            PageError::MissingRedirectUri => "missing_redirect_uri",
            PageError::UnregisteredRedirectUri => "unregistered_redirect_uri",
            PageError::BadParameter(_) => "bad_parameter",
        }
    }
}

/// An error to send back to the client's (registered) redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    pub(super) redirect_uri: String,
    pub error: AuthorizeErrorCode,
    pub description: String,
    pub(super) state: Option<String>,
    pub(super) issuer: String,
}

impl RedirectError {
    /// The `Location` to redirect to: the redirect URI with `error`, `error_description`, `state`
    /// (exactly as received) and `iss` (RFC 9207) added to its query.
    pub fn location(&self) -> String {
        let mut params = vec![("error", self.error.as_str()), ("error_description", self.description.as_str())];
        if let Some(state) = &self.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.issuer));
        with_query(&self.redirect_uri, &params)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    #[error("shown on the page: {0}")]
    Page(PageError),
    #[error("redirected: {}", .0.error.as_str())]
    Redirect(RedirectError),
}

/// Builds redirect errors once the redirect URI is checked.
pub(super) struct Refusal<'a> {
    pub(super) client: &'a Client,
    pub(super) redirect_uri: &'a str,
    pub(super) state: Option<&'a str>,
    pub(super) issuer: &'a str,
}

impl Refusal<'_> {
    pub(super) fn with(&self, error: AuthorizeErrorCode, description: &str) -> AuthorizeError {
        debug_assert!(self.client.has_redirect_uri(self.redirect_uri));
        AuthorizeError::Redirect(RedirectError {
            redirect_uri: self.redirect_uri.to_owned(),
            error,
            description: description.to_owned(),
            state: self.state.map(str::to_owned),
            issuer: self.issuer.to_owned(),
        })
    }

    pub(super) fn invalid_request(&self, description: &str) -> AuthorizeError {
        self.with(AuthorizeErrorCode::InvalidRequest, description)
    }
}

/// `uri` (a registered, canonical redirect URI) with `params` appended to its query; a query it
/// already has is kept (RFC 6749 §3.1.2).
pub(crate) fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(uri).expect("registered redirect URIs are validated URLs");
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    url.into()
}
