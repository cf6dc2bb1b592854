-- Soft-deletes a message: it leaves the order zset but stays in the messages hash.
-- KEYS: 1 session hash, 2 messages hash, 3 order zset. ARGV: 1 message id, 2 now us.
-- Returns 1 when deleted, 0 when missing, already deleted, or the session is gone.
local exp = redis.call('HGET', KEYS[1], 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[2]) then
  return 0
end
return redis.call('ZREM', KEYS[3], ARGV[1])
