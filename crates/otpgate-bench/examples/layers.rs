//! `layers CONFIG ADDR`: otpgate's server (as `otpgate serve --config CONFIG --listen ADDR`) with
//! the middleware layers named in `BENCH_WITHOUT_LAYERS` removed (comma-separated:
//! request_id, metrics, access_log, transport, cors, security_headers, deadline, catch_panic,
//! body_limit, or `all`). The variable is read once, here, at start; the server itself has no
//! such switch. For BENCHMARKS.md's per-layer table: each layer's cost is the difference from the
//! full stack, measured with `bench/layers.sh`.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(listen)) = (args.next(), args.next()) else {
        eprintln!("usage: layers CONFIG ADDR (BENCH_WITHOUT_LAYERS=cors,metrics,...)");
        return std::process::ExitCode::from(2);
    };
    let layers =
        match otpgate_server::layers::Layers::without(&std::env::var("BENCH_WITHOUT_LAYERS").unwrap_or_default()) {
            Ok(layers) => layers,
            Err(e) => {
                eprintln!("BENCH_WITHOUT_LAYERS: {e}");
                return std::process::ExitCode::from(2);
            }
        };
    let mut config = match otpgate_server::Config::load(Some(std::path::Path::new(&config))) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    config.listen = listen.parse().expect("ADDR is host:port");
    otpgate_server::telemetry::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let overrides = otpgate_server::Overrides { layers, ..Default::default() };
        let app = otpgate_server::Application::build(&config, overrides).await.expect("the server starts");
        app.run_until_stopped(otpgate_server::shutdown_signal()).await.expect("the server runs");
    });
    std::process::ExitCode::SUCCESS
}
