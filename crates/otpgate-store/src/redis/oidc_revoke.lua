-- Revoke a token id until a time, never shortening an earlier revocation.
-- KEYS[1] the id's key (string: until, Unix ms). ARGV: until_ms.
local until_ms = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current and current > until_ms then
  until_ms = current
end
redis.call('SET', KEYS[1], string.format('%d', until_ms))
redis.call('PEXPIREAT', KEYS[1], string.format('%d', until_ms))
return 1
