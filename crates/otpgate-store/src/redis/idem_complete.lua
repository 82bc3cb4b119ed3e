-- Store the answer of a reservation the caller still holds. KEYS[1] the entry.
-- ARGV: lease token, status, headers, body, now_ms, ttl ms. Returns 1 if stored, 0 if the
-- reservation was lost (released, taken over, or gone with its lease).
local e = redis.call('HMGET', KEYS[1], 'state', 'token')
if e[1] ~= 'pending' or e[2] ~= ARGV[1] then
  return 0
end
local ttl = tonumber(ARGV[6])
redis.call('HDEL', KEYS[1], 'token', 'locked')
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[2], 'headers', ARGV[3], 'body', ARGV[4],
  'expires', string.format('%d', tonumber(ARGV[5]) + ttl))
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
