-- Deletes the session the reference names with all its messages. On standalone Redis
-- its pointers and index entry go too; on a cluster they stay until their purge time
-- (every reader checks them against the session's own keys). Returns {'ok'}.
local S, U = session_or_reply()
if not S then return U end
local s, m = k_sess(S, U, 's'), k_sess(S, U, 'm')
local prev = redis.call('HGET', s, 'prev')
local rec = inbox_record(S, U, true)
if not CLUSTER then
  for _, id in ipairs(redis.call('HKEYS', m)) do
    if redis.call('GET', k_msg(id)) == S then redis.call('DEL', k_msg(id)) end
  end
  if redis.call('GET', k_uuid(U)) == S then redis.call('DEL', k_uuid(U)) end
  local member = redis.call('HGET', s, 'idx')
  redis.call('ZREM', K_CREATED, member)
  redis.call('ZREM', K_PURGE, member)
end
redis.call('DEL', s, m, k_sess(S, U, 'v'), k_sess(S, U, 'y'))
-- The session_id goes back to the previous holder (expired, kept for retention), if any.
if prev and redis.call('EXISTS', k_sess(S, prev, 's')) == 1 then
  redis.call('SET', k_holder(S), prev, 'KEEPTTL')
else
  redis.call('DEL', k_holder(S))
end
return inbox_emit({'ok'}, rec)
