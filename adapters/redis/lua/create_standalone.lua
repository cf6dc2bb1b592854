-- Creates a session and indexes it in one step (standalone Redis only: the holder of
-- a taken session_id is checked through a key built here, which a cluster forbids).
-- KEYS: 1-6 the index (see index_common), 7 session hash, 8 messages hash, 9 order zset.
-- ARGV: 2 session_id, 3 uuid, 4 created us, 5 expires us, 6 now us, 7 has
-- external_user_id, 8 external_user_id, 9 key prefix, 10 expires ms, 11.. session fields.
-- Returns 1 when created, 0 on a conflict (uuid or session_id taken by a live session).
local S, M, O = KEYS[7], KEYS[8], KEYS[9]
local exp = redis.call('HGET', S, 'exp')
if exp and tonumber(exp) > tonumber(ARGV[6]) then
  return 0
end
prune(ARGV[6], 16)
local owner = live_owner(ARGV[2], ARGV[3], ARGV[6], '')
if owner then
  local held = ARGV[9] .. '{' .. owner .. '}:s'
  local held_exp = redis.call('HGET', held, 'exp')
  if held_exp and tonumber(held_exp) > tonumber(ARGV[6])
      and redis.call('HGET', held, 'sid') == ARGV[2] then
    return 0
  end
end
redis.call('DEL', S, M, O)
redis.call('HSET', S, unpack(ARGV, 11))
redis.call('PEXPIREAT', S, ARGV[10])
index_session(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7], ARGV[8])
return 1
