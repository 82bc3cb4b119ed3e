-- Count the attempt, compare, consume: one check of a code, atomically (after record.lua).
-- KEYS[1] the phone's value. ARGV: now_ms, candidate digest.
-- The compare is Lua string equality, not constant time: both sides are HMAC-SHA256 digests
-- under a key the caller never sees, so the time it takes tells nothing about the code.
-- Returns {kind, data}: 'approved' with the record, 'wrong' with the attempts left, 'killed',
-- 'exhausted', 'notfound', or 'remote' with the record (the provider holds the code; nothing
-- counted).
local now = tonumber(ARGV[1])

local cur, prev = load_records(KEYS[1])
local r = cur
if not r or (r.status ~= 'p' and r.status ~= 'd') then
  r = prev
  if not r or r.status ~= 'd' then
    return {'notfound', ''}
  end
end
if now >= r.expires then
  return {'notfound', ''}
end
if r.status == 'd' or r.attempts >= r.max then
  return {'exhausted', ''}
end
if r.digest == '' then
  return {'remote', enc(r)}
end
if r.digest == ARGV[2] then
  r.status, r.ended = 'a', now
  save(KEYS[1], cur, prev)
  return {'approved', enc(r)}
end
r.attempts = r.attempts + 1
if r.attempts >= r.max then
  r.status, r.ended = 'd', now
  save(KEYS[1], cur, prev)
  return {'killed', ''}
end
save(KEYS[1], cur, prev)
return {'wrong', string.format('%d', r.max - r.attempts)}
