-- Drops the list index entries ARGV[8..] (their sessions were found gone).
for i = 8, #ARGV do
  redis.call('ZREM', K_CREATED, ARGV[i])
  redis.call('ZREM', K_PURGE, ARGV[i])
end
return #ARGV - 7
