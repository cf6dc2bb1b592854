-- Adds to the dashboard's counters of one hour, in this call's slot (see `count` in
-- common.lua). ARGV[8] the hour's start (us), ARGV[9] the deltas (comma-separated, in
-- StatCounts::NAMES order). Returns {'ok'}.
count(ARGV[8], ARGV[9], '')
return {'ok'}
