-- Whether a session stored under session_id ARGV[9] (live or expired) has UUID ARGV[10]
-- (ARGV[8] 'session') or stores message ARGV[10] (ARGV[8] 'message'): 1 or 0.
if ARGV[8] == 'message' then
  if stores_message(ARGV[9], ARGV[10]) then return 1 end
  return 0
end
return redis.call('EXISTS', k_sess(ARGV[9], ARGV[10], 's'))
