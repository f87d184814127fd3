--! uses: checkpoint
-- KEYS: ids, all, cp, blobs, wk, wv, nss, tomb [, outbox stream].
-- ARGV: ttl_ms, pfx, cid, upsert, archive event JSON ('' = none), member, value, ...
local ttl, pfx, cid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[8]) == 1 and redis.call('HEXISTS', KEYS[3], pfx .. cid) == 0 then
  if stale(KEYS[8], cid) then return 0 end
end
local cmd = 'HSETNX'
if ARGV[4] == '1' then cmd = 'HSET' end
for i = 6, #ARGV, 2 do
  redis.call(cmd, KEYS[6], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[5], 0, ARGV[i])
end
touch(KEYS, ttl)
if ARGV[5] ~= '' then redis.call('XADD', KEYS[9], '*', 'e', ARGV[5]) end
return 1
