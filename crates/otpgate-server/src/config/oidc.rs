//! `[oidc]`: the protocol crate's own section
//! (`otpgate_oidc::OidcConfig`: issuer, login session, clients) and what the server adds to its
//! checks: OpenID Connect signs with the session machinery's key ring, so sessions must be on;
//! production refuses http issuers (the crate's `Deployment` rules).

use otpgate_oidc::{Deployment, OidcConfig, OidcSettings};

use super::{Config, ConfigError};

/// `[oidc]`: absent switches OpenID Connect off (no route is mounted).
pub type OidcSection = Option<OidcConfig>;

fn deployment(config: &Config) -> Deployment {
    if config.is_production() { Deployment::Production } else { Deployment::Development }
}

/// The validated settings, or `None` without `[oidc]`; errors name the key.
pub fn oidc_settings(config: &Config) -> Result<Option<OidcSettings>, ConfigError> {
    let Some(oidc) = &config.oidc else { return Ok(None) };
    if !config.sessions.enabled {
        return Err(ConfigError::key(
            "oidc",
            "OpenID Connect needs sessions (`sessions.enabled = true`): its tokens are signed with the session keys",
        ));
    }
    oidc.validate(deployment(config)).map(Some).map_err(|e| ConfigError::other(e.0)) // the crate's message names the key
}

/// `Config::validate`'s part.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    oidc_settings(config).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otpgate.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load_from(Some(&path), &[])
    }

    const CLIENT: &str = r#"
[[oidc.clients]]
id = "web"
name = "Example web app"
kind = "public"
redirect_uris = ["https://app.example.com/callback"]
"#;

    #[test]
    fn oidc_is_off_without_the_section_and_on_with_it() {
        assert!(oidc_settings(&load("").unwrap()).unwrap().is_none());
        let config = load(&format!("[oidc]\nissuer = \"http://127.0.0.1:8080\"\n{CLIENT}")).unwrap();
        let settings = oidc_settings(&config).unwrap().unwrap();
        assert_eq!(settings.issuer(), "http://127.0.0.1:8080");
        assert_eq!(settings.client("web").unwrap().name(), "Example web app");
        assert_eq!(settings.client_requests_per_minute(), 1200);
    }

    #[test]
    fn bad_oidc_sections_are_refused_at_load() {
        for (toml, key) in [
            (format!("[oidc]\nissuer = \"http://login.example.com\"\n{CLIENT}"), "oidc.issuer"),
            ("[oidc]\nissuer = \"https://login.example.com\"\n".to_owned(), "oidc.clients"),
            (format!("[oidc]\nissuer = \"https://login.example.com\"\nsurprise = 1\n{CLIENT}"), "surprise"),
            (format!("[sessions]\nenabled = false\n[oidc]\nissuer = \"https://login.example.com\"\n{CLIENT}"), "oidc"),
        ] {
            let e = load(&toml).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
