-- Reads a response's log from a sequence number. KEYS[1] = meta, KEYS[2] = stream
-- ARGV[1] = first seq wanted
-- Returns false when there is no log; else {session, message id, session_id,
-- complete, lease_expired, entries} with entries as XRANGE returns them.
local meta = redis.call('HMGET', KEYS[1], 's', 'm', 'i', 'c', 'l')
if not meta[1] then
  return false
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = '0'
-- Past the lease's end, not at it: Redis expires a key (the session's active
-- pointer, set to expire PXAT the lease's end) only once its time is passed, so
-- the log reads abandoned exactly when the pointer is gone.
if now > tonumber(meta[5]) then
  expired = '1'
end
local entries = redis.call('XRANGE', KEYS[2], '0-' .. (tonumber(ARGV[1]) + 1), '+')
return {meta[1], meta[2], meta[3], meta[4], expired, entries}
