-- Prepended to the verification scripts (see mod.rs): a phone's value `v2:{phone}` (a string)
-- is its current verification's record, then, while that one is dead and not expired, the record
-- of the verification before it (so reverting a failed send cannot lift a lockout). One record,
-- big-endian (struct.pack):
--   status (1 char: p pending, a approved, c canceled, d dead, e expired), channel (1 char:
--   s sms, w whatsapp, c call); the id (its 20 base-62 characters after `vf_` as 15 bytes, see
--   `id_arg` in mod.rs) and the digest ('' = the
--   provider holds the code), each a 1-byte length and its bytes; the provider ref (2-byte
--   length, '' = none); attempts and max attempts (1 byte each), sends (4 bytes); created,
--   expires, next resend, ended (6-byte signed ms; ended 0 = not ended).
-- The phone is not in it: it is in the key. The caller passes ids and channels in these forms.
local REC = '>c1c1Bc0Bc0Hc0BBIi6i6i6i6'

local function dec(s, pos)
  local r = {}
  r.status, r.channel, r.id, r.digest, r.pref, r.attempts, r.max, r.sends, r.created, r.expires, r.next,
    r.ended, pos = struct.unpack(REC, s, pos)
  return r, pos
end

local function enc(r)
  return struct.pack(REC, r.status, r.channel, #r.id, r.id, #r.digest, r.digest, #r.pref, r.pref,
    r.attempts, r.max, r.sends, r.created, r.expires, r.next, r.ended)
end

-- The phone's current record and the previous one (nil when absent).
local function load_records(key)
  local s = redis.call('GET', key)
  if not s then return nil, nil end
  local cur, pos = dec(s, 1)
  if pos <= #s then return cur, (dec(s, pos)) end
  return cur, nil
end

local function packed(cur, prev)
  if prev then return enc(cur) .. enc(prev) end
  return enc(cur)
end

-- Writes the records back, keeping the key's TTL.
local function save(key, cur, prev)
  redis.call('SET', key, packed(cur, prev), 'KEEPTTL')
end
