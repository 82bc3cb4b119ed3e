-- Create or resend the verification of one phone, atomically (after record.lua).
-- KEYS[1] the phone's value (record.lua).
-- ARGV: now_ms, new id, phone, channel, digest ('' = the provider holds the code), code ttl ms,
--       max attempts, first resend cooldown ms, longest cooldown ms, key grace ms.
-- Returns {kind, before, after}: 'cooldown' with the wait (ms) as before; 'resent' the old and
-- the new record; 'created' '' and the new record.
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

local cur, prev = load_records(KEYS[1])
if prev and now >= prev.expires then prev = nil end

if cur and cur.status == 'p' and now < cur.expires then
  if now < cur.next then
    return {'cooldown', string.format('%d', cur.next - now), ''}
  end
  local before = enc(cur)
  cur.sends = cur.sends + 1
  cur.channel, cur.digest, cur.pref = ARGV[4], ARGV[5], ''
  cur.expires, cur.next = now + ttl, now + cooldown(cur.sends)
  redis.call('SET', KEYS[1], packed(cur, prev), 'PX', ttl + grace)
  return {'resent', before, enc(cur)}
end

if cur and cur.status == 'd' and now < cur.expires then
  -- Keeps answering "too many attempts" if this new one is reverted.
  prev = cur
end
local new = {
  status = 'p', channel = ARGV[4], id = ARGV[2], digest = ARGV[5], pref = '', attempts = 0,
  max = tonumber(ARGV[7]), sends = 1, created = now, expires = now + ttl, next = now + cooldown(1), ended = 0,
}
redis.call('SET', KEYS[1], packed(new, prev), 'PX', ttl + grace)
return {'created', '', enc(new)}
