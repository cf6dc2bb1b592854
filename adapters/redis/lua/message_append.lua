-- Appends message ARGV[8] to the session the reference names. ARGV: 9 timestamp us,
-- 10 body JSON, 11 role, 12 (cluster) the session_id the message's pointer was claimed
-- for (or is written here for), 13 (cluster) the purge time the pointer was given (or
-- is given at least), 14 the turn window ('' for a plain append), 15 the pointer's key
-- when it is in this slot, written here (always on standalone Redis; on a cluster
-- when the id names the session's slot), else '', 16 the id of the message an
-- ungrounded answer answers ('' none): its text goes to the dashboard's question list
-- (when it is in this session), 17 the message's dashboard counts (see `count`),
-- counted in the hour of its stored timestamp, 18 '1' when its metadata rates it
-- down (the inbox's count).
-- Returns {'ok', session fields, stored timestamp us, seq} (a turn adds system ids,
-- their values, recent ids newest first, their values), {'inactive'}, {'conflict'}; on
-- a cluster, without writing: {'claim', sid, uuid} when the pointer is not claimed for
-- this session_id yet, {'ttl', purge} when it must live longer, {'taken'} when the
-- pointer written here names another session_id (the caller claims it first, checked).
local S, U = session_or_reply()
if not S then return U end
if CLUSTER and ARGV[12] ~= S then return {'claim', S, U} end
local s = k_sess(S, U, 's')
if redis.call('HGET', s, 'active') ~= '1' then return {'inactive'} end
local M = ARGV[8]
if stores_message(S, M) then return {'conflict'} end
local purge = redis.call('HGET', s, 'purge')
-- When the message's pointer expires: with the session on standalone Redis; on a
-- cluster the caller's guess, or the session's purge time when later (the session's
-- 'cover' stays the earliest purge time of its pointers).
local pointer_purge = purge
local p = ARGV[15]
if CLUSTER and p == '' then
  pointer_purge = ARGV[13]
  if ms(pointer_purge) < ms(purge) then return {'ttl', purge} end
else
  local other = redis.call('GET', p)
  if other and other ~= S then
    -- On a cluster that session_id's keys may be in another slot.
    if CLUSTER then return {'taken'} end
    if stores_message(other, M) then return {'conflict'} end
  end
  if CLUSTER and ms(ARGV[13]) > ms(purge) then pointer_purge = ARGV[13] end
  redis.call('SET', p, S)
  expire(p, pointer_purge)
end
if ms(pointer_purge) < ms(redis.call('HGET', s, 'cover')) then
  redis.call('HSET', s, 'cover', pointer_purge)
end
local ts = ARGV[9]
local last = redis.call('HGET', s, 'last')
if last and tonumber(last) > tonumber(ts) then ts = last end
local seq = redis.call('HINCRBY', s, 'seq', 1)
redis.call('HSET', s, 'last', ts)
local m, v, y = k_sess(S, U, 'm'), k_sess(S, U, 'v'), k_sess(S, U, 'y')
redis.call('HSET', m, M, seq .. '|' .. ts .. '|' .. ARGV[10])
redis.call('ZADD', v, seq, M)
expire(m, purge)
expire(v, purge)
if ARGV[11] == 'system' then
  redis.call('ZADD', y, seq, M)
  expire(y, purge)
end
-- The inbox: the first visitor message, the down ratings.
if ARGV[11] == 'user' and redis.call('HEXISTS', s, 'fq') == 0 then
  redis.call('HSET', s, 'fq', M)
end
if ARGV[18] == '1' then redis.call('HINCRBY', s, 'down', 1) end
local reply = {'ok', redis.call('HGETALL', s), ts, tostring(seq)}
if ARGV[14] ~= '' then
  local window = tonumber(ARGV[14])
  local system, recent = {}, {}
  if window > 0 then
    system = redis.call('ZRANGE', y, 0, window - 1)
    recent = redis.call('ZREVRANGE', v, 0, window - 1)
  end
  reply[5] = system
  reply[6] = message_values(m, system)
  reply[7] = recent
  reply[8] = message_values(m, recent)
end
local asked = ''
if ARGV[16] ~= '' then asked = question_text(redis.call('HGET', m, ARGV[16])) end
count(hour_of(ts), ARGV[17], asked)
return inbox_emit(reply, inbox_record(S, U))
