-- Token windows: fixed windows of a period aligned to the Unix epoch on Redis' own
-- TIME (so every instance sharing the Redis agrees), one hash per counter:
-- {w = window index, n = units counted in it}, expiring when its window ends.
-- KEYS[i] = the i-th counter (all under one hash tag: one slot, one round trip)
-- ARGV[1] = units to add (0: only read)
-- ARGV[1+i] = the i-th counter's period in ms
-- Returns {used, resets_in_ms} per counter, flattened.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local add = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local period = tonumber(ARGV[1 + i])
  local index = math.floor(now / period)
  local ends = (index + 1) * period
  local stored = redis.call('HMGET', key, 'w', 'n')
  local used = 0
  if stored[1] and tonumber(stored[1]) == index then
    used = tonumber(stored[2]) or 0
  end
  if add > 0 then
    used = used + add
    redis.call('HSET', key, 'w', index, 'n', used)
    redis.call('PEXPIREAT', key, ends)
  end
  table.insert(out, used)
  table.insert(out, ends - now)
end
return out
