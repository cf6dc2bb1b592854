-- One step of an inbox page, in the {idx} slot: walks set P{idx}:i<ARGV[8]> (''
-- every session, ':s:<state>', ':d', ':u:<ext>') from the highest score down, from
-- just after the cursor (ARGV[15] score us, '' none; ARGV[16] member), within
-- scores [ARGV[13], ARGV[14]) ('-inf' / '+inf' open), keeping the members whose
-- record passes the filters (ARGV[9] state, '' any; ARGV[10] '1' rated down only;
-- ARGV[11] '1' then ARGV[12] the external_user_id), until ARGV[17] are kept or
-- ARGV[18] entries were looked at.
-- Returns {'ok', kept members, their scores, '1' when the set is exhausted else '0',
-- the last entry looked at (score, member) or '' ''}.
local key = K_INBOX .. ARGV[8]
local r = K_INBOX .. ':r'
local want, bound = tonumber(ARGV[17]), tonumber(ARGV[18])
local max = ARGV[14]
if max ~= '+inf' then max = '(' .. max end
local cur_score, cur_member = ARGV[15], ARGV[16]
if cur_score ~= '' then
  if max == '+inf' or tonumber(cur_score) < tonumber(string.sub(max, 2)) then
    max = cur_score
  end
end
local members, scores = {}, {}
local looked, offset = 0, 0
local last_score, last_member = '', ''
local exhausted = '0'
while #members < want and looked < bound do
  local batch = math.min(200, bound - looked)
  local got = redis.call('ZREVRANGEBYSCORE', key, max, ARGV[13], 'WITHSCORES', 'LIMIT', offset, batch)
  local n = #got / 2
  for i = 1, #got, 2 do
    local member, score = got[i], got[i + 1]
    looked = looked + 1
    last_score, last_member = score, member
    local skip = cur_score ~= '' and tonumber(score) == tonumber(cur_score) and member >= cur_member
    if not skip then
      local rec = redis.call('HGET', r, member)
      local ok = false
      if rec then
        local _, state, down, has, ext = string.match(rec, '^(%d+)|(%a+)|(%d)|(%d)|(.*)$')
        ok = state ~= nil
          and (ARGV[9] == '' or state == ARGV[9])
          and (ARGV[10] ~= '1' or down == '1')
          and (ARGV[11] ~= '1' or (has == '1' and ext == ARGV[12]))
      end
      if ok then
        members[#members + 1] = member
        scores[#scores + 1] = score
        if #members >= want then break end
      end
    end
  end
  if #members >= want then break end
  if n < batch then
    exhausted = '1'
    break
  end
  offset = offset + n
end
return {'ok', members, scores, exhausted, last_score, last_member}
