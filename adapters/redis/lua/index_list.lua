-- Up to ARGV[9] list index entries, newest first, after entry ARGV[8] ('' from the
-- start). On a cluster (ARGV[10] '0') returns {entries}; on standalone Redis ('1')
-- {entries, session fields of each (empty when gone)}, and drops entries whose
-- session is gone (an entry names a session only when the session's 'idx' is it).
local max = '+'
if ARGV[8] ~= '' then max = '(' .. ARGV[8] end
local entries = redis.call('ZREVRANGEBYLEX', K_CREATED, max, '-', 'LIMIT', 0, tonumber(ARGV[9]))
if ARGV[10] ~= '1' then return {entries} end
local sessions = {}
for i, entry in ipairs(entries) do
  local u, sid = string.match(entry, '^%d+ (%S+) (%S+)$')
  local fields = {}
  if u and redis.call('HGET', k_sess(sid, u, 's'), 'idx') == entry then
    fields = redis.call('HGETALL', k_sess(sid, u, 's'))
  end
  if #fields == 0 then
    redis.call('ZREM', K_CREATED, entry)
    redis.call('ZREM', K_PURGE, entry)
  end
  sessions[i] = fields
end
return {entries, sessions}
