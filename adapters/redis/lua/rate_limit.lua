-- GCRA rate limit checks, in order, stopping at the first refusal; one round trip.
-- KEYS[i] = the i-th limiter key (each hash-tagged by itself; on a cluster the caller
--           sends keys of one slot only)
-- ARGV[3i-2..3i] = its emission interval in ms (period / count), period in ms
--                  (interval * count), and cost in units
-- Returns the decisions made, flattened: {allowed (1|0), remaining or
-- retry_after_ms, reset_ms} per check run; a refusal is the last.
-- The clock is Redis' own TIME, so every instance sharing the Redis agrees on it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local period = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local stored = redis.call('GET', key)
  local tat = now
  if stored then
    tat = math.max(tonumber(stored), now)
  end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - period
  if now < allow_at then
    table.insert(out, 0)
    table.insert(out, allow_at - now)
    table.insert(out, tat - now)
    return out
  end
  redis.call('SET', key, new_tat, 'PX', new_tat - now)
  table.insert(out, 1)
  table.insert(out, math.floor((period - (new_tat - now)) / interval))
  table.insert(out, new_tat - now)
end
return out
