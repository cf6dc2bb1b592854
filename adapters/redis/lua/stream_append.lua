-- Appends one event. KEYS[1] = meta hash, KEYS[2] = event stream
-- ARGV: seq, kind (c|d|f), value (text, finish reason or error code),
--       terminal (1|0), expiry ms while running, expiry ms once complete,
--       key prefix ('' unless this script clears the session's active pointer
--       itself, where the pointer is in its reach: standalone Redis), response id
-- Entry ids are 0-(seq+1), so a read from a sequence number is one XRANGE.
-- Returns {session UUID, session_id} (for a caller that clears the active pointer
-- itself), or false when the log is gone.
local meta = redis.call('HMGET', KEYS[1], 's', 'i')
if not meta[1] then
  return false
end
redis.call('XADD', KEYS[2], '0-' .. (tonumber(ARGV[1]) + 1), 'k', ARGV[2], 'v', ARGV[3])
local ttl = ARGV[5]
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'c', '1')
  ttl = ARGV[6]
  if ARGV[7] ~= '' then
    -- The key stream_start set: Rust's active_key() builds the same name.
    local pointer = ARGV[7] .. '{' .. meta[2] .. '}:' .. meta[1] .. ':a'
    if redis.call('GET', pointer) == ARGV[8] then
      redis.call('DEL', pointer)
    end
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return meta
