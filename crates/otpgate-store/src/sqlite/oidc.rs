//! OpenID Connect state in SQLite (see `otpgate_core::oidc`). Every operation is one closure on
//! the store's one connection, so `consume_code` reads, decides and writes with nothing in
//! between: of concurrent uses of one code exactly one consumes it.

use async_trait::async_trait;
use otpgate_core::oidc::{AuthorizationCode, CodeExchange, ConsumeOutcome, LoginSession, OidcStore};
use otpgate_core::{CodeDigest, StoreError, Timestamp};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, classify, execute};
use crate::oidc_rows::{CodeRow, login_session, oidc_code_columns};

fn code_row(conn: &rusqlite::Connection, digest: &[u8; 32], now: Timestamp) -> Result<Option<CodeRow>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        oidc_code_columns!(),
        " FROM oidc_codes WHERE digest = ? AND keep_until > ?"
    ))
    .and_then(|mut s| {
        s.query_row(params![digest.as_slice(), now.0], |row| {
            Ok(CodeRow {
                client_id: row.get(0)?,
                redirect_uri: row.get(1)?,
                code_challenge: row.get(2)?,
                nonce: row.get(3)?,
                scope: row.get(4)?,
                user_id: row.get(5)?,
                channel: row.get(6)?,
                auth_time: row.get(7)?,
                expires_at: row.get(8)?,
                grant_id: row.get(9)?,
                first_refresh: row.get(10)?,
            })
        })
        .optional()
    })
    .map_err(classify)
}

#[async_trait]
impl OidcStore for SqliteStore {
    async fn create_code(
        &self,
        digest: &CodeDigest,
        code: &AuthorizationCode,
        keep_until: Timestamp,
    ) -> Result<(), StoreError> {
        let (digest, code) = (*digest.as_bytes(), code.clone());
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "INSERT INTO oidc_codes (digest, client_id, redirect_uri, code_challenge, nonce, scope, user_id, \
                     channel, auth_time, expires_at, keep_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        digest.as_slice(),
                        code.client_id,
                        code.redirect_uri,
                        code.code_challenge,
                        code.nonce,
                        code.scope,
                        code.user_id.as_str(),
                        code.channel.as_str(),
                        code.auth_time.0,
                        code.expires_at.0,
                        keep_until.0
                    ],
                )
                .map(drop)
            })
            .await
    }

    async fn code(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<AuthorizationCode>, StoreError> {
        let digest = *digest.as_bytes();
        self.conn.run(move |conn| code_row(conn, &digest, now)?.map(|row| row.code()).transpose()).await
    }

    async fn consume_code(
        &self,
        digest: &CodeDigest,
        exchange: &CodeExchange,
        now: Timestamp,
    ) -> Result<ConsumeOutcome, StoreError> {
        let (digest, exchange) = (*digest.as_bytes(), exchange.clone());
        self.conn
            .run(move |conn| {
                let Some(row) = code_row(conn, &digest, now)? else { return Ok(ConsumeOutcome::Invalid) };
                if let Some(first) = row.exchange()? {
                    return Ok(ConsumeOutcome::Replayed(first));
                }
                if now.0 >= row.expires_at {
                    return Ok(ConsumeOutcome::Invalid);
                }
                let first_refresh = exchange.first_refresh.as_ref().map(|d| d.as_bytes().to_vec());
                execute(
                    conn,
                    "UPDATE oidc_codes SET grant_id = ?, first_refresh = ? WHERE digest = ? AND grant_id IS NULL",
                    params![exchange.grant_id, first_refresh, digest.as_slice()],
                )?;
                Ok(ConsumeOutcome::Consumed(row.code()?))
            })
            .await
    }

    async fn revoke_token_id(&self, id: &str, until: Timestamp, _now: Timestamp) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "INSERT INTO oidc_revoked (id, until_ms) VALUES (?, ?) \
                     ON CONFLICT (id) DO UPDATE SET until_ms = max(until_ms, excluded.until_ms)",
                    params![id, until.0],
                )
                .map(drop)
            })
            .await
    }

    async fn any_revoked(&self, ids: &[&str], now: Timestamp) -> Result<bool, StoreError> {
        if ids.is_empty() {
            return Ok(false);
        }
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        self.conn
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached("SELECT 1 FROM oidc_revoked WHERE id = ? AND until_ms > ?")
                    .map_err(classify)?;
                for id in &ids {
                    if statement.exists(params![id, now.0]).map_err(classify)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .await
    }

    async fn create_login_session(&self, digest: &CodeDigest, session: &LoginSession) -> Result<(), StoreError> {
        let (digest, session) = (*digest.as_bytes(), session.clone());
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "INSERT INTO oidc_login_sessions (digest, user_id, channel, auth_time, expires_at) \
                     VALUES (?, ?, ?, ?, ?)",
                    params![
                        digest.as_slice(),
                        session.user_id.as_str(),
                        session.channel.as_str(),
                        session.auth_time.0,
                        session.expires_at.0
                    ],
                )
                .map(drop)
            })
            .await
    }

    async fn login_session(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<LoginSession>, StoreError> {
        let digest = *digest.as_bytes();
        self.conn
            .run(move |conn| {
                let row: Option<(String, String, i64, i64)> = conn
                    .prepare_cached(
                        "SELECT user_id, channel, auth_time, expires_at FROM oidc_login_sessions \
                         WHERE digest = ? AND expires_at > ?",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![digest.as_slice(), now.0], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                        })
                        .optional()
                    })
                    .map_err(classify)?;
                row.map(|(user, channel, auth_time, expires_at)| login_session(&user, &channel, auth_time, expires_at))
                    .transpose()
            })
            .await
    }

    async fn end_login_session(&self, digest: &CodeDigest) -> Result<bool, StoreError> {
        let digest = *digest.as_bytes();
        self.conn
            .run(move |conn| {
                execute(conn, "DELETE FROM oidc_login_sessions WHERE digest = ?", params![digest.as_slice()])
                    .map(|n| n > 0)
            })
            .await
    }

    async fn purge_oidc(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.conn
            .run(move |conn| {
                let codes = execute(conn, "DELETE FROM oidc_codes WHERE keep_until <= ?", params![now.0])?;
                let sessions = execute(conn, "DELETE FROM oidc_login_sessions WHERE expires_at <= ?", params![now.0])?;
                let revoked = execute(conn, "DELETE FROM oidc_revoked WHERE until_ms <= ?", params![now.0])?;
                Ok((codes + sessions + revoked) as u64)
            })
            .await
    }
}
