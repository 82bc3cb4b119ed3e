-- Every operation on one verification named by its id (the caller found its phone through the
-- id index). KEYS[1] the phone's current verification, KEYS[2] its previous one.
-- ARGV: id, op, then per op:
--   'ref' provider_ref          -> record the provider's handle
--   'channel' channel           -> record the channel a fallback actually used
--   'remote' provider_ref       -> the provider holds the code: drop the digest, record the handle
--   'cancel' now_ms             -> pending -> canceled; answers the hash
--   'approve' now_ms            -> pending -> approved; answers {'1'} for the one call that did it
--   'finish' now_ms status      -> pending -> dead | expired
--   'count' now_ms              -> count one attempt on a provider-held code (see below)
-- Answers {result, hash}: result '' when the id is in neither key.
local key
for _, k in ipairs(KEYS) do
  if redis.call('HGET', k, 'id') == ARGV[1] then key = k break end
end
if not key then
  return {'', {}}
end
local op = ARGV[2]
if op == 'ref' then
  redis.call('HSET', key, 'pref', ARGV[3])
  return {'1', {}}
elseif op == 'channel' then
  redis.call('HSET', key, 'channel', ARGV[3])
  return {'1', {}}
elseif op == 'remote' then
  redis.call('HDEL', key, 'digest')
  redis.call('HSET', key, 'pref', ARGV[3])
  return {'1', {}}
end
local status = redis.call('HGET', key, 'status')
if op == 'count' then
  local now = tonumber(ARGV[3])
  local expires = tonumber(redis.call('HGET', key, 'expires'))
  local attempts = tonumber(redis.call('HGET', key, 'attempts'))
  local max = tonumber(redis.call('HGET', key, 'max'))
  if status == 'pending' and now < expires and attempts < max then
    redis.call('HSET', key, 'attempts', attempts + 1)
    return {'counted', redis.call('HGETALL', key)}
  elseif (status == 'pending' or status == 'dead') and now < expires then
    return {'exhausted', {}}
  end
  return {'notfound', {}}
end
if status ~= 'pending' then
  return {'0', {}}
end
if op == 'cancel' then
  redis.call('HSET', key, 'status', 'canceled', 'ended', ARGV[3])
  return {'1', redis.call('HGETALL', key)}
elseif op == 'approve' then
  redis.call('HSET', key, 'status', 'approved', 'ended', ARGV[3])
  return {'1', {}}
elseif op == 'finish' then
  redis.call('HSET', key, 'status', ARGV[4], 'ended', ARGV[3])
  return {'1', {}}
end
return redis.error_reply('unknown op ' .. op)
