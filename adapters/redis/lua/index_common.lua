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

-- The uuid of the session that holds `sid` and is live by the index at `now`, unless
-- it is `u` itself or `overrule` (a holder the caller verified gone); nil otherwise.
local function live_owner(sid, u, now, overrule)
  local owner = redis.call('HGET', K_SID, sid)
  if owner and owner ~= u and owner ~= overrule then
    local e = redis.call('ZSCORE', K_EXP, owner)
    if e and tonumber(e) > tonumber(now) then
      return owner
    end
  end
  return nil
end

-- Indexes session `u`, taking `sid` over from any previous holder.
local function index_session(sid, u, created, exp, has_ext, ext)
  local owner = redis.call('HGET', K_SID, sid)
  if owner and owner ~= u then
    drop(owner)
  end
  redis.call('HSET', K_SID, sid, u)
  redis.call('ZADD', K_CREATED, created, u)
  redis.call('ZADD', K_EXP, exp, u)
  redis.call('HSET', K_SIDOF, u, sid)
  redis.call('HSET', K_VER, u, '0')
  if has_ext == '1' then
    redis.call('ZADD', EXT_PREFIX .. ext, created, u)
    redis.call('HSET', K_EXTOF, u, ext)
  end
end

-- Brings the index entries of session `u` to its state at version `ver`: expiry `exp`
-- and external_user_id `ext` (false when none). Older versions than the indexed one,
-- and sessions not indexed at all, are left alone, so replays are harmless.
local function reindex(u, ver, exp, ext, created)
  if not redis.call('HGET', K_SIDOF, u) then
    return 0
  end
  local v = redis.call('HGET', K_VER, u)
  if v and tonumber(v) >= tonumber(ver) then
    return 0
  end
  redis.call('HSET', K_VER, u, ver)
  redis.call('ZADD', K_EXP, exp, u)
  local old = redis.call('HGET', K_EXTOF, u)
  if old then
    redis.call('ZREM', EXT_PREFIX .. old, u)
    redis.call('HDEL', K_EXTOF, u)
  end
  if ext then
    redis.call('ZADD', EXT_PREFIX .. ext, created, u)
    redis.call('HSET', K_EXTOF, u, ext)
  end
  return 1
end
