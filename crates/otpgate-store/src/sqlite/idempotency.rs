//! Idempotency-Key entries in SQLite. `reserve` reads, decides and writes as one operation on the
//! store's one connection, so of any number of concurrent requests with one key exactly one gets
//! `Reserved`.

use std::time::Duration;

use async_trait::async_trait;
use otpgate_core::idempotency::{
    Fingerprint, IdempotencyKey, IdempotencyStore, LeaseToken, Reservation, StoredResponse,
};
use otpgate_core::{StoreError, Timestamp};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, classify, execute};
use crate::wire::{decode_headers, encode_headers};

/// An entry as stored: fingerprint, state, lease end, and the answer once done.
type Entry = (Vec<u8>, String, i64, Option<i64>, Option<String>, Option<Vec<u8>>);

fn stored_response(
    status: Option<i64>,
    headers: Option<String>,
    body: Option<Vec<u8>>,
) -> Result<StoredResponse, StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("corrupt idempotency row: {what}"));
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
        let (key, fingerprint, token) = (*key.as_bytes(), *fingerprint.as_bytes(), *token.as_bytes());
        self.conn
            .run(move |conn| {
                // Expired entries go on every reservation; the index keeps this cheap.
                execute(conn, "DELETE FROM idempotency_keys WHERE expires_at <= ?", params![now.0])?;
                let entry: Option<Entry> = conn
                    .prepare_cached(
                        "SELECT fingerprint, state, locked_until, status, headers, body \
                         FROM idempotency_keys WHERE key_hash = ?",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![key.as_slice()], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
                        })
                        .optional()
                    })
                    .map_err(classify)?;
                let locked_until = now.plus(lease);
                let expires_at = now.plus(ttl);
                let Some((stored, state, held_until, status, headers, body)) = entry else {
                    execute(
                        conn,
                        "INSERT INTO idempotency_keys (key_hash, fingerprint, state, lease_token, locked_until, expires_at) \
                         VALUES (?, ?, 'pending', ?, ?, ?)",
                        params![key.as_slice(), fingerprint.as_slice(), token.as_slice(), locked_until.0, expires_at.0],
                    )?;
                    return Ok(Reservation::Reserved);
                };
                let held_until = Timestamp(held_until);
                Ok(if stored.as_slice() != fingerprint.as_slice() {
                    Reservation::Mismatch
                } else if state == "done" {
                    Reservation::Completed(stored_response(status, headers, body)?)
                } else if held_until > now {
                    Reservation::InFlight { retry_after: now.until(held_until) }
                } else {
                    // The holder died or overran its lease: the key is ours now.
                    execute(
                        conn,
                        "UPDATE idempotency_keys SET lease_token = ?, locked_until = ?, expires_at = ? \
                         WHERE key_hash = ?",
                        params![token.as_slice(), locked_until.0, expires_at.0, key.as_slice()],
                    )?;
                    Reservation::Reserved
                })
            })
            .await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &LeaseToken,
        response: &StoredResponse,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, token) = (*key.as_bytes(), *token.as_bytes());
        let (status, headers, body) =
            (i64::from(response.status), encode_headers(&response.headers)?, response.body.clone());
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "UPDATE idempotency_keys SET state = 'done', lease_token = NULL, status = ?, headers = ?, body = ?, \
                     expires_at = ? WHERE key_hash = ? AND lease_token = ? AND state = 'pending'",
                    params![status, headers, body, now.plus(ttl).0, key.as_slice(), token.as_slice()],
                )
                .map(drop)
            })
            .await
    }

    async fn release(&self, key: &IdempotencyKey, token: &LeaseToken) -> Result<(), StoreError> {
        let (key, token) = (*key.as_bytes(), *token.as_bytes());
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "DELETE FROM idempotency_keys WHERE key_hash = ? AND lease_token = ? AND state = 'pending'",
                    params![key.as_slice(), token.as_slice()],
                )
                .map(drop)
            })
            .await
    }
}
