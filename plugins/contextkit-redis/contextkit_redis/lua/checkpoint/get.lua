--! uses: checkpoint
-- KEYS: ids, all, cp, blobs, wk, wv. ARGV: pfx, cid ('' = the newest of the namespace)
local pfx, cid = ARGV[1], ARGV[2]
if cid == '' then
  local top = redis.call('ZREVRANGEBYLEX', KEYS[1], '[' .. pfx .. '\255', '[' .. pfx, 'LIMIT', 0, 1)
  if #top == 0 then return false end
  cid = string.sub(top[1], #pfx + 1)
end
local rec = redis.call('HGET', KEYS[3], pfx .. cid)
if not rec then return false end
local out = {}
bundle(out, KEYS, pfx, cid, rec, cid)
return out
