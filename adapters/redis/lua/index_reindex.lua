-- Brings the index entries of one session up to its state after an update.
-- ARGV: 2 uuid, 3 session version, 4 expires us, 5 has external_user_id, 6 external_user_id,
-- 7 created us. Older versions than the indexed one are ignored, so replays are harmless.
if not redis.call('HGET', K_SIDOF, ARGV[2]) then
  return 0
end
local v = redis.call('HGET', K_VER, ARGV[2])
if v and tonumber(v) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', K_VER, ARGV[2], ARGV[3])
redis.call('ZADD', K_EXP, ARGV[4], ARGV[2])
local old = redis.call('HGET', K_EXTOF, ARGV[2])
if old then
  redis.call('ZREM', EXT_PREFIX .. old, ARGV[2])
  redis.call('HDEL', K_EXTOF, ARGV[2])
end
if ARGV[5] == '1' then
  redis.call('ZADD', EXT_PREFIX .. ARGV[6], ARGV[7], ARGV[2])
  redis.call('HSET', K_EXTOF, ARGV[2], ARGV[6])
end
return 1
