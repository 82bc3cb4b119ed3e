-- Idempotency-Key entries of `POST /v1/verifications`. The key is stored only as a SHA-256 (with the
-- endpoint), the request only as a fingerprint; the answer is the public response body (never a code).
CREATE TABLE idempotency_keys (
    key_hash     BLOB    PRIMARY KEY,
    fingerprint  BLOB    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    lease_token  BLOB,                     -- the holder of a pending entry
    locked_until INTEGER NOT NULL,         -- Unix milliseconds; a pending entry past it can be taken over
    status       INTEGER,                  -- the stored answer, once done
    headers      TEXT,                     -- "name: value" lines
    body         BLOB,
    expires_at   INTEGER NOT NULL          -- Unix milliseconds; gone after it
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
