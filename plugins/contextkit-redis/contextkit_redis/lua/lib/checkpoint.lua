-- Shared by the LangGraph checkpointer's scripts (see contextkit_redis.checkpoints for the layout of a thread).
local function le(a, b)
  -- byte-wise a <= b (Lua's string comparison follows the server's LC_COLLATE)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end
-- The lg:ids bound of the root namespace ('0:\0' cid) that covers a ZREVRANGEBYLEX bound on lg:all members
-- ('cid\0ns'): '+' / '-', or '(' / '[' and a member or an id. Inclusive, so no root id in range is missed; the
-- exact bound is checked with in_bounds.
local function root_bound(bound)
  if bound == '+' then return '[0:\0\255' end
  if bound == '-' then return '[0:\0' end
  local text = string.sub(bound, 2)
  local z = string.find(text, '\0', 1, true)
  if z then text = string.sub(text, 1, z - 1) end
  return '[0:\0' .. text
end
-- Whether member lies within the ZREVRANGEBYLEX bounds high and low (byte-wise).
local function in_bounds(member, high, low)
  if high ~= '+' then
    local h = string.sub(high, 2)
    if string.sub(high, 1, 1) == '(' then
      if le(h, member) then return false end
    elseif not le(member, h) then return false end
  end
  if low ~= '-' then
    local l = string.sub(low, 2)
    if string.sub(low, 1, 1) == '(' then
      if le(member, l) then return false end
    elseif not le(l, member) then return false end
  end
  return true
end
local function versions(rec)
  local n = tonumber(string.sub(rec, 1, 8), 16)
  return cjson.decode(string.sub(rec, 9, 8 + n))
end
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + 999, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end
local function prefix_range(key, pfx)
  return redis.call('ZRANGEBYLEX', key, '[' .. pfx, '[' .. pfx .. '\255')
end
local function put_all(out, values)
  -- a count, then the values (false, sent as nil, for one HMGET did not find)
  out[#out + 1] = #values
  for i = 1, #values do out[#out + 1] = values[i] end
end
local function bundle(out, K, pfx, cid, rec, head)
  -- K: ids, all, cp, blobs, wk, wv. Appends head, rec, the blob values in the order of the versions array and
  -- the write values to out, a flat array (see _read_bundles in Python)
  local v = versions(rec)
  local blobs = {}
  if #v > 0 then
    local fields = {}
    for i = 1, #v, 2 do fields[#fields + 1] = pfx .. v[i] .. '\0' .. v[i + 1] end
    blobs = hmget(K[4], fields)
  end
  local members = prefix_range(K[5], pfx .. cid .. '\0')
  local writes = {}
  if #members > 0 then writes = hmget(K[6], members) end
  out[#out + 1] = head
  out[#out + 1] = rec
  put_all(out, blobs)
  put_all(out, writes)
end
local function drop_writes(K, wpfx)
  local members = prefix_range(K[5], wpfx)
  for _, m in ipairs(members) do
    redis.call('HDEL', K[6], m)
    redis.call('ZREM', K[5], m)
  end
end
local function touch(K, ttl)
  for i = 1, 7 do redis.call('PEXPIRE', K[i], ttl) end
end
local function stale(tomb, id)
  local floor = redis.call('HGET', tomb, 'floor')
  if floor and le(id, floor) then return true end
  return redis.call('HEXISTS', tomb, 'd' .. id) == 1
end
