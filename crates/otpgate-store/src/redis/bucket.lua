-- Prepended to the scripts that use buckets (see mod.rs): a bucket is a hash of small entries,
-- each value a 6-byte expiry (ms, the caller's clock, big-endian) followed by its payload. Small
-- enough for Redis's compact listpack encoding, so an entry costs its bytes, not a key's
-- overhead. Per-field expiry needs Redis 7.4, so entries carry their own: an entry past it counts
-- as absent, every write to a bucket drops the bucket's expired entries, and the bucket's TTL is
-- raised to cover its longest entry (an idle bucket then goes as a whole).

-- An entry's payload and expiry; nil when it has none or it expired by `now`.
local function bucket_get(key, field, now)
  local v = redis.call('HGET', key, field)
  if not v then return nil end
  local expires = struct.unpack('>i6', v)
  if expires <= now then return nil end
  return string.sub(v, 7), expires
end

local function bucket_put(key, field, payload, expires, now)
  -- A bucket over the listpack limit (128 entries by default) is past what its sizing expects:
  -- then a sample is swept instead of all of it, so a write stays cheap.
  local flat
  if redis.call('HLEN', key) <= 64 then
    flat = redis.call('HGETALL', key)
  else
    flat = redis.call('HRANDFIELD', key, 32, 'WITHVALUES')
  end
  local dead = {}
  for i = 1, #flat, 2 do
    if flat[i] ~= field and struct.unpack('>i6', flat[i + 1]) <= now then dead[#dead + 1] = flat[i] end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  local ttl = expires - now
  if ttl < 1 then
    redis.call('HDEL', key, field)
    return
  end
  redis.call('HSET', key, field, struct.pack('>i6', expires) .. payload)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end

-- The id index (`ix:{<bucket>}`): a verification id's entry holds its phone, XORed with a pad
-- derived from the id, under a field derived from the id too (`id_entry` in mod.rs computes both;
-- a script only for a resend, whose id the caller does not know). Redis never holds the id past
-- its verification, so an entry left behind after it (until a write sweeps its bucket or the
-- bucket expires) tells nobody the number.
local function hex2bin(h)
  local bytes = {}
  for i = 1, #h, 2 do bytes[#bytes + 1] = tonumber(string.sub(h, i, i + 1), 16) end
  return string.char(unpack(bytes))
end

-- The bucket (the SHA-1's first 14 bits, as 4 hex digits) and the field (its next 80 bits) of
-- an id (as the record holds it, see record.lua).
local function id_entry(id)
  local h = redis.sha1hex(id)
  return string.format('%04x', tonumber(string.sub(h, 1, 4), 16) % 16384), hex2bin(string.sub(h, 5, 24))
end

-- XORs `s` with the id's pad: hides a phone, and shows a hidden one again.
local function id_pad(s, id)
  local pad = hex2bin(redis.sha1hex('otpgate-id-pad:' .. id))
  local out = {}
  for i = 1, #s do
    out[i] = bit.bxor(string.byte(s, i), string.byte(pad, (i - 1) % #pad + 1))
  end
  return string.char(unpack(out))
end

-- A shared value as a bucket entry's payload. A phone's resend value ('v1:<sends>:<next>:<forget>',
-- see otpgate_core::resend) whose forget time is the entry's expiry and `forget_after` past its
-- next is written by the resend rules, and kept as its send count alone ('\1' and 4 bytes);
-- any other value as it is, after a '\0'. `load_value` in limits.rs reads the same.
local function value_pack(value, expires, forget_after)
  local s = string.match(value, '^v1:(%d+):%-?%d+:%-?%d+$')
  local sends = tonumber(s)
  if sends and sends < 4294967296
      and string.format('v1:%d:%d:%d', sends, expires - forget_after, expires) == value then
    return '\1' .. struct.pack('>I', sends)
  end
  return '\0' .. value
end

local function value_unpack(payload, expires, forget_after)
  if string.byte(payload, 1) == 1 then
    local sends = struct.unpack('>I', payload, 2)
    return string.format('v1:%d:%d:%d', sends, expires - forget_after, expires)
  end
  return string.sub(payload, 2)
end

-- The shared value in `field` of the bucket `key`; nil when none is live at `now`.
local function value_get(key, field, now, forget_after)
  local payload, expires = bucket_get(key, field, now)
  if not payload then return nil end
  return value_unpack(payload, expires, forget_after)
end

local function value_put(key, field, value, expires, now, forget_after)
  bucket_put(key, field, value_pack(value, expires, forget_after), expires, now)
end
