-- Reads the session the reference names. Returns {'ok', session hash fields}.
local S, U = session_or_reply()
if not S then return U end
return {'ok', redis.call('HGETALL', k_sess(S, U, 's'))}
