-- Like index_list, but also returns each session's hash (standalone Redis only: the
-- session keys are built here). ARGV: 2 now us, 3 by external_user_id ('1'/'0'),
-- 4 external_user_id, 5 first rank, 6 last rank, 7 key prefix.
-- Returns {{uuid, session fields (empty when the hash is gone)}, ...}, newest first.
prune(ARGV[2], 64)
local key = K_CREATED
if ARGV[3] == '1' then
  key = EXT_PREFIX .. ARGV[4]
end
local out = {}
for _, u in ipairs(redis.call('ZREVRANGE', key, ARGV[5], ARGV[6])) do
  out[#out + 1] = {u, redis.call('HGETALL', ARGV[7] .. '{' .. u .. '}:s')}
end
return out
