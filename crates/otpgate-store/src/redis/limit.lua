-- GCRA over several keys, all or nothing: either every key gives one unit or none does.
-- KEYS: the limit keys. ARGV[1]: now_ms, or '' to take Redis's own clock (one clock for every
-- instance). ARGV[2]: '1' to take, '0' to only look. Then per key: emission interval ms (0 = the
-- limit allows nothing) and burst window ms (interval x count, `Rate::burst_window_ms`; not the
-- configured period, which would let an uneven rate burst past its count).
-- Returns {1, 0, 0} when allowed, else {0, index of the rule with the longest wait, wait_ms}.
-- A key's value is its theoretical arrival time; it expires when that passes, as then it is spent.
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local new = {}
local worst, worst_wait = 0, -1
for i, key in ipairs(KEYS) do
  local interval, period = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local wait = -1
  if interval <= 0 then
    wait = period
  else
    local tat = tonumber(redis.call('GET', key) or now)
    if tat < now then tat = now end
    local new_tat = tat + interval
    local allow_at = new_tat - period
    if now < allow_at then wait = allow_at - now else new[i] = new_tat end
  end
  if wait >= 0 and wait > worst_wait then
    worst, worst_wait = i, wait
  end
end
if worst > 0 then
  return {0, worst, worst_wait}
end
if ARGV[2] == '1' then
  for i, key in ipairs(KEYS) do
    redis.call('SET', key, new[i], 'PX', new[i] - now)
  end
end
return {1, 0, 0}
