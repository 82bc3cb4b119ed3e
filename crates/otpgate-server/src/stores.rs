//! Opens the stores the configuration names. This is the only place in the server that knows
//! which backends exist; everything else sees the core's traits.

use std::sync::Arc;

use otpgate_core::{RateLimiter, SessionStore, StoreError, VerificationStore};
use otpgate_store::SqliteStore;

use crate::config::{Config, ConfigError};

/// The store handles the application runs on.
#[derive(Clone)]
pub struct Stores {
    pub verifications: Arc<dyn VerificationStore>,
    pub limits: Arc<dyn RateLimiter>,
    pub sessions: Arc<dyn SessionStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
}

pub async fn open(config: &Config) -> Result<Stores, OpenError> {
    let sqlite = Arc::new(SqliteStore::open(&config.sqlite_path()?).await?);
    Ok(Stores { verifications: sqlite.clone(), limits: sqlite.clone(), sessions: sqlite })
}
