-- Erases session ARGV[7], stored under session_id ARGV[6], live or expired, when its
-- external_user_id is ARGV[8]: its four keys, and on standalone Redis its pointers and
-- list entry (on a cluster they are in other slots: they lead nowhere afterwards and
-- expire). The session_id goes back to the previous holder when this one held it.
-- Returns {'ok', messages erased (soft-deleted ones too)} or {'gone'}.
local S, U = ARGV[6], ARGV[7]
local s, m = k_sess(S, U, 's'), k_sess(S, U, 'm')
if redis.call('HGET', s, 'ext') ~= ARGV[8] then return {'gone'} end
local n = redis.call('HLEN', m)
local prev = redis.call('HGET', s, 'prev')
local rec = inbox_record(S, U, true)
if not CLUSTER then
  for _, id in ipairs(redis.call('HKEYS', m)) do
    if redis.call('GET', k_msg(id)) == S then redis.call('DEL', k_msg(id)) end
  end
  if redis.call('GET', k_uuid(U)) == S then redis.call('DEL', k_uuid(U)) end
  local member = redis.call('HGET', s, 'idx')
  if member then
    redis.call('ZREM', K_CREATED, member)
    redis.call('ZREM', K_PURGE, member)
  end
end
redis.call('DEL', s, m, k_sess(S, U, 'v'), k_sess(S, U, 'y'))
if redis.call('GET', k_holder(S)) == U then
  if prev and redis.call('EXISTS', k_sess(S, prev, 's')) == 1 then
    redis.call('SET', k_holder(S), prev, 'KEEPTTL')
  else
    redis.call('DEL', k_holder(S))
  end
end
return inbox_emit({'ok', n}, rec)
