--! uses: side owner
-- KEYS: session family (6), meta, cp_docs, cp_order, cp_writes [, index shard (4), seed thread index]
--       [, outbox stream (last)]
-- ARGV: side, ttl_ms, checkpoint_ttl_ms, archived, archive, checkpoint_id, document, thread_id, event JSON
-- Returns 1 for a new checkpoint id, 0 for a replaced one.
local bad = guard(KEYS[7], ARGV[4])
if bad then return redis.error_reply(bad) end
local v = redis.call('HINCRBY', KEYS[7], 'v', 1)
redis.call('HDEL', KEYS[7], 't')
stamp(KEYS[7], ARGV[4])
local new = redis.call('HSET', KEYS[8], ARGV[6], ARGV[7])
if new == 1 then redis.call('RPUSH', KEYS[9], ARGV[6]) end
for i = 8, 10 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
refresh(1, ARGV[2])
if ARGV[1] == '1' then
  if new == 1 then side(side_keys(11), 'none', '', 0, '', 0, 1) end
  redis.call('ZADD', KEYS[15], 0, ARGV[8])
end
if ARGV[5] == '1' then redis.call('XADD', KEYS[#KEYS], '*', 'e', ARGV[9], 'v', v) end
return new
