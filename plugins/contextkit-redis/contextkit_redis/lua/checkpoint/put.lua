--! uses: checkpoint
-- KEYS: ids, all, cp, blobs, wk, wv, nss, tomb [, outbox stream] [, thread index shard [, run index]]
-- ARGV: ttl_ms, pfx, ns, cid, parent ('' = none), record, thread_id, archive event JSON ('' = none: no outbox
--       key either), nblobs, field, value, ..., nrequired, field, ...
-- Returns 1 (stored), 0 (a late put of a deleted thread, dropped) or the required blob fields that are missing
-- (nothing written: the thread's data was lost under the run).
local ttl, pfx, ns, cid, parent = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local event = ARGV[8]
local ix = 9
if event ~= '' then ix = 10 end
if redis.call('EXISTS', KEYS[8]) == 1 then
  if stale(KEYS[8], cid) or (parent ~= '' and stale(KEYS[8], parent)) then
    -- a late put of the run that was going when the thread was deleted: drop it and what raced ahead of it
    redis.call('HSET', KEYS[8], 'd' .. cid, '1')
    drop_writes(KEYS, pfx .. cid)
    return 0
  end
end
local nreq_at = 10 + 2 * tonumber(ARGV[9])
local missing = {}
for j = nreq_at + 1, nreq_at + tonumber(ARGV[nreq_at] or '0') do
  if redis.call('HEXISTS', KEYS[4], ARGV[j]) == 0 then missing[#missing + 1] = ARGV[j] end
end
if #missing > 0 then return missing end
redis.call('ZADD', KEYS[1], 0, pfx .. cid)
-- lg:all lists the subgraph namespaces only: the root namespace's ids are lg:ids' own range
if ns ~= '' then redis.call('ZADD', KEYS[2], 0, cid .. '\0' .. ns) end
redis.call('HSET', KEYS[3], pfx .. cid, ARGV[6])
local n = tonumber(ARGV[9])
local i = 10
while n > 0 do
  local take = math.min(n, 500)
  redis.call('HSET', KEYS[4], unpack(ARGV, i, i + 2 * take - 1))
  i = i + 2 * take
  n = n - take
end
redis.call('SADD', KEYS[7], ns)
touch(KEYS, ttl)
if KEYS[ix] then redis.call('ZADD', KEYS[ix], 0, ARGV[7]) end
if KEYS[ix + 1] then
  redis.call('SADD', KEYS[ix + 1], ARGV[7])
  redis.call('PEXPIRE', KEYS[ix + 1], ttl)
end
-- the checkpoint's archive event, in the same step (a dropped late put above wrote none)
if event ~= '' then redis.call('XADD', KEYS[9], '*', 'e', event) end
return 1
