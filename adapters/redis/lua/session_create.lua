-- Creates session ARGV[8] (UUID) under session_id REF (mode 'sid'). ARGV[9] its purge
-- time, ARGV[10] its list index member, ARGV[11] the start of the hour it was created
-- in (us) and ARGV[12] its dashboard counts (see `count`), ARGV[13..] the session
-- hash's field/value pairs.
-- On a cluster the UUID pointer and the index entry were written before (other slots);
-- on standalone Redis they are written here. Returns {'ok'} or {'conflict'} (a live
-- session holds the session_id, or a stored session has the UUID); on a cluster 'ok'
-- ends with the inbox record (see inbox_emit).
local S, U, PURGE = REF, ARGV[8], ARGV[9]
local s, h = k_sess(S, U, 's'), k_holder(S)
if redis.call('EXISTS', s) == 1 then return {'conflict'} end
local prev = redis.call('GET', h)
if prev and live(S, prev) then return {'conflict'} end
if not CLUSTER then
  local owner = redis.call('GET', k_uuid(U))
  if owner and redis.call('EXISTS', k_sess(owner, U, 's')) == 1 then return {'conflict'} end
  redis.call('SET', k_uuid(U), S)
  expire(k_uuid(U), PURGE)
  index_add(ARGV[10], PURGE)
end
redis.call('HSET', s, unpack(ARGV, 13))
-- An expired holder stays stored (retention); the new one remembers it.
if prev and redis.call('EXISTS', k_sess(S, prev, 's')) == 1 then
  redis.call('HSET', s, 'prev', prev)
end
expire(s, PURGE)
-- The holder key outlives every session it has named.
local ttl = redis.call('PEXPIRETIME', h)
redis.call('SET', h, U)
if PURGE ~= 'never' and ttl ~= -1 then
  if ttl > tonumber(PURGE) then
    redis.call('PEXPIREAT', h, ttl)
  else
    redis.call('PEXPIREAT', h, PURGE)
  end
end
count(ARGV[11], ARGV[12], '')
return inbox_emit({'ok'}, inbox_record(S, U))
