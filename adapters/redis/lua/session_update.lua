-- Patches the session the reference names. ARGV: 8 is_active ('' keeps, '1', '0'),
-- 9 metadata given ('1'/'0'), 10 metadata JSON, 11 external_user_id 'keep'/'set'/'clear',
-- 12 external_user_id, 13 new expires_at us ('' keeps), 14 its purge time,
-- 15 (cluster) the purge time every pointer of the session was extended to ('' none),
-- 16 (cluster) the message count when they were, 17 responder ('' keeps, 'ai', 'human'),
-- 18 handoff_requested_at 'keep'/'set'/'clear', 19 its time in us.
-- Returns {'ok', session fields}, or on a cluster, when the new purge time is later than
-- the session's pointers are known to live ('cover'), {'extend', sid, uuid, message
-- count, list index member, message ids} without writing: the caller extends those
-- pointers, then calls again with ARGV 15 and 16 (the commit).
local S, U = session_or_reply()
if not S then return U end
local s = k_sess(S, U, 's')
local NEW_EXP, NEW_PURGE = ARGV[13], ARGV[14]
local member = redis.call('HGET', s, 'idx')
if NEW_EXP ~= '' then
  local cover = redis.call('HGET', s, 'cover')
  if ms(NEW_PURGE) > ms(cover) then
    if CLUSTER then
      local seq = redis.call('HGET', s, 'seq')
      if ARGV[15] == '' or ms(ARGV[15]) < ms(NEW_PURGE) or ARGV[16] ~= seq then
        return {'extend', S, U, seq, member, redis.call('HKEYS', k_sess(S, U, 'm'))}
      end
      cover = ARGV[15]
    else
      extend(k_uuid(U), NEW_PURGE)
      for _, m in ipairs(redis.call('HKEYS', k_sess(S, U, 'm'))) do
        extend(k_msg(m), NEW_PURGE)
      end
      index_extend(member, NEW_PURGE)
      cover = NEW_PURGE
    end
    redis.call('HSET', s, 'cover', cover)
  end
end
if ARGV[8] ~= '' then redis.call('HSET', s, 'active', ARGV[8]) end
if ARGV[9] == '1' then redis.call('HSET', s, 'meta', ARGV[10]) end
if ARGV[11] == 'set' then
  redis.call('HSET', s, 'ext', ARGV[12])
elseif ARGV[11] == 'clear' then
  redis.call('HDEL', s, 'ext')
end
-- Absent 'resp' / 'handoff' read as 'ai' / none.
if ARGV[17] == 'ai' then
  redis.call('HDEL', s, 'resp')
elseif ARGV[17] ~= '' then
  redis.call('HSET', s, 'resp', ARGV[17])
end
if ARGV[18] == 'set' then
  redis.call('HSET', s, 'handoff', ARGV[19])
elseif ARGV[18] == 'clear' then
  redis.call('HDEL', s, 'handoff')
end
if NEW_EXP ~= '' then
  redis.call('HSET', s, 'exp', NEW_EXP, 'purge', NEW_PURGE)
  for _, kind in ipairs({'s', 'm', 'v', 'y'}) do
    expire(k_sess(S, U, kind), NEW_PURGE)
  end
  extend(k_holder(S), NEW_PURGE)
end
return inbox_emit({'ok', redis.call('HGETALL', s)}, inbox_record(S, U))
