--! uses: checkpoint
-- KEYS: ids, all, cp, blobs, wk, wv. ARGV: mode ('ns' | 'all'), pfx (ns mode), max, min, limit
-- Returns the member, record, blob values and write values of each checkpoint, newest first, as one flat array.
local members
local limit = tonumber(ARGV[5])
if ARGV[1] == 'ns' then
  members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4], 'LIMIT', 0, limit)
else
  -- lg:all holds the subgraph namespaces ('cid\0ns'); the root namespace is lg:ids' range '0:\0cid', read as the
  -- members 'cid\0' it would have in lg:all (older threads have them in lg:all too: merged once)
  local sub = redis.call('ZREVRANGEBYLEX', KEYS[2], ARGV[3], ARGV[4], 'LIMIT', 0, limit)
  local root = {}
  for _, m in ipairs(redis.call('ZREVRANGEBYLEX', KEYS[1], root_bound(ARGV[3]), root_bound(ARGV[4]),
      'LIMIT', 0, limit + 1)) do
    local member = string.sub(m, 4) .. '\0'
    if in_bounds(member, ARGV[3], ARGV[4]) then root[#root + 1] = member end
  end
  members = {}
  local i, j = 1, 1
  while #members < limit and (i <= #sub or j <= #root) do
    local a, b = sub[i], root[j]
    if b == nil or (a ~= nil and not le(a, b)) then
      members[#members + 1] = a
      i = i + 1
    elseif a == b then
      members[#members + 1] = a
      i = i + 1
      j = j + 1
    else
      members[#members + 1] = b
      j = j + 1
    end
  end
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
