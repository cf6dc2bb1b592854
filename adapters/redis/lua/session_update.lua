-- Patches a live session. KEYS: on a cluster the session's 1 hash, 2 messages hash,
-- 3 order zset; on standalone Redis 1-6 the index (see index_common) then 7-9 those
-- three, and the index entries and message pointers are brought up to date here too.
-- ARGV: 1 ext prefix, 2 now us, 3 is_active ('' keeps), 4 metadata given ('1'/'0'),
-- 5 metadata, 6 external_user_id mode ('keep'/'set'/'clear'), 7 external_user_id,
-- 8 expires us ('' keeps), 9 expires ms, 10 key prefix.
-- Returns nil when missing or expired, else {session fields, message ids whose
-- pointers the caller must re-time (cluster, when the expiry moved)}.
local standalone = #KEYS == 9
local S, M, O = KEYS[1], KEYS[2], KEYS[3]
if standalone then
  S, M, O = KEYS[7], KEYS[8], KEYS[9]
end
local exp = redis.call('HGET', S, 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[2]) then
  return false
end
if ARGV[3] ~= '' then
  redis.call('HSET', S, 'active', ARGV[3])
end
if ARGV[4] == '1' then
  redis.call('HSET', S, 'meta', ARGV[5])
end
if ARGV[6] == 'set' then
  redis.call('HSET', S, 'ext', ARGV[7])
elseif ARGV[6] == 'clear' then
  redis.call('HDEL', S, 'ext')
end
local ids = {}
if ARGV[8] ~= '' then
  redis.call('HSET', S, 'exp', ARGV[8], 'expms', ARGV[9])
  redis.call('PEXPIREAT', S, ARGV[9])
  redis.call('PEXPIREAT', M, ARGV[9])
  redis.call('PEXPIREAT', O, ARGV[9])
  ids = redis.call('HKEYS', M)
end
local ver = redis.call('HINCRBY', S, 'ver', 1)
if standalone then
  if ARGV[6] ~= 'keep' or ARGV[8] ~= '' then
    local u = redis.call('HGET', S, 'id')
    reindex(u, ver, redis.call('HGET', S, 'exp'), redis.call('HGET', S, 'ext'),
      redis.call('HGET', S, 'created'))
  end
  for _, id in ipairs(ids) do
    redis.call('PEXPIREAT', ARGV[10] .. 'msg:{' .. id .. '}', ARGV[9])
  end
  ids = {}
end
return {redis.call('HGETALL', S), ids}
