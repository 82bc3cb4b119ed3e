//! `hello ADDR`: a minimal axum server answering `GET /` with a short text. Measured in the same
//! run as otpgate, it is the ceiling the benchmark reports ratios against (same runtime, same
//! HTTP stack, no work).

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18090".to_owned());
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
