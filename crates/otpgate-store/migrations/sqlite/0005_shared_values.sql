-- Small values the instances share, replaced only by compare-and-swap: a phone's resend cooldown
-- (keyed by an HMAC of the number, never the number), the fingerprint of the HMAC key.
CREATE TABLE shared_values (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    expires_at INTEGER                        -- Unix milliseconds; NULL: kept until swapped away
) STRICT, WITHOUT ROWID;

CREATE INDEX shared_values_expiry ON shared_values (expires_at) WHERE expires_at IS NOT NULL;
