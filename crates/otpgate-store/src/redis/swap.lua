-- Compare and swap the shared value KEYS[1] (a hash: v = value, exp = expiry ms, absent = never).
-- ARGV: now ms, '1' if a value is expected else '0', the expected value, '1' to store a new value
--       else '0' (delete), the new value, its expiry ms ('' = never).
-- A value whose exp has passed counts as absent, whatever Redis's own clock says (the caller's
-- clock decides, as for verifications); the key's TTL only frees the memory. Returns 1 if swapped.
local now = tonumber(ARGV[1])
local cur = redis.call('HMGET', KEYS[1], 'v', 'exp')
local value = cur[1]
if value and cur[2] and tonumber(cur[2]) <= now then value = false end
if ARGV[2] == '1' then
  if value ~= ARGV[3] then return 0 end
elseif value then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[4] == '1' then
  if ARGV[6] == '' then
    redis.call('HSET', KEYS[1], 'v', ARGV[5])
  else
    redis.call('HSET', KEYS[1], 'v', ARGV[5], 'exp', ARGV[6])
    local ttl = tonumber(ARGV[6]) - now
    if ttl < 1 then ttl = 1 end
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
return 1
