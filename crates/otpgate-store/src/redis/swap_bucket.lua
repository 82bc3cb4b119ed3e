-- Compare and swap a shared value held in a bucket (after bucket.lua): a phone's resend value.
-- KEYS[1] the bucket. ARGV as swap.lua (now ms, '1' if a value is expected else '0', the
-- expected value, '1' to store a new value else '0' (delete), the new value, its expiry ms),
-- then the value's field and how long a phone's send count is kept after its wait ends (ms; see
-- value_pack). A value whose expiry has passed counts as absent (the caller's clock).
-- Returns 1 if swapped.
local now = tonumber(ARGV[1])
local forget_after = tonumber(ARGV[8])
local value = value_get(KEYS[1], ARGV[7], now, forget_after)
if ARGV[2] == '1' then
  if value ~= ARGV[3] then return 0 end
elseif value then
  return 0
end
if ARGV[4] == '1' then
  value_put(KEYS[1], ARGV[7], ARGV[5], tonumber(ARGV[6]), now, forget_after)
else
  redis.call('HDEL', KEYS[1], ARGV[7])
end
return 1
