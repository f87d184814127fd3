--! uses: checkpoint
-- KEYS: ids, all, cp, blobs, wk, wv, nss, tomb [, outbox stream] [, thread index shard].
-- ARGV: ttl_ms, floor of the delete time, thread_id, archive event JSON before its floor and after it ('' = none)
local floor = ARGV[2]
local ix = 9
if ARGV[4] ~= '' then ix = 10 end
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0)
if #top > 0 then
  local z = string.find(top[1], '\0', 1, true)
  local newest = string.sub(top[1], 1, z - 1)
  if not le(newest, floor) then floor = newest end
end
-- the root namespace's newest (lg:all holds subgraph namespaces only; older threads have it there too)
local root = redis.call('ZREVRANGEBYLEX', KEYS[1], '[0:\0\255', '[0:\0', 'LIMIT', 0, 1)
if #root > 0 then
  local newest = string.sub(root[1], 4)
  if not le(newest, floor) then floor = newest end
end
local prev = redis.call('HGET', KEYS[8], 'floor')
if prev and not le(prev, floor) then floor = prev end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('HSET', KEYS[8], 'floor', floor)
redis.call('PEXPIRE', KEYS[8], ARGV[1])
if KEYS[ix] then redis.call('ZREM', KEYS[ix], ARGV[3]) end
if ARGV[4] ~= '' then redis.call('XADD', KEYS[9], '*', 'e', ARGV[4] .. cjson.encode(floor) .. ARGV[5]) end
return 1
