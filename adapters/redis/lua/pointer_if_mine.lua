-- Moves the expiry of a session's active-response pointer KEYS[1] to ARGV[2] (Redis
-- time, ms: the end of the answer's lease) or, with ARGV[2] = '0', deletes it — only
-- while it still names response ARGV[1].
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '0' then
  return redis.call('DEL', KEYS[1])
end
return redis.call('PEXPIREAT', KEYS[1], ARGV[2])
