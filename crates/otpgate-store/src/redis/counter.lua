-- One more in the windowed counter KEYS[1] (a hash: bucket start ms -> count).
-- ARGV: bucket start ms, the time (same clock) until which this bucket must be kept.
-- Relative arithmetic only, so the caller's clock and Redis's need not agree: buckets older than
-- one retention before this one are dropped, and the key lives at least one retention more.
local bucket = tonumber(ARGV[1])
local keep = tonumber(ARGV[2]) - bucket
if keep < 1000 then keep = 1000 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if tonumber(field) + keep < bucket then
    redis.call('HDEL', KEYS[1], field)
  end
end
if redis.call('PTTL', KEYS[1]) < keep then
  redis.call('PEXPIRE', KEYS[1], keep)
end
return 1
