-- Reads the dashboard's counters of the hours ARGV[8..] (their starts, us): for each,
-- {the counters hash as HGETALL pairs, its questions as ZRANGE WITHSCORES pairs};
-- returns {'ok', those}.
local out = {}
for i = 8, #ARGV do
  local c = redis.call('HGETALL', P .. '{st}:' .. ARGV[i] .. ':c')
  local q = {}
  if #c > 0 then
    q = redis.call('ZRANGE', P .. '{st}:' .. ARGV[i] .. ':q', 0, -1, 'WITHSCORES')
  end
  out[#out + 1] = {c, q}
end
return {'ok', out}
