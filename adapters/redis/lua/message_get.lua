-- Reads one message of a live session. KEYS: 1 session hash, 2 messages hash,
-- 3 order zset. ARGV: 1 message id, 2 now us.
-- Returns nil when missing or the session is missing or expired, else
-- {stored value, '1' when soft-deleted else '0'}.
local exp = redis.call('HGET', KEYS[1], 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[2]) then
  return false
end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then
  return false
end
local deleted = '1'
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  deleted = '0'
end
return {raw, deleted}
