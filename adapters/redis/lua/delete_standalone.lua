-- Deletes a live session, its messages, their pointers and its index entries in one
-- step (standalone Redis only: pointer keys are built here from the message ids).
-- KEYS: 1-6 the index, 7 session hash, 8 messages hash, 9 order zset.
-- ARGV: 2 now us, 3 uuid, 4 key prefix. Returns 1 when deleted, 0 when missing or expired.
local S, M, O = KEYS[7], KEYS[8], KEYS[9]
local exp = redis.call('HGET', S, 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[2]) then
  return 0
end
local ids = redis.call('HKEYS', M)
redis.call('DEL', S, M, O)
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[4] .. 'msg:{' .. id .. '}')
end
drop(ARGV[3])
return 1
