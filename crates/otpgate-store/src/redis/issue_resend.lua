-- Appended to issue.lua wrapped as `local function issue()` (see ISSUE_RESEND in mod.rs): a send
-- in one script on one Redis server. Takes the phone's resend slot (the shared value KEYS[3], in
-- swap.lua's layout: v = value, exp = expiry ms) under the rules of otpgate_core's
-- `ResendClaim::take`, issues, and writes the id index, or writes nothing.
-- KEYS[1], KEYS[2] and ARGV[1..10] as issue.lua; KEYS[3] the phone's resend value;
-- ARGV[11] how long a phone's send count is kept after its wait ends (ms), ARGV[12] the key
-- prefix of the id index (`<prefix>vid:{`), whose key is only known here for a resend,
-- ARGV[13] the claim's first cooldown (ms), ARGV[14] its longest (ms).
-- Returns issue.lua's {kind, before, after} plus the resend value before ('' = none) and the one
-- stored ('' on 'cooldown').
local now = tonumber(ARGV[1])
local first, cap, forget_after = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[11])

local held = redis.call('HMGET', KEYS[3], 'v', 'exp')
local previous = held[1]
if previous and held[2] and tonumber(held[2]) <= now then previous = false end
local p_sends, p_next, p_forget
if previous then
  local s, n, f = string.match(previous, '^v1:(%d+):(%-?%d+):(%-?%d+)$')
  if s then p_sends, p_next, p_forget = tonumber(s), tonumber(n), tonumber(f) end
end
if p_next and now < p_next then
  return {'cooldown', {string.format('%d', p_next - now)}, {}, '', ''}
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
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'v', taken, 'exp', string.format('%d', forget_at))
redis.call('PEXPIRE', KEYS[3], forget_at - now)

-- The id index, with the verification's own expiry plus the key grace (ARGV[10]).
local id, expires = unpack(redis.call('HMGET', KEYS[1], 'id', 'expires'))
redis.call('SET', ARGV[12] .. id .. '}', ARGV[3], 'PX', tonumber(expires) - now + tonumber(ARGV[10]))

local before_value = ''
if previous then before_value = previous end
return {result[1], result[2], result[3], before_value, taken}
