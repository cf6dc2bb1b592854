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

-- The console's inbox (see inbox.rs), in the {idx} slot: P{idx}:i (every session by
-- last activity, us), P{idx}:i:s:<state> (by state), P{idx}:i:d (rated down),
-- P{idx}:i:u:<external_user_id> (by visitor), all with members '<uuid> <sid>', and
-- the hash P{idx}:i:r: member -> '<version>|<state>|<down 0/1>|<has ext 0/1>|<ext>'.
local K_INBOX = P .. '{idx}:i'

-- Removes an inbox member from every set its record names, and the record.
local function inbox_drop(member)
  local r = K_INBOX .. ':r'
  local old = redis.call('HGET', r, member)
  if old then
    local _, state, _, has, ext = string.match(old, '^(%d+)|(%a+)|(%d)|(%d)|(.*)$')
    if state then
      redis.call('ZREM', K_INBOX .. ':s:' .. state, member)
      if has == '1' then redis.call('ZREM', K_INBOX .. ':u:' .. ext, member) end
    end
    redis.call('HDEL', r, member)
  end
  redis.call('ZREM', K_INBOX, member)
  redis.call('ZREM', K_INBOX .. ':d', member)
end

-- Applies an inbox record (see inbox_record) unless the stored one is as new.
local function inbox_apply(member, version, score, state, down, has, ext)
  local old = redis.call('HGET', K_INBOX .. ':r', member)
  if old then
    local ov = string.match(old, '^(%d+)|')
    if ov and tonumber(ov) >= tonumber(version) then return end
  end
  inbox_drop(member)
  if state == 'gone' then return end
  redis.call('ZADD', K_INBOX, score, member)
  redis.call('ZADD', K_INBOX .. ':s:' .. state, score, member)
  if down == '1' then redis.call('ZADD', K_INBOX .. ':d', score, member) end
  if has == '1' then redis.call('ZADD', K_INBOX .. ':u:' .. ext, score, member) end
  redis.call('HSET', K_INBOX .. ':r', member,
    version .. '|' .. state .. '|' .. down .. '|' .. has .. '|' .. ext)
end

-- The inbox record of session (sid, u) after a write, with a new version: {member,
-- version, last activity us, state, rated down '1'/'0', has ext '1'/'0', ext};
-- `gone`: the session is being deleted (call before its keys go).
local function inbox_record(sid, u, gone)
  local s = k_sess(sid, u, 's')
  local member = u .. ' ' .. sid
  local version = tostring(redis.call('HINCRBY', s, 'iv', 1))
  if gone then return {member, version, '0', 'gone', '0', '0', ''} end
  local f = redis.call('HMGET', s, 'created', 'last', 'handoff', 'active', 'resp', 'down', 'ext')
  local score = f[1]
  for _, t in ipairs({f[2], f[3]}) do
    if t and tonumber(t) > tonumber(score) then score = t end
  end
  local state = 'active'
  if f[4] ~= '1' then
    state = 'closed'
  elseif f[5] == 'human' and f[3] then
    state = 'waiting'
  elseif f[5] == 'human' then
    state = 'human'
  end
  local down = '0'
  if f[6] and tonumber(f[6]) > 0 then down = '1' end
  local has, ext = '0', ''
  if f[7] then has, ext = '1', f[7] end
  return {member, version, score, state, down, has, ext}
end

-- Applies `rec` here on standalone Redis; on a cluster ({idx} is another slot) adds
-- it to the reply as its last item, {'inbox', ...}, for the caller to apply.
local function inbox_emit(reply, rec)
  if CLUSTER then
    local item = {'inbox'}
    for _, x in ipairs(rec) do item[#item + 1] = x end
    reply[#reply + 1] = item
  else
    inbox_apply(unpack(rec))
  end
  return reply
end

-- Adds a session to the list index, and drops up to 16 entries whose purge time has
-- passed (their sessions are expired, whatever Redis still holds), with their inbox
-- entries.
local function index_add(member, purge)
  redis.call('ZADD', K_CREATED, 0, member)
  if purge ~= 'never' then redis.call('ZADD', K_PURGE, purge, member) end
  local dead = redis.call('ZRANGEBYSCORE', K_PURGE, '-inf', math.floor(NOW / 1000), 'LIMIT', 0, 16)
  for _, d in ipairs(dead) do
    redis.call('ZREM', K_CREATED, d)
    redis.call('ZREM', K_PURGE, d)
    inbox_drop(string.sub(d, 19))
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

-- The decoded body of a stored message value "<seq>|<ts>|<body JSON>", or nil.
local function message_body_of(value)
  if not value then return nil end
  local body = string.match(value, '^[^|]*|[^|]*|(.*)$')
  if not body then return nil end
  local ok, decoded = pcall(cjson.decode, body)
  if not ok or type(decoded) ~= 'table' then return nil end
  return decoded
end

-- The role of a stored message value, or nil.
local function message_role(value)
  local b = message_body_of(value)
  if b then return b.role end
  return nil
end

-- Whether a stored message value's metadata holds feedback rating it down.
local function message_rated_down(value)
  local b = message_body_of(value)
  return b ~= nil and type(b.metadata) == 'table' and type(b.metadata.feedback) == 'table'
    and b.metadata.feedback.rating == 'down'
end
