-- Idempotency-Key entries of `POST /v1/verifications`. The key is stored only as a SHA-256 (with the
-- endpoint), the request only as a fingerprint; the answer is the public response body (never a code).
CREATE TABLE idempotency_keys (
    key_hash     BYTEA   PRIMARY KEY,
    fingerprint  BYTEA   NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    lease_token  BYTEA,                    -- the holder of a pending entry
    locked_until BIGINT  NOT NULL,         -- Unix milliseconds; a pending entry past it can be taken over
    status       INTEGER,                  -- the stored answer, once done
    headers      TEXT,                     -- "name: value" lines
    body         BYTEA,
    expires_at   BIGINT  NOT NULL          -- Unix milliseconds; gone after it
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
