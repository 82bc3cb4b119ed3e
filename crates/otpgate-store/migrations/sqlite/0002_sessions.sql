-- Users: one row per phone number; the id is opaque, stable and never reused.
CREATE TABLE users (
    id         TEXT    PRIMARY KEY,           -- usr_…
    phone      TEXT    NOT NULL UNIQUE,       -- E.164
    created_at INTEGER NOT NULL               -- Unix milliseconds
) STRICT;

-- Refresh tokens, stored only as a keyed HMAC-SHA256 of the token. A family is every token that
-- descends from one sign-in; a spent token is kept until its expiry so its reuse can be detected.
CREATE TABLE refresh_tokens (
    digest     BLOB    PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family     TEXT    NOT NULL,
    channel    TEXT    NOT NULL,              -- how the phone was verified at sign-in (amr)
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,                       -- set when rotated
    revoked_at INTEGER                        -- set when its family is revoked
) STRICT, WITHOUT ROWID;

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
