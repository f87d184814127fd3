-- KEYS: the namespace's epoch hash. ARGV: the run id of the server this connection reached.
-- The epoch is the server time (ms) at which a run of the server was first seen: every meta stamped before it
-- (so every meta an older snapshot can hold) compares lower. Returns the current epoch.
if redis.call('HGET', KEYS[1], 'run') == ARGV[1] then return redis.call('HGET', KEYS[1], 'e') end
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'e') or '0') + 1)
redis.call('HSET', KEYS[1], 'e', string.format('%d', e), 'run', ARGV[1])
return string.format('%d', e)
