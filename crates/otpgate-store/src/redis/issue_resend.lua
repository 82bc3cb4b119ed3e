-- Appended to record.lua, bucket.lua and issue.lua wrapped as `local function issue()` (see
-- ISSUE_RESEND in mod.rs): a send in one script on one Redis server. Takes the phone's resend
-- slot (the shared value KEYS[2]: a phone's resend value is an entry of a bucket, field ARGV[15];
-- any other key, ARGV[15] = '', is a hash in swap.lua's layout) under the rules of otpgate_core's
-- `ResendClaim::take`, issues, and writes the id index, or writes nothing.
-- KEYS[1] and ARGV[1..10] as issue.lua; ARGV[11] how long a phone's send count is kept after its
-- wait ends (ms), ARGV[12] the key prefix of the id index (`<prefix>ix:{`), whose bucket is only
-- known here for a resend, ARGV[13] the claim's first cooldown (ms), ARGV[14] its longest (ms).
-- Returns issue.lua's {kind, before, after} plus the resend value before ('' = none) and the one
-- stored ('' on 'cooldown').
local now = tonumber(ARGV[1])
local first, cap, forget_after = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[11])

local function load_value()
  if ARGV[15] ~= '' then return value_get(KEYS[2], ARGV[15], now, forget_after) end
  local held = redis.call('HMGET', KEYS[2], 'v', 'exp')
  if held[1] and held[2] and tonumber(held[2]) <= now then return nil end
  return held[1] or nil
end

local function store_value(value, expires)
  if ARGV[15] ~= '' then return value_put(KEYS[2], ARGV[15], value, expires, now, forget_after) end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'v', value, 'exp', string.format('%d', expires))
  redis.call('PEXPIRE', KEYS[2], expires - now)
end

local previous = load_value()
local p_sends, p_next, p_forget
if previous then
  local s, n, f = string.match(previous, '^v1:(%d+):(%-?%d+):(%-?%d+)$')
  if s then p_sends, p_next, p_forget = tonumber(s), tonumber(n), tonumber(f) end
end
if p_next and now < p_next then
  return {'cooldown', string.format('%d', p_next - now), '', '', ''}
end

local result = issue()
if result[1] == 'cooldown' then
  return {result[1], result[2], result[3], '', ''}
end

local sends = 1
if p_sends and now < p_forget then sends = p_sends + 1 end
local d = sends - 1
if d > 20 then d = 20 end
local wait = first * (2 ^ d)
if wait > cap then wait = cap end
local next_at = now + wait
local forget_at = next_at + forget_after
local taken = string.format('v1:%d:%d:%d', sends, next_at, forget_at)
store_value(taken, forget_at)

-- The id index, until the verification's own expiry plus the key grace (ARGV[10]). A resend
-- keeps its id: its entry is found here (the caller knows only the new id's) and lives on.
local v = dec(result[3], 1)
local until_ms = v.expires + tonumber(ARGV[10])
if result[1] == 'created' then
  bucket_put(ARGV[16], ARGV[17], ARGV[18], until_ms, now)
else
  local bucket, field = id_entry(v.id)
  local key = ARGV[12] .. bucket .. '}'
  local entry = redis.call('HGET', key, field)
  local payload
  if entry then payload = string.sub(entry, 7) else payload = id_pad(ARGV[3], v.id) end
  bucket_put(key, field, payload, until_ms, now)
end

return {result[1], result[2], result[3], previous or '', taken}
