-- Writes a new session. KEYS: 1 session hash, 2 messages hash, 3 order zset.
-- ARGV: 1 now us, 2 expires ms, 3.. field/value pairs of the session hash.
-- Returns 0 when a live session has this uuid, 1 when written.
local exp = redis.call('HGET', KEYS[1], 'exp')
if exp and tonumber(exp) > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
