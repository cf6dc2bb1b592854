-- Returns the non-deleted messages of a live session from rank ARGV[2] to ARGV[3]
-- (negative ranks count from the newest), oldest first.
-- KEYS: 1 session hash, 2 messages hash, 3 order zset. ARGV: 1 now us.
-- Returns nil when the session is missing or expired.
local exp = redis.call('HGET', KEYS[1], 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[1]) then
  return false
end
local ids = redis.call('ZRANGE', KEYS[3], ARGV[2], ARGV[3])
local out = {}
local chunk = 500
for i = 1, #ids, chunk do
  local part = redis.call('HMGET', KEYS[2], unpack(ids, i, math.min(i + chunk - 1, #ids)))
  for j = 1, #part do
    if part[j] then
      out[#out + 1] = part[j]
    end
  end
end
return out
