-- Users: one row per phone number; the id is opaque, stable and never reused.
CREATE TABLE users (
    id         TEXT   PRIMARY KEY,            -- usr_…
    phone      TEXT   NOT NULL UNIQUE,        -- E.164
    created_at BIGINT NOT NULL                -- Unix milliseconds
);

-- Refresh tokens, stored only as a keyed HMAC-SHA256 of the token. A family is every token that
-- descends from one sign-in; a spent token is kept until its expiry so its reuse can be detected.
CREATE TABLE refresh_tokens (
    digest     BYTEA  PRIMARY KEY,
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family     TEXT   NOT NULL,
    channel    TEXT   NOT NULL,               -- how the phone was verified at sign-in (amr)
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,                        -- set when rotated
    revoked_at BIGINT                         -- set when its family is revoked
);

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
