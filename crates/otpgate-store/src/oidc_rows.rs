//! OpenID Connect rows as the SQL backends store them (SQLite and Postgres share the columns of
//! `oidc_codes` and `oidc_login_sessions`): each backend reads the raw columns out of its own
//! row type, and the checks that turn them into the core's records live here once.

use std::str::FromStr;

use otpgate_core::oidc::{AuthorizationCode, CodeExchange, LoginSession};
use otpgate_core::session::UserId;
use otpgate_core::{Channel, CodeDigest, StoreError, Timestamp};

/// The columns of a code as read, in this order.
macro_rules! oidc_code_columns {
    () => {
        "client_id, redirect_uri, code_challenge, nonce, scope, user_id, channel, auth_time, expires_at, \
         grant_id, first_refresh"
    };
}
pub(crate) use oidc_code_columns;

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt OpenID Connect row: {what}"))
}

pub(crate) fn user_id(raw: &str) -> Result<UserId, StoreError> {
    UserId::parse(raw).ok_or_else(|| corrupt("user_id"))
}

pub(crate) fn channel(raw: &str) -> Result<Channel, StoreError> {
    Channel::from_str(raw).map_err(|_| corrupt("channel"))
}

/// The columns of `oidc_code_columns!`, as read.
pub(crate) struct CodeRow {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scope: String,
    pub user_id: String,
    pub channel: String,
    pub auth_time: i64,
    pub expires_at: i64,
    pub grant_id: Option<String>,
    pub first_refresh: Option<Vec<u8>>,
}

impl CodeRow {
    pub fn code(&self) -> Result<AuthorizationCode, StoreError> {
        Ok(AuthorizationCode {
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            code_challenge: self.code_challenge.clone(),
            nonce: self.nonce.clone(),
            scope: self.scope.clone(),
            user_id: user_id(&self.user_id)?,
            channel: channel(&self.channel)?,
            auth_time: Timestamp(self.auth_time),
            expires_at: Timestamp(self.expires_at),
        })
    }

    /// What the first use recorded, if the code is spent.
    pub fn exchange(&self) -> Result<Option<CodeExchange>, StoreError> {
        let Some(grant_id) = &self.grant_id else { return Ok(None) };
        let first_refresh = match &self.first_refresh {
            Some(bytes) => Some(CodeDigest::from_slice(bytes).ok_or_else(|| corrupt("first_refresh"))?),
            None => None,
        };
        Ok(Some(CodeExchange { grant_id: grant_id.clone(), first_refresh }))
    }
}

/// A login session from its columns (user_id, channel, auth_time, expires_at).
pub(crate) fn login_session(
    user: &str,
    channel_: &str,
    auth_time: i64,
    expires_at: i64,
) -> Result<LoginSession, StoreError> {
    Ok(LoginSession {
        user_id: user_id(user)?,
        channel: channel(channel_)?,
        auth_time: Timestamp(auth_time),
        expires_at: Timestamp(expires_at),
    })
}
