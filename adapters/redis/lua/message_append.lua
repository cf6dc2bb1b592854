-- Appends a message. KEYS: 1 session hash, 2 messages hash, 3 order zset, and in
-- standalone mode 4 the message's id pointer (in cluster mode the caller claims it next).
-- ARGV: 1 message id, 2 timestamp us, 3 message JSON, 4 now us, 5 session uuid.
-- Returns {'ok', stored timestamp us, expires ms, previous last us, seq} or {'notfound'},
-- {'inactive'}, {'conflict'}.
local exp = redis.call('HGET', KEYS[1], 'exp')
if not exp or tonumber(exp) <= tonumber(ARGV[4]) then
  return {'notfound'}
end
if redis.call('HGET', KEYS[1], 'active') ~= '1' then
  return {'inactive'}
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return {'conflict'}
end
if KEYS[4] then
  local owner = redis.call('GET', KEYS[4])
  if owner and owner ~= ARGV[5] then
    return {'conflict'}
  end
end
local expms = redis.call('HGET', KEYS[1], 'expms')
local ts = ARGV[2]
local last = redis.call('HGET', KEYS[1], 'last')
if last and tonumber(last) > tonumber(ts) then
  ts = last
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'last', ts)
redis.call('HSET', KEYS[2], ARGV[1], ts .. '|' .. ARGV[3])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('PEXPIREAT', KEYS[2], expms)
redis.call('PEXPIREAT', KEYS[3], expms)
if KEYS[4] then
  redis.call('SET', KEYS[4], ARGV[5], 'PXAT', expms)
end
return {'ok', ts, expms, last or '', tostring(seq)}
