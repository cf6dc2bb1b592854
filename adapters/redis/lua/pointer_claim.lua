-- Points a message id at its session. KEYS: 1 the pointer. ARGV: 1 session uuid,
-- 2 expires ms. Returns the other session's uuid when the id is taken, else nil.
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then
  return owner
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return false
