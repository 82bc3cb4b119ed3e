//! Loading: defaults in code, then an optional `otpgate.toml`, then `OTPGATE_*` environment
//! variables, then `OTPGATE_…_FILE` secret files. Values are parsed into their types here (an
//! address, a CIDR range, an origin, a region code, a store URL), so a bad one stops the load
//! with a message that names its key and where it came from.

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};

use super::{Config, ConfigError};

/// Environment variables that belong to the test suites, not to the server (unless they name a
/// key: `OTPGATE_TEST_NUMBERS` is `test_numbers`).
const IGNORED_ENV_PREFIX: &str = "TEST_";

impl Config {
    /// Loads `file` (if given; otherwise `otpgate.toml` when present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// As `load`, with the environment passed in (for tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::other(format!("config file {} does not exist", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("otpgate.toml").exists() => figment = figment.merge(Toml::file_exact("otpgate.toml")),
            None => {}
        }
        // Plain variables first, then `_FILE` ones (read from disk), so a secret file wins.
        let mut plain = Vec::new();
        let mut from_files = Vec::new();
        let schema = serde_json::to_value(Config::default()).unwrap_or_default();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("OTPGATE_") else { continue };
            if key.starts_with(IGNORED_ENV_PREFIX) && !is_config_key(&schema, key) {
                continue;
            }
            // `X_FILE` reads X from a file, unless `X_FILE` is itself a key (`sessions.keys_file`).
            match key.strip_suffix("_FILE").filter(|_| !is_config_key(&schema, key)) {
                Some(secret_key) => {
                    let contents = std::fs::read_to_string(value)
                        .map_err(|e| ConfigError::other(format!("{name}: cannot read {value}: {e}")))?;
                    from_files.push((secret_key.to_owned(), contents.trim_end_matches(['\n', '\r']).to_owned()));
                }
                None => plain.push((key.to_owned(), value.clone())),
            }
        }
        figment = figment
            .merge(EnvVars(env_dict(plain), "environment variables OTPGATE_*"))
            .merge(EnvVars(env_dict(from_files), "secret files named by OTPGATE_*_FILE"));
        // Lossy: environment values are strings; "300" becomes a number only where a number
        // is expected, so a phone number like +15005550006 stays a string.
        let config: Config = figment.extract_lossy().map_err(|e| ConfigError::other(describe_figment_error(e)))?;
        config.validate()?;
        Ok(config)
    }
}

/// `__` separates nesting levels; names are lowercased (`OTPGATE_CODES__TTL_SECS` -> `codes.ttl_secs`).
/// Whether an environment key (`SESSIONS__KEYS_FILE`) names a configuration key.
fn is_config_key(schema: &serde_json::Value, env_key: &str) -> bool {
    let mut node = schema;
    for part in env_key.split("__") {
        match node.get(part.to_ascii_lowercase()) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

/// Environment values as a figment dictionary: `__` separates levels, names are lowercased
/// (`OTPGATE_CODES__TTL_SECS` -> `codes.ttl_secs`). Values stay strings (see `extract_lossy`),
/// except arrays and tables written inline (`[twilio-verify, twilio-messaging]`).
fn env_dict(vars: Vec<(String, String)>) -> figment::value::Dict {
    let mut root = figment::value::Dict::new();
    for (key, value) in vars {
        let path: Vec<String> = key.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let trimmed = value.trim_start();
        let parsed = if trimmed.starts_with('[') || trimmed.starts_with('{') {
            value.parse::<figment::value::Value>().unwrap_or_else(|_| figment::value::Value::from(value.clone()))
        } else {
            figment::value::Value::from(value)
        };
        insert_path(&mut root, &path, parsed);
    }
    root
}

/// A figment provider for values read from the environment, named so errors say where a bad
/// value came from.
struct EnvVars(figment::value::Dict, &'static str);

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.1)
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.0.clone()))
    }
}

fn insert_path(dict: &mut figment::value::Dict, path: &[String], value: figment::value::Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry =
                dict.entry(first.clone()).or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
            if let figment::value::Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = figment::value::Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = figment::value::Value::from(inner);
            }
        }
    }
}

/// "config key `codes.length` (from otpgate.toml): invalid type: …" for each error.
fn describe_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e.metadata.as_ref().map(|m| match &m.source {
                Some(source) => format!(" (from {source})"),
                None => format!(" (from {})", m.name),
            });
            let key = if key.is_empty() { "(top level)".to_owned() } else { format!("`{key}`") };
            format!("config key {key}{}: {}", source.unwrap_or_default(), e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}
