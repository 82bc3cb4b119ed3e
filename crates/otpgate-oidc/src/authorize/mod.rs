//! The authorization endpoint's rules (OpenID Connect Core §3.1.2, RFC 6749 §4.1.1, RFC 7636):
//! a request is parsed into an [`AuthorizationRequest`] or refused with an [`AuthorizeError`]
//! that says how to answer:
//!
//! - [`AuthorizeError::Page`]: the client or the redirect URI cannot be trusted (missing,
//!   unknown, unregistered, repeated). Shown on otpgate's own page, never redirected: redirecting
//!   to an unchecked URI would make otpgate an open redirector (RFC 6749 §4.1.2.1).
//! - [`AuthorizeError::Redirect`]: everything else, sent back to the (checked) redirect URI with
//!   `error`, `error_description`, `state` and `iss`.
//!
//! Then, with the browser's login session (if any), [`AuthorizationRequest::decide`] says
//! whether a code can be issued at once (single sign-on), the phone sign-in must run first, or
//! (`prompt=none`) the request fails with `login_required`.
//!
//! Choices where the specifications leave room: `state` and `nonce` are optional (PKCE, required
//! for every client, already binds the code to the client's session, OAuth 2.1 §7.5.1; certified
//! libraries such as openid-client send neither by default with PKCE) but, when present, must be
//! visible ASCII (`state`, RFC 6749 Appendix A.5) and are bound to the code; `prompt=consent` is
//! accepted and does nothing (clients are registered by the operator, there is no consent
//! screen); `prompt=select_account` asks for the phone again, like `login`; a `login_hint` that is
//! not a phone number in E.164 is ignored, and one that differs from the signed-in phone asks for
//! the phone again instead of signing in someone else silently.
//!
//! `errors`: the two ways of refusing a request.

use std::time::Duration;

use otpgate_core::session::User;
use otpgate_core::{Channel, PhoneNumber, Timestamp};

use crate::config::OidcSettings;
use crate::params::{ParamError, Params};
use crate::pkce::CodeChallenge;
use crate::scope::Scope;

mod errors;

use errors::Refusal;
pub(crate) use errors::with_query;
pub use errors::{AuthorizeError, AuthorizeErrorCode, PageError, RedirectError};

/// `prompt` (Core §3.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prompt {
    /// No page may be shown: sign in silently or fail with `login_required`.
    pub none: bool,
    /// Ask for the phone again even within a login session (`login` or `select_account`).
    pub login: bool,
}

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Granted: what was asked of `openid`, `phone`, `offline_access`.
    pub scope: Scope,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: CodeChallenge,
    pub prompt: Prompt,
    pub max_age: Option<Duration>,
    /// Prefills the sign-in page.
    pub login_hint: Option<PhoneNumber>,
    /// Preferred languages for the page, most preferred first (BCP 47 tags).
    pub ui_locales: Vec<String>,
    issuer: String,
}

/// The browser's login session, as `OidcService::login_session` finds it. Codes are issued for
/// its user, so only this crate builds one: from a live login session, or when one starts after
/// an approval (`OidcService::start_login_session`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveLogin {
    pub(crate) user: User,
    pub(crate) channel: Channel,
    pub(crate) auth_time: Timestamp,
}

impl ActiveLogin {
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The channel the phone was verified over.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// When the phone was verified.
    pub fn auth_time(&self) -> Timestamp {
        self.auth_time
    }
}

/// What to do with a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Issue a code for the login session now (single sign-on).
    Issue,
    /// Run the phone sign-in first (prefilled with `login_hint`); then issue a code for the new
    /// login session.
    Login,
    /// Send this error back (`prompt=none` without a usable login session: `login_required`).
    Refuse(RedirectError),
}

/// Parameters that may appear at most once; a repeat is `invalid_request` (RFC 6749 §3.1).
const SINGLE: [&str; 19] = [
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "ui_locales",
    "response_mode",
    "request",
    "request_uri",
    "registration",
    "id_token_hint",
    "claims",
    "display",
    "acr_values",
    "claims_locales",
];

const MAX_STATE_LEN: usize = 2048;
const MAX_NONCE_LEN: usize = 512;
const MAX_UI_LOCALES: usize = 8;

/// RFC 6749 Appendix A.5: `1*VSCHAR`.
fn is_vschar_string(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    (1..=8).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl AuthorizationRequest {
    /// Checks an authorization request (the query of a GET or the form of a POST).
    pub fn parse(settings: &OidcSettings, params: &Params) -> Result<Self, AuthorizeError> {
        let page = |e: PageError| AuthorizeError::Page(e);
        let page_param = |e: ParamError| match e {
            ParamError::Repeated(name) | ParamError::TooLong(name) => {
                AuthorizeError::Page(PageError::BadParameter(name))
            }
        };
        let client_id = params.get("client_id").map_err(page_param)?.ok_or(page(PageError::MissingClientId))?;
        let client = settings.client(client_id).ok_or(page(PageError::UnknownClient))?;
        let redirect_uri =
            params.get("redirect_uri").map_err(page_param)?.ok_or(page(PageError::MissingRedirectUri))?;
        if !client.has_redirect_uri(redirect_uri) {
            return Err(page(PageError::UnregisteredRedirectUri));
        }
        // From here on the redirect URI is trusted: errors go back to it.
        let mut refuse = Refusal { client, redirect_uri, state: None, issuer: settings.issuer() };
        if let Some(name) = params.first_repeated(&SINGLE) {
            // A repeated `state` cannot be echoed: which one?
            if name != "state" {
                refuse.state = params.get("state").ok().flatten().filter(|s| is_vschar_string(s));
            }
            return Err(refuse.invalid_request(&format!("parameter `{name}` is repeated")));
        }
        let state = params.get("state").map_err(|e| refuse.invalid_request(&e.to_string()))?;
        if let Some(state) = state {
            if state.len() > MAX_STATE_LEN || !is_vschar_string(state) {
                return Err(refuse.invalid_request("state must be at most 2048 visible ASCII characters"));
            }
            refuse.state = Some(state);
        }
        let refuse = refuse;
        let get = |name: &'static str| params.get(name).map_err(|e| refuse.invalid_request(&e.to_string()));

        use AuthorizeErrorCode as E;
        if get("request")?.is_some() {
            return Err(refuse.with(E::RequestNotSupported, "request objects are not supported"));
        }
        if get("request_uri")?.is_some() {
            return Err(refuse.with(E::RequestUriNotSupported, "request_uri is not supported"));
        }
        if get("registration")?.is_some() {
            return Err(refuse.with(E::RegistrationNotSupported, "registration is not supported"));
        }
        match get("response_type")? {
            None => return Err(refuse.invalid_request("response_type is missing")),
            Some("code") => {}
            Some(_) => return Err(refuse.with(E::UnsupportedResponseType, "only response_type=code is supported")),
        }
        if get("response_mode")?.is_some_and(|m| m != "query") {
            return Err(refuse.invalid_request("only response_mode=query is supported"));
        }
        let scope = Scope::from_request(get("scope")?.unwrap_or_default());
        if !scope.openid {
            return Err(refuse.with(E::InvalidScope, "the scope must include openid"));
        }
        let code_challenge = match (get("code_challenge")?, get("code_challenge_method")?) {
            (None, _) => return Err(refuse.invalid_request("code_challenge is required (PKCE with S256)")),
            (Some(_), None) => {
                return Err(refuse.invalid_request("code_challenge_method is required and must be S256"));
            }
            (Some(_), Some(m)) if m != "S256" => {
                return Err(refuse.invalid_request("code_challenge_method must be S256"));
            }
            (Some(c), Some(_)) => CodeChallenge::parse(c)
                .ok_or_else(|| refuse.invalid_request("code_challenge must be 43 base64url characters"))?,
        };
        let nonce = get("nonce")?;
        if nonce.is_some_and(|n| n.len() > MAX_NONCE_LEN || !is_vschar_string(n)) {
            return Err(refuse.invalid_request("nonce must be at most 512 visible ASCII characters"));
        }
        let mut prompt = Prompt::default();
        if let Some(values) = get("prompt")? {
            let values: Vec<&str> = values.split(' ').filter(|v| !v.is_empty()).collect();
            for value in &values {
                match *value {
                    "none" => prompt.none = true,
                    "login" | "select_account" => prompt.login = true,
                    "consent" => {}
                    _ => return Err(refuse.invalid_request("prompt may be none, login, consent or select_account")),
                }
            }
            if prompt.none && values.len() > 1 {
                return Err(refuse.invalid_request("prompt=none cannot be combined with other values"));
            }
        }
        let max_age = match get("max_age")? {
            None => None,
            Some(s) => match s.parse::<u64>() {
                Ok(secs) if s.bytes().all(|b| b.is_ascii_digit()) => Some(Duration::from_secs(secs)),
                _ => return Err(refuse.invalid_request("max_age must be a number of seconds")),
            },
        };
        let login_hint = get("login_hint")?.and_then(|h| PhoneNumber::parse(h, None).ok());
        let ui_locales = get("ui_locales")?
            .unwrap_or_default()
            .split(' ')
            .filter(|t| is_language_tag(t))
            .take(MAX_UI_LOCALES)
            .map(str::to_owned)
            .collect();
        Ok(AuthorizationRequest {
            client_id: client.id().to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state: state.map(str::to_owned),
            nonce: nonce.map(str::to_owned),
            code_challenge,
            prompt,
            max_age,
            login_hint,
            ui_locales,
            issuer: settings.issuer().to_owned(),
        })
    }

    /// Single sign-on: a login session serves unless the request asks for the phone again
    /// (`prompt=login`, `max_age` passed since the phone was verified, `max_age=0`, or a
    /// `login_hint` naming another phone). Without a usable one, `prompt=none` fails.
    pub fn decide(&self, login: Option<&ActiveLogin>, now: Timestamp) -> Decision {
        let usable = login.is_some_and(|login| {
            !self.prompt.login
                && self.max_age.is_none_or(|max| !max.is_zero() && login.auth_time.until(now) <= max)
                && self.login_hint.as_ref().is_none_or(|hint| hint.e164() == login.user.phone)
        });
        match (usable, self.prompt.none) {
            (true, _) => Decision::Issue,
            (false, true) => {
                Decision::Refuse(self.error(AuthorizeErrorCode::LoginRequired, "the user is not signed in"))
            }
            (false, false) => Decision::Login,
        }
    }

    /// An error for this request, to redirect back (e.g. `temporarily_unavailable` when the store
    /// is down, `access_denied` when the user cancels the sign-in).
    pub fn error(&self, error: AuthorizeErrorCode, description: &str) -> RedirectError {
        RedirectError {
            redirect_uri: self.redirect_uri.clone(),
            error,
            description: description.to_owned(),
            state: self.state.clone(),
            issuer: self.issuer.clone(),
        }
    }

    /// The successful answer: the redirect URI with `code`, `state` and `iss`.
    pub(crate) fn success_location(&self, code: &str) -> String {
        let mut params = vec![("code", code)];
        if let Some(state) = &self.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.issuer));
        with_query(&self.redirect_uri, &params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientConfig, ClientKind, Deployment, OidcConfig};
    use otpgate_core::session::UserId;

    const ISSUER: &str = "https://login.example.com";
    const REDIRECT: &str = "https://app.example.com/callback?tenant=a";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn settings() -> OidcSettings {
        OidcConfig {
            issuer: ISSUER.into(),
            login_session_hours: 12,
            client_requests_per_minute: 1200,
            clients: vec![ClientConfig {
                id: "web".into(),
                name: "Web".into(),
                kind: ClientKind::Public,
                redirect_uris: vec![REDIRECT.into(), "com.example.app:/callback".into()],
                post_logout_redirect_uris: vec![],
                secret: None,
                secret_file: None,
            }],
        }
        .validate(Deployment::Production)
        .unwrap()
    }

    fn base() -> Vec<(String, String)> {
        [
            ("client_id", "web"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid phone"),
            ("state", "st&=ate ~!"),
            ("nonce", "n-0S6_WzA2Mj"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn with(changes: &[(&str, Option<&str>)]) -> Params {
        let mut pairs = base();
        for (name, value) in changes {
            pairs.retain(|(k, _)| k != name);
            if let Some(value) = value {
                pairs.push((name.to_string(), value.to_string()));
            }
        }
        Params::from_pairs(pairs)
    }

    fn parse(params: &Params) -> Result<AuthorizationRequest, AuthorizeError> {
        AuthorizationRequest::parse(&settings(), params)
    }

    fn query_of(location: &str) -> Vec<(String, String)> {
        url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
    }

    fn redirect(params: &Params) -> RedirectError {
        match parse(params) {
            Err(AuthorizeError::Redirect(e)) => e,
            other => panic!("expected a redirect error, got {other:?}"),
        }
    }

    #[test]
    fn a_full_request_parses() {
        let params = with(&[
            ("prompt", Some("login consent")),
            ("max_age", Some("300")),
            ("login_hint", Some("+14155550100")),
            ("ui_locales", Some("fr-CA en <script> de")),
        ]);
        let r = parse(&params).unwrap();
        assert_eq!((r.client_id.as_str(), r.redirect_uri.as_str()), ("web", REDIRECT));
        assert_eq!(r.scope, Scope { openid: true, phone: true, offline_access: false });
        assert_eq!((r.state.as_deref(), r.nonce.as_deref()), (Some("st&=ate ~!"), Some("n-0S6_WzA2Mj")));
        assert_eq!(r.code_challenge.as_str(), CHALLENGE);
        assert_eq!(r.prompt, Prompt { none: false, login: true });
        assert_eq!(r.max_age, Some(Duration::from_secs(300)));
        assert_eq!(r.login_hint.as_ref().map(|p| p.e164()), Some("+14155550100"));
        assert_eq!(r.ui_locales, ["fr-CA", "en", "de"]);
        // state and nonce are optional.
        let r = parse(&with(&[("state", None), ("nonce", None)])).unwrap();
        assert_eq!((r.state, r.nonce), (None, None));
        // A login hint that is no phone number is ignored, not an error.
        assert_eq!(parse(&with(&[("login_hint", Some("alice@example.com"))])).unwrap().login_hint, None);
    }

    /// Anything about the client or the redirect URI: shown on the page, never redirected.
    #[test]
    fn client_and_redirect_uri_errors_are_never_redirected() {
        let page = |params: Params| match parse(&params) {
            Err(AuthorizeError::Page(e)) => e,
            other => panic!("expected a page error, got {other:?}"),
        };
        assert_eq!(page(with(&[("client_id", None)])), PageError::MissingClientId);
        assert_eq!(page(with(&[("client_id", Some("evil"))])), PageError::UnknownClient);
        assert_eq!(page(with(&[("redirect_uri", None)])), PageError::MissingRedirectUri);
        for altered in [
            "https://evil.example/callback",
            "https://app.example.com/callback",
            "https://app.example.com/callback?tenant=a&x=1",
            "https://app.example.com/callback?tenant=A",
            "https://app.example.com/callback/?tenant=a",
            "https://app.example.com/callback?tenant=a#frag",
            "https://APP.example.com/callback?tenant=a",
            "https://app.example.com:443/callback?tenant=a",
            "http://app.example.com/callback?tenant=a",
            "https://app.example.com/callback?tenant=a ",
            "https://app.example.com.evil.example/callback?tenant=a",
            "com.example.app:/callback/x",
            "com.example.app://callback",
        ] {
            assert_eq!(page(with(&[("redirect_uri", Some(altered))])), PageError::UnregisteredRedirectUri, "{altered}");
        }
        let mut twice = base();
        twice.push(("redirect_uri".into(), "https://evil.example/".into()));
        assert_eq!(page(Params::from_pairs(twice)), PageError::BadParameter("redirect_uri"));
        let mut twice = base();
        twice.push(("client_id".into(), "web".into()));
        assert_eq!(page(Params::from_pairs(twice)), PageError::BadParameter("client_id"));
        // Even with everything else wrong, a bad redirect URI is never redirected to.
        assert_eq!(
            page(with(&[("redirect_uri", Some("https://evil.example/")), ("response_type", Some("token"))])),
            PageError::UnregisteredRedirectUri
        );
    }

    /// Everything else goes back to the registered URI with error, description, state and iss.
    #[test]
    fn other_errors_are_redirected_with_the_state_echoed_exactly() {
        type Changes<'a> = &'a [(&'a str, Option<&'a str>)];
        let cases: &[(Changes, &str)] = &[
            (&[("response_type", None)], "invalid_request"),
            (&[("response_type", Some("token"))], "unsupported_response_type"),
            (&[("response_type", Some("code id_token"))], "unsupported_response_type"),
            (&[("scope", Some("phone profile"))], "invalid_scope"),
            (&[("scope", None)], "invalid_scope"),
            (&[("code_challenge", None)], "invalid_request"),
            (&[("code_challenge_method", None)], "invalid_request"),
            (&[("code_challenge_method", Some("plain"))], "invalid_request"),
            (&[("code_challenge", Some("too-short"))], "invalid_request"),
            (&[("prompt", Some("none login"))], "invalid_request"),
            (&[("prompt", Some("bogus"))], "invalid_request"),
            (&[("max_age", Some("-1"))], "invalid_request"),
            (&[("max_age", Some("+5"))], "invalid_request"),
            (&[("response_mode", Some("fragment"))], "invalid_request"),
            (&[("request", Some("eyJ..."))], "request_not_supported"),
            (&[("request_uri", Some("https://app.example.com/r"))], "request_uri_not_supported"),
            (&[("registration", Some("{}"))], "registration_not_supported"),
            (&[("nonce", Some("bad\u{7}nonce"))], "invalid_request"),
        ];
        for (changes, error) in cases {
            let e = redirect(&with(changes));
            assert_eq!(e.error.as_str(), *error, "{changes:?}");
            let location = e.location();
            assert!(location.starts_with("https://app.example.com/callback?tenant=a&"), "{location}");
            let query = query_of(&location);
            let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            assert_eq!(get("tenant"), Some("a"), "the registered query is kept");
            assert_eq!(get("error"), Some(*error));
            assert!(get("error_description").is_some_and(|d| !d.is_empty()));
            assert_eq!(get("state"), Some("st&=ate ~!"), "state echoed exactly");
            assert_eq!(get("iss"), Some(ISSUER));
            assert_eq!(get("code"), None);
        }
    }

    #[test]
    fn repeated_parameters_are_invalid_requests_and_a_bad_state_is_not_echoed() {
        let mut pairs = base();
        pairs.push(("scope".into(), "openid".into()));
        let e = redirect(&Params::from_pairs(pairs));
        assert_eq!(e.error, AuthorizeErrorCode::InvalidRequest);
        assert!(query_of(&e.location()).contains(&("state".into(), "st&=ate ~!".into())));

        let mut pairs = base();
        pairs.push(("state".into(), "other".into()));
        let e = redirect(&Params::from_pairs(pairs));
        assert_eq!(e.error, AuthorizeErrorCode::InvalidRequest);
        assert!(!query_of(&e.location()).iter().any(|(k, _)| k == "state"), "which state would it be?");

        let e = redirect(&with(&[("state", Some("line\nbreak"))]));
        assert!(!query_of(&e.location()).iter().any(|(k, _)| k == "state"));
        let e = redirect(&with(&[("state", Some(&"s".repeat(2049)))]));
        assert_eq!(e.error, AuthorizeErrorCode::InvalidRequest);
    }

    #[test]
    fn success_and_native_app_locations() {
        let r = parse(&with(&[])).unwrap();
        let query = query_of(&r.success_location("oc_abc"));
        assert_eq!(
            query,
            [("tenant", "a"), ("code", "oc_abc"), ("state", "st&=ate ~!"), ("iss", ISSUER)]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let native = parse(&with(&[("redirect_uri", Some("com.example.app:/callback")), ("state", None)])).unwrap();
        let location = native.success_location("oc_abc");
        assert!(location.starts_with("com.example.app:/callback?code=oc_abc&iss="), "{location}");
    }

    fn login(phone: &str, auth_time: Timestamp) -> ActiveLogin {
        ActiveLogin {
            user: User { id: UserId::generate(), phone: phone.into(), created_at: Timestamp(0) },
            channel: Channel::Sms,
            auth_time,
        }
    }

    #[test]
    fn single_sign_on_unless_the_request_asks_for_the_phone_again() {
        let now = Timestamp(10_000_000);
        let fresh = login("+14155550100", Timestamp(now.0 - 60_000));
        let decide = |changes: &[(&str, Option<&str>)], session: Option<&ActiveLogin>| {
            parse(&with(changes)).unwrap().decide(session, now)
        };
        assert_eq!(decide(&[], None), Decision::Login);
        assert_eq!(decide(&[], Some(&fresh)), Decision::Issue);
        assert_eq!(decide(&[("prompt", Some("none"))], Some(&fresh)), Decision::Issue);
        assert_eq!(decide(&[("prompt", Some("login"))], Some(&fresh)), Decision::Login);
        assert_eq!(decide(&[("prompt", Some("select_account"))], Some(&fresh)), Decision::Login);
        assert_eq!(decide(&[("prompt", Some("consent"))], Some(&fresh)), Decision::Issue);
        assert_eq!(decide(&[("max_age", Some("60"))], Some(&fresh)), Decision::Issue);
        assert_eq!(decide(&[("max_age", Some("59"))], Some(&fresh)), Decision::Login);
        assert_eq!(decide(&[("max_age", Some("0"))], Some(&fresh)), Decision::Login);
        assert_eq!(decide(&[("login_hint", Some("+14155550100"))], Some(&fresh)), Decision::Issue);
        assert_eq!(decide(&[("login_hint", Some("+14155550199"))], Some(&fresh)), Decision::Login);
        for (changes, session) in [
            (&[("prompt", Some("none"))][..], None),
            (&[("prompt", Some("none")), ("max_age", Some("10"))][..], Some(&fresh)),
            (&[("prompt", Some("none")), ("login_hint", Some("+14155550199"))][..], Some(&fresh)),
        ] {
            let Decision::Refuse(e) = decide(changes, session) else { panic!("{changes:?}: prompt=none refuses") };
            assert_eq!(e.error, AuthorizeErrorCode::LoginRequired);
            let query = query_of(&e.location());
            assert!(query.contains(&("error".into(), "login_required".into())));
            assert!(query.contains(&("state".into(), "st&=ate ~!".into())));
        }
    }
}
