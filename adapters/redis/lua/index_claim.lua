-- Indexes a new session (cluster mode, after its own script). ARGV: 2 session_id,
-- 3 uuid, 4 created us, 5 expires us, 6 now us, 7 has external_user_id ('1'/'0'),
-- 8 external_user_id, 9 a holder to overrule (verified gone by the caller) or ''.
-- Returns the uuid of the live session that holds the session_id already, or nil.
prune(ARGV[6], 16)
local owner = live_owner(ARGV[2], ARGV[3], ARGV[6], ARGV[9])
if owner then
  return owner
end
index_session(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7], ARGV[8])
return false
