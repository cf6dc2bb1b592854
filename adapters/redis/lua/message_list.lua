-- A page of the messages of the session the reference names. ARGV: 8 'v' (all) or 'y'
-- (system), 9 'asc'/'desc', 10 cursor kind ''/'before'/'after'/'bounds', 11 cursor
-- message id, or for 'bounds' the low score bound, 12 the high one, 13 offset, 14 limit.
-- Returns {'ok', session fields, ids, values, low bound, high bound} or {'nomessage'}
-- (the cursor names no message of the session).
local S, U = session_or_reply()
if not S then return U end
local m = k_sess(S, U, 'm')
local lo, hi = '-inf', '+inf'
local kind = ARGV[10]
if kind == 'before' or kind == 'after' then
  local raw = redis.call('HGET', m, ARGV[11])
  if not raw then return {'nomessage'} end
  local seq = string.match(raw, '^(%d+)|')
  if kind == 'before' then hi = '(' .. seq else lo = '(' .. seq end
elseif kind == 'bounds' then
  lo, hi = ARGV[11], ARGV[12]
end
local key = k_sess(S, U, ARGV[8])
local offset, limit = tonumber(ARGV[13]), tonumber(ARGV[14])
local ids = {}
if limit > 0 then
  if ARGV[9] == 'desc' then
    ids = redis.call('ZREVRANGEBYSCORE', key, hi, lo, 'LIMIT', offset, limit)
  else
    ids = redis.call('ZRANGEBYSCORE', key, lo, hi, 'LIMIT', offset, limit)
  end
end
return {'ok', redis.call('HGETALL', k_sess(S, U, 's')), ids, message_values(m, ids), lo, hi}
