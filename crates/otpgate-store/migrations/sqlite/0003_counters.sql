-- Windowed counters (the conversion tripwire): one row per key and bucket start (Unix ms).
CREATE TABLE counters (
    key        TEXT    NOT NULL,
    bucket     INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (key, bucket)
) STRICT, WITHOUT ROWID;

CREATE INDEX counters_expiry ON counters (expires_at);
