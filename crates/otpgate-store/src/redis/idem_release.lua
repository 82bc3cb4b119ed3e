-- Give a reservation up: only its holder can, and only while it is pending. KEYS[1] the entry.
-- ARGV: lease token. Returns 1 if released.
local e = redis.call('HMGET', KEYS[1], 'state', 'token')
if e[1] == 'pending' and e[2] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
