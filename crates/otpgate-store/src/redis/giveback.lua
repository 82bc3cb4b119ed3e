-- Return one unit to each key (Redis Cluster only: rolls back the slot groups of a multi-slot
-- acquire that was refused by another group). Moving the arrival time back by one interval is
-- exactly what one take added, whatever others took in between.
-- KEYS: the limit keys. ARGV[1]: now_ms or '' (Redis's clock); then one interval ms per key.
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then
    local back = tat - tonumber(ARGV[1 + i])
    if back <= now then
      redis.call('DEL', key)
    else
      redis.call('SET', key, back, 'PX', back - now)
    end
  end
end
return 1
