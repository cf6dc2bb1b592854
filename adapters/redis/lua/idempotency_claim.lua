-- Claims an idempotency key. KEYS[1] = the key; ARGV: pending JSON, claim ms
-- Returns false when claimed, else the stored JSON (pending or done).
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
