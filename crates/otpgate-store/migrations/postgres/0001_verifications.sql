-- Verifications: one row per verification; at most one pending row per phone.
-- Times are Unix milliseconds, like the SQLite schema, so the two stay one model.
CREATE TABLE verifications (
    seq            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- newest last
    id             TEXT    NOT NULL UNIQUE,
    phone          TEXT    NOT NULL,          -- E.164
    channel        TEXT    NOT NULL,
    status         TEXT    NOT NULL,          -- pending | approved | canceled | dead | expired
    code_digest    BYTEA,                     -- HMAC-SHA256 of the code; NULL when the provider holds it
    provider_ref   TEXT,
    attempts       INTEGER NOT NULL,          -- wrong codes so far
    max_attempts   INTEGER NOT NULL,
    sends          INTEGER NOT NULL,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    next_resend_at BIGINT  NOT NULL,
    ended_at       BIGINT                     -- set when the row leaves pending; drives retention
);

CREATE UNIQUE INDEX verifications_one_pending_per_phone ON verifications (phone) WHERE status = 'pending';
CREATE INDEX verifications_by_phone ON verifications (phone, seq);
CREATE INDEX verifications_ended ON verifications (ended_at) WHERE ended_at IS NOT NULL;

-- GCRA state: one "theoretical arrival time" per limit key; a row whose tat is past is spent.
CREATE TABLE rate_limits (
    key TEXT   PRIMARY KEY,
    tat BIGINT NOT NULL
);

CREATE INDEX rate_limits_tat ON rate_limits (tat);
