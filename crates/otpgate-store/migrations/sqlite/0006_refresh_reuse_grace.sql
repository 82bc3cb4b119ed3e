-- The refresh reuse grace: a rotated token remembers its successor's digest, the end of its grace
-- (grace_until), and until then the successor token sealed under a key only the rotated token
-- gives (never readable from the database alone), so a repeat of the rotated token within the
-- grace gets the same successor. The sealed token goes when the family rotates again or is
-- revoked, and with grace_until at the first retention sweep after the grace.
ALTER TABLE refresh_tokens ADD COLUMN successor BLOB;
ALTER TABLE refresh_tokens ADD COLUMN sealed_successor BLOB;
ALTER TABLE refresh_tokens ADD COLUMN grace_until INTEGER;

CREATE INDEX refresh_tokens_grace ON refresh_tokens (grace_until) WHERE grace_until IS NOT NULL;
