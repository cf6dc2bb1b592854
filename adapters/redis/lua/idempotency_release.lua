-- Frees a claimed key that has no result. KEYS[1] = the key.
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 11) == '{"pending":' then
  return redis.call('DEL', KEYS[1])
end
return 0
