-- Appends one event. KEYS[1] = meta hash, KEYS[2] = event stream
-- ARGV: seq, kind (c|d|f), value (text, finish reason or error code),
--       terminal (1|0), expiry ms while running, expiry ms once complete
-- Entry ids are 0-(seq+1), so a read from a sequence number is one XRANGE.
-- Returns the session's UUID (for the caller to clear its active pointer), or
-- false when the log is gone.
local session = redis.call('HGET', KEYS[1], 's')
if not session then
  return false
end
redis.call('XADD', KEYS[2], '0-' .. (tonumber(ARGV[1]) + 1), 'k', ARGV[2], 'v', ARGV[3])
local ttl = ARGV[5]
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'c', '1')
  ttl = ARGV[6]
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return session
