//! The `otpgate` binary: a thin command line over `otpgate-server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use otpgate_server::{Application, Config, Overrides};

mod remote;
mod users;

#[derive(Parser)]
#[command(name = "otpgate", version, about = "Phone verification and sign-in over SMS one-time codes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        /// Configuration file (default: ./otpgate.toml when present).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides `listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Talk to the configured SMS provider.
    Sms {
        #[command(subcommand)]
        command: SmsCommand,
    },
    /// Manage the access-token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The HMAC key as the stores know it.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Send a code through a running otpgate (e.g. to test a deployment); prints the verification.
    Send(remote::SendArgs),
    /// Check a code through a running otpgate; prints the approval and the session.
    Check(remote::CheckArgs),
    /// Export or erase what is held about a phone number (privacy requests).
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
}

#[derive(Subcommand)]
enum SmsCommand {
    /// Send one real message with the current configuration (for operators checking a deployment).
    Test {
        /// The number to text, E.164.
        phone: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new current signing key and keep the old one for verification, so nobody is
    /// logged out. Creates the key file when it does not exist. Running servers pick it up
    /// within seconds.
    Rotate {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The key file (default: `sessions.keys_file` from the configuration).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// After changing `secrets.hmac_key` on purpose, with every instance stopped: record the
    /// configured key as the one the hot store is used with, so instances with it can start
    /// (they refuse while the store remembers another key). Codes, sessions and limits made
    /// with the old key stop working.
    AdoptHmacKey {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration without serving; prints it with secrets redacted.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Many small, short-lived allocations per request across worker threads: mimalloc's per-thread
/// heaps serve them with far less work and contention than glibc's malloc (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, listen } => serve(config, listen),
        Command::Send(args) => remote::send(args),
        Command::Check(args) => remote::check(args),
        Command::Users { command } => users::run(command),
        Command::Keys { command: KeysCommand::Rotate { config, file } } => rotate_keys(config, file),
        Command::Secrets { command: SecretsCommand::AdoptHmacKey { config } } => adopt_hmac_key(config),
        Command::Sms { command: SmsCommand::Test { phone, config } } => sms_test(config, &phone),
        Command::Config { command: ConfigCommand::Check { config } } => match Config::load(config.as_deref()) {
            Ok(config) => {
                println!("{}", config.redacted_json());
                eprintln!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid configuration: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn sms_test(config_file: Option<PathBuf>, phone: &str) -> ExitCode {
    let config = match Config::load(config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    otpgate_server::telemetry::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(otpgate_server::provider::send_test_message(&config, phone)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("test message not sent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn adopt_hmac_key(config_file: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(otpgate_server::keys::adopt(&config)) {
        Ok(Some(replaced)) => {
            println!("the hot store is now used with the configured HMAC key (replaced fingerprint {replaced})");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("the hot store is used with the configured HMAC key");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot record the HMAC key: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rotate_keys(config_file: Option<PathBuf>, file: Option<PathBuf>) -> ExitCode {
    let path = match file {
        Some(path) => path,
        None => match Config::load(config_file.as_deref()).map(|c| c.keys_file()) {
            Ok(path) => path,
            Err(e) => {
                eprintln!("invalid configuration: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let result = if path.exists() {
        otpgate_session::KeyRing::rotate_file(&path)
    } else {
        otpgate_session::KeyRing::load_or_generate(&path).map(|(ring, _)| ring)
    };
    match result {
        Ok(ring) => {
            println!("rotated {}: current key {}", path.display(), ring.current().kid());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot rotate {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Descriptors besides client connections: listeners, store connections, provider calls, files.
const FD_HEADROOM: u64 = 256;

fn serve(config_file: Option<PathBuf>, listen: Option<SocketAddr>) -> ExitCode {
    let mut config = match Config::load(config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = listen {
        config.listen = addr;
    }
    otpgate_server::telemetry::init(&config.log);
    // Each connection is a descriptor: the open-files limit must not be what caps connections
    // before `http.max_connections` does (accept would fail instead of shedding cleanly).
    if let Some(limit) = otpgate_server::serve::raise_fd_limit()
        && limit < (config.http.max_connections as u64).saturating_add(FD_HEADROOM)
    {
        tracing::warn!(
            open_files_limit = limit,
            max_connections = config.http.max_connections,
            "the open-files limit is below http.max_connections plus headroom; raise it (LimitNOFILE, ulimit -n) \
             or lower http.max_connections"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let app = match Application::build(&config, Overrides::default()).await {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("cannot start: {e}");
                return ExitCode::from(2);
            }
        };
        match app.run_until_stopped(otpgate_server::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
