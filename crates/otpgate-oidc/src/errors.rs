//! What the service answers besides the protocol's own refusals: a store or key failure
//! ([`OidcError`], a 500 or 503 at the edge with an opaque body; `temporarily_unavailable` or
//! `server_error` when it happens at the authorization endpoint), and the failure types of the
//! endpoints that combine both.

use otpgate_core::StoreError;
use otpgate_session::SessionError;

use crate::params::ParamError;
use crate::token::TokenError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    /// The store cannot be reached; the request may succeed later (503).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A bug, a corrupt record or a broken key (500). Logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for OidcError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(msg) => OidcError::Unavailable(msg),
            StoreError::Internal(msg) => OidcError::Internal(msg),
        }
    }
}

impl From<SessionError> for OidcError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::StoreUnavailable(msg) => OidcError::Unavailable(msg),
            SessionError::Internal(msg) => OidcError::Internal(msg),
            // The calls made here never authenticate anyone; if one did refuse, it is a bug.
            SessionError::Unauthorized => {
                OidcError::Internal("unexpected unauthorized from the session service".into())
            }
        }
    }
}

/// `From` the server-side errors for a failure type with a `Server(OidcError)` variant.
macro_rules! server_errors {
    ($failure:ident) => {
        impl From<OidcError> for $failure {
            fn from(e: OidcError) -> Self {
                $failure::Server(e)
            }
        }
        impl From<StoreError> for $failure {
            fn from(e: StoreError) -> Self {
                $failure::Server(e.into())
            }
        }
        impl From<SessionError> for $failure {
            fn from(e: SessionError) -> Self {
                $failure::Server(e.into())
            }
        }
    };
}

/// The token and revocation endpoints' failure: a refusal to send as is, or a server error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenFailure {
    #[error(transparent)]
    Refused(TokenError),
    #[error(transparent)]
    Server(OidcError),
}

server_errors!(TokenFailure);

impl From<ParamError> for TokenFailure {
    fn from(e: ParamError) -> Self {
        TokenFailure::Refused(e.into())
    }
}

impl From<TokenError> for TokenFailure {
    fn from(e: TokenError) -> Self {
        TokenFailure::Refused(e)
    }
}

/// Why a bearer token is refused at UserInfo (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No token at all: a bare challenge, no error code (RFC 6750 §3.1).
    #[error("no access token")]
    Missing,
    /// Malformed, forged, expired, revoked, or its user is gone.
    #[error("invalid access token")]
    InvalidToken,
    /// Valid, but without the `openid` scope.
    #[error("the access token lacks the openid scope")]
    InsufficientScope,
}

impl BearerError {
    pub fn status(self) -> u16 {
        match self {
            BearerError::Missing | BearerError::InvalidToken => 401,
            BearerError::InsufficientScope => 403,
        }
    }

    /// The `WWW-Authenticate` value.
    pub fn www_authenticate(self) -> String {
        let realm = crate::token::REALM;
        match self {
            BearerError::Missing => format!("Bearer realm=\"{realm}\""),
            BearerError::InvalidToken => format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"the access token is invalid\""
            ),
            BearerError::InsufficientScope => {
                format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"openid\"")
            }
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UserinfoFailure {
    #[error(transparent)]
    Refused(BearerError),
    #[error(transparent)]
    Server(OidcError),
}

server_errors!(UserinfoFailure);

impl From<BearerError> for UserinfoFailure {
    fn from(e: BearerError) -> Self {
        UserinfoFailure::Refused(e)
    }
}

/// Why a logout request is refused: shown on otpgate's page, never redirected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    #[error("the id_token_hint is not an ID token otpgate issued")]
    InvalidIdTokenHint,
    #[error("the client is not registered")]
    UnknownClient,
    #[error("client_id is not the client the id_token_hint was issued to")]
    ClientMismatch,
    #[error("post_logout_redirect_uri needs an id_token_hint or a client_id")]
    RedirectWithoutClient,
    #[error("the post_logout_redirect_uri is not registered for this client")]
    UnregisteredPostLogoutRedirectUri,
    #[error("{0}")]
    BadParameter(String),
}

impl LogoutError {
    pub fn as_str(&self) -> &'static str {
        match self {
            LogoutError::InvalidIdTokenHint => "invalid_id_token_hint",
            LogoutError::UnknownClient => "unknown_client",
            LogoutError::ClientMismatch => "client_mismatch",
            LogoutError::RedirectWithoutClient => "redirect_without_client",
            LogoutError::UnregisteredPostLogoutRedirectUri => "unregistered_post_logout_redirect_uri",
            LogoutError::BadParameter(_) => "bad_parameter",
        }
    }
}

impl From<ParamError> for LogoutError {
    fn from(e: ParamError) -> Self {
        LogoutError::BadParameter(e.to_string())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LogoutFailure {
    #[error(transparent)]
    Refused(LogoutError),
    #[error(transparent)]
    Server(OidcError),
}

server_errors!(LogoutFailure);

impl From<LogoutError> for LogoutFailure {
    fn from(e: LogoutError) -> Self {
        LogoutFailure::Refused(e)
    }
}
