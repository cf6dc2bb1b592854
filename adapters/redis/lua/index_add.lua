-- Adds list index entry ARGV[8] with purge time ARGV[9] (cluster: a create's first step).
index_add(ARGV[8], ARGV[9])
return 1
