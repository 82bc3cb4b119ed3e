-- Windowed counters (the conversion tripwire): one row per key and bucket start (Unix ms).
CREATE TABLE counters (
    key        TEXT   NOT NULL,
    bucket     BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (key, bucket)
);

CREATE INDEX counters_expiry ON counters (expires_at);
