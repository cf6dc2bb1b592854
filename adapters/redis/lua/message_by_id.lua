-- Reads (ARGV[10] 'get') or soft-deletes ('delete') message ARGV[8] of a live session.
-- ARGV[9]: the session_id its pointer names (cluster: read by the caller first), or ''
-- to follow the pointer here (standalone Redis). The pointer is checked: the message
-- must be in the live holder of that session_id. Returns {'ok', session fields,
-- value} for 'get', {'ok'} for 'delete', or {'notfound'}.
local M = ARGV[8]
local S = ARGV[9]
if S == '' then
  S = redis.call('GET', k_msg(M))
  if not S then return {'notfound'} end
end
local U = holder(S)
if not U then return {'notfound'} end
local raw = redis.call('HGET', k_sess(S, U, 'm'), M)
local v = k_sess(S, U, 'v')
if not raw or not redis.call('ZSCORE', v, M) then return {'notfound'} end
if ARGV[10] == 'delete' then
  redis.call('ZREM', v, M)
  redis.call('ZREM', k_sess(S, U, 'y'), M)
  -- The inbox: a deleted message's rating no longer counts; a deleted first visitor
  -- message gives way to the next one (looked for among the oldest 1,000 left).
  local s, m = k_sess(S, U, 's'), k_sess(S, U, 'm')
  if message_rated_down(raw) then redis.call('HINCRBY', s, 'down', -1) end
  if redis.call('HGET', s, 'fq') == M then
    redis.call('HDEL', s, 'fq')
    local ids = redis.call('ZRANGE', v, 0, 999)
    for i = 1, #ids, 100 do
      local part = {unpack(ids, i, math.min(i + 99, #ids))}
      local values = redis.call('HMGET', m, unpack(part))
      local found = false
      for j = 1, #part do
        if message_role(values[j]) == 'user' then
          redis.call('HSET', s, 'fq', part[j])
          found = true
          break
        end
      end
      if found then break end
    end
  end
  return inbox_emit({'ok'}, inbox_record(S, U))
end
return {'ok', redis.call('HGETALL', k_sess(S, U, 's')), raw}
