-- The inbox rows of sessions ARGV[8..] (members '<uuid> <sid>'; on a cluster one
-- session per call, routed to its slot): for each, {session hash as HGETALL pairs,
-- the value of its first visitor message ('' none), the value of its newest visible
-- message ('' none), how many messages are visible}, or 'dead' when it is not live.
local out = {}
for i = 8, #ARGV do
  local member = ARGV[i]
  local u, sid = string.sub(member, 1, 36), string.sub(member, 38)
  local s = k_sess(sid, u, 's')
  local exp = redis.call('HGET', s, 'exp')
  if exp and tonumber(exp) > NOW then
    local v, m = k_sess(sid, u, 'v'), k_sess(sid, u, 'm')
    local last = ''
    local top = redis.call('ZREVRANGE', v, 0, 0)
    if top[1] then last = redis.call('HGET', m, top[1]) or '' end
    local first = ''
    local fq = redis.call('HGET', s, 'fq')
    if fq then first = redis.call('HGET', m, fq) or '' end
    out[#out + 1] = {redis.call('HGETALL', s), first, last, tostring(redis.call('ZCARD', v))}
  else
    out[#out + 1] = 'dead'
  end
end
return {'ok', out}
