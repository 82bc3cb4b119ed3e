//! The one error of the server's configuration. Every check (a value at load, a rule across keys
//! in `validate`, a file a key names at start) answers it, and it names the key; the SMS crate's
//! own `ConfigError` is mapped into it where the server knows the key (`provider.twilio`).

use std::fmt;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value, or a rule across values, that is not allowed: "config key `store.hot`: …".
    #[error("config key `{key}`: {why}")]
    Key { key: String, why: String },
    /// The sources could not be read or do not fit the schema (figment's messages name the
    /// keys and where each value came from), or a file a key names is unusable.
    #[error("{0}")]
    Other(String),
}

impl ConfigError {
    /// What is wrong with `key`.
    pub fn key(key: impl Into<String>, why: impl fmt::Display) -> ConfigError {
        ConfigError::Key { key: key.into(), why: why.to_string() }
    }

    pub fn other(message: impl Into<String>) -> ConfigError {
        ConfigError::Other(message.into())
    }

    /// The key this error is about, when it is about one.
    pub fn config_key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            ConfigError::Other(_) => None,
        }
    }
}

/// Shorthand inside the configuration modules.
pub(crate) fn bad(key: &str, why: impl fmt::Display) -> ConfigError {
    ConfigError::key(key, why)
}
