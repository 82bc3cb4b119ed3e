//! The token endpoint's rules (RFC 6749 §3.2, §4.1.3, §5, §6; RFC 7636 §4.5): client
//! authentication by the client's kind, the two grants, and the answers. The server adds
//! `Cache-Control: no-store` to every answer and maps [`TokenError::status`] and
//! [`TokenError::www_authenticate`].
//!
//! Client authentication (also for revocation, RFC 7009 §2.1):
//! - confidential clients: `client_secret_basic` (HTTP Basic, id and secret form-encoded first,
//!   RFC 6749 §2.3.1) or `client_secret_post` (`client_id` and `client_secret` in the body), one
//!   of them, never both (§2.3);
//! - public clients: `none`, the `client_id` in the body and no secret anywhere.
//!
//! A wrong, missing or unexpected credential is `invalid_client` (401 with `WWW-Authenticate`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::config::{Client, ClientKind, OidcSettings};
use crate::params::{ParamError, Params};
use crate::pkce::CodeVerifier;
use crate::scope::Scope;

/// RFC 6749 §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
}

impl TokenErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenErrorCode::InvalidRequest => "invalid_request",
            TokenErrorCode::InvalidClient => "invalid_client",
            TokenErrorCode::InvalidGrant => "invalid_grant",
            TokenErrorCode::UnauthorizedClient => "unauthorized_client",
            TokenErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            TokenErrorCode::InvalidScope => "invalid_scope",
        }
    }
}

/// A refusal from the token (or revocation) endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct TokenError {
    pub code: TokenErrorCode,
    pub description: String,
}

/// The JSON body of a refusal (RFC 6749 §5.2).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: &'static str,
    pub error_description: String,
}

/// The realm of the `WWW-Authenticate` challenge of `invalid_client`.
pub const REALM: &str = "otpgate";

impl TokenError {
    pub fn new(code: TokenErrorCode, description: impl Into<String>) -> Self {
        TokenError { code, description: description.into() }
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(TokenErrorCode::InvalidRequest, description)
    }

    pub(crate) fn invalid_client() -> Self {
        Self::new(TokenErrorCode::InvalidClient, "client authentication failed")
    }

    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(TokenErrorCode::InvalidGrant, description)
    }

    /// 401 for `invalid_client`, 400 for the rest (RFC 6749 §5.2).
    pub fn status(&self) -> u16 {
        match self.code {
            TokenErrorCode::InvalidClient => 401,
            _ => 400,
        }
    }

    /// `WWW-Authenticate` for `invalid_client` (the scheme clients authenticate with).
    pub fn www_authenticate(&self) -> Option<String> {
        (self.code == TokenErrorCode::InvalidClient).then(|| format!("Basic realm=\"{REALM}\""))
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: self.code.as_str(), error_description: self.description.clone() }
    }
}

impl From<ParamError> for TokenError {
    fn from(e: ParamError) -> Self {
        TokenError::invalid_request(e.to_string())
    }
}

/// A successful token answer (RFC 6749 §5.1; OpenID Connect Core §3.1.3.3).
#[derive(Clone, Serialize, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<redacted>"))
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// How the client authenticated (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }
}

/// `client_id` and `client_secret` from an `Authorization: Basic` header value: base64 of
/// `id:secret`, each form-encoded (RFC 6749 §2.3.1). `None` for anything else.
pub fn parse_basic(authorization: &str) -> Option<(String, String)> {
    let (scheme, credentials) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(credentials.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let form_decode =
        |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().ok().map(|s| s.into_owned());
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Authenticates the client of a token or revocation request (`authorization`: the value of the
/// `Authorization` header, if any).
pub fn authenticate_client<'a>(
    settings: &'a OidcSettings,
    authorization: Option<&str>,
    params: &Params,
) -> Result<(&'a Client, AuthMethod), TokenError> {
    let body_id = params.get("client_id")?;
    let body_secret = params.get("client_secret")?;
    let basic = match authorization {
        Some(header) => Some(parse_basic(header).ok_or_else(TokenError::invalid_client)?),
        None => None,
    };
    let (id, secret, method) = match (basic, body_secret) {
        (Some(_), Some(_)) => {
            return Err(TokenError::invalid_request("use one client authentication method, not two"));
        }
        (Some((id, secret)), None) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(TokenError::invalid_request("client_id differs from the authenticated client"));
            }
            (id, Some(secret), AuthMethod::ClientSecretBasic)
        }
        (None, Some(secret)) => {
            let id = body_id.ok_or_else(|| TokenError::invalid_request("client_id is missing"))?;
            (id.to_owned(), Some(secret.to_owned()), AuthMethod::ClientSecretPost)
        }
        (None, None) => {
            let id = body_id.ok_or_else(TokenError::invalid_client)?;
            (id.to_owned(), None, AuthMethod::None)
        }
    };
    let client = settings.client(&id).ok_or_else(TokenError::invalid_client)?;
    let authenticated = match (client.kind(), &secret) {
        (ClientKind::Confidential, Some(secret)) => client.secret_matches(secret),
        (ClientKind::Public, None) => true,
        // A confidential client without its secret, or a public one presenting a secret.
        _ => false,
    };
    if authenticated { Ok((client, method)) } else { Err(TokenError::invalid_client()) }
}

/// A token request, parsed before anything is looked up (so a malformed request spends no code).
#[derive(Debug)]
pub enum TokenRequest {
    AuthorizationCode { code: String, redirect_uri: String, code_verifier: CodeVerifier },
    RefreshToken { refresh_token: String, scope: Option<Scope> },
}

impl TokenRequest {
    pub fn parse(params: &Params) -> Result<Self, TokenError> {
        let required = |name: &'static str| -> Result<String, TokenError> {
            params
                .get(name)?
                .map(str::to_owned)
                .ok_or_else(|| TokenError::invalid_request(format!("{name} is missing")))
        };
        match params.get("grant_type")? {
            None => Err(TokenError::invalid_request("grant_type is missing")),
            Some("authorization_code") => {
                let code = required("code")?;
                let redirect_uri = required("redirect_uri")?;
                let verifier = params
                    .get("code_verifier")?
                    .ok_or_else(|| TokenError::invalid_request("code_verifier is missing (PKCE is required)"))?;
                // RFC 7636 §4.6: a verifier that does not match is `invalid_grant`; one that is not
                // even a verifier is a malformed request.
                let code_verifier = CodeVerifier::parse(verifier).ok_or_else(|| {
                    TokenError::invalid_request("code_verifier must be 43 to 128 unreserved characters")
                })?;
                Ok(TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier })
            }
            Some("refresh_token") => {
                let refresh_token = required("refresh_token")?;
                let scope = match params.get("scope")? {
                    None => None,
                    Some(s) => Some(Scope::parse_strict(s).ok_or_else(|| {
                        TokenError::new(TokenErrorCode::InvalidScope, "the scope asks for more than was granted")
                    })?),
                };
                Ok(TokenRequest::RefreshToken { refresh_token, scope })
            }
            Some(_) => Err(TokenError::new(
                TokenErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code or refresh_token",
            )),
        }
    }

    pub fn grant_type(&self) -> &'static str {
        match self {
            TokenRequest::AuthorizationCode { .. } => "authorization_code",
            TokenRequest::RefreshToken { .. } => "refresh_token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientConfig, Deployment, OidcConfig};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-._~";

    fn settings() -> OidcSettings {
        let client = |id: &str, kind, secret: Option<&str>| ClientConfig {
            id: id.into(),
            name: id.into(),
            kind,
            redirect_uris: vec!["https://app.example.com/cb".into()],
            post_logout_redirect_uris: vec![],
            secret: secret.map(|s| s.to_owned().into()),
            secret_file: None,
        };
        OidcConfig {
            issuer: "https://login.example.com".into(),
            login_session_hours: 12,
            client_requests_per_minute: 1200,
            clients: vec![
                client("web", ClientKind::Public, None),
                client("srv.1", ClientKind::Confidential, Some(SECRET)),
            ],
        }
        .validate(Deployment::Production)
        .unwrap()
    }

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    fn auth(header: Option<&str>, body: &str) -> Result<(String, AuthMethod), TokenErrorCode> {
        let settings = settings();
        authenticate_client(&settings, header, &Params::parse(body.as_bytes()))
            .map(|(c, m)| (c.id().to_owned(), m))
            .map_err(|e| e.code)
    }

    #[test]
    fn confidential_clients_authenticate_with_basic_or_post() {
        let ok = Ok(("srv.1".to_owned(), AuthMethod::ClientSecretBasic));
        assert_eq!(auth(Some(&basic("srv.1", SECRET)), ""), ok);
        assert_eq!(auth(Some(&basic("srv.1", SECRET)), "client_id=srv.1"), ok);
        // Form-encoded before Basic (RFC 6749 §2.3.1): `~` as `%7E` is the same secret.
        assert_eq!(auth(Some(&basic("srv%2E1", &SECRET.replace('~', "%7E"))), ""), ok);
        assert_eq!(auth(Some(&format!("basic  {}", STANDARD.encode(format!("srv.1:{SECRET}")))), ""), ok);
        let post = format!("client_id=srv.1&client_secret={SECRET}");
        assert_eq!(auth(None, &post), Ok(("srv.1".to_owned(), AuthMethod::ClientSecretPost)));
    }

    #[test]
    fn wrong_missing_or_doubled_credentials_are_refused() {
        use TokenErrorCode::{InvalidClient, InvalidRequest};
        assert_eq!(auth(Some(&basic("srv.1", &SECRET[1..])), ""), Err(InvalidClient));
        assert_eq!(auth(Some(&basic("srv.1", &format!("{SECRET}x"))), ""), Err(InvalidClient));
        assert_eq!(auth(Some(&basic("srv.1", "")), ""), Err(InvalidClient));
        assert_eq!(auth(None, "client_id=srv.1"), Err(InvalidClient), "a confidential client without its secret");
        assert_eq!(auth(None, "client_id=srv.1&client_secret=nope"), Err(InvalidClient));
        assert_eq!(auth(Some(&basic("nobody", SECRET)), ""), Err(InvalidClient));
        assert_eq!(auth(None, ""), Err(InvalidClient), "no client at all");
        assert_eq!(auth(Some("Bearer abc"), ""), Err(InvalidClient));
        assert_eq!(auth(Some("Basic !!!"), ""), Err(InvalidClient));
        assert_eq!(auth(Some(&basic("srv.1", SECRET)), &format!("client_secret={SECRET}")), Err(InvalidRequest));
        assert_eq!(auth(Some(&basic("srv.1", SECRET)), "client_id=web"), Err(InvalidRequest));
        assert_eq!(auth(None, &format!("client_secret={SECRET}")), Err(InvalidRequest));
        assert_eq!(auth(None, "client_id=srv.1&client_id=srv.1"), Err(InvalidRequest));
    }

    #[test]
    fn public_clients_name_themselves_and_present_no_secret() {
        assert_eq!(auth(None, "client_id=web"), Ok(("web".to_owned(), AuthMethod::None)));
        assert_eq!(auth(None, "client_id=web&client_secret=anything"), Err(TokenErrorCode::InvalidClient));
        assert_eq!(auth(Some(&basic("web", "")), ""), Err(TokenErrorCode::InvalidClient));
        assert_eq!(auth(None, "client_id=unknown"), Err(TokenErrorCode::InvalidClient));
    }

    #[test]
    fn invalid_client_is_401_with_a_challenge_and_the_rest_400() {
        let e = TokenError::invalid_client();
        assert_eq!((e.status(), e.www_authenticate().as_deref()), (401, Some("Basic realm=\"otpgate\"")));
        let e = TokenError::invalid_grant("x");
        assert_eq!((e.status(), e.www_authenticate()), (400, None));
        assert_eq!(
            serde_json::to_value(e.body()).unwrap(),
            serde_json::json!({ "error": "invalid_grant", "error_description": "x" })
        );
    }

    #[test]
    fn token_requests_parse_or_say_what_is_wrong() {
        let parse = |body: &str| TokenRequest::parse(&Params::parse(body.as_bytes())).map_err(|e| e.code);
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let ok = format!("grant_type=authorization_code&code=c&redirect_uri=https://a/&code_verifier={verifier}");
        assert!(matches!(parse(&ok), Ok(TokenRequest::AuthorizationCode { .. })));
        use TokenErrorCode::*;
        assert_eq!(parse("").unwrap_err(), InvalidRequest);
        assert_eq!(parse("grant_type=password&username=a").unwrap_err(), UnsupportedGrantType);
        assert_eq!(parse("grant_type=client_credentials").unwrap_err(), UnsupportedGrantType);
        assert_eq!(parse("grant_type=authorization_code&code=c&redirect_uri=x").unwrap_err(), InvalidRequest);
        assert_eq!(
            parse(&format!("grant_type=authorization_code&code=c&code_verifier={verifier}")).unwrap_err(),
            InvalidRequest
        );
        assert_eq!(
            parse("grant_type=authorization_code&code=c&redirect_uri=x&code_verifier=short").unwrap_err(),
            InvalidRequest
        );
        assert_eq!(parse(&format!("{ok}&code=again")).unwrap_err(), InvalidRequest);
        assert!(matches!(
            parse("grant_type=refresh_token&refresh_token=r&scope=openid"),
            Ok(TokenRequest::RefreshToken { scope: Some(_), .. })
        ));
        assert_eq!(parse("grant_type=refresh_token").unwrap_err(), InvalidRequest);
        assert_eq!(parse("grant_type=refresh_token&refresh_token=r&scope=openid+email").unwrap_err(), InvalidScope);
    }
}
