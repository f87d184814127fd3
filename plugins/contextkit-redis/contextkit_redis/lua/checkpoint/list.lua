--! uses: checkpoint
-- KEYS: ids, all, cp, blobs, wk, wv. ARGV: mode ('ns' | 'all'), pfx (ns mode), max, min, limit
-- Returns the member, record, blob values and write values of each checkpoint, newest first, as one flat array.
local members
if ARGV[1] == 'ns' then
  members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
else
  members = redis.call('ZREVRANGEBYLEX', KEYS[2], ARGV[3], ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
end
local out = {}
for _, m in ipairs(members) do
  local pfx, cid
  if ARGV[1] == 'ns' then
    pfx = ARGV[2]
    cid = string.sub(m, #pfx + 1)
  else
    local z = string.find(m, '\0', 1, true)
    cid = string.sub(m, 1, z - 1)
    local ns = string.sub(m, z + 1)
    pfx = #ns .. ':' .. ns .. '\0'
  end
  local rec = redis.call('HGET', KEYS[3], pfx .. cid)
  if rec then bundle(out, KEYS, pfx, cid, rec, m) end
end
return out
