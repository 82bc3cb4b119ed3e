//! Logging: human-readable on a terminal, JSON otherwise (or as configured). Phone numbers are
//! masked and codes never logged by the code that logs; this module only picks the format.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Targets that are always silenced, whatever the configured level: the phone-number library
/// logs whole numbers at debug/trace level, which would defeat masking.
const ALWAYS_OFF: &[&str] = &["rlibphonenumber=off"];

/// The filter for `level` (`RUST_LOG` syntax) with the always-silenced targets appended, so no
/// configuration can turn them back on.
pub fn env_filter(level: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in ALWAYS_OFF {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(log: &LogConfig) {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| log.level.clone());
    let filter = env_filter(&level);
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.try_init()
    };
}

/// As `init`, but logs go to stderr: for commands whose stdout is their output
/// (`otpgate users export`).
pub fn init_stderr(log: &LogConfig) {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| log.level.clone());
    let builder =
        tracing_subscriber::fmt().with_env_filter(env_filter(&level)).with_target(false).with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).with_span_list(false).try_init(),
        LogFormat::Pretty | LogFormat::Auto => builder.try_init(),
    };
}
