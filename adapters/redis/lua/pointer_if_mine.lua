-- Renews (ARGV[2] = ms) or, with ARGV[2] = '0', deletes a session's active-response
-- pointer KEYS[1], only while it still names response ARGV[1].
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '0' then
  return redis.call('DEL', KEYS[1])
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
