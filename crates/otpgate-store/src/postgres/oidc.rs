//! OpenID Connect state in PostgreSQL (see `otpgate_core::oidc`). Spending a code is one
//! conditional `UPDATE … WHERE grant_id IS NULL`: a concurrent use of the same code waits for the
//! row lock, then finds the condition false, so exactly one use consumes it, on any number of
//! instances; the losers read what the winner recorded. Expired rows are never answered (every
//! statement compares with `now`); the retention sweeper deletes them (`purge_oidc`).

use async_trait::async_trait;
use otpgate_core::oidc::{AuthorizationCode, CodeExchange, ConsumeOutcome, LoginSession, OidcStore};
use otpgate_core::{CodeDigest, StoreError, Timestamp};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PgStore, classify};
use crate::oidc_rows::{CodeRow, login_session, oidc_code_columns};

fn code_row(row: &PgRow) -> Result<CodeRow, StoreError> {
    let raw = || -> Result<CodeRow, sqlx::Error> {
        Ok(CodeRow {
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            code_challenge: row.try_get("code_challenge")?,
            nonce: row.try_get("nonce")?,
            scope: row.try_get("scope")?,
            user_id: row.try_get("user_id")?,
            channel: row.try_get("channel")?,
            auth_time: row.try_get("auth_time")?,
            expires_at: row.try_get("expires_at")?,
            grant_id: row.try_get("grant_id")?,
            first_refresh: row.try_get("first_refresh")?,
        })
    };
    raw().map_err(classify)
}

impl PgStore {
    async fn read_code(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<CodeRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            oidc_code_columns!(),
            " FROM oidc_codes WHERE digest = $1 AND keep_until > $2"
        ))
        .bind(digest.as_bytes().as_slice())
        .bind(now.0)
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        row.as_ref().map(code_row).transpose()
    }

    async fn consume(
        &self,
        digest: &CodeDigest,
        exchange: &CodeExchange,
        now: Timestamp,
    ) -> Result<ConsumeOutcome, StoreError> {
        let spent = sqlx::query(concat!(
            "UPDATE oidc_codes SET grant_id = $1, first_refresh = $2 \
             WHERE digest = $3 AND grant_id IS NULL AND expires_at > $4 AND keep_until > $4 RETURNING ",
            oidc_code_columns!()
        ))
        .bind(&exchange.grant_id)
        .bind(exchange.first_refresh.as_ref().map(|d| d.as_bytes().to_vec()))
        .bind(digest.as_bytes().as_slice())
        .bind(now.0)
        .fetch_optional(self.pool())
        .await
        .map_err(classify)?;
        if let Some(row) = spent {
            return Ok(ConsumeOutcome::Consumed(code_row(&row)?.code()?));
        }
        // Not spent by this call: spent before (a replay), expired, or unknown.
        match self.read_code(digest, now).await? {
            Some(row) => Ok(row.exchange()?.map_or(ConsumeOutcome::Invalid, ConsumeOutcome::Replayed)),
            None => Ok(ConsumeOutcome::Invalid),
        }
    }
}

#[async_trait]
impl OidcStore for PgStore {
    async fn create_code(
        &self,
        digest: &CodeDigest,
        code: &AuthorizationCode,
        keep_until: Timestamp,
    ) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query(
                "INSERT INTO oidc_codes (digest, client_id, redirect_uri, code_challenge, nonce, scope, user_id, \
                 channel, auth_time, expires_at, keep_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(digest.as_bytes().as_slice())
            .bind(&code.client_id)
            .bind(&code.redirect_uri)
            .bind(&code.code_challenge)
            .bind(&code.nonce)
            .bind(&code.scope)
            .bind(code.user_id.as_str())
            .bind(code.channel.as_str())
            .bind(code.auth_time.0)
            .bind(code.expires_at.0)
            .bind(keep_until.0)
            .execute(self.pool())
            .await
            .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn code(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<AuthorizationCode>, StoreError> {
        self.timed(async { self.read_code(digest, now).await?.map(|row| row.code()).transpose() }).await
    }

    async fn consume_code(
        &self,
        digest: &CodeDigest,
        exchange: &CodeExchange,
        now: Timestamp,
    ) -> Result<ConsumeOutcome, StoreError> {
        self.timed(self.consume(digest, exchange, now)).await
    }

    async fn revoke_token_id(&self, id: &str, until: Timestamp, _now: Timestamp) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query(
                "INSERT INTO oidc_revoked AS r (id, until_ms) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET until_ms = GREATEST(r.until_ms, excluded.until_ms)",
            )
            .bind(id)
            .bind(until.0)
            .execute(self.pool())
            .await
            .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn any_revoked(&self, ids: &[&str], now: Timestamp) -> Result<bool, StoreError> {
        if ids.is_empty() {
            return Ok(false);
        }
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        self.timed(async {
            let row = sqlx::query(
                "SELECT EXISTS (SELECT 1 FROM oidc_revoked WHERE id = ANY($1) AND until_ms > $2) AS revoked",
            )
            .bind(&ids)
            .bind(now.0)
            .fetch_one(self.pool())
            .await
            .map_err(classify)?;
            row.try_get::<bool, _>("revoked").map_err(classify)
        })
        .await
    }

    async fn create_login_session(&self, digest: &CodeDigest, session: &LoginSession) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query(
                "INSERT INTO oidc_login_sessions (digest, user_id, channel, auth_time, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(digest.as_bytes().as_slice())
            .bind(session.user_id.as_str())
            .bind(session.channel.as_str())
            .bind(session.auth_time.0)
            .bind(session.expires_at.0)
            .execute(self.pool())
            .await
            .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn login_session(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<LoginSession>, StoreError> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT user_id, channel, auth_time, expires_at FROM oidc_login_sessions \
                 WHERE digest = $1 AND expires_at > $2",
            )
            .bind(digest.as_bytes().as_slice())
            .bind(now.0)
            .fetch_optional(self.pool())
            .await
            .map_err(classify)?;
            let Some(row) = row else { return Ok(None) };
            let raw = || -> Result<(String, String, i64, i64), sqlx::Error> {
                Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?))
            };
            let (user, channel, auth_time, expires_at) = raw().map_err(classify)?;
            login_session(&user, &channel, auth_time, expires_at).map(Some)
        })
        .await
    }

    async fn end_login_session(&self, digest: &CodeDigest) -> Result<bool, StoreError> {
        self.timed(async {
            let done = sqlx::query("DELETE FROM oidc_login_sessions WHERE digest = $1")
                .bind(digest.as_bytes().as_slice())
                .execute(self.pool())
                .await
                .map_err(classify)?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn purge_oidc(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.timed(async {
            let mut gone = 0;
            for sql in [
                "DELETE FROM oidc_codes WHERE keep_until <= $1",
                "DELETE FROM oidc_login_sessions WHERE expires_at <= $1",
                "DELETE FROM oidc_revoked WHERE until_ms <= $1",
            ] {
                gone += sqlx::query(sql).bind(now.0).execute(self.pool()).await.map_err(classify)?.rows_affected();
            }
            Ok(gone)
        })
        .await
    }
}
