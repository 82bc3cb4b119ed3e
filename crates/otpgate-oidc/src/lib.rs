//! otpgate as an OpenID Connect provider whose login is the phone sign-in: the protocol, with no
//! HTTP framework. The server maps each endpoint to one call of [`OidcService`] and its answer
//! back to HTTP (status, `Location`, `Cache-Control: no-store`, `WWW-Authenticate`, the page).
//!
//! - [`config`]: `[oidc]` and `[[oidc.clients]]`, validated into [`OidcSettings`].
//! - [`discovery`]: `/.well-known/openid-configuration` and the endpoint paths.
//! - [`authorize`]: authorization requests, the page-or-redirect error split, single sign-on.
//! - [`token`]: client authentication, token requests and answers.
//! - [`pkce`], [`scope`], [`claims`], [`params`]: the pieces.
//! - [`service`]: [`OidcService`], every endpoint's operation over the store, the session
//!   machinery (`otpgate-session`: refresh tokens, RS256 keys) and the settings.
//! - [`memory`]: an in-memory [`OidcStore`](otpgate_core::oidc::OidcStore); `contract` (feature
//!   `contract`): the suite every backend must pass.
//! - [`events`]: the security events and their counter.

pub mod authorize;
pub mod claims;
pub mod config;
pub mod discovery;
pub mod errors;
pub mod events;
pub mod memory;
pub mod params;
pub mod pkce;
pub mod scope;
pub mod service;
pub mod token;

#[cfg(any(test, feature = "contract"))]
pub mod contract;

pub use authorize::{
    ActiveLogin, AuthorizationRequest, AuthorizeError, AuthorizeErrorCode, Decision, PageError, Prompt, RedirectError,
};
pub use claims::{AccessTokenClaims, IdTokenClaims, UserinfoClaims};
pub use config::{Client, ClientConfig, ClientKind, ConfigError, Deployment, OidcConfig, OidcSettings};
pub use discovery::ProviderMetadata;
pub use errors::{BearerError, LogoutError, LogoutFailure, OidcError, TokenFailure, UserinfoFailure};
pub use memory::MemoryOidcStore;
pub use params::Params;
pub use scope::Scope;
pub use service::{LogoutOutcome, OidcService, bearer_token};
pub use token::{ErrorBody, TokenError, TokenErrorCode, TokenResponse};
