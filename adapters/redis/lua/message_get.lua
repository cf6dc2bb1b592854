-- Reads one message of a live session. KEYS: either the session's 1 hash, 2 messages
-- hash, 3 order zset, or (standalone Redis only) just 1 the message's pointer, from
-- which the session's keys are built. ARGV: 1 message id, 2 now us, 3 key prefix.
-- Returns nil when missing or the session is missing or expired, else
-- {stored value, '1' when soft-deleted else '0', session uuid ('' when given by keys)}.
local S, M, O = KEYS[1], KEYS[2], KEYS[3]
local owner = ''
if #KEYS == 1 then
  owner = redis.call('GET', KEYS[1])
  if not owner then
    return false
  end
  local base = ARGV[3] .. '{' .. owner .. '}'
  S, M, O = base .. ':s', base .. ':m', base .. ':o'
end
local exp = redis.call('HGET', S, 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[2]) then
  return false
end
local raw = redis.call('HGET', M, ARGV[1])
if not raw then
  return false
end
local deleted = '1'
if redis.call('ZSCORE', O, ARGV[1]) then
  deleted = '0'
end
return {raw, deleted, owner}
