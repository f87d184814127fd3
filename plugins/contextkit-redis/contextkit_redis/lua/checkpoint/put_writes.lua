--! uses: checkpoint
-- KEYS: ids, all, cp, blobs, wk, wv, nss, tomb [, outbox stream].
-- ARGV: ttl_ms, pfx, cid, upsert, archive event JSON ('' = none), packed write value (see merge_writes)
local ttl, pfx, cid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[8]) == 1 and redis.call('HEXISTS', KEYS[3], pfx .. cid) == 0 then
  if stale(KEYS[8], cid) then return 0 end
end
merge_writes(KEYS, pfx .. cid, ARGV[6], ARGV[4] == '1')
touch(KEYS, ttl)
if ARGV[5] ~= '' then redis.call('XADD', KEYS[9], '*', 'e', ARGV[5]) end
return 1
