-- Reads the dashboard's counters this call's slot holds for the hours ARGV[8..] (their
-- starts, us): for each, {the counters hash as HGETALL pairs, its questions as ZRANGE
-- WITHSCORES pairs}; returns {'ok', those}.
local out = {}
for i = 8, #ARGV do
  local key = P .. '{' .. ST .. '}:st:' .. ARGV[i]
  local c = redis.call('HGETALL', key .. ':c')
  local q = {}
  if #c > 0 then
    q = redis.call('ZRANGE', key .. ':q', 0, -1, 'WITHSCORES')
  end
  out[#out + 1] = {c, q}
end
return {'ok', out}
