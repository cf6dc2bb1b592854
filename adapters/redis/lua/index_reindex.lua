-- Brings the index entries of one session up to its state after an update (cluster
-- mode, after the session's own script). ARGV: 2 uuid, 3 session version, 4 expires us,
-- 5 has external_user_id, 6 external_user_id, 7 created us.
local ext = false
if ARGV[5] == '1' then
  ext = ARGV[6]
end
return reindex(ARGV[2], ARGV[3], ARGV[4], ext, ARGV[7])
