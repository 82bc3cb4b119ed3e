//! Users and refresh tokens in PostgreSQL. Writes that read before they decide (sign-in, rotation)
//! lock what they read (`FOR UPDATE`, or an insert that waits on a conflicting one), so two instances
//! can never both spend one refresh token or both create one user; rotation, reuse and revocation
//! also take their family's lock (`lock_family_of`), so a revocation never misses a rotation.

use std::str::FromStr;

use async_trait::async_trait;
use otpgate_core::privacy::UserRecords;
use otpgate_core::session::{
    NewRefreshToken, PublicKeyMaterial, PublishedKey, RotateOutcome, Rotation, SessionStore, User, UserId,
};
use otpgate_core::{Channel, CodeDigest, PhoneNumber, StoreError, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use super::{PgStore, classify};

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id").map_err(classify)?;
    Ok(User {
        id: UserId::parse(&id).ok_or_else(|| StoreError::Internal("corrupt user row: id".into()))?,
        phone: row.try_get("phone").map_err(classify)?,
        created_at: Timestamp(row.try_get("created_at").map_err(classify)?),
    })
}

/// Takes the lock of the family `presented` belongs to, held until the transaction ends; false
/// when the token is unknown. Every write to a family's tokens (rotation, reuse, revocation)
/// takes it first, so they run one after another: a revoking `UPDATE` that starts after it sees
/// every token a rotation added, where without it (Read Committed) a token inserted by a rotation
/// still in flight was invisible to the revocation and survived it. An advisory lock on a hash of
/// the family rather than a row, so it needs no table of families; two families sharing a hash
/// (64 bits) only wait for each other.
async fn lock_family_of(tx: &mut Transaction<'static, Postgres>, presented: &CodeDigest) -> Result<bool, StoreError> {
    let family: Option<String> = sqlx::query_scalar("SELECT family FROM refresh_tokens WHERE digest = $1")
        .bind(presented.as_bytes().as_slice())
        .fetch_optional(&mut **tx)
        .await
        .map_err(classify)?;
    let Some(family) = family else { return Ok(false) };
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("otpgate:refresh-family:{family}"))
        .execute(&mut **tx)
        .await
        .map_err(classify)?;
    Ok(true)
}

impl PgStore {
    async fn sign_in_raw(
        &self,
        phone: &PhoneNumber,
        new_id: UserId,
        first: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<(User, bool), StoreError> {
        // One statement, so one round trip (it was BEGIN, INSERT, maybe SELECT, INSERT, COMMIT):
        // the upsert answers the user's row whether it inserted it or not (DO UPDATE, a no-op
        // write, returns the existing row, locked; DO NOTHING would return none, and a SELECT in
        // the same statement cannot see a row a concurrent sign-in just committed). The user is
        // new exactly when its id is the one this call proposed. The token's foreign key is
        // checked at the end of the statement, after the user's insert.
        let row = sqlx::query(
            "WITH u AS (\
                 INSERT INTO users (id, phone, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (phone) DO UPDATE SET phone = EXCLUDED.phone \
                 RETURNING id, phone, created_at), \
             t AS (\
                 INSERT INTO refresh_tokens (digest, user_id, family, channel, issued_at, expires_at) \
                 SELECT $4, id, $5, $6, $3, $7 FROM u) \
             SELECT id, phone, created_at, id = $1 AS created FROM u",
        )
        .bind(new_id.as_str())
        .bind(phone.e164())
        .bind(now.0)
        .bind(first.digest.as_bytes().as_slice())
        .bind(first.family.as_str())
        .bind(first.channel.as_str())
        .bind(first.expires_at.0)
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        let user = user_from_row(&row)?;
        let created: bool = row.try_get("created").map_err(classify)?;
        Ok((user, created))
    }

    async fn find_user_raw(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, phone, created_at FROM users WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn rotate_refresh_token_raw(
        &self,
        presented: &CodeDigest,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        let mut tx = self.begin().await?;
        if !lock_family_of(&mut tx, presented).await? {
            return Ok(RotateOutcome::Invalid);
        }
        // The join drops tokens whose user is gone (the foreign key cascades anyway).
        let row = sqlx::query(
            "SELECT t.family, t.channel, t.expires_at, t.used_at, t.revoked_at, t.successor, t.sealed_successor, \
             t.grace_until, u.id, u.phone, u.created_at \
             FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.digest = $1 FOR UPDATE OF t",
        )
        .bind(presented.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?;
        let Some(row) = row else { return Ok(RotateOutcome::Invalid) };
        let family: String = row.try_get("family").map_err(classify)?;
        let channel: String = row.try_get("channel").map_err(classify)?;
        let channel = Channel::from_str(&channel)
            .map_err(|_| StoreError::Internal("corrupt refresh token row: channel".into()))?;
        let expires_at: i64 = row.try_get("expires_at").map_err(classify)?;
        let used_at: Option<i64> = row.try_get("used_at").map_err(classify)?;
        let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(classify)?;
        if revoked_at.is_some() || now.0 >= expires_at {
            return Ok(RotateOutcome::Invalid);
        }
        let user = user_from_row(&row)?;
        if let Some(used_at) = used_at {
            let grace_until: Option<i64> = row.try_get("grace_until").map_err(classify)?;
            if grace_until.is_some_and(|until| now.0 < until) {
                // A repeat within the grace: the same answer while the successor is unspent;
                // nothing at all once it is spent (and no revocation either).
                let sealed: Option<Vec<u8>> = row.try_get("sealed_successor").map_err(classify)?;
                let successor: Option<Vec<u8>> = row.try_get("successor").map_err(classify)?;
                let live: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM refresh_tokens WHERE digest = $1 AND used_at IS NULL AND revoked_at IS NULL \
                     AND expires_at > $2",
                )
                .bind(successor)
                .bind(now.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                return Ok(match sealed {
                    Some(sealed) if live.is_some() => {
                        RotateOutcome::Repeated { user, channel, rotated_at: Timestamp(used_at), sealed_next: sealed }
                    }
                    _ => RotateOutcome::Invalid,
                });
            }
            // A spent token came back: someone holds a copy. Whoever it is, the chain is over.
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1, sealed_successor = NULL \
                 WHERE family = $2 AND revoked_at IS NULL",
            )
            .bind(now.0)
            .bind(&family)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            tx.commit().await.map_err(classify)?;
            return Ok(RotateOutcome::Reused);
        }
        // Only the newest rotation of a family can be repeated: older sealed tokens go.
        sqlx::query(
            "UPDATE refresh_tokens SET sealed_successor = NULL WHERE family = $1 AND sealed_successor IS NOT NULL",
        )
        .bind(&family)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let grace = (!rotation.reuse_grace.is_zero()).then(|| now.plus(rotation.reuse_grace).0);
        sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1, successor = $2, sealed_successor = $3, grace_until = $4 \
             WHERE digest = $5",
        )
        .bind(now.0)
        .bind(rotation.next.digest.as_bytes().as_slice())
        .bind(grace.map(|_| rotation.sealed_next.as_slice()))
        .bind(grace)
        .bind(presented.as_bytes().as_slice())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (digest, user_id, family, channel, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(rotation.next.digest.as_bytes().as_slice())
        .bind(user.id.as_str())
        .bind(&family)
        .bind(channel.as_str())
        .bind(now.0)
        .bind(rotation.next.expires_at.0)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(RotateOutcome::Rotated { user, channel })
    }

    async fn revoke_refresh_family_raw(&self, presented: &CodeDigest, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        if !lock_family_of(&mut tx, presented).await? {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1, sealed_successor = NULL WHERE revoked_at IS NULL \
             AND family = (SELECT family FROM refresh_tokens WHERE digest = $2)",
        )
        .bind(now.0)
        .bind(presented.as_bytes().as_slice())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user_raw(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("DELETE FROM users WHERE id = $1 RETURNING id, phone, created_at")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from_row(&row)?;
        // The foreign key cascades; say it outright rather than rely on it.
        sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1")
            .bind(user.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("DELETE FROM verifications WHERE phone = $1")
            .bind(&user.phone)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(Some(user))
    }
}

/// Every operation within the store's timeout, so a server that stops answering cannot hang one.
#[async_trait]
impl SessionStore for PgStore {
    async fn sign_in(
        &self,
        phone: &PhoneNumber,
        new_id: UserId,
        first: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<(User, bool), StoreError> {
        self.timed(self.sign_in_raw(phone, new_id, first, now)).await
    }

    async fn find_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.timed(self.find_user_raw(id)).await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &CodeDigest,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        self.timed(self.rotate_refresh_token_raw(presented, rotation, now)).await
    }

    async fn revoke_refresh_family(&self, presented: &CodeDigest, now: Timestamp) -> Result<bool, StoreError> {
        self.timed(self.revoke_refresh_family_raw(presented, now)).await
    }

    async fn delete_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.timed(self.delete_user_raw(id)).await
    }

    /// Batched, each batch within the timeout; safe with several instances (see `privacy`).
    async fn purge_expired_refresh_tokens(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.purge_refresh_tokens_impl(now).await
    }

    async fn publish_signing_key(&self, key: &PublishedKey, now: Timestamp) -> Result<(), StoreError> {
        self.timed(async {
            let mut tx = self.begin().await?;
            sqlx::query("DELETE FROM signing_keys WHERE valid_until <= $1")
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, public_key, valid_until, mac) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kid) DO UPDATE SET public_key = excluded.public_key, \
                 valid_until = excluded.valid_until, mac = excluded.mac \
                 WHERE signing_keys.valid_until < excluded.valid_until",
            )
            .bind(&key.kid)
            .bind(key.public_key.as_bytes())
            .bind(key.valid_until.0)
            .bind(key.mac.as_bytes().as_slice())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            tx.commit().await.map_err(classify)
        })
        .await
    }

    async fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<PublishedKey>, StoreError> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT kid, public_key, valid_until, mac FROM signing_keys WHERE valid_until > $1 ORDER BY kid",
            )
            .bind(now.0)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
            let corrupt = || StoreError::Internal("corrupt signing key row".into());
            rows.iter()
                .map(|row| {
                    let public: Vec<u8> = row.try_get("public_key").map_err(classify)?;
                    let mac: Vec<u8> = row.try_get("mac").map_err(classify)?;
                    Ok(PublishedKey {
                        kid: row.try_get("kid").map_err(classify)?,
                        public_key: PublicKeyMaterial::from_bytes(&public).ok_or_else(corrupt)?,
                        valid_until: Timestamp(row.try_get("valid_until").map_err(classify)?),
                        mac: CodeDigest::from_slice(&mac).ok_or_else(corrupt)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn export_user_by_phone(&self, phone: &PhoneNumber) -> Result<Option<UserRecords>, StoreError> {
        self.timed(self.export_user_impl(phone)).await
    }

    /// As `delete_user` for the user of `phone` (its verifications included); `None` if none.
    async fn delete_user_by_phone(&self, phone: &PhoneNumber) -> Result<Option<User>, StoreError> {
        self.timed(async {
            match self.user_id_by_phone(phone).await? {
                Some(id) => self.delete_user_raw(&id).await,
                None => Ok(None),
            }
        })
        .await
    }
}
