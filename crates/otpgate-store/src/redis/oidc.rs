//! OpenID Connect state in Redis (see `otpgate_core::oidc`), one key per record so every
//! operation touches one Cluster slot:
//! - `P oc:{<hex digest>}` — hash: an authorization code's fields, `exp` and `keep` (Unix ms),
//!   and once spent `gid` and `fr` (what its first use issued); spent in `oidc_consume.lua`, so
//!   of concurrent uses exactly one consumes it;
//! - `P ols:{<hex digest>}` — hash: a login session;
//! - `P orv:{<id>}` — string: until when a grant id or access-token id is revoked
//!   (`oidc_revoke.lua` never shortens it).
//!
//! The times in the records are on the caller's clock and decide every answer; each key also
//! expires at its end of life (`PEXPIREAT`), so nothing needs a sweep.

use std::collections::HashMap;
use std::sync::LazyLock;

use ::redis::Script;
use async_trait::async_trait;
use otpgate_core::oidc::{AuthorizationCode, CodeExchange, ConsumeOutcome, LoginSession, OidcStore};
use otpgate_core::{CodeDigest, StoreError, Timestamp};

use super::RedisStore;
use crate::oidc_rows;

static PUT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("oidc_put.lua")));
static CONSUME: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("oidc_consume.lua")));
static REVOKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("oidc_revoke.lua")));

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt OpenID Connect record in Redis: {what}"))
}

fn hex(digest: &CodeDigest) -> String {
    digest.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A record's fields from the flat field/value list `HGETALL` answers.
struct Fields(HashMap<String, Vec<u8>>);

impl Fields {
    fn from_flat(flat: &[Vec<u8>]) -> Result<Fields, StoreError> {
        let mut fields = HashMap::new();
        for pair in flat.chunks_exact(2) {
            let name = String::from_utf8(pair[0].clone()).map_err(|_| corrupt("field name"))?;
            fields.insert(name, pair[1].clone());
        }
        Ok(Fields(fields))
    }

    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.0.get(name).map(|b| String::from_utf8(b.clone()).map_err(|_| corrupt(name))).transpose()
    }

    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.opt_text(name)?.ok_or_else(|| corrupt(name))
    }

    fn time(&self, name: &str) -> Result<Timestamp, StoreError> {
        self.text(name)?.parse().map(Timestamp).map_err(|_| corrupt(name))
    }

    fn code(&self) -> Result<AuthorizationCode, StoreError> {
        Ok(AuthorizationCode {
            client_id: self.text("c")?,
            redirect_uri: self.text("r")?,
            code_challenge: self.text("ch")?,
            nonce: self.opt_text("n")?,
            scope: self.text("s")?,
            user_id: oidc_rows::user_id(&self.text("u")?)?,
            channel: oidc_rows::channel(&self.text("m")?)?,
            auth_time: self.time("at")?,
            expires_at: self.time("exp")?,
        })
    }
}

fn exchange(gid: &[u8], first_refresh: &[u8]) -> Result<CodeExchange, StoreError> {
    let grant_id = String::from_utf8(gid.to_vec()).map_err(|_| corrupt("gid"))?;
    let first_refresh = match first_refresh {
        [] => None,
        bytes => Some(CodeDigest::from_slice(bytes).ok_or_else(|| corrupt("fr"))?),
    };
    Ok(CodeExchange { grant_id, first_refresh })
}

impl RedisStore {
    fn oidc_code_key(&self, digest: &CodeDigest) -> String {
        format!("{}oc:{{{}}}", self.prefix, hex(digest))
    }

    fn oidc_login_key(&self, digest: &CodeDigest) -> String {
        format!("{}ols:{{{}}}", self.prefix, hex(digest))
    }

    fn oidc_revoked_key(&self, id: &str) -> String {
        format!("{}orv:{{{id}}}", self.prefix)
    }

    async fn put(&self, key: String, gone_at: Timestamp, fields: &[(&str, &[u8])]) -> Result<(), StoreError> {
        let mut inv = PUT.prepare_invoke();
        inv.key(key).arg(gone_at.0);
        for (name, value) in fields {
            inv.arg(*name).arg(*value);
        }
        self.script::<i64>(&inv).await.map(drop)
    }

    async fn hgetall(&self, key: String) -> Result<Option<Fields>, StoreError> {
        let flat: Vec<Vec<u8>> = self.command(::redis::cmd("HGETALL").arg(key)).await?;
        if flat.is_empty() { Ok(None) } else { Fields::from_flat(&flat).map(Some) }
    }
}

#[async_trait]
impl OidcStore for RedisStore {
    async fn create_code(
        &self,
        digest: &CodeDigest,
        code: &AuthorizationCode,
        keep_until: Timestamp,
    ) -> Result<(), StoreError> {
        let (auth_time, expires, keep) =
            (code.auth_time.0.to_string(), code.expires_at.0.to_string(), keep_until.0.to_string());
        let mut fields: Vec<(&str, &[u8])> = vec![
            ("c", code.client_id.as_bytes()),
            ("r", code.redirect_uri.as_bytes()),
            ("ch", code.code_challenge.as_bytes()),
            ("s", code.scope.as_bytes()),
            ("u", code.user_id.as_str().as_bytes()),
            ("m", code.channel.as_str().as_bytes()),
            ("at", auth_time.as_bytes()),
            ("exp", expires.as_bytes()),
            ("keep", keep.as_bytes()),
        ];
        if let Some(nonce) = &code.nonce {
            fields.push(("n", nonce.as_bytes()));
        }
        self.put(self.oidc_code_key(digest), keep_until, &fields).await
    }

    async fn code(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<AuthorizationCode>, StoreError> {
        let Some(fields) = self.hgetall(self.oidc_code_key(digest)).await? else { return Ok(None) };
        if now >= fields.time("keep")? {
            return Ok(None);
        }
        fields.code().map(Some)
    }

    async fn consume_code(
        &self,
        digest: &CodeDigest,
        exchange_: &CodeExchange,
        now: Timestamp,
    ) -> Result<ConsumeOutcome, StoreError> {
        let mut inv = CONSUME.prepare_invoke();
        inv.key(self.oidc_code_key(digest))
            .arg(now.0)
            .arg(exchange_.grant_id.as_str())
            .arg(exchange_.first_refresh.as_ref().map(|d| d.as_bytes().to_vec()).unwrap_or_default());
        let answer: Vec<Vec<u8>> = self.script(&inv).await?;
        match answer.split_first() {
            Some((kind, rest)) if kind.as_slice() == b"consumed" => {
                Ok(ConsumeOutcome::Consumed(Fields::from_flat(rest)?.code()?))
            }
            Some((kind, [gid, fr])) if kind.as_slice() == b"replayed" => {
                Ok(ConsumeOutcome::Replayed(exchange(gid, fr)?))
            }
            Some((kind, _)) if kind.as_slice() == b"invalid" => Ok(ConsumeOutcome::Invalid),
            _ => Err(StoreError::Internal("the code script gave an unexpected answer".into())),
        }
    }

    async fn revoke_token_id(&self, id: &str, until: Timestamp, _now: Timestamp) -> Result<(), StoreError> {
        let mut inv = REVOKE.prepare_invoke();
        inv.key(self.oidc_revoked_key(id)).arg(until.0);
        self.script::<i64>(&inv).await.map(drop)
    }

    async fn any_revoked(&self, ids: &[&str], now: Timestamp) -> Result<bool, StoreError> {
        // One key per id, each in its own slot: read them one by one (there are one or two).
        for id in ids {
            let until: Option<i64> = self.command(::redis::cmd("GET").arg(self.oidc_revoked_key(id))).await?;
            if until.is_some_and(|until| now.0 < until) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn create_login_session(&self, digest: &CodeDigest, session: &LoginSession) -> Result<(), StoreError> {
        let (auth_time, expires) = (session.auth_time.0.to_string(), session.expires_at.0.to_string());
        let fields: [(&str, &[u8]); 4] = [
            ("u", session.user_id.as_str().as_bytes()),
            ("m", session.channel.as_str().as_bytes()),
            ("at", auth_time.as_bytes()),
            ("exp", expires.as_bytes()),
        ];
        self.put(self.oidc_login_key(digest), session.expires_at, &fields).await
    }

    async fn login_session(&self, digest: &CodeDigest, now: Timestamp) -> Result<Option<LoginSession>, StoreError> {
        let Some(fields) = self.hgetall(self.oidc_login_key(digest)).await? else { return Ok(None) };
        let expires_at = fields.time("exp")?;
        if now >= expires_at {
            return Ok(None);
        }
        oidc_rows::login_session(&fields.text("u")?, &fields.text("m")?, fields.time("at")?.0, expires_at.0).map(Some)
    }

    async fn end_login_session(&self, digest: &CodeDigest) -> Result<bool, StoreError> {
        let removed: i64 = self.command(::redis::cmd("DEL").arg(self.oidc_login_key(digest))).await?;
        Ok(removed > 0)
    }
}
