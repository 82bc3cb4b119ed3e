//! `otpgate users export|delete +…`: the operator side of the subject's rights, straight on the
//! configured stores (no running server needed).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use otpgate_server::Config;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Print, as JSON, everything held about a phone number: the user, their refresh tokens'
    /// metadata, verifications (status and times) and limit counters. Never codes or token hashes.
    Export {
        /// The phone number (E.164, or national with `default_region`).
        phone: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Erase a phone number: the user, their refresh tokens, every verification and the limit
    /// counters. Prints what was deleted (the number masked).
    Delete {
        phone: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

pub fn run(command: UsersCommand) -> ExitCode {
    let (config_file, phone, delete) = match command {
        UsersCommand::Export { phone, config } => (config, phone, false),
        UsersCommand::Delete { phone, config } => (config, phone, true),
    };
    let config = match Config::load(config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    otpgate_server::telemetry::init_stderr(&config.log);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        if delete {
            otpgate_server::privacy::erase(&config, &phone).await
        } else {
            otpgate_server::privacy::export(&config, &phone).await
        }
    });
    match result {
        Ok(json) => {
            println!("{json:#}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{} failed: {e}", if delete { "delete" } else { "export" });
            ExitCode::FAILURE
        }
    }
}
