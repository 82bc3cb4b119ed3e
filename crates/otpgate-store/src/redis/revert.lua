-- Undo an issue whose message could not be sent, only if the verification still holds the
-- code that issue stored (so a later send or check is never undone). After record.lua.
-- KEYS[1] the phone's value.
-- ARGV: mode ('created' | 'resent'), id, digest the issue stored ('' = none); for 'resent' the
--       state before it: digest, channel, provider ref ('' = none), sends, expires, next.
-- Returns 1 when something was reverted.
local cur, prev = load_records(KEYS[1])
if not cur or cur.id ~= ARGV[2] or cur.status ~= 'p' or cur.digest ~= ARGV[3] then
  return 0
end
if ARGV[1] == 'created' then
  if prev then
    -- The dead one stays alone for the rest of its own lifetime, as its own key did: the key's
    -- TTL less the time the reverted one would have outlived it.
    local left = redis.call('PTTL', KEYS[1]) - (cur.expires - prev.expires)
    if left > 0 then
      redis.call('SET', KEYS[1], enc(prev), 'PX', left)
      return 1
    end
  end
  redis.call('DEL', KEYS[1])
  return 1
end
cur.digest, cur.channel, cur.pref = ARGV[4], ARGV[5], ARGV[6]
cur.sends, cur.expires, cur.next = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
save(KEYS[1], cur, prev)
return 1
