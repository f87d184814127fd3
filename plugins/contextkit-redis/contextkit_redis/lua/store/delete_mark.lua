--! uses: owner
-- KEYS: meta. ARGV: archived flag. Returns {version, last seq} of the owner's last delete the meta remembers.
local bad = guard(KEYS[1], ARGV[1])
if bad then return redis.error_reply(bad) end
local mark = redis.call('HMGET', KEYS[1], 'dv', 'ds')
return {tonumber(mark[1] or '0'), tonumber(mark[2] or '0')}
