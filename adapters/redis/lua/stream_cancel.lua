-- Requests a cancel. KEYS[1] = meta. Returns 'unknown', 'complete' or 'requested'.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'unknown'
end
if redis.call('HGET', KEYS[1], 'c') == '1' then
  return 'complete'
end
redis.call('HSET', KEYS[1], 'x', '1')
return 'requested'
