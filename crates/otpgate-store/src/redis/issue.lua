-- Create or resend the verification of one phone, atomically.
-- KEYS[1] the phone's current verification (hash), KEYS[2] its previous one, kept while dead.
-- ARGV: now_ms, new id, phone, channel, digest ('' = the provider holds the code), code ttl ms,
--       max attempts, first resend cooldown ms, longest cooldown ms, key grace ms.
-- Returns {kind, before, after}: 'cooldown' {wait_ms}; 'resent' old and new hash; 'created' new hash.
local now = tonumber(ARGV[1])
local ttl, grace = tonumber(ARGV[6]), tonumber(ARGV[10])
local base, cap = tonumber(ARGV[8]), tonumber(ARGV[9])

local function cooldown(sends)
  local d = sends - 1
  if d > 20 then d = 20 end
  local c = base * (2 ^ d)
  if c > cap then c = cap end
  return c
end

local flat = redis.call('HGETALL', KEYS[1])
local cur = {}
for i = 1, #flat, 2 do cur[flat[i]] = flat[i + 1] end

if cur.status == 'pending' and now < tonumber(cur.expires) then
  local next_at = tonumber(cur.next)
  if now < next_at then
    return {'cooldown', {string.format('%d', next_at - now)}, {}}
  end
  local sends = tonumber(cur.sends) + 1
  redis.call('HSET', KEYS[1], 'channel', ARGV[4], 'sends', sends, 'expires', now + ttl,
    'next', now + cooldown(sends))
  if ARGV[5] == '' then
    redis.call('HDEL', KEYS[1], 'digest', 'pref')
  else
    redis.call('HSET', KEYS[1], 'digest', ARGV[5])
    redis.call('HDEL', KEYS[1], 'pref')
  end
  redis.call('PEXPIRE', KEYS[1], ttl + grace)
  return {'resent', flat, redis.call('HGETALL', KEYS[1])}
end

if cur.status == 'dead' and now < tonumber(cur.expires) then
  -- Keeps answering "too many attempts" if this new one is reverted; RENAME keeps the TTL.
  redis.call('RENAME', KEYS[1], KEYS[2])
elseif #flat > 0 then
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'phone', ARGV[3], 'channel', ARGV[4], 'status', 'pending',
  'attempts', 0, 'max', ARGV[7], 'sends', 1, 'created', now, 'expires', now + ttl, 'next', now + cooldown(1))
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'digest', ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ttl + grace)
return {'created', {}, redis.call('HGETALL', KEYS[1])}
