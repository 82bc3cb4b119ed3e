-- Store a whole OpenID Connect record (a code or a login session) as a hash, replacing any
-- record under the key, and let Redis drop it at its end of life.
-- KEYS[1] the record. ARGV: gone_at_ms (Unix ms, on the caller's clock), then field, value pairs.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
