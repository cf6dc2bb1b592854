-- Indexes a new session. ARGV: 2 session_id, 3 uuid, 4 created us, 5 expires us,
-- 6 now us, 7 has external_user_id ('1'/'0'), 8 external_user_id, 9 owner to override.
-- Returns the uuid of the live session that holds the session_id already, or nil.
prune(ARGV[6], 16)
local owner = redis.call('HGET', K_SID, ARGV[2])
if owner and owner ~= ARGV[3] and owner ~= ARGV[9] then
  local e = redis.call('ZSCORE', K_EXP, owner)
  if e and tonumber(e) > tonumber(ARGV[6]) then
    return owner
  end
end
if owner and owner ~= ARGV[3] then
  drop(owner)
end
redis.call('HSET', K_SID, ARGV[2], ARGV[3])
redis.call('ZADD', K_CREATED, ARGV[4], ARGV[3])
redis.call('ZADD', K_EXP, ARGV[5], ARGV[3])
redis.call('HSET', K_SIDOF, ARGV[3], ARGV[2])
redis.call('HSET', K_VER, ARGV[3], '0')
if ARGV[7] == '1' then
  redis.call('ZADD', EXT_PREFIX .. ARGV[8], ARGV[4], ARGV[3])
  redis.call('HSET', K_EXTOF, ARGV[3], ARGV[8])
end
return false
