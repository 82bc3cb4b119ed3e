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

fn encode_headers(headers: &[(String, String)]) -> Result<String, StoreError> {
    let mut out = String::new();
    for (name, value) in headers {
        let clean =
            |s: &str, extra: &[char]| s.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && !extra.contains(&c));
        if name.is_empty() || !clean(name, &[':', ' ']) || !clean(value, &[]) {
            return Err(StoreError::Internal("an idempotent response header cannot be stored".into()));
        }
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    }
    Ok(out)
}

fn decode_headers(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    text.lines()
        .map(|line| {
            line.split_once(": ")
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .ok_or_else(|| StoreError::Internal("corrupt idempotency row: headers".into()))
        })
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);
    const TTL: Duration = Duration::from_secs(24 * 3600);

    fn response(body: &str) -> StoredResponse {
        StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn reserve_complete_replay_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let key = IdempotencyKey::new("test", b"k1").unwrap();
        let (fp, other) = (Fingerprint::of(&[b"a"]), Fingerprint::of(&[b"b"]));
        let (t1, t2) = (LeaseToken::random(), LeaseToken::random());
        let now = Timestamp(1_000_000);

        assert_eq!(store.reserve(&key, &fp, &t1, now, LEASE, TTL).await.unwrap(), Reservation::Reserved);
        assert_eq!(
            store.reserve(&key, &fp, &t2, now, LEASE, TTL).await.unwrap(),
            Reservation::InFlight { retry_after: LEASE }
        );
        assert_eq!(store.reserve(&key, &other, &t2, now, LEASE, TTL).await.unwrap(), Reservation::Mismatch);
        // A stranger's token neither completes nor releases.
        store.release(&key, &t2).await.unwrap();
        store.complete(&key, &t2, &response("stranger"), now, TTL).await.unwrap();
        store.complete(&key, &t1, &response("{}"), now, TTL).await.unwrap();
        assert_eq!(
            store.reserve(&key, &fp, &t2, now, LEASE, TTL).await.unwrap(),
            Reservation::Completed(response("{}"))
        );
        let later = now.plus(TTL);
        assert_eq!(store.reserve(&key, &other, &t2, later, LEASE, TTL).await.unwrap(), Reservation::Reserved);
    }

    #[tokio::test]
    async fn released_and_abandoned_keys_can_be_taken() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        let key = IdempotencyKey::new("test", b"k2").unwrap();
        let fp = Fingerprint::of(&[b"a"]);
        let (t1, t2, t3) = (LeaseToken::random(), LeaseToken::random(), LeaseToken::random());
        let now = Timestamp(5_000_000);
        assert_eq!(store.reserve(&key, &fp, &t1, now, LEASE, TTL).await.unwrap(), Reservation::Reserved);
        store.release(&key, &t1).await.unwrap();
        assert_eq!(store.reserve(&key, &fp, &t2, now, LEASE, TTL).await.unwrap(), Reservation::Reserved);
        // t2 never finishes; after its lease t3 takes over and t2 can no longer complete.
        let later = now.plus(LEASE);
        assert_eq!(store.reserve(&key, &fp, &t3, later, LEASE, TTL).await.unwrap(), Reservation::Reserved);
        store.complete(&key, &t2, &response("late"), later, TTL).await.unwrap();
        assert!(matches!(
            store.reserve(&key, &fp, &t1, later, LEASE, TTL).await.unwrap(),
            Reservation::InFlight { .. }
        ));
    }
}
