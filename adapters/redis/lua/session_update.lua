-- Patches a live session. KEYS: 1 session hash, 2 messages hash, 3 order zset.
-- ARGV: 1 now us, 2 is_active ('' keeps), 3 metadata given ('1'/'0'), 4 metadata,
-- 5 external_user_id mode ('keep'/'set'/'clear'), 6 external_user_id,
-- 7 expires us ('' keeps), 8 expires ms.
-- Returns nil when missing or expired, else {session fields, message ids when the
-- expiry moved}.
local exp = redis.call('HGET', KEYS[1], 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[1]) then
  return false
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'active', ARGV[2])
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'meta', ARGV[4])
end
if ARGV[5] == 'set' then
  redis.call('HSET', KEYS[1], 'ext', ARGV[6])
elseif ARGV[5] == 'clear' then
  redis.call('HDEL', KEYS[1], 'ext')
end
local ids = {}
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'exp', ARGV[7], 'expms', ARGV[8])
  redis.call('PEXPIREAT', KEYS[1], ARGV[8])
  redis.call('PEXPIREAT', KEYS[2], ARGV[8])
  redis.call('PEXPIREAT', KEYS[3], ARGV[8])
  ids = redis.call('HKEYS', KEYS[2])
end
redis.call('HINCRBY', KEYS[1], 'ver', 1)
return {redis.call('HGETALL', KEYS[1]), ids}
