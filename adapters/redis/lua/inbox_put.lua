-- Cluster, in the {idx} slot: applies the inbox record ARGV[8..14] a session script
-- returned (see inbox_record), then drops the members ARGV[15..] (sessions found
-- dead by a reader). Returns 1.
if ARGV[8] ~= '' then
  inbox_apply(ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14])
end
for i = 15, #ARGV do inbox_drop(ARGV[i]) end
return 1
