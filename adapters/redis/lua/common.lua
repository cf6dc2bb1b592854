-- Prepended to every script: the key schema (see the crate docs) and session
-- resolution. Every script gets the same first seven arguments:
--   ARGV[1] key prefix, ARGV[2] the store clock's now (us), ARGV[3] '' on standalone
--   Redis, on a cluster the hash tag of the slot the call is routed to (its
--   dashboard counters live there: see `count` below),
--   ARGV[4] mode: 'sid' (session_id = ARGV[5]), 'ref' (ARGV[5] reads as UUID ARGV[7]:
--   that UUID first, then session_id = ARGV[5]), 'at' (the session ARGV[7] stored
--   under session_id ARGV[6]), or '' (the script names no session),
--   ARGV[5] reference text, ARGV[6] the 'at' session_id, ARGV[7] the UUID ('at', 'ref').
-- Their own arguments start at ARGV[8]. KEYS[1] only routes the call (a key of the slot
-- the script works in); the other keys are built here, in that slot on a cluster.
-- Times are decimal strings: microseconds for session and message times, milliseconds
-- (or 'never') for purge times. Lua numbers are exact below 2^53, so comparing them is
-- exact, but they are never written back from numbers (Lua would print 1.7e+15).
local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local CLUSTER = ARGV[3] ~= ''
-- The tag of this call's dashboard counters: its own slot's on a cluster.
local ST = 'st'
if CLUSTER then ST = ARGV[3] end
local MODE, REF = ARGV[4], ARGV[5]

local function k_holder(sid) return P .. '{' .. sid .. '}:h' end
local function k_sess(sid, u, kind) return P .. '{' .. sid .. '}:' .. u .. ':' .. kind end
local function k_uuid(u) return P .. '{' .. u .. '}:u' end
local function k_msg(m) return P .. '{' .. m .. '}:p' end
local K_CREATED, K_PURGE = P .. '{idx}:c', P .. '{idx}:p'

-- A purge time as a number ('never' is infinite).
local function ms(p)
  if p == 'never' then return math.huge end
  return tonumber(p)
end

-- Sets a key's expiry to a purge time.
local function expire(key, purge)
  if purge == 'never' then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIREAT', key, purge)
  end
end

-- Moves a key's expiry later, never earlier.
local function extend(key, purge)
  if purge == 'never' then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIREAT', key, purge, 'GT')
  end
end

-- Whether session `u` stored under `sid` is live at NOW.
local function live(sid, u)
  local exp = redis.call('HGET', k_sess(sid, u, 's'), 'exp')
  return exp and tonumber(exp) > NOW
end

-- The UUID of the live session holding `sid`, or nil.
local function holder(sid)
  local u = redis.call('GET', k_holder(sid))
  if u and live(sid, u) then return u end
  return nil
end

-- Whether any stored session under `sid` (the holder and the earlier holders it
-- remembers, live or expired) stores message `m`.
local function stores_message(sid, m)
  local u = redis.call('GET', k_holder(sid))
  local hops = 0
  while u and hops < 64 do
    if redis.call('HEXISTS', k_sess(sid, u, 'm'), m) == 1 then return true end
    u = redis.call('HGET', k_sess(sid, u, 's'), 'prev')
    hops = hops + 1
  end
  return false
end

-- Resolves the script's reference: {sid, uuid} of the live session it names; nil
-- when none; on a cluster {false, 'goto', sid, '1'/'0'} when the UUID lives under
-- another session_id (the last item: whether a live session has session_id = REF,
-- the fallback), and {false, 'fallback'} when an 'at' session is not live.
local function resolve()
  if MODE == 'at' then
    if live(ARGV[6], ARGV[7]) then return {ARGV[6], ARGV[7]} end
    return {false, 'fallback'}
  end
  if MODE == 'ref' then
    -- On a cluster the caller uses this mode only when REF is the UUID's own text, so
    -- the UUID pointer is in this slot.
    local uuid = ARGV[7]
    local sid = redis.call('GET', k_uuid(uuid))
    if sid then
      if sid == REF or not CLUSTER then
        if live(sid, uuid) then return {sid, uuid} end
      else
        local fallback = '0'
        if holder(REF) then fallback = '1' end
        return {false, 'goto', sid, fallback}
      end
    end
  end
  local u = holder(REF)
  if u then return {REF, u} end
  return nil
end

-- The values of messages `ids` (HMGET in chunks), in the same order.
local function message_values(m_key, ids)
  local out = {}
  for i = 1, #ids, 500 do
    local part = redis.call('HMGET', m_key, unpack(ids, i, math.min(i + 499, #ids)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

-- The session this script names, as two values: sid, uuid; or nil and the reply to
-- return at once ({'notfound'}, or on a cluster {'goto', sid, fallback} / {'fallback'}).
local function session_or_reply()
  local r = resolve()
  if not r then return nil, {'notfound'} end
  if not r[1] then return nil, {r[2], r[3], r[4]} end
  return r[1], r[2]
end

-- Adds a session to the list index, and drops up to 16 entries whose purge time has
-- passed (their sessions are expired, whatever Redis still holds).
local function index_add(member, purge)
  redis.call('ZADD', K_CREATED, 0, member)
  if purge ~= 'never' then redis.call('ZADD', K_PURGE, purge, member) end
  local dead = redis.call('ZRANGEBYSCORE', K_PURGE, '-inf', math.floor(NOW / 1000), 'LIMIT', 0, 16)
  for _, d in ipairs(dead) do
    redis.call('ZREM', K_CREATED, d)
    redis.call('ZREM', K_PURGE, d)
  end
end

-- Moves an index entry's purge time later, never earlier.
local function index_extend(member, purge)
  local score = purge
  if purge == 'never' then score = '+inf' end
  redis.call('ZADD', K_PURGE, 'XX', 'GT', score, member)
end

-- The dashboard's counters (see console.rs): hash P{ST}:st:<hour us>:c and question
-- zset P{ST}:st:<hour us>:q, in this call's slot. STAT_NAMES, STATS_TTL and
-- STATS_QUESTIONS are prepended by scripts.rs from the Rust constants.

-- The start (us, decimal text) of the hour timestamp `us` (decimal text) is in.
local function hour_of(us)
  local n = tonumber(us)
  return string.format('%.0f', n - n % 3600000000)
end

-- Adds `deltas` (comma-separated, in STAT_NAMES order) to the counters of hour
-- `hour`, and question text `q` ('' none) to its list (at most STATS_QUESTIONS
-- distinct texts; one already listed is still counted).
local function count(hour, deltas, q)
  local c = P .. '{' .. ST .. '}:st:' .. hour .. ':c'
  local i = 0
  for d in string.gmatch(deltas, '[^,]+') do
    i = i + 1
    if d ~= '0' then redis.call('HINCRBY', c, STAT_NAMES[i], d) end
  end
  redis.call('EXPIRE', c, STATS_TTL)
  if q and q ~= '' then
    local z = P .. '{' .. ST .. '}:st:' .. hour .. ':q'
    if redis.call('ZSCORE', z, q) or redis.call('ZCARD', z) < STATS_QUESTIONS then
      redis.call('ZINCRBY', z, 1, q)
      redis.call('EXPIRE', z, STATS_TTL)
    end
  end
end

-- The text of a stored message value "<seq>|<ts>|<body JSON>" as the question list
-- keeps it: whitespace runs made one space, at most STATS_QUESTION_BYTES bytes (the
-- reader normalises it with `question_key`); '' when it cannot be read.
local function question_text(value)
  if not value then return '' end
  local body = string.match(value, '^[^|]*|[^|]*|(.*)$')
  if not body then return '' end
  local ok, decoded = pcall(cjson.decode, body)
  if not ok or type(decoded) ~= 'table' or type(decoded.message) ~= 'string' then
    return ''
  end
  local text = string.gsub(decoded.message, '%s+', ' ')
  return string.sub(text, 1, STATS_QUESTION_BYTES)
end
