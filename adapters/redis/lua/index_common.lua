-- Shared by every script on the global index slot (prepended to each).
-- KEYS: 1 sid (HASH session_id -> uuid), 2 created (ZSET uuid by created_at us),
--       3 exp (ZSET uuid by expires_at us), 4 sidof (HASH uuid -> session_id),
--       5 extof (HASH uuid -> external_user_id), 6 ver (HASH uuid -> indexed version)
-- ARGV[1]: the prefix of the per-user ZSETs (same hash tag, so same slot).
local K_SID, K_CREATED, K_EXP = KEYS[1], KEYS[2], KEYS[3]
local K_SIDOF, K_EXTOF, K_VER = KEYS[4], KEYS[5], KEYS[6]
local EXT_PREFIX = ARGV[1]

-- Removes every index entry of session `u`.
local function drop(u)
  local sid = redis.call('HGET', K_SIDOF, u)
  if sid and redis.call('HGET', K_SID, sid) == u then
    redis.call('HDEL', K_SID, sid)
  end
  local ext = redis.call('HGET', K_EXTOF, u)
  if ext then
    redis.call('ZREM', EXT_PREFIX .. ext, u)
  end
  redis.call('ZREM', K_CREATED, u)
  redis.call('ZREM', K_EXP, u)
  redis.call('HDEL', K_SIDOF, u)
  redis.call('HDEL', K_EXTOF, u)
  redis.call('HDEL', K_VER, u)
end

-- Drops at most `n` sessions expired at `now` (microseconds), oldest expiry first.
local function prune(now, n)
  local dead = redis.call('ZRANGEBYSCORE', K_EXP, '-inf', now, 'LIMIT', 0, n)
  for _, u in ipairs(dead) do
    drop(u)
  end
end
