//! Built-in HTTPS against self-signed certificates made at test time (rcgen): the API works over
//! TLS (HTTP/2 by ALPN, HSTS on every answer), production refuses plain HTTP on a public address,
//! a replaced certificate is served to new connections without the listener ever closing, and
//! connections that never send a ClientHello neither keep a real client waiting nor outlive the
//! handshake deadline.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otpgate_server::client_ip::TrustedProxies;
use otpgate_server::config::ProviderKind;
use otpgate_server::{Application, Config, Environment, Overrides};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct TestCert {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn make_cert(common_name: &str) -> TestCert {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let key = rcgen::KeyPair::generate().expect("key pair");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    TestCert { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone() }
}

/// Replaces both files the way a renewal tool should: write aside, then rename over.
fn install(cert: &TestCert, dir: &Path) {
    for (name, content) in [("key.pem", &cert.key_pem), ("cert.pem", &cert.cert_pem)] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

fn tls_config(dir: &tempfile::TempDir) -> Config {
    let mut config = crate::common::test_config(dir);
    config.tls.cert_file = Some(dir.path().join("cert.pem"));
    config.tls.key_file = Some(dir.path().join("key.pem"));
    config.tls.reload_interval_secs = 1;
    config
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn run(config: &Config) -> Running {
    let app = Application::build(config, Overrides::default()).await.expect("app builds");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Running { addr, stop: Some(tx), handle }
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("graceful shutdown finishes")
            .expect("server task")
            .expect("server ran");
    }
}

fn https_client(cert: &TestCert, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap()])
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

/// A raw TLS connection trusting `roots`; answers the certificate the server presented.
async fn connect(
    addr: SocketAddr,
    roots: &[&TestCert],
    alpn: &[&[u8]],
) -> (tokio_rustls::client::TlsStream<TcpStream>, CertificateDer<'static>) {
    connect_over(TcpStream::connect(addr).await.unwrap(), roots, alpn).await
}

async fn connect_over(
    tcp: TcpStream,
    roots: &[&TestCert],
    alpn: &[&[u8]],
) -> (tokio_rustls::client::TlsStream<TcpStream>, CertificateDer<'static>) {
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store.add(cert.der.clone()).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let presented = stream.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned();
    (stream, presented)
}

/// One HTTP/1.1 request on an open connection; answers the status line.
async fn get_healthz(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_api_works_over_https_with_http2_and_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert("otpgate test A");
    install(&cert, dir.path());
    let server = run(&tls_config(&dir)).await;
    let client = https_client(&cert, server.addr);
    let base = format!("https://localhost:{}", server.addr.port());

    let health = client.get(format!("{base}/healthz")).send().await.expect("HTTPS request");
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
    assert_eq!(
        health.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()),
        Some("max-age=31536000; includeSubDomains")
    );

    // A whole sign-in over TLS (the development test number has the fixed code 123456).
    let sent = client.post(format!("{base}/v1/verifications")).json(&json!({"phone": "+15005550006"})).send().await;
    assert_eq!(sent.unwrap().status(), 201);
    let checked = client
        .post(format!("{base}/v1/verifications/check"))
        .json(&json!({"phone": "+15005550006", "code": "123456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), 200);
    assert!(checked.headers().contains_key("strict-transport-security"));
    let body: serde_json::Value = checked.json().await.unwrap();
    assert_eq!(body["status"], "approved");

    // HTTP/1.1 by ALPN works too.
    let (mut h1, _) = connect(server.addr, &[&cert], &[b"http/1.1"]).await;
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(get_healthz(&mut h1).await.contains("200"));
    drop(h1);

    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new().get(format!("http://{}/healthz", server.addr)).send().await;
    assert!(plain.is_err(), "plain HTTP must not be served: {plain:?}");

    // Graceful shutdown finishes, and the port is closed afterwards.
    let addr = server.addr;
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed after shutdown");
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_offered() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert("otpgate test versions");
    install(&cert, dir.path());
    let server = run(&tls_config(&dir)).await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut store = rustls::RootCertStore::empty();
        store.add(cert.der.clone()).unwrap();
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(store)
                .with_no_client_auth();
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_dropping_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (make_cert("otpgate test A"), make_cert("otpgate test B"));
    assert_ne!(a.der, b.der);
    install(&a, dir.path());
    let server = run(&tls_config(&dir)).await;

    let (mut before, presented) = connect(server.addr, &[&a, &b], &[b"http/1.1"]).await;
    assert_eq!(presented, a.der, "serves A");
    assert!(get_healthz(&mut before).await.contains("200"));

    install(&b, dir.path());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, presented) = connect(server.addr, &[&a, &b], &[b"http/1.1"]).await;
        if presented == b.der {
            break;
        }
        assert!(Instant::now() < deadline, "certificate B was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Same listener: the connection made before the swap still answers, on the old certificate.
    assert!(get_healthz(&mut before).await.contains("200"));
    assert!(!server.handle.is_finished());

    // A broken renewal (key of another certificate) leaves B in place.
    let c = make_cert("otpgate test C");
    std::fs::write(dir.path().join("cert.pem"), &c.cert_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, presented) = connect(server.addr, &[&a, &b], &[b"http/1.1"]).await;
    assert_eq!(presented, b.der, "a mismatched pair is not loaded");
    server.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (make_cert("otpgate hup A"), make_cert("otpgate hup B"));
    install(&a, dir.path());
    let mut config = tls_config(&dir);
    config.tls.reload_interval_secs = 3600; // only the signal can trigger the reload
    let server = run(&config).await;
    assert_eq!(connect(server.addr, &[&a, &b], &[]).await.1, a.der);
    install(&b, dir.path());
    let status = std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status();
    assert!(status.unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect(server.addr, &[&a, &b], &[]).await.1 != b.der {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

fn production(dir: &tempfile::TempDir) -> Config {
    let mut config = crate::common::test_config(dir);
    config.environment = Environment::Production;
    config.secrets.hmac_key = Some("an hmac key of at least thirty-two bytes!".to_owned().into());
    let keys = dir.path().join("signing-keys.json");
    otpgate_session::KeyRing::load_or_generate(&keys).unwrap();
    config.sessions.keys_file = Some(keys);
    config.provider.kind = Some(ProviderKind::Demo);
    config.dangerously_allow_demo_provider_in_production = true;
    // Production serves metrics on an admin listener (127.0.0.1:9090 by default): a free port
    // here, so tests running side by side do not collide.
    config.http.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    config
}

#[tokio::test]
async fn production_refuses_plain_http_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = production(&dir);
    config.listen = "0.0.0.0:0".parse().unwrap();
    let err = Application::build(&config, Overrides::default()).await.err().expect("refused").to_string();
    assert!(err.contains("plain HTTP") && err.contains("`listen`"), "{err}");

    // The same server with a certificate starts.
    let cert = make_cert("otpgate production");
    install(&cert, dir.path());
    config.tls.cert_file = Some(dir.path().join("cert.pem"));
    config.tls.key_file = Some(dir.path().join("key.pem"));
    let server = run(&config).await;
    let client = https_client(&cert, SocketAddr::from(([127, 0, 0, 1], server.addr.port())));
    let reply = client.get(format!("https://localhost:{}/healthz", server.addr.port())).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    server.stop().await;

    // Loopback is fine without TLS (a TLS-terminating sidecar in front).
    let mut loopback = production(&dir);
    loopback.listen = "127.0.0.1:0".parse().unwrap();
    run(&loopback).await.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_only_forwarded_https_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = production(&dir);
    config.listen = "0.0.0.0:0".parse().unwrap();
    config.http.trusted_proxies = TrustedProxies::parse(&["127.0.0.1/32"]).unwrap();
    let server = run(&config).await;
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", server.addr.port());
    let client = reqwest::Client::new();

    let refused = client.get(url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(!refused.headers().contains_key("strict-transport-security"));
    let spoofed = client.get(url("/.well-known/jwks.json")).header("x-forwarded-proto", "https, http").send().await;
    assert_eq!(spoofed.unwrap().status(), 400);

    let proxied = client.get(url("/.well-known/jwks.json")).header("x-forwarded-proto", "https").send().await.unwrap();
    assert_eq!(proxied.status(), 200);
    assert_eq!(
        proxied.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()),
        Some("max-age=31536000; includeSubDomains")
    );
    // Health probes come from the load balancer itself.
    assert_eq!(client.get(url("/healthz")).send().await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn plain_development_answers_carry_no_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let server = run(&crate::common::test_config(&dir)).await;
    let reply = reqwest::get(format!("http://{}/healthz", server.addr)).await.unwrap();
    assert_eq!(reply.status(), 200);
    assert!(!reply.headers().contains_key("strict-transport-security"));
    server.stop().await;
}

#[tokio::test]
async fn bad_certificate_files_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = tls_config(&dir);
    let err = Application::build(&config, Overrides::default()).await.err().expect("no files").to_string();
    assert!(err.contains("tls.cert_file"), "{err}");
    let (a, b) = (make_cert("A"), make_cert("B"));
    std::fs::write(dir.path().join("cert.pem"), &a.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &b.key_pem).unwrap();
    let err = Application::build(&config, Overrides::default()).await.err().expect("mismatch").to_string();
    assert!(err.contains("tls.key_file") && !err.contains("PRIVATE KEY"), "{err}");
}

/// A TCP connection to `to` from the loopback address 127.0.0.`from` (loopback is a whole /8,
/// so each attacker address here is its own client, as on the internet).
async fn connect_from(from: u8, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, from], 0))).unwrap();
    socket.connect(to).await.unwrap_or_else(|e| panic!("connect from 127.0.0.{from}: {e}"))
}

/// Whether the server closed `stream` within `wait` (a read ends: EOF or reset).
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(wait, stream.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn six_hundred_silent_connections_do_not_keep_an_https_client_waiting() {
    const SILENT: usize = 600;
    let limit = otpgate_server::serve::raise_fd_limit().unwrap_or(u64::MAX);
    assert!(limit >= 2 * SILENT as u64 + 256, "this test needs more open files than the hard limit {limit} allows");
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert("otpgate flood");
    install(&cert, dir.path());
    let mut config = tls_config(&dir);
    config.tls.handshake_timeout_secs = 2;
    let server = run(&config).await;

    // 600 connections that never send a ClientHello, from 60 addresses (10 each: under the
    // per-address handshake cap, so every one of them is held until the deadline).
    let mut silent = Vec::new();
    for i in 0..SILENT {
        silent.push(connect_from(100 + (i % 60) as u8, server.addr).await);
    }
    let opened = Instant::now();
    let client = https_client(&cert, server.addr);
    let url = format!("https://localhost:{}/healthz", server.addr.port());
    for _ in 0..3 {
        let started = Instant::now();
        let reply = tokio::time::timeout(Duration::from_secs(1), client.get(&url).send())
            .await
            .expect("an HTTPS client is answered within 1 s")
            .expect("HTTPS request");
        assert_eq!(reply.status(), 200);
        eprintln!("HTTPS /healthz with {SILENT} silent connections open: {:?}", started.elapsed());
    }
    let mut still_open = 0;
    for stream in &mut silent {
        still_open += usize::from(!closed_within(stream, Duration::from_millis(1)).await);
    }
    assert!(opened.elapsed() < Duration::from_secs(2) && still_open == SILENT, "held, not shed: {still_open} open");

    // The handshake deadline (2 s here) closes every one of them.
    for stream in &mut silent {
        let left = (opened + Duration::from_secs(4)).saturating_duration_since(Instant::now());
        assert!(closed_within(stream, left).await, "a silent connection outlived the handshake deadline");
    }
    server.stop().await;
}

#[tokio::test]
async fn handshakes_past_the_per_address_cap_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert("otpgate handshake cap");
    install(&cert, dir.path());
    let mut config = tls_config(&dir);
    config.tls.max_handshakes_per_ip = 5;
    let server = run(&config).await;
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(connect_from(90, server.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut sixth = connect_from(90, server.addr).await;
    assert!(closed_within(&mut sixth, Duration::from_secs(1)).await, "the sixth handshake from one address");
    assert!(started.elapsed() < Duration::from_millis(500), "closed at once, not queued");
    for stream in &mut silent {
        assert!(!closed_within(stream, Duration::from_millis(1)).await, "the first five are held");
    }
    // Another address, and then the same one once its handshakes are gone, get in.
    let client = https_client(&cert, server.addr);
    let url = format!("https://localhost:{}/healthz", server.addr.port());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    drop(silent);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut again, _) = connect_over(connect_from(90, server.addr).await, &[&cert], &[b"http/1.1"]).await;
    assert!(get_healthz(&mut again).await.contains("200"));
    server.stop().await;
}
