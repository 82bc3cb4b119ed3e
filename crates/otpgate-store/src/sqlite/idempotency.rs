//! Idempotency-Key entries in SQLite. `reserve` runs in a `BEGIN IMMEDIATE` transaction, so of
//! any number of concurrent requests with one key exactly one gets `Reserved`.

use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::idempotency::{
    Fingerprint, IdempotencyKey, IdempotencyStore, LeaseToken, Reservation, StoredResponse,
};
use otpgate_core::{StoreError, Timestamp};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, classify};
use crate::wire::{decode_headers, encode_headers};

fn response_from_row(row: &SqliteRow) -> Result<StoredResponse, StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("corrupt idempotency row: {what}"));
    let status: Option<i64> = row.try_get("status").map_err(classify)?;
    let headers: Option<String> = row.try_get("headers").map_err(classify)?;
    let body: Option<Vec<u8>> = row.try_get("body").map_err(classify)?;
    Ok(StoredResponse {
        status: status.and_then(|s| u16::try_from(s).ok()).ok_or_else(|| corrupt("status"))?,
        headers: decode_headers(&headers.ok_or_else(|| corrupt("headers"))?)?,
        body: body.ok_or_else(|| corrupt("body"))?,
    })
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        token: &LeaseToken,
        now: Timestamp,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        let mut tx = self.begin_write().await?;
        // Expired entries go on every reservation; the index keeps this cheap.
        sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= ?")
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let row = sqlx::query(
            "SELECT fingerprint, state, locked_until, status, headers, body FROM idempotency_keys WHERE key_hash = ?",
        )
        .bind(key.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let locked_until = now.plus(lease);
        let expires_at = now.plus(ttl);
        let outcome = match row {
            None => {
                sqlx::query(
                    "INSERT INTO idempotency_keys (key_hash, fingerprint, state, lease_token, locked_until, expires_at) \
                     VALUES (?, ?, 'pending', ?, ?, ?)",
                )
                .bind(key.as_bytes().as_slice())
                .bind(fingerprint.as_bytes().as_slice())
                .bind(token.as_bytes().as_slice())
                .bind(locked_until.0)
                .bind(expires_at.0)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                Reservation::Reserved
            }
            Some(row) => {
                let stored: Vec<u8> = row.try_get("fingerprint").map_err(classify)?;
                let state: String = row.try_get("state").map_err(classify)?;
                let held_until = Timestamp(row.try_get("locked_until").map_err(classify)?);
                if stored.as_slice() != fingerprint.as_bytes() {
                    Reservation::Mismatch
                } else if state == "done" {
                    Reservation::Completed(response_from_row(&row)?)
                } else if held_until > now {
                    Reservation::InFlight { retry_after: now.until(held_until) }
                } else {
                    // The holder died or overran its lease: the key is ours now.
                    sqlx::query(
                        "UPDATE idempotency_keys SET lease_token = ?, locked_until = ?, expires_at = ? \
                         WHERE key_hash = ?",
                    )
                    .bind(token.as_bytes().as_slice())
                    .bind(locked_until.0)
                    .bind(expires_at.0)
                    .bind(key.as_bytes().as_slice())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                    Reservation::Reserved
                }
            }
        };
        tx.commit().await.map_err(classify)?;
        Ok(outcome)
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        response: &StoredResponse,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', lease_token = NULL, status = ?, headers = ?, body = ?, \
             expires_at = ? WHERE key_hash = ? AND lease_token = ? AND state = 'pending'",
        )
        .bind(i64::from(response.status))
        .bind(encode_headers(&response.headers)?)
        .bind(response.body.as_slice())
        .bind(now.plus(ttl).0)
        .bind(key.as_bytes().as_slice())
        .bind(token.as_bytes().as_slice())
        .execute(self.pool())
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey, token: &LeaseToken) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE key_hash = ? AND lease_token = ? AND state = 'pending'")
            .bind(key.as_bytes().as_slice())
            .bind(token.as_bytes().as_slice())
            .execute(self.pool())
            .await
            .map_err(classify)?;
        Ok(())
    }
}
