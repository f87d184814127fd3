--! uses: checkpoint
-- Merge a thread's data into the keys of another thread id.
-- KEYS: ids, all, cp, blobs, wk, wv, nss, tomb [, thread index shard]
-- ARGV: ttl_ms, thread_id, nrec, (pfx, ns, cid, record)..., nblobs, (field, value)..., nwrites, (field, packed
--       write value)... (a copied write replaces the target's of the same (task_id, idx))
local a = 4
for _ = 1, tonumber(ARGV[3]) do
  local pfx, ns, cid = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  redis.call('ZADD', KEYS[1], 0, pfx .. cid)
  if ns ~= '' then redis.call('ZADD', KEYS[2], 0, cid .. '\0' .. ns) end
  redis.call('HSET', KEYS[3], pfx .. cid, ARGV[a + 3])
  redis.call('SADD', KEYS[7], ns)
  a = a + 4
end
local n = tonumber(ARGV[a]); a = a + 1
for j = a, a + 2 * n - 1, 2 do redis.call('HSET', KEYS[4], ARGV[j], ARGV[j + 1]) end
a = a + 2 * n
n = tonumber(ARGV[a]); a = a + 1
for j = a, a + 2 * n - 1, 2 do merge_writes(KEYS, ARGV[j], ARGV[j + 1], true) end
-- a copy is a deliberate write, not a late one
redis.call('DEL', KEYS[8])
touch(KEYS, ARGV[1])
if KEYS[9] then redis.call('ZADD', KEYS[9], 0, ARGV[2]) end
return 1
