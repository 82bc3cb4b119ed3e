-- The public halves of the signing keys the instances sign with, so every instance sharing this
-- store serves one JWKS and accepts the others' access tokens. Each entry carries a keyed digest
-- (the HMAC key) over kid, public key and valid_until: only an instance holding the key can add one.
CREATE TABLE signing_keys (
    kid         TEXT    PRIMARY KEY,
    public_key  BLOB    NOT NULL,             -- Ed25519, 32 bytes
    valid_until INTEGER NOT NULL,             -- Unix milliseconds; past every token it signed
    mac         BLOB    NOT NULL
) STRICT, WITHOUT ROWID;
