-- Points KEYS[1] (a UUID or message pointer) at session_id ARGV[8] until purge time
-- ARGV[9], unless it points at another session_id, which is returned (nil when
-- claimed). ARGV[10]: a session_id the caller verified holds nothing under this id,
-- which may be overruled ('' none). Claiming again for the same session_id only
-- extends the pointer's life.
local p = KEYS[1]
local current = redis.call('GET', p)
if current == ARGV[8] then
  extend(p, ARGV[9])
  return false
end
if current and current ~= ARGV[10] then return current end
redis.call('SET', p, ARGV[8])
expire(p, ARGV[9])
return false
