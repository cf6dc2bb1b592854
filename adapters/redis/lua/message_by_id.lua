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
  return {'ok'}
end
return {'ok', redis.call('HGETALL', k_sess(S, U, 's')), raw}
