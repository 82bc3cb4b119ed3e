//! An in-memory [`OidcStore`]: one process, one mutex. For tests and single-instance
//! experiments; the real backends (SQLite, PostgreSQL, Redis) pass the same contract suite.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use otpgate_core::oidc::{AuthorizationCode, CodeExchange, ConsumeOutcome, LoginSession, OidcStore};
use otpgate_core::{CodeDigest, StoreError, Timestamp};

#[derive(Default)]
pub struct MemoryOidcStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    codes: HashMap<[u8; 32], StoredCode>,
    login_sessions: HashMap<[u8; 32], LoginSession>,
    /// Revoked token id → until.
    revoked: HashMap<String, Timestamp>,
}

struct StoredCode {
    code: AuthorizationCode,
    keep_until: Timestamp,
    /// Set by the first (and only) successful consumption.
    exchange: Option<CodeExchange>,
}

impl MemoryOidcStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl OidcStore for MemoryOidcStore {
    async fn create_code(
        &self,
        digest: &CodeDigest,
        code: &AuthorizationCode,
        keep_until: Timestamp,
    ) -> Result<(), StoreError> {
        let stored = StoredCode { code: code.clone(), keep_until, exchange: None };
        self.state().codes.insert(*digest.as_bytes(), stored);
        Ok(())
    }

    async fn code(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<AuthorizationCode>, StoreError> {
        let state = self.state();
        Ok(state.codes.get(digest.as_bytes()).filter(|c| now < c.keep_until).map(|c| c.code.clone()))
    }

    async fn consume_code(
        &self,
        digest: &CodeDigest,
        exchange: &CodeExchange,
        now: Timestamp,
    ) -> Result<ConsumeOutcome, StoreError> {
        let mut state = self.state();
        let Some(stored) = state.codes.get_mut(digest.as_bytes()).filter(|c| now < c.keep_until) else {
            return Ok(ConsumeOutcome::Invalid);
        };
        Ok(match &stored.exchange {
            Some(first) => ConsumeOutcome::Replayed(first.clone()),
            None if now < stored.code.expires_at => {
                stored.exchange = Some(exchange.clone());
                ConsumeOutcome::Consumed(stored.code.clone())
            }
            None => ConsumeOutcome::Invalid,
        })
    }

    async fn revoke_token_id(&self, id: &str, until: Timestamp, _now: Timestamp) -> Result<(), StoreError> {
        let mut state = self.state();
        let entry = state.revoked.entry(id.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
        Ok(())
    }

    async fn any_revoked(&self, ids: &[&str], now: Timestamp) -> Result<bool, StoreError> {
        let state = self.state();
        Ok(ids.iter().any(|id| state.revoked.get(*id).is_some_and(|until| now < *until)))
    }

    async fn create_login_session(&self, digest: &CodeDigest, session: &LoginSession) -> Result<(), StoreError> {
        self.state().login_sessions.insert(*digest.as_bytes(), session.clone());
        Ok(())
    }

    async fn login_session(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<LoginSession>, StoreError> {
        let state = self.state();
        Ok(state.login_sessions.get(digest.as_bytes()).filter(|s| now < s.expires_at).cloned())
    }

    async fn end_login_session(&self, digest: &CodeDigest) -> Result<bool, StoreError> {
        Ok(self.state().login_sessions.remove(digest.as_bytes()).is_some())
    }

    async fn purge_oidc(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut state = self.state();
        let before = state.codes.len() + state.login_sessions.len() + state.revoked.len();
        state.codes.retain(|_, c| now < c.keep_until);
        state.login_sessions.retain(|_, s| now < s.expires_at);
        state.revoked.retain(|_, until| now < *until);
        let after = state.codes.len() + state.login_sessions.len() + state.revoked.len();
        Ok((before - after) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    crate::oidc_store_contract_tests!(async { Arc::new(MemoryOidcStore::new()) as Arc<dyn OidcStore> });
}
