-- Extends a running response's lease. KEYS[1] = meta, KEYS[2] = stream,
-- KEYS[3] (optional, when in this script's reach) = the session's active pointer
-- ARGV: lease ms, expiry ms (lease + log TTL), response id
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'l', now + tonumber(ARGV[1]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[3] then
  redis.call('PEXPIRE', KEYS[3], ARGV[1])
end
return 1
