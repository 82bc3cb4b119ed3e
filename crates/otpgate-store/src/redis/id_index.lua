-- The id index (after bucket.lua). KEYS[1] the id's bucket. ARGV: op, id, then per op:
--   'put' phone expires_ms now_ms -> the id's entry until `expires_ms`; answers 1
--   'get'                         -> the id's phone, or false when it has no entry
--   'del'                         -> drops the id's entry; answers how many were dropped
local _, field = id_entry(ARGV[2])
local op = ARGV[1]
if op == 'put' then
  bucket_put(KEYS[1], field, id_pad(ARGV[3], ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5]))
  return 1
elseif op == 'get' then
  local v = redis.call('HGET', KEYS[1], field)
  if not v then return false end
  return id_pad(string.sub(v, 7), ARGV[2])
elseif op == 'del' then
  return redis.call('HDEL', KEYS[1], field)
end
return redis.error_reply('unknown op ' .. op)
