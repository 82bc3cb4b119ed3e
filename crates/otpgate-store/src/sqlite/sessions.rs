//! Users and refresh tokens in SQLite. Each operation reads, decides and writes on the store's
//! one connection (see `conn`), so two requests can never both spend one refresh token or both
//! create one user.

use std::str::FromStr;

use async_trait::async_trait;
use otpgate_core::session::{
    NewRefreshToken, PublicKeyMaterial, PublishedKey, RotateOutcome, Rotation, SessionStore, User, UserId,
};
use otpgate_core::{Channel, CodeDigest, PhoneNumber, StoreError, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, classify, execute};

/// The user columns, for SQL built with `concat!`.
macro_rules! user_columns {
    () => {
        "id, phone, created_at"
    };
}

fn user_from_row(row: &rusqlite::Row<'_>) -> Result<User, StoreError> {
    let id: String = row.get(0).map_err(classify)?;
    Ok(User {
        id: UserId::parse(&id).ok_or_else(|| StoreError::Internal("corrupt user row: id".into()))?,
        phone: row.get(1).map_err(classify)?,
        created_at: Timestamp(row.get(2).map_err(classify)?),
    })
}

/// The first user `sql` returns.
fn query_user(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Option<User>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(classify)?;
    let mut rows = statement.query(params).map_err(classify)?;
    match rows.next().map_err(classify)? {
        Some(row) => user_from_row(row).map(Some),
        None => Ok(None),
    }
}

fn insert_refresh_token(
    conn: &Connection,
    token: &NewRefreshToken,
    user: &UserId,
    family: &str,
    channel: Channel,
    now: Timestamp,
) -> Result<(), StoreError> {
    execute(
        conn,
        "INSERT INTO refresh_tokens (digest, user_id, family, channel, issued_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
        params![token.digest.as_bytes().as_slice(), user.as_str(), family, channel.as_str(), now.0, token.expires_at.0],
    )
    .map(drop)
}

/// A published key from its stored columns.
pub(crate) fn published_key(
    kid: String,
    public: &[u8],
    valid_until: i64,
    mac: &[u8],
) -> Result<PublishedKey, StoreError> {
    let corrupt = || StoreError::Internal("corrupt signing key row".into());
    Ok(PublishedKey {
        kid,
        public_key: PublicKeyMaterial::from_bytes(public).ok_or_else(corrupt)?,
        valid_until: Timestamp(valid_until),
        mac: CodeDigest::from_slice(mac).ok_or_else(corrupt)?,
    })
}

/// The presented token's row, as a rotation reads it.
struct Found {
    family: String,
    channel: String,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
    successor: Option<Vec<u8>>,
    sealed_successor: Option<Vec<u8>>,
    grace_until: Option<i64>,
}

/// Whether the token with digest `successor` is unspent, unrevoked and unexpired.
fn successor_is_live(conn: &Connection, successor: Option<&[u8]>, now: Timestamp) -> Result<bool, StoreError> {
    let Some(successor) = successor else { return Ok(false) };
    conn.prepare_cached(
        "SELECT 1 FROM refresh_tokens WHERE digest = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?",
    )
    .and_then(|mut s| s.exists(params![successor, now.0]))
    .map_err(classify)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn sign_in(
        &self,
        phone: &PhoneNumber,
        new_id: UserId,
        first: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<(User, bool), StoreError> {
        let (phone, first) = (phone.e164().to_owned(), first.clone());
        self.conn
            .run(move |conn| {
                let inserted = query_user(
                    conn,
                    concat!(
                        "INSERT INTO users (",
                        user_columns!(),
                        ") VALUES (?, ?, ?) ON CONFLICT (phone) DO NOTHING \
                         RETURNING ",
                        user_columns!()
                    ),
                    params![new_id.as_str(), phone, now.0],
                )?;
                let (user, created) = match inserted {
                    Some(user) => (user, true),
                    None => {
                        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE phone = ?");
                        let user = query_user(conn, sql, params![phone])?
                            .ok_or_else(|| StoreError::Internal("user vanished during sign-in".into()))?;
                        (user, false)
                    }
                };
                insert_refresh_token(conn, &first, &user.id, first.family.as_str(), first.channel, now)?;
                Ok((user, created))
            })
            .await
    }

    async fn find_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let id = id.clone();
        self.conn
            .run(move |conn| {
                query_user(conn, concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?"), params![id.as_str()])
            })
            .await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &CodeDigest,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<RotateOutcome, StoreError> {
        let (presented, rotation) = (*presented, rotation.clone());
        self.conn
            .run(move |conn| {
                // The join drops tokens whose user is gone (the foreign key cascades anyway).
                let found = conn
                    .prepare_cached(
                        "SELECT t.family, t.channel, t.expires_at, t.used_at, t.revoked_at, t.successor, \
                         t.sealed_successor, t.grace_until, u.id, u.phone, u.created_at \
                         FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.digest = ?",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![presented.as_bytes().as_slice()], |row| {
                            let token = Found {
                                family: row.get(0)?,
                                channel: row.get(1)?,
                                expires_at: row.get(2)?,
                                used_at: row.get(3)?,
                                revoked_at: row.get(4)?,
                                successor: row.get(5)?,
                                sealed_successor: row.get(6)?,
                                grace_until: row.get(7)?,
                            };
                            let user: (String, String, i64) = (row.get(8)?, row.get(9)?, row.get(10)?);
                            Ok((token, user))
                        })
                        .optional()
                    })
                    .map_err(classify)?;
                let Some((token, (id, phone, created_at))) = found else {
                    return Ok(RotateOutcome::Invalid);
                };
                let channel = Channel::from_str(&token.channel)
                    .map_err(|_| StoreError::Internal("corrupt refresh token row: channel".into()))?;
                if token.revoked_at.is_some() || now.0 >= token.expires_at {
                    return Ok(RotateOutcome::Invalid);
                }
                let user = User {
                    id: UserId::parse(&id).ok_or_else(|| StoreError::Internal("corrupt user row: id".into()))?,
                    phone,
                    created_at: Timestamp(created_at),
                };
                if let Some(used_at) = token.used_at {
                    if token.grace_until.is_some_and(|until| now.0 < until) {
                        // A repeat within the grace: the same answer while the successor is
                        // unspent; nothing at all once it is spent (and no revocation either).
                        return Ok(match token.sealed_successor {
                            Some(sealed) if successor_is_live(conn, token.successor.as_deref(), now)? => {
                                RotateOutcome::Repeated {
                                    user,
                                    channel,
                                    rotated_at: Timestamp(used_at),
                                    sealed_next: sealed,
                                }
                            }
                            _ => RotateOutcome::Invalid,
                        });
                    }
                    // A spent token came back: someone holds a copy. Whoever it is, the chain is over.
                    execute(
                        conn,
                        "UPDATE refresh_tokens SET revoked_at = ?, sealed_successor = NULL \
                         WHERE family = ? AND revoked_at IS NULL",
                        params![now.0, token.family],
                    )?;
                    return Ok(RotateOutcome::Reused);
                }
                // Only the newest rotation of a family can be repeated: older sealed tokens go.
                execute(
                    conn,
                    "UPDATE refresh_tokens SET sealed_successor = NULL WHERE family = ? AND sealed_successor IS NOT NULL",
                    params![token.family],
                )?;
                let grace = (!rotation.reuse_grace.is_zero()).then(|| now.plus(rotation.reuse_grace).0);
                execute(
                    conn,
                    "UPDATE refresh_tokens SET used_at = ?, successor = ?, sealed_successor = ?, grace_until = ? \
                     WHERE digest = ?",
                    params![
                        now.0,
                        rotation.next.digest.as_bytes().as_slice(),
                        grace.map(|_| rotation.sealed_next.as_slice()),
                        grace,
                        presented.as_bytes().as_slice()
                    ],
                )?;
                insert_refresh_token(conn, &rotation.next, &user.id, &token.family, channel, now)?;
                Ok(RotateOutcome::Rotated { user, channel })
            })
            .await
    }

    async fn revoke_refresh_family(&self, presented: &CodeDigest, now: Timestamp) -> Result<bool, StoreError> {
        let presented = *presented;
        self.conn
            .run(move |conn| {
                let changed = execute(
                    conn,
                    "UPDATE refresh_tokens SET revoked_at = ?, sealed_successor = NULL WHERE revoked_at IS NULL \
                     AND family = (SELECT family FROM refresh_tokens WHERE digest = ?)",
                    params![now.0, presented.as_bytes().as_slice()],
                )?;
                Ok(changed > 0)
            })
            .await
    }

    async fn delete_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let id = id.clone();
        let deleted = self
            .conn
            .run(move |conn| {
                let sql = concat!("DELETE FROM users WHERE id = ? RETURNING ", user_columns!());
                let Some(user) = query_user(conn, sql, params![id.as_str()])? else { return Ok(None) };
                // Foreign keys are on, but say it outright rather than rely on it.
                execute(conn, "DELETE FROM refresh_tokens WHERE user_id = ?", params![user.id.as_str()])?;
                execute(conn, "DELETE FROM verifications WHERE phone = ?", params![user.phone])?;
                Ok(Some(user))
            })
            .await?;
        if deleted.is_some() {
            // Erased means gone from the files too, not only from the tables (see `privacy`).
            self.scrub().await;
        }
        Ok(deleted)
    }

    async fn purge_expired_refresh_tokens(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.conn
            .run(move |conn| {
                execute(
                    conn,
                    "UPDATE refresh_tokens SET sealed_successor = NULL, grace_until = NULL WHERE grace_until <= ?",
                    params![now.0],
                )?;
                execute(conn, "DELETE FROM refresh_tokens WHERE expires_at <= ?", params![now.0]).map(|n| n as u64)
            })
            .await
    }

    async fn publish_signing_key(&self, key: &PublishedKey, now: Timestamp) -> Result<(), StoreError> {
        let key = key.clone();
        self.conn
            .run(move |conn| {
                execute(conn, "DELETE FROM signing_keys WHERE valid_until <= ?", params![now.0])?;
                execute(
                    conn,
                    "INSERT INTO signing_keys (kid, public_key, valid_until, mac) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (kid) DO UPDATE SET public_key = excluded.public_key, \
                     valid_until = excluded.valid_until, mac = excluded.mac \
                     WHERE signing_keys.valid_until < excluded.valid_until",
                    params![key.kid, key.public_key.as_bytes(), key.valid_until.0, key.mac.as_bytes().as_slice()],
                )
                .map(drop)
            })
            .await
    }

    async fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<PublishedKey>, StoreError> {
        self.conn
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT kid, public_key, valid_until, mac FROM signing_keys WHERE valid_until > ? ORDER BY kid",
                    )
                    .map_err(classify)?;
                let rows = statement
                    .query_map(params![now.0], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, Vec<u8>>(1)?,
                            row.get(2)?,
                            row.get::<_, Vec<u8>>(3)?,
                        ))
                    })
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(classify)?;
                rows.into_iter().map(|(kid, public, until, mac)| published_key(kid, &public, until, &mac)).collect()
            })
            .await
    }

    async fn export_user_by_phone(
        &self,
        phone: &PhoneNumber,
    ) -> Result<Option<otpgate_core::privacy::UserRecords>, StoreError> {
        self.export_user_impl(phone).await
    }

    async fn delete_user_by_phone(&self, phone: &PhoneNumber) -> Result<Option<User>, StoreError> {
        match self.user_id_by_phone(phone).await?.as_deref().and_then(UserId::parse) {
            Some(id) => self.delete_user(&id).await,
            None => Ok(None),
        }
    }
}
