-- Resolves a session reference in one step (standalone Redis only: the session named by
-- the session_id index is read through a key built here).
-- KEYS: 1 the session_id index hash, 2 (when the reference reads as a UUID) that
-- session's hash. ARGV: 1 the reference text, 2 key prefix, 3 now us.
-- Returns nil, or {'', fields} for the session named by UUID, or {uuid, fields} for the
-- one the session_id index names (fields empty when its hash is gone).
if KEYS[2] then
  local exp = redis.call('HGET', KEYS[2], 'exp')
  if exp and tonumber(exp) > tonumber(ARGV[3]) then
    return {'', redis.call('HGETALL', KEYS[2])}
  end
end
local u = redis.call('HGET', KEYS[1], ARGV[1])
if not u then
  return false
end
return {u, redis.call('HGETALL', ARGV[2] .. '{' .. u .. '}:s')}
