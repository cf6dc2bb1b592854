-- Deletes a live session and all its messages. KEYS: 1 session hash, 2 messages hash,
-- 3 order zset. ARGV: 1 now us.
-- Returns nil when missing or expired, else the ids of the deleted messages.
local exp = redis.call('HGET', KEYS[1], 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[1]) then
  return false
end
local ids = redis.call('HKEYS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return ids
