-- Adds to the dashboard's counters of one hour (keys in the '{st}' slot). ARGV[8] the
-- hour's start (us), ARGV[9..17] the deltas in StatCounts::NAMES order, ARGV[18] an
-- ungrounded question's key ('' none), ARGV[19] the most questions an hour lists,
-- ARGV[20] how long the hour's keys live (s). Returns {'ok'}.
local NAMES = {'sessions', 'visitor_messages', 'answers', 'handoffs', 'tokens_in',
  'tokens_out', 'feedback_up', 'feedback_down', 'ungrounded'}
local c = P .. '{st}:' .. ARGV[8] .. ':c'
for i = 1, 9 do
  local d = ARGV[8 + i]
  if d ~= '0' then redis.call('HINCRBY', c, NAMES[i], d) end
end
redis.call('EXPIRE', c, ARGV[20])
if ARGV[18] ~= '' then
  local q = P .. '{st}:' .. ARGV[8] .. ':q'
  if redis.call('ZSCORE', q, ARGV[18]) or redis.call('ZCARD', q) < tonumber(ARGV[19]) then
    redis.call('ZINCRBY', q, 1, ARGV[18])
    redis.call('EXPIRE', q, ARGV[20])
  end
end
return {'ok'}
