-- GCRA rate limit check, one key, one round trip.
-- KEYS[1] = the limiter key (hash-tagged by itself, so any cluster slot works)
-- ARGV[1] = emission interval in ms (period / count), ARGV[2] = period in ms
--           (interval * count), ARGV[3] = cost in units
-- Returns {allowed (1|0), remaining or retry_after_ms, reset_ms}.
-- The clock is Redis' own TIME, so every instance sharing the Redis agrees on it.
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = math.max(tonumber(stored), now)
end
local new_tat = tat + interval * cost
local allow_at = new_tat - period
if now < allow_at then
  return {0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {1, math.floor((period - (new_tat - now)) / interval), new_tat - now}
