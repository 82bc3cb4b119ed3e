//! `otpgate send` and `otpgate check`: the built binary against a server spawned in the test.

use std::process::{Command, Output};

use otpgate_server::config::StoreConfig;
use otpgate_server::{Application, Config, Overrides};
use serde_json::Value;

/// The development test number and its fixed code.
const TEST_PHONE: &str = "+15005550006";
const TEST_CODE: &str = "123456";

async fn spawn_server(dir: &tempfile::TempDir) -> String {
    spawn_server_with(dir, |_| {}).await
}

async fn spawn_server_with(dir: &tempfile::TempDir, configure: impl FnOnce(&mut Config)) -> String {
    let db = format!("sqlite://{}", dir.path().join("otpgate.db").display());
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: StoreConfig { hot: db.parse().unwrap(), durable: db.parse().unwrap(), ..Default::default() },
        ..Config::default()
    };
    configure(&mut config);
    let app = Application::build(&config, Overrides::default()).await.expect("app builds");
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    url
}

async fn otpgate(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_otpgate")).args(&args).output().expect("the binary runs")
    })
    .await
    .unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_then_check_prints_the_verification_and_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let url = spawn_server(&dir).await;

    let sent = stdout_json(&otpgate(&["send", TEST_PHONE, "--url", &url]).await);
    assert_eq!(sent["status"], "pending");
    assert_eq!(sent["channel"], "sms");
    assert!(sent["id"].as_str().unwrap().starts_with("vf_"));

    let approved = stdout_json(&otpgate(&["check", TEST_PHONE, TEST_CODE, "--url", &url]).await);
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["user"]["phone"], TEST_PHONE);
    assert!(approved["session"]["access_token"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_print_the_message_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    let url = spawn_server(&dir).await;

    let out = otpgate(&["send", "+1 555", "--url", &url]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("doesn't look like a valid phone number") && err.contains("invalid_phone"), "{err}");

    stdout_json(&otpgate(&["send", TEST_PHONE, "--url", &url]).await);
    let out = otpgate(&["check", TEST_PHONE, "654321", "--url", &url]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("invalid_code") && err.contains("4 attempts left"), "{err}");

    let out = otpgate(&["send", TEST_PHONE, "--url", &url, "--channel", "fax"]).await;
    assert!(!out.status.success(), "clap refuses unknown channels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = otpgate(&["send", TEST_PHONE, "--url", &format!("http://127.0.0.1:{port}")]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot reach otpgate"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_passes_the_bot_check_token() {
    use wiremock::matchers::{body_string_contains, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // A Turnstile verifier that accepts the token "good" only.
    let verifier = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("response=good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({ "success": true })))
        .mount(&verifier)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({ "success": false })))
        .mount(&verifier)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let url = spawn_server_with(&dir, |c| {
        c.bot_check.kind = Some(otpgate_server::config::BotCheckKind::Turnstile);
        c.bot_check.secret = Some("bot-secret".to_owned().into());
        c.bot_check.required_for = vec!["*".parse().unwrap()];
        c.bot_check.verify_url = Some(format!("{}/siteverify", verifier.uri()));
    })
    .await;

    let out = otpgate(&["send", TEST_PHONE, "--url", &url]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("invalid_request") && err.contains("field bot_token"), "{err}");

    let out = otpgate(&["send", TEST_PHONE, "--url", &url, "--bot-token", "bad"]).await;
    assert!(stderr(&out).contains("field bot_token"), "{}", stderr(&out));

    let sent = stdout_json(&otpgate(&["send", TEST_PHONE, "--url", &url, "--bot-token", "good"]).await);
    assert_eq!(sent["status"], "pending");
    let tokens: Vec<String> = verifier
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            body.split('&').find_map(|kv| kv.strip_prefix("response=").map(str::to_owned))
        })
        .collect();
    assert_eq!(tokens, ["bad", "good"], "the token reached the verifier as given");
}

/// After a deliberate change of `secrets.hmac_key`, instances with the new key refuse to start
/// until `otpgate secrets adopt-hmac-key` records it; then the old key is the one refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopt_hmac_key_lets_a_deliberately_changed_key_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("otpgate.db").display());
    let with_key = |key: &str| {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            store: StoreConfig { hot: db.parse().unwrap(), durable: db.parse().unwrap(), ..Default::default() },
            ..Config::default()
        };
        config.secrets.hmac_key = Some(key.repeat(40).into());
        config
    };
    let starts = |config: Config| async move { Application::build(&config, Overrides::default()).await.is_ok() };
    assert!(starts(with_key("a")).await, "the first key is recorded");
    assert!(!starts(with_key("b")).await, "another key is refused");

    let file = dir.path().join("otpgate.toml");
    let toml = format!("[store]\nhot = \"{db}\"\ndurable = \"{db}\"\n[secrets]\nhmac_key = \"{}\"\n", "b".repeat(40));
    std::fs::write(&file, toml).unwrap();
    let out = otpgate(&["secrets", "adopt-hmac-key", "--config", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("replaced fingerprint"), "{out:?}");
    assert!(starts(with_key("b")).await, "the adopted key starts");
    assert!(!starts(with_key("a")).await, "and the old one is refused now");
}
