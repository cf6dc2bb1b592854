-- Appends one event. KEYS[1] = meta hash, KEYS[2] = event stream
-- ARGV: seq, kind (c|d|f), value (text, finish reason or error code),
--       terminal (1|0), expiry ms while running, expiry ms once complete,
--       key prefix, response id
-- Entry ids are 0-(seq+1), so a read from a sequence number is one XRANGE.
-- A terminal event clears the session's active pointer if it still names this
-- response: here when stream_start.lua found it in reach (field 'o'; the key is in
-- this script's slot), else the reply {session UUID, session_id} asks the caller to.
-- Returns false otherwise (also when the log is gone).
local meta = redis.call('HMGET', KEYS[1], 's', 'i', 'o')
if not meta[1] then
  return false
end
redis.call('XADD', KEYS[2], '0-' .. (tonumber(ARGV[1]) + 1), 'k', ARGV[2], 'v', ARGV[3])
local ttl = ARGV[5]
local reply = false
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'c', '1')
  ttl = ARGV[6]
  if meta[3] == '1' then
    -- The key stream_start.lua set: Rust's active_key() builds the same name.
    local pointer = ARGV[7] .. '{' .. meta[2] .. '}:' .. meta[1] .. ':a'
    if redis.call('GET', pointer) == ARGV[8] then
      redis.call('DEL', pointer)
    end
  else
    reply = {meta[1], meta[2]}
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return reply
