-- Reserve an Idempotency-Key entry, or say what holds it. One key per entry (one slot).
-- KEYS[1] the entry (hash: fp, state 'pending'|'done', token, locked, expires, status, headers, body).
-- ARGV: now_ms, fingerprint, lease token, lease ms, ttl ms.
-- Times in the hash are on the caller's clock (as `now`); the key's own TTL only cleans up: a
-- reservation lives one lease in Redis, a finished entry its ttl.
-- Returns {'reserved'}, {'mismatch'}, {'inflight', wait_ms} or {'done', status, headers, body}.
local now, lease, ttl = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5])
local e = redis.call('HMGET', KEYS[1], 'fp', 'state', 'locked', 'expires')
local fp, state, locked, expires = e[1], e[2], tonumber(e[3]), tonumber(e[4])
if fp and expires and now < expires then
  if fp ~= ARGV[2] then
    return {'mismatch'}
  end
  if state == 'done' then
    local r = redis.call('HMGET', KEYS[1], 'status', 'headers', 'body')
    return {'done', r[1] or '', r[2] or '', r[3] or ''}
  end
  if locked and now < locked then
    return {'inflight', string.format('%d', locked - now)}
  end
end
-- New, forgotten, or its holder's lease ran out: the key is this caller's now.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'fp', ARGV[2], 'state', 'pending', 'token', ARGV[3],
  'locked', string.format('%d', now + lease), 'expires', string.format('%d', now + ttl))
redis.call('PEXPIRE', KEYS[1], lease)
return {'reserved'}
