//! Idempotency-Key entries in PostgreSQL. `reserve` is one upsert that takes the key when it is
//! new, expired or abandoned (lease over); when it does not, the conflicting row stays locked by
//! the upsert until the transaction ends, so the read that follows sees it exactly as it decided.
//! `complete` and `release` are single statements conditioned on the holder's lease token. Of
//! any number of concurrent requests (on any number of instances) with one key, one reserves it.
//!
//! Expired entries are never answered (every statement compares with `now`); the retention
//! sweeper deletes them in batches (`purge`), so reservations do no cleanup of their own.

use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::idempotency::{
    Fingerprint, IdempotencyKey, IdempotencyStore, LeaseToken, Reservation, StoredResponse,
};
use otpgate_core::{StoreError, Timestamp};
use sqlx::Row;

use super::{PgStore, classify};
use crate::wire::{decode_headers, encode_headers};

impl PgStore {
    async fn reserve_tx(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        token: &LeaseToken,
        now: Timestamp,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        let mut tx = self.begin().await?;
        let taken = sqlx::query(
            "INSERT INTO idempotency_keys AS e (key_hash, fingerprint, state, lease_token, locked_until, expires_at) \
             VALUES ($1, $2, 'pending', $3, $4, $5) \
             ON CONFLICT (key_hash) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'pending', \
             lease_token = excluded.lease_token, locked_until = excluded.locked_until, \
             expires_at = excluded.expires_at, status = NULL, headers = NULL, body = NULL \
             WHERE e.expires_at <= $6 \
             OR (e.state = 'pending' AND e.locked_until <= $6 AND e.fingerprint = excluded.fingerprint) \
             RETURNING 1",
        )
        .bind(key.as_bytes().as_slice())
        .bind(fingerprint.as_bytes().as_slice())
        .bind(token.as_bytes().as_slice())
        .bind(now.plus(lease).0)
        .bind(now.plus(ttl).0)
        .bind(now.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        if taken.is_some() {
            tx.commit().await.map_err(classify)?;
            return Ok(Reservation::Reserved);
        }
        // Not taken: the row exists, is live, and the upsert holds its lock until commit.
        let row = sqlx::query(
            "SELECT fingerprint, state, locked_until, status, headers, body FROM idempotency_keys WHERE key_hash = $1",
        )
        .bind(key.as_bytes().as_slice())
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        let corrupt = |what: &str| StoreError::Internal(format!("corrupt idempotency row: {what}"));
        let stored: Vec<u8> = row.try_get("fingerprint").map_err(classify)?;
        let state: String = row.try_get("state").map_err(classify)?;
        if stored.as_slice() != fingerprint.as_bytes() {
            return Ok(Reservation::Mismatch);
        }
        if state == "done" {
            let status: Option<i32> = row.try_get("status").map_err(classify)?;
            let headers: Option<String> = row.try_get("headers").map_err(classify)?;
            let body: Option<Vec<u8>> = row.try_get("body").map_err(classify)?;
            return Ok(Reservation::Completed(StoredResponse {
                status: status.and_then(|s| u16::try_from(s).ok()).ok_or_else(|| corrupt("status"))?,
                headers: decode_headers(&headers.ok_or_else(|| corrupt("headers"))?)?,
                body: body.ok_or_else(|| corrupt("body"))?,
            }));
        }
        let held_until = Timestamp(row.try_get("locked_until").map_err(classify)?);
        Ok(Reservation::InFlight { retry_after: now.until(held_until) })
    }
}

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        token: &LeaseToken,
        now: Timestamp,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        self.timed(self.reserve_tx(key, fingerprint, token, now, lease, ttl)).await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        response: &StoredResponse,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let headers = encode_headers(&response.headers)?;
        self.timed(async {
            sqlx::query(
                "UPDATE idempotency_keys SET state = 'done', lease_token = NULL, status = $1, headers = $2, \
                 body = $3, expires_at = $4 WHERE key_hash = $5 AND lease_token = $6 AND state = 'pending'",
            )
            .bind(i32::from(response.status))
            .bind(&headers)
            .bind(response.body.as_slice())
            .bind(now.plus(ttl).0)
            .bind(key.as_bytes().as_slice())
            .bind(token.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn release(&self, key: &IdempotencyKey, token: &LeaseToken) -> Result<(), StoreError> {
        self.timed(async {
            sqlx::query("DELETE FROM idempotency_keys WHERE key_hash = $1 AND lease_token = $2 AND state = 'pending'")
                .bind(key.as_bytes().as_slice())
                .bind(token.as_bytes().as_slice())
                .execute(&self.pool)
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }
}
