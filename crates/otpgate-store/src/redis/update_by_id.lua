-- Every operation on one verification named by its id (the caller found its phone through the
-- id index), after record.lua. KEYS[1] the phone's value.
-- ARGV: id, op, then per op:
--   'ref' provider_ref          -> record the provider's handle
--   'channel' channel           -> record the channel a fallback actually used
--   'remote' provider_ref       -> the provider holds the code: drop the digest, record the handle
--   'cancel' now_ms             -> pending -> canceled; answers the record
--   'approve' now_ms            -> pending -> approved; answers '1' for the one call that did it
--   'finish' now_ms status      -> pending -> dead | expired
--   'count' now_ms              -> count one attempt on a provider-held code (see below)
-- Answers {result, record}: result '' when the id is in neither record.
local cur, prev = load_records(KEYS[1])
local r
if cur and cur.id == ARGV[1] then
  r = cur
elseif prev and prev.id == ARGV[1] then
  r = prev
else
  return {'', ''}
end
local op = ARGV[2]
if op == 'ref' then
  r.pref = ARGV[3]
  save(KEYS[1], cur, prev)
  return {'1', ''}
elseif op == 'channel' then
  r.channel = ARGV[3]
  save(KEYS[1], cur, prev)
  return {'1', ''}
elseif op == 'remote' then
  r.digest, r.pref = '', ARGV[3]
  save(KEYS[1], cur, prev)
  return {'1', ''}
end
if op == 'count' then
  local now = tonumber(ARGV[3])
  if r.status == 'p' and now < r.expires and r.attempts < r.max then
    r.attempts = r.attempts + 1
    save(KEYS[1], cur, prev)
    return {'counted', enc(r)}
  elseif (r.status == 'p' or r.status == 'd') and now < r.expires then
    return {'exhausted', ''}
  end
  return {'notfound', ''}
end
if r.status ~= 'p' then
  return {'0', ''}
end
if op == 'cancel' then
  r.status, r.ended = 'c', tonumber(ARGV[3])
  save(KEYS[1], cur, prev)
  return {'1', enc(r)}
elseif op == 'approve' then
  r.status, r.ended = 'a', tonumber(ARGV[3])
  save(KEYS[1], cur, prev)
  return {'1', ''}
elseif op == 'finish' then
  r.status, r.ended = string.sub(ARGV[4], 1, 1), tonumber(ARGV[3])
  save(KEYS[1], cur, prev)
  return {'1', ''}
end
return redis.error_reply('unknown op ' .. op)
