-- Replaces the value of message ARGV[8] of session ARGV[7], stored under session_id
-- ARGV[6], with ARGV[10] when it is still ARGV[9], the message is not soft-deleted and
-- the session is the live holder of its session_id; then adds ARGV[11] to the
-- session's down ratings (the inbox) and counts ARGV[12..] (pairs: an hour's start,
-- its dashboard deltas; see `count`). Returns {'ok'}, {'changed'} (the
-- value is another now: read it again) or {'notfound'}.
local S, U, M = ARGV[6], ARGV[7], ARGV[8]
if holder(S) ~= U then return {'notfound'} end
if not redis.call('ZSCORE', k_sess(S, U, 'v'), M) then return {'notfound'} end
local m = k_sess(S, U, 'm')
if redis.call('HGET', m, M) ~= ARGV[9] then return {'changed'} end
redis.call('HSET', m, M, ARGV[10])
if ARGV[11] ~= '0' then redis.call('HINCRBY', k_sess(S, U, 's'), 'down', ARGV[11]) end
for i = 12, #ARGV, 2 do count(ARGV[i], ARGV[i + 1], '') end
return inbox_emit({'ok'}, inbox_record(S, U))
