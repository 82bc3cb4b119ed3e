//! Store URLs for people to read: a URL may carry a password (`postgres://otpgate:PASSWORD@db/otpgate`,
//! `redis://:PASSWORD@cache:6379`, `postgres://db/otpgate?password=PASSWORD`), which no message,
//! log line, `Debug` output or `otpgate config check` may show. The one redactor of the workspace:
//! the store's errors and the server's printed configuration both use it.

/// What a password is replaced with.
pub const REDACTED: &str = "<redacted>";

/// The URL with any password (in the userinfo, or a `password`/`pass` query parameter) replaced
/// by [`REDACTED`]; the rest (scheme, user, hosts, database, other parameters) stays readable.
pub fn url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // The last `@` ends the userinfo (a password may itself hold `@`); its first `:` ends the user.
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

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn userinfo_passwords_are_redacted_and_the_rest_kept() {
        assert_eq!(url("sqlite://otpgate.db"), "sqlite://otpgate.db");
        assert_eq!(url("postgres://otp:hunter2@db:5432/otp"), "postgres://otp:<redacted>@db:5432/otp");
        assert_eq!(url("redis://:hunter2@cache:6379/0"), "redis://:<redacted>@cache:6379/0");
        assert_eq!(url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(url("redis+cluster://u:p@w@h1:7000,h2:7001"), "redis+cluster://u:<redacted>@h1:7000,h2:7001");
        assert_eq!(url("postgres://otp@db/otp"), "postgres://otp@db/otp");
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn query_passwords_are_redacted() {
        assert_eq!(
            url("postgres://db/otp?sslmode=require&password=hunter2"),
            "postgres://db/otp?sslmode=require&password=<redacted>"
        );
        assert_eq!(url("postgres://db/otp?PASS=hunter2"), "postgres://db/otp?PASS=<redacted>");
        assert_eq!(
            url("postgres://u:one@db/otp?password=two&application_name=otpgate"),
            "postgres://u:<redacted>@db/otp?password=<redacted>&application_name=otpgate"
        );
    }
}
