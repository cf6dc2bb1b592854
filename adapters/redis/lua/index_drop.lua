-- Drops the index entries of the sessions ARGV[2..] (verified gone by the caller).
for i = 2, #ARGV do
  drop(ARGV[i])
end
return #ARGV - 1
