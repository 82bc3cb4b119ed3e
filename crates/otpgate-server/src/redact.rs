//! Secrets out of printed configuration: store URLs may carry a password
//! (`postgres://otpgate:PASSWORD@db/otpgate`, `redis://:PASSWORD@cache:6379`,
//! `postgres://db/otpgate?password=PASSWORD`), which `otpgate config check` and `Debug` must not
//! show.

use serde::Serializer;

pub const REDACTED: &str = "<redacted>";

/// The URL with any password replaced by `<redacted>`; the rest (scheme, user, hosts, database)
/// stays readable.
pub fn url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.find(':') {
                Some(colon) => format!("{}:{REDACTED}{host}", &userinfo[..colon]),
                None => authority.to_owned(),
            }
        }
        None => authority.to_owned(),
    };
    let tail = match tail.find('?') {
        Some(q) => {
            let (path, query) = tail.split_at(q + 1);
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass") => {
                        format!("{k}={REDACTED}")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// `serialize_with` for URL fields.
pub fn serialize_url<S: Serializer>(value: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url(value))
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn no_secret_in_debug_or_the_redacted_print() {
        let secrets = ["hmac-0123456789abcdef0123456789-S1", "auth-token-S2", "api-key-secret-S3", "bot-S4", "pg-S5"];
        let env: Vec<(String, String)> = [
            ("OTPGATE_SECRETS__HMAC_KEY", secrets[0]),
            ("OTPGATE_PROVIDER__KIND", "twilio-verify"),
            ("OTPGATE_PROVIDER__TWILIO__ACCOUNT_SID", "AC00000000000000000000000000000000"), // fake test SID
            ("OTPGATE_PROVIDER__TWILIO__AUTH_TOKEN", secrets[1]),
            ("OTPGATE_PROVIDER__TWILIO__API_KEY_SID", "SKaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), // fake test SID
            ("OTPGATE_PROVIDER__TWILIO__API_KEY_SECRET", secrets[2]),
            ("OTPGATE_PROVIDER__TWILIO__VERIFY__SERVICE_SID", "VA00000000000000000000000000000000"), // fake test SID
            ("OTPGATE_BOT_CHECK__KIND", "turnstile"),
            ("OTPGATE_BOT_CHECK__SECRET", secrets[3]),
            ("OTPGATE_BOT_CHECK__REQUIRED_FOR", "[\"*\"]"),
            ("OTPGATE_STORE__DURABLE", "postgres://otpgate:pg-S5@db/otpgate"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let config = crate::Config::load_from(None, &env).expect("valid");
        let debug = format!("{config:?}");
        let printed = config.redacted_json();
        for secret in secrets {
            assert!(!debug.contains(secret), "Debug shows {secret}: {debug}");
            assert!(!printed.contains(secret), "the print shows {secret}: {printed}");
        }
        assert!(config.provider.twilio.is_some() && config.bot_check.secret.is_some(), "the secrets were loaded");
    }

    #[test]
    fn passwords_are_redacted_and_the_rest_kept() {
        assert_eq!(url("sqlite://otpgate.db"), "sqlite://otpgate.db");
        assert_eq!(url("postgres://otp:hunter2@db:5432/otp"), "postgres://otp:<redacted>@db:5432/otp");
        assert_eq!(url("redis://:hunter2@cache:6379/0"), "redis://:<redacted>@cache:6379/0");
        assert_eq!(url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(url("redis+cluster://u:p@w@h1:7000,h2:7001"), "redis+cluster://u:<redacted>@h1:7000,h2:7001");
        assert_eq!(
            url("postgres://db/otp?sslmode=require&password=hunter2"),
            "postgres://db/otp?sslmode=require&password=<redacted>"
        );
        assert_eq!(url("postgres://otp@db/otp"), "postgres://otp@db/otp");
    }
}
