-- Verifications: one row per verification; at most one pending row per phone.
CREATE TABLE verifications (
    id             TEXT    PRIMARY KEY,
    phone          TEXT    NOT NULL,          -- E.164
    channel        TEXT    NOT NULL,
    status         TEXT    NOT NULL,          -- pending | approved | canceled | dead | expired
    code_digest    BLOB,                      -- HMAC-SHA256 of the code; NULL when the provider holds it
    provider_ref   TEXT,
    attempts       INTEGER NOT NULL,          -- wrong codes so far
    max_attempts   INTEGER NOT NULL,
    sends          INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,          -- Unix milliseconds
    expires_at     INTEGER NOT NULL,
    next_resend_at INTEGER NOT NULL,
    ended_at       INTEGER                    -- set when the row leaves pending; drives retention
) STRICT;

CREATE UNIQUE INDEX verifications_one_pending_per_phone ON verifications (phone) WHERE status = 'pending';
CREATE INDEX verifications_by_phone ON verifications (phone);
CREATE INDEX verifications_ended ON verifications (ended_at) WHERE ended_at IS NOT NULL;

-- GCRA state: one "theoretical arrival time" per limit key; a row whose tat is past is spent.
CREATE TABLE rate_limits (
    key TEXT    PRIMARY KEY,
    tat INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX rate_limits_tat ON rate_limits (tat);
