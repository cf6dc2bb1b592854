-- Prunes some expired sessions, then returns uuids newest first from rank ARGV[5]
-- to ARGV[6]. ARGV: 2 now us, 3 by external_user_id ('1'/'0'), 4 external_user_id.
prune(ARGV[2], 64)
local key = K_CREATED
if ARGV[3] == '1' then
  key = EXT_PREFIX .. ARGV[4]
end
return redis.call('ZREVRANGE', key, ARGV[5], ARGV[6])
