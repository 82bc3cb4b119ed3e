//! Secrets hygiene, on the built binary: with every kind of secret set (environment, `_FILE`,
//! TOML, a password inside a store URL), neither `otpgate config check` nor the other commands
//! print any of them, on stdout or stderr, and neither do configuration errors.

use std::path::Path;
use std::process::{Command, Output};

const HMAC_ENV: &str = "hmac-from-env-0123456789abcdef-SECRET-1";
const HMAC_FILE: &str = "hmac-from-file-0123456789abcdef-SECRET-2";
const TWILIO_TOKEN: &str = "twilio-auth-token-SECRET-3";
const TWILIO_KEY_SECRET: &str = "twilio-api-key-secret-SECRET-4";
const BOT_SECRET: &str = "bot-check-secret-SECRET-5";
const PG_PASSWORD: &str = "pg-password-SECRET-6";

const ALL: &[&str] = &[HMAC_ENV, HMAC_FILE, TWILIO_TOKEN, TWILIO_KEY_SECRET, BOT_SECRET, PG_PASSWORD];

fn toml(dir: &Path) -> String {
    let db = dir.join("otpgate.db");
    format!(
        r#"
[store]
hot = "sqlite://{db}"
durable = "sqlite://{db}"

[provider]
kind = "twilio-verify"

[provider.twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
api_key_sid = "SK0123456789abcdef0123456789abcdef"
api_key_secret = "{TWILIO_KEY_SECRET}"

[provider.twilio.verify]
service_sid = "VA0123456789abcdef0123456789abcdef"
"#,
        db = db.display()
    )
}

fn otpgate(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let config = dir.join("otpgate.toml");
    std::fs::write(&config, toml(dir)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otpgate"));
    cmd.args(args).arg("--config").arg(&config).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Logs on, as verbose as they go: secrets must not appear at any level.
    cmd.env("RUST_LOG", "trace");
    cmd.output().expect("the binary runs")
}

fn secret_env(dir: &Path) -> Vec<(&'static str, String)> {
    let hmac_file = dir.join("hmac");
    std::fs::write(&hmac_file, format!("{HMAC_FILE}\n")).unwrap();
    vec![
        ("OTPGATE_SECRETS__HMAC_KEY", HMAC_ENV.to_owned()),
        ("OTPGATE_SECRETS__HMAC_KEY_FILE", hmac_file.display().to_string()),
        ("OTPGATE_PROVIDER__TWILIO__AUTH_TOKEN", TWILIO_TOKEN.to_owned()),
        ("OTPGATE_BOT_CHECK__KIND", "turnstile".to_owned()),
        ("OTPGATE_BOT_CHECK__SECRET", BOT_SECRET.to_owned()),
        ("OTPGATE_BOT_CHECK__REQUIRED_FOR", "[\"*\"]".to_owned()),
    ]
}

fn assert_clean(what: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for secret in ALL {
        assert!(!stdout.contains(secret), "{what}: stdout shows {secret}:\n{stdout}");
        assert!(!stderr.contains(secret), "{what}: stderr shows {secret}:\n{stderr}");
    }
}

#[test]
fn config_check_prints_the_effective_config_with_every_secret_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = otpgate(dir.path(), &["config", "check"], &secret_env(dir.path()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_clean("config check", &out);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["secrets"]["hmac_key"], "<redacted>");
    assert_eq!(printed["provider"]["twilio"]["auth_token"], "<redacted>");
    assert_eq!(printed["provider"]["twilio"]["api_key_secret"], "<redacted>");
    assert_eq!(printed["bot_check"]["secret"], "<redacted>");
    assert_eq!(printed["provider"]["twilio"]["account_sid"], "AC0123456789abcdef0123456789abcdef", "non-secrets stay");
}

#[test]
fn a_password_in_a_store_url_is_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = secret_env(dir.path());
    env.push(("OTPGATE_STORE__DURABLE", format!("postgres://otpgate:{PG_PASSWORD}@db.internal:5432/otpgate")));
    let out = otpgate(dir.path(), &["config", "check"], &env);
    assert_clean("config check with a postgres URL", &out);
    if out.status.success() {
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(printed["store"]["durable"], "postgres://otpgate:<redacted>@db.internal:5432/otpgate");
    }
}

#[test]
fn errors_name_the_key_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let short = "short-SECRET-7";
    let out = otpgate(dir.path(), &["config", "check"], &[("OTPGATE_SECRETS__HMAC_KEY", short.to_owned())]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("secrets.hmac_key"), "{stderr}");
    assert!(!stderr.contains(short) && !String::from_utf8_lossy(&out.stdout).contains(short), "{stderr}");
    // A wrong type for a secret: the figment error must not quote the value either.
    let out = otpgate(dir.path(), &["config", "check"], &[("OTPGATE_BOT_CHECK__SECRET", "[\"SECRET-8\"]".to_owned())]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("SECRET-8"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_privacy_commands_log_no_secret_and_no_full_number() {
    let dir = tempfile::tempdir().unwrap();
    let env = secret_env(dir.path());
    let out = otpgate(dir.path(), &["users", "export", "+14155550123"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_clean("users export", &out);
    let export: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(export["phone"], "+14155550123");
    assert!(export["user"].is_null());

    let out = otpgate(dir.path(), &["users", "delete", "+14155550123"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_clean("users delete", &out);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("4155550123"), "erasure output and logs mask the number: {all}");
}
