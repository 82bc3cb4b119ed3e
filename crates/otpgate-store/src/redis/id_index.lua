-- Writes a verification's entry in the id index (after bucket.lua). KEYS[1] the id's bucket.
-- ARGV: the id's field, its payload (the phone XORed with the id's pad; see `id_entry` in
-- mod.rs), until when (ms, the caller's clock), now (ms).
bucket_put(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
return 1
