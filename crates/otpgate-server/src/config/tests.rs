//! Loading and validation, end to end from TOML and environment variables.

use secrecy::ExposeSecret;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn load(toml: Option<&str>, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otpgate.toml");
    if let Some(toml) = toml {
        std::fs::write(&path, toml).unwrap();
    }
    Config::load_from(toml.map(|_| path.as_path()), &env(vars))
}

const PROD_KEY: &str = "0123456789abcdef0123456789abcdef-prod";

#[test]
fn defaults_are_the_documented_ones() {
    let c = load(None, &[]).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.sqlite_path().unwrap(), PathBuf::from("otpgate.db"));
    assert_eq!(c.provider_kind(), Some(ProviderKind::Demo));
    let p = c.policy();
    assert_eq!((p.code_length, p.code_ttl.as_secs(), p.max_attempts, p.resend_cooldown.as_secs()), (6, 120, 5, 30));
    assert_eq!(p.limits.phone_send, Some(Rate::new(3, Duration::from_secs(60))));
    assert_eq!(p.limits.country_send, None, "per-country limit off by default");
    assert_eq!(p.limits.ip_check, Some(Rate::new(30, Duration::from_secs(60))));
    let tn = c.effective_test_numbers().unwrap();
    assert_eq!(tn.get("+15005550006").map(|c| c.expose().to_owned()).as_deref(), Some("123456"));
}

#[test]
fn the_default_test_number_exists_only_with_the_demo_provider() {
    let twilio = [
        ("OTPGATE_PROVIDER__TWILIO__MESSAGING__FROM", "+15005550006"),
        ("OTPGATE_PROVIDER__TWILIO__ACCOUNT_SID", "AC00000000000000000000000000000000"), // fake test SID
        ("OTPGATE_PROVIDER__TWILIO__AUTH_TOKEN", "fake-token"),
    ];
    for kind in ["twilio-messaging", "[twilio-messaging]"] {
        let key = if kind.starts_with('[') { "OTPGATE_PROVIDER__FAILOVER" } else { "OTPGATE_PROVIDER__KIND" };
        let mut vars = twilio.to_vec();
        vars.push((key, kind));
        let c = load(None, &vars).unwrap();
        assert!(c.effective_test_numbers().unwrap().is_empty(), "{kind}: no default test number");
        let listed = load(Some("[test_numbers]\n\"+15005550007\" = \"654321\"\n"), &vars).unwrap();
        let numbers = listed.effective_test_numbers().unwrap();
        assert_eq!(numbers.keys().collect::<Vec<_>>(), ["+15005550007"], "{kind}: only what is listed");
    }
    let demo = load(Some("[provider]\nkind = \"demo\"\n"), &[]).unwrap();
    assert_eq!(demo.effective_test_numbers().unwrap().len(), 1);
}

#[test]
fn a_bot_check_may_be_required_nowhere() {
    let c = load(Some("[bot_check]\nkind = \"turnstile\"\nsecret = \"s\"\n"), &[]).unwrap();
    assert!(c.bot_check.required_for.is_empty());
    assert_eq!(c.bot_check.passed_limit_factor, 10);
    let e = load(None, &[("OTPGATE_BOT_CHECK__PASSED_LIMIT_FACTOR", "5000")]).unwrap_err().to_string();
    assert!(e.contains("bot_check.passed_limit_factor"), "{e}");
}

#[test]
fn file_then_env_then_file_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hmac");
    std::fs::write(&secret, format!("{PROD_KEY}\n")).unwrap();
    let c = load(
        Some("app_name = \"Acme\"\n[codes]\nttl_secs = 300\nlength = 8\n"),
        &[
            ("OTPGATE_CODES__TTL_SECS", "240"),
            ("OTPGATE_SECRETS__HMAC_KEY", "x".repeat(40).as_str()),
            ("OTPGATE_SECRETS__HMAC_KEY_FILE", secret.to_str().unwrap()),
            ("OTPGATE_TEST_REDIS_URL", "redis://ignored"),
            ("OTPGATE_TEST_NUMBERS", r#"{"+15005550007" = "87654321"}"#),
            ("OTPGATE_PROVIDER__TWILIO__MESSAGING__FROM", "+15005550006"),
            ("OTPGATE_PROVIDER__TWILIO__ACCOUNT_SID", "AC00000000000000000000000000000000"), // fake test SID
            ("OTPGATE_PROVIDER__TWILIO__AUTH_TOKEN", "fake-token"),
            ("OTPGATE_PROVIDER__FAILOVER", "[twilio-messaging]"),
            ("UNRELATED", "1"),
        ],
    )
    .unwrap();
    assert_eq!(c.app_name, "Acme");
    assert_eq!(c.codes.length, 8);
    assert_eq!(c.codes.ttl_secs, 240, "env beats the file");
    assert_eq!(
        c.secrets.hmac_key.as_ref().unwrap().expose_secret(),
        PROD_KEY,
        "the _FILE secret wins, newline trimmed"
    );
}

#[test]
fn unknown_keys_are_named() {
    let e = load(Some("[codes]\nttl = 5\n"), &[]).unwrap_err().to_string();
    assert!(e.contains("ttl"), "{e}");
    let e = load(None, &[("OTPGATE_CODEZ__LENGTH", "6")]).unwrap_err().to_string();
    assert!(e.contains("codez") && e.contains("environment variables"), "{e}");
    let e = load(None, &[("OTPGATE_CODES__LENGTH", "six")]).unwrap_err().to_string();
    assert!(e.contains("`codes.length`"), "{e}");
}

#[test]
fn unsafe_values_are_named() {
    for (vars, key) in [
        (vec![("OTPGATE_CODES__LENGTH", "3")], "codes"),
        (vec![("OTPGATE_LISTEN", "nowhere")], "listen"),
        (vec![("OTPGATE_DEFAULT_REGION", "XX")], "default_region"),
        (vec![("OTPGATE_SECRETS__HMAC_KEY", "short")], "secrets.hmac_key"),
        (vec![("OTPGATE_STORE__HOT", "mysql://x")], "store.hot"),
        (vec![("OTPGATE_WEBOTP_DOMAIN", "exa mple.com")], "webotp_domain"),
    ] {
        let e = load(None, &vars).unwrap_err().to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
    let e = load(Some("[messages]\nen = \"no placeholder\"\n"), &[]).unwrap_err().to_string();
    assert!(e.contains("messages") && e.contains("`en`"), "{e}");
    let e = load(Some("[test_numbers]\n\"+15005550006\" = \"12ab56\"\n"), &[]).unwrap_err().to_string();
    assert!(e.contains("test_numbers") && !e.contains("12ab56"), "{e}");
}

#[test]
fn production_refuses_demo_test_numbers_and_missing_key() {
    let prod = [("OTPGATE_ENVIRONMENT", "production")];
    let e = load(None, &prod).unwrap_err();
    assert_eq!(e.config_key(), Some("secrets.hmac_key"), "a rule's error carries its key: {e}");
    let e = e.to_string();
    assert!(e.contains("secrets.hmac_key"), "{e}");
    let e = load(None, &[("OTPGATE_ENVIRONMENT", "production"), ("OTPGATE_SECRETS__HMAC_KEY", PROD_KEY)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("sessions.keys_file"), "{e}");
    let with_key = [
        ("OTPGATE_ENVIRONMENT", "production"),
        ("OTPGATE_SECRETS__HMAC_KEY", PROD_KEY),
        ("OTPGATE_SESSIONS__KEYS_FILE", "/var/lib/otpgate/keys.json"),
    ];
    let e = load(None, &with_key).unwrap_err().to_string();
    assert!(e.contains("provider.kind"), "{e}");
    let e = load(Some("[provider]\nkind = \"demo\"\n"), &with_key).unwrap_err().to_string();
    assert!(e.contains("demo provider"), "{e}");
    let ok =
        load(Some("dangerously_allow_demo_provider_in_production = true\n[provider]\nkind = \"demo\"\n"), &with_key)
            .unwrap();
    assert!(ok.effective_test_numbers().unwrap().is_empty(), "no test numbers by default in production");
    let e = load(
        Some("dangerously_allow_demo_provider_in_production = true\n[provider]\nkind = \"demo\"\n[test_numbers]\n\"+15005550006\" = \"123456\"\n"),
        &with_key,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("test_numbers"), "{e}");
}

#[test]
fn redacted_print_holds_no_secret() {
    let c = load(None, &[("OTPGATE_SECRETS__HMAC_KEY", PROD_KEY)]).unwrap();
    let printed = c.redacted_json();
    assert!(!printed.contains(PROD_KEY), "{printed}");
    assert!(printed.contains("<redacted>"));
    assert!(!format!("{c:?}").contains(PROD_KEY));
}

#[test]
fn values_are_parsed_into_their_types_at_load_and_a_bad_one_names_its_key() {
    for (vars, key, value) in [
        (vec![("OTPGATE_LISTEN", "127.0.0.1")], "`listen`", "127.0.0.1"),
        (vec![("OTPGATE_HTTP__ADMIN_LISTEN", "localhost:9090")], "`http.admin_listen`", "localhost:9090"),
        (
            vec![("OTPGATE_HTTP__TRUSTED_PROXIES", "[\"10.0.0.0/8\", \"10.0.0.0/33\"]")],
            "http.trusted_proxies",
            "10.0.0.0/33",
        ),
        (
            vec![("OTPGATE_HTTP__CORS_ALLOWED_ORIGINS", "[\"https://app.example.com/\"]")],
            "http.cors_allowed_origins",
            "https://app.example.com/",
        ),
        (
            vec![("OTPGATE_HTTP__PAGE_API_BASE", "https://api.example.com/?x")],
            "`http.page_api_base`",
            "https://api.example.com/?x",
        ),
        (vec![("OTPGATE_DEFAULT_REGION", "us")], "`default_region`", "us"),
        (vec![("OTPGATE_REGIONS__ALLOW", "[\"GB\", \"XX\"]")], "regions.allow", "XX"),
        (vec![("OTPGATE_REGIONS__DENY", "[\"001\"]")], "regions.deny", "001"),
        (vec![("OTPGATE_REGIONS__REFUSED_KINDS", "[\"premium\"]")], "regions.refused_kinds", "premium"),
        (vec![("OTPGATE_BOT_CHECK__REQUIRED_FOR", "[\"**\"]")], "bot_check.required_for", "**"),
        (vec![("OTPGATE_STORE__HOT", "memcached://cache:11211")], "`store.hot`", "memcached://cache:11211"),
        (vec![("OTPGATE_STORE__DURABLE", "redis://cache:6379")], "`store.durable`", "redis://cache:6379"),
        (vec![("OTPGATE_WEBOTP_DOMAIN", "https://example.com")], "`webotp_domain`", "https://example.com"),
    ] {
        let e = load(None, &vars).unwrap_err();
        assert!(matches!(e, ConfigError::Other(_)), "{key}: refused by the load itself, not by validate: {e}");
        let e = e.to_string();
        assert!(e.contains(key) && e.contains(value), "{key}: {e}");
        assert!(e.contains("(from environment variables OTPGATE_*)"), "{key}: says where the value came from: {e}");
    }
    let e = load(Some("[http]\ntrusted_proxies = [\"nope\"]\n"), &[]).unwrap_err().to_string();
    assert!(e.contains("http.trusted_proxies") && e.contains("otpgate.toml"), "{e}");
}

#[test]
fn parsed_values_are_the_types_the_server_uses() {
    let c = load(
        Some(
            "listen = \"[::1]:9000\"\ndefault_region = \"GB\"\n[regions]\ndeny = [\"US\"]\nrefused_kinds = [\"voip\"]\n\
             [http]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\ncors_allowed_origins = [\"https://app.example.com\"]\n\
             [store]\nhot = \"redis://:hunter2@cache:6379\"\ndurable = \"sqlite://data/otpgate.db\"\n",
        ),
        &[],
    )
    .unwrap();
    assert_eq!(c.listen, "[::1]:9000".parse::<std::net::SocketAddr>().unwrap());
    assert_eq!(c.region().map(|r| r.to_string()).as_deref(), Some("GB"));
    let policy = c.policy().regions;
    assert!(policy.deny.contains("US"));
    assert_eq!(policy.refused_kinds.into_iter().collect::<Vec<_>>(), [otpgate_core::NumberKind::Voip]);
    assert!(c.http.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
    assert!(c.http.trusted_proxies.contains("192.0.2.7".parse().unwrap()));
    assert!(!c.http.trusted_proxies.contains("192.0.2.8".parse().unwrap()));
    assert_eq!(c.http.cors_allowed_origins[0].as_str(), "https://app.example.com");
    assert!(matches!(c.store.hot.get(), otpgate_store::open::HotUrl::Redis(_)));
    assert_eq!(c.sqlite_path().unwrap(), PathBuf::from("data/otpgate.db"));
    let printed = c.redacted_json();
    assert!(!printed.contains("hunter2") && printed.contains("redis://:<redacted>@cache:6379"), "{printed}");
    assert!(!format!("{c:?}").contains("hunter2"));
    // What is printed loads again to the same values (the defaults go through the same path).
    assert!(printed.contains("\"10.0.0.0/8\"") && printed.contains("\"192.0.2.7\""), "{printed}");
}

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
    let config = Config::load_from(None, &env).expect("valid");
    let debug = format!("{config:?}");
    let printed = config.redacted_json();
    for secret in secrets {
        assert!(!debug.contains(secret), "Debug shows {secret}: {debug}");
        assert!(!printed.contains(secret), "the print shows {secret}: {printed}");
    }
    assert!(config.provider.twilio.is_some() && config.bot_check.secret.is_some(), "the secrets were loaded");
}

#[test]
fn numbers_in_provider_tables_can_come_from_the_environment() {
    let toml = "[providers.vonage]\nkind = \"vonage\"\napi_key = \"abcd1234\"\napi_secret = \"fake-secret-1\"\nfrom = \"Acme\"\n\
                [[routing]]\ncountries = [\"*\"]\nproviders = [\"vonage\"]\n";
    let vars = [
        ("OTPGATE_PROVIDERS__VONAGE__HTTP__REQUEST_TIMEOUT_MS", "5000"),
        ("OTPGATE_PROVIDERS__VONAGE__RETRY__MAX_RETRIES", "4"),
        ("OTPGATE_PROVIDERS__VONAGE__BREAKER__OPEN_SECS", "45"),
        // Text that looks like a number stays text where text is expected (a numeric sender id).
        ("OTPGATE_PROVIDERS__VONAGE__FROM", "12345"),
    ];
    let c = load(Some(toml), &vars).unwrap();
    let otpgate_sms::ProviderConfig::Vonage(v) = &c.providers.values().next().unwrap() else {
        panic!("a vonage table")
    };
    assert_eq!((v.http.request_timeout_ms, v.retry.max_retries, v.breaker.open_secs), (5000, 4, 45));
    assert_eq!(v.from, "12345");
    // A value that is no number is still refused, naming the table and the key in it.
    let e = load(Some(toml), &[("OTPGATE_PROVIDERS__VONAGE__HTTP__REQUEST_TIMEOUT_MS", "soon")]).unwrap_err();
    let e = e.to_string();
    assert!(e.contains("providers.vonage") && e.contains("request_timeout_ms"), "{e}");
}
