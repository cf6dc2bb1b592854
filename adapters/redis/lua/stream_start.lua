-- Starts a response's stream log. KEYS[1] = meta hash, KEYS[2] = event stream,
-- KEYS[3] (optional, when in this script's reach) = the session's active pointer
-- ARGV: session uuid, message id, session_id, lease ms, expiry ms (lease + log TTL),
--       response id
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 's', ARGV[1], 'm', ARGV[2], 'i', ARGV[3],
  'l', now + tonumber(ARGV[4]), 'c', '0', 'x', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if KEYS[3] then
  redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[4])
end
return 1
