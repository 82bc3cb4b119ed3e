//! The provider metadata served at `/.well-known/openid-configuration` (OpenID Connect
//! Discovery 1.0 §3, with RFC 8414's `revocation_endpoint` and `code_challenge_methods_supported`,
//! RP-Initiated Logout's `end_session_endpoint` and RFC 9207's
//! `authorization_response_iss_parameter_supported`), and the paths the endpoints live at below
//! the issuer.

use serde::Serialize;

use crate::claims::CLAIMS_SUPPORTED;
use crate::config::OidcSettings;
use crate::scope::Scope;

/// Endpoint paths, appended to the issuer (the server mounts them at these paths: the issuer is
/// otpgate's public base URL).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const AUTHORIZATION_PATH: &str = "/oidc/authorize";
pub const TOKEN_PATH: &str = "/oidc/token";
pub const USERINFO_PATH: &str = "/oidc/userinfo";
pub const REVOCATION_PATH: &str = "/oidc/revoke";
pub const END_SESSION_PATH: &str = "/oidc/logout";

/// Client authentication at the token and revocation endpoints: by the client's kind.
pub const TOKEN_ENDPOINT_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub revocation_endpoint: String,
    pub end_session_endpoint: String,
    pub scopes_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub response_modes_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    pub code_challenge_methods_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
    pub claims_parameter_supported: bool,
    pub request_parameter_supported: bool,
    /// Defaults to true when absent (Discovery §3): say it.
    pub request_uri_parameter_supported: bool,
    /// Every authorization response carries `iss` (RFC 9207, mix-up defence).
    pub authorization_response_iss_parameter_supported: bool,
}

impl ProviderMetadata {
    pub fn new(settings: &OidcSettings) -> Self {
        let at = |path: &str| format!("{}{path}", settings.base_url());
        ProviderMetadata {
            issuer: settings.issuer().to_owned(),
            authorization_endpoint: at(AUTHORIZATION_PATH),
            token_endpoint: at(TOKEN_PATH),
            userinfo_endpoint: at(USERINFO_PATH),
            jwks_uri: at(JWKS_PATH),
            revocation_endpoint: at(REVOCATION_PATH),
            end_session_endpoint: at(END_SESSION_PATH),
            scopes_supported: Scope::SUPPORTED.to_vec(),
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query"],
            grant_types_supported: vec!["authorization_code", "refresh_token"],
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: vec!["RS256"],
            token_endpoint_auth_methods_supported: TOKEN_ENDPOINT_AUTH_METHODS.to_vec(),
            revocation_endpoint_auth_methods_supported: TOKEN_ENDPOINT_AUTH_METHODS.to_vec(),
            code_challenge_methods_supported: vec!["S256"],
            claims_supported: CLAIMS_SUPPORTED.to_vec(),
            claims_parameter_supported: false,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            authorization_response_iss_parameter_supported: true,
        }
    }

    /// Where this document is served: the issuer and `/.well-known/openid-configuration`
    /// (Discovery §4.1: a trailing slash of the issuer is removed first).
    pub fn url(settings: &OidcSettings) -> String {
        format!("{}{DISCOVERY_PATH}", settings.base_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientConfig, ClientKind, Deployment, OidcConfig};

    fn settings(issuer: &str) -> OidcSettings {
        OidcConfig {
            issuer: issuer.into(),
            login_session_hours: 12,
            client_requests_per_minute: 1200,
            clients: vec![ClientConfig {
                id: "web".into(),
                name: "Web".into(),
                kind: ClientKind::Public,
                redirect_uris: vec!["https://app.example.com/cb".into()],
                post_logout_redirect_uris: vec![],
                secret: None,
                secret_file: None,
            }],
        }
        .validate(Deployment::Production)
        .unwrap()
    }

    #[test]
    fn the_document_has_every_required_field_and_what_otpgate_supports() {
        let doc = serde_json::to_value(ProviderMetadata::new(&settings("https://login.example.com"))).unwrap();
        // Required by Discovery §3 (token_endpoint too, as the code flow is used).
        for field in [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "response_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
        ] {
            assert!(doc.get(field).is_some(), "{field}");
        }
        assert_eq!(doc["issuer"], "https://login.example.com");
        assert_eq!(doc["authorization_endpoint"], "https://login.example.com/oidc/authorize");
        assert_eq!(doc["token_endpoint"], "https://login.example.com/oidc/token");
        assert_eq!(doc["userinfo_endpoint"], "https://login.example.com/oidc/userinfo");
        assert_eq!(doc["revocation_endpoint"], "https://login.example.com/oidc/revoke");
        assert_eq!(doc["end_session_endpoint"], "https://login.example.com/oidc/logout");
        assert_eq!(doc["jwks_uri"], "https://login.example.com/.well-known/jwks.json");
        assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
        assert_eq!(doc["scopes_supported"], serde_json::json!(["openid", "phone", "offline_access"]));
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(doc["grant_types_supported"], serde_json::json!(["authorization_code", "refresh_token"]));
        assert_eq!(doc["subject_types_supported"], serde_json::json!(["public"]));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
        );
        assert_eq!(doc["request_uri_parameter_supported"], false, "the default would be true");
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        let claims = doc["claims_supported"].as_array().unwrap();
        for claim in ["sub", "auth_time", "amr", "phone_number", "phone_number_verified"] {
            assert!(claims.contains(&claim.into()), "{claim}");
        }
    }

    #[test]
    fn endpoints_follow_an_issuer_with_a_path_or_a_trailing_slash() {
        let doc = ProviderMetadata::new(&settings("https://example.com/auth"));
        assert_eq!(doc.token_endpoint, "https://example.com/auth/oidc/token");
        assert_eq!(
            ProviderMetadata::url(&settings("https://example.com/auth")),
            "https://example.com/auth/.well-known/openid-configuration"
        );
        let slash = settings("https://login.example.com/");
        let doc = ProviderMetadata::new(&slash);
        assert_eq!(doc.issuer, "https://login.example.com/", "the issuer exactly as configured");
        assert_eq!(doc.authorization_endpoint, "https://login.example.com/oidc/authorize");
        assert_eq!(ProviderMetadata::url(&slash), "https://login.example.com/.well-known/openid-configuration");
    }
}
