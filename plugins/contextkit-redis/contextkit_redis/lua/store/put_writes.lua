--! uses: owner
-- KEYS: session family (6), meta, cp_writes, cp_docs, cp_order [, seed thread index] [, outbox stream (last)]
-- ARGV: ttl_ms, checkpoint_ttl_ms, archived, archive, checkpoint_id, JSON items joined by commas (no brackets),
--       thread_id, event JSON (without its version), index ('1' when the thread index key is given)
local bad = guard(KEYS[7], ARGV[3])
if bad then return redis.error_reply(bad) end
local v = redis.call('HINCRBY', KEYS[7], 'v', 1)
redis.call('HDEL', KEYS[7], 't')
stamp(KEYS[7], ARGV[3])
local cur = redis.call('HGET', KEYS[8], ARGV[5])
local value
if cur and cur ~= '[]' then
  value = string.sub(cur, 1, -2) .. ',' .. ARGV[6] .. ']'
else
  value = '[' .. ARGV[6] .. ']'
end
redis.call('HSET', KEYS[8], ARGV[5], value)
for i = 8, 10 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
refresh(1, ARGV[1])
if ARGV[9] == '1' then redis.call('ZADD', KEYS[11], 0, ARGV[7]) end
if ARGV[4] == '1' then redis.call('XADD', KEYS[#KEYS], '*', 'e', ARGV[8], 'v', v) end
return v
