-- OpenID Connect state (otpgate-oidc): authorization codes, login sessions, revoked token ids.
-- Codes and login-session cookies are stored only as keyed digests; no phone number is here.

-- A code, unspent while `grant_id` is NULL; spent, it is kept until `keep_until` with what its
-- first use issued, so a replay can revoke it.
CREATE TABLE oidc_codes (
    digest         BYTEA   PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    redirect_uri   TEXT    NOT NULL,
    code_challenge TEXT    NOT NULL,
    nonce          TEXT,
    scope          TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    auth_time      BIGINT  NOT NULL,       -- Unix milliseconds
    expires_at     BIGINT  NOT NULL,       -- Unix milliseconds; usable until then
    keep_until     BIGINT  NOT NULL,       -- Unix milliseconds; gone after it
    grant_id       TEXT,                   -- set by the first (only) use
    first_refresh  BYTEA                   -- that use's first refresh token digest, if any
);

CREATE INDEX oidc_codes_keep ON oidc_codes (keep_until);

-- A browser's sign-in at otpgate, under the digest of its cookie.
CREATE TABLE oidc_login_sessions (
    digest     BYTEA   PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    auth_time  BIGINT  NOT NULL,           -- Unix milliseconds
    expires_at BIGINT  NOT NULL            -- Unix milliseconds
);

CREATE INDEX oidc_login_sessions_expiry ON oidc_login_sessions (expires_at);

-- Grant ids and access-token ids that must stop working before their tokens expire.
CREATE TABLE oidc_revoked (
    id    TEXT    PRIMARY KEY,
    until_ms BIGINT  NOT NULL               -- Unix milliseconds
);

CREATE INDEX oidc_revoked_until ON oidc_revoked (until_ms);
