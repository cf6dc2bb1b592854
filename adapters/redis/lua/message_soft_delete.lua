-- Soft-deletes a message: it leaves the order zset but stays in the messages hash.
-- KEYS: either the session's 1 hash, 2 messages hash, 3 order zset, or (standalone
-- Redis only) just 1 the message's pointer. ARGV: 1 message id, 2 now us, 3 key prefix.
-- Returns 1 when deleted, 0 when missing, already deleted, or the session is gone.
local S, O = KEYS[1], KEYS[3]
if #KEYS == 1 then
  local owner = redis.call('GET', KEYS[1])
  if not owner then
    return 0
  end
  local base = ARGV[3] .. '{' .. owner .. '}'
  S, O = base .. ':s', base .. ':o'
end
local exp = redis.call('HGET', S, 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[2]) then
  return 0
end
return redis.call('ZREM', O, ARGV[1])
