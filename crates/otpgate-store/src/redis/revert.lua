-- Undo an issue whose message could not be sent, only if the verification still holds the
-- code that issue stored (so a later send or check is never undone).
-- KEYS[1] the phone's current verification.
-- ARGV: mode ('created' | 'resent'), id, digest the issue stored ('' = none); for 'resent' the
--       state before it: digest, channel, provider ref ('' = none), sends, expires, next.
-- Returns 1 when something was reverted.
local flat = redis.call('HGETALL', KEYS[1])
local cur = {}
for i = 1, #flat, 2 do cur[flat[i]] = flat[i + 1] end
if cur.id ~= ARGV[2] or cur.status ~= 'pending' or (cur.digest or '') ~= ARGV[3] then
  return 0
end
if ARGV[1] == 'created' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'channel', ARGV[5], 'sends', ARGV[7], 'expires', ARGV[8], 'next', ARGV[9])
if ARGV[4] == '' then redis.call('HDEL', KEYS[1], 'digest') else redis.call('HSET', KEYS[1], 'digest', ARGV[4]) end
if ARGV[6] == '' then redis.call('HDEL', KEYS[1], 'pref') else redis.call('HSET', KEYS[1], 'pref', ARGV[6]) end
return 1
