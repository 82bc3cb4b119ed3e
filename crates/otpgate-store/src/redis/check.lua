-- Count the attempt, compare, consume: one check of a code, atomically.
-- KEYS[1] the phone's current verification, KEYS[2] its previous one (kept while dead).
-- ARGV: now_ms, candidate digest.
-- The compare is Lua string equality, not constant time: both sides are HMAC-SHA256 digests
-- under a key the caller never sees, so the time it takes tells nothing about the code.
-- Returns {kind, data}: 'approved' with the hash, 'wrong' {attempts left}, 'exhausted',
-- 'notfound', or 'remote' with the hash (the provider holds the code; nothing counted).
local now = tonumber(ARGV[1])

local function load(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local key = KEYS[1]
local cur = load(key)
if not cur or (cur.status ~= 'pending' and cur.status ~= 'dead') then
  key = KEYS[2]
  cur = load(key)
  if not cur or cur.status ~= 'dead' then
    return {'notfound', {}}
  end
end
if now >= tonumber(cur.expires) then
  return {'notfound', {}}
end
local attempts, max = tonumber(cur.attempts), tonumber(cur.max)
if cur.status == 'dead' or attempts >= max then
  return {'exhausted', {}}
end
if not cur.digest then
  return {'remote', redis.call('HGETALL', key)}
end
if cur.digest == ARGV[2] then
  redis.call('HSET', key, 'status', 'approved', 'ended', now)
  return {'approved', redis.call('HGETALL', key)}
end
attempts = attempts + 1
if attempts >= max then
  redis.call('HSET', key, 'attempts', attempts, 'status', 'dead', 'ended', now)
  return {'killed', {}}
end
redis.call('HSET', key, 'attempts', attempts)
return {'wrong', {string.format('%d', max - attempts)}}
