-- Undoes an append whose id turned out to be taken in another session (cluster mode).
-- KEYS: 1 session hash, 2 messages hash, 3 order zset. ARGV: 1 message id, 2 seq of
-- the append, 3 the `last` before it ('' when none).
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[1], 'seq') == ARGV[2] then
  if ARGV[3] == '' then
    redis.call('HDEL', KEYS[1], 'last')
  else
    redis.call('HSET', KEYS[1], 'last', ARGV[3])
  end
end
return 1
