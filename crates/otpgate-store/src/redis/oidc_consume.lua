-- Spend an authorization code once. KEYS[1] the code (hash: the code's fields, `exp` and `keep`
-- in Unix ms, and once spent `gid` and `fr`, what the first use issued).
-- ARGV: now_ms, grant id, first refresh digest ('' for none).
-- Returns {'consumed', field, value, …} (the record), {'replayed', gid, fr} or {'invalid'}.
local now = tonumber(ARGV[1])
local keep = tonumber(redis.call('HGET', KEYS[1], 'keep'))
if not keep or now >= keep then
  return {'invalid'}
end
local gid = redis.call('HGET', KEYS[1], 'gid')
if gid then
  return {'replayed', gid, redis.call('HGET', KEYS[1], 'fr') or ''}
end
local exp = tonumber(redis.call('HGET', KEYS[1], 'exp'))
if not exp or now >= exp then
  return {'invalid'}
end
redis.call('HSET', KEYS[1], 'gid', ARGV[2], 'fr', ARGV[3])
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 'consumed')
return out
