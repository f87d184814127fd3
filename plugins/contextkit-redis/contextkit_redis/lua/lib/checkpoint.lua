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
-- A stored blob value -> type, bytes: "<type length>:" type bytes, or (a known type, _pack_typed in Python) its
-- one-byte code, returned as the type, then the bytes.
local function blob_typed(raw)
  if string.byte(raw, 1) < 32 then return string.sub(raw, 1, 1), string.sub(raw, 2) end
  local colon = string.find(raw, ':', 1, true)
  local size = tonumber(string.sub(raw, 1, colon - 1))
  return string.sub(raw, colon + 1, colon + size), string.sub(raw, colon + size + 1)
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
-- Lengths of the packed formats: unsigned LEB128 varints (7 bits a byte, low first, high bit = more).
local function vint(s, pos)
  local b = string.byte(s, pos)
  if b < 128 then return b, pos + 1 end
  local n, mul = b - 128, 128
  pos = pos + 1
  while true do
    b = string.byte(s, pos)
    pos = pos + 1
    if b < 128 then return n + b * mul, pos end
    n = n + (b - 128) * mul
    mul = mul * 128
  end
end
local function venc(n)
  if n < 128 then return string.char(n) end
  local t = {}
  while n >= 128 do
    t[#t + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  t[#t + 1] = string.char(n)
  return table.concat(t)
end
local function vpart(s, pos)
  local n
  n, pos = vint(s, pos)
  return string.sub(s, pos, pos + n - 1), pos + n
end
-- The k-th part of a record ('\1', then varint-length parts: the channel versions, checkpoint type and bytes,
-- metadata, parent) or of a value of the older 8-hex-digit format (records and writes written before).
local RMARK = '\1'
local function rpart(s, k)
  local pos
  if string.sub(s, 1, 1) == RMARK then
    pos = 2
    local n
    for _ = 1, k - 1 do
      n, pos = vint(s, pos)
      pos = pos + n
    end
    return (vpart(s, pos))
  end
  pos = 1
  for _ = 1, k - 1 do pos = pos + 8 + tonumber(string.sub(s, pos, pos + 7), 16) end
  local n = tonumber(string.sub(s, pos, pos + 7), 16)
  return string.sub(s, pos + 8, pos + 7 + n)
end
-- A record's channel versions as {channel, version, ...}: per channel V(channel), then varint(#version + 1) and the
-- version, or 0 for the previous channel's version (_encode_versions in Python); a JSON array in older records. A
-- channel name starting with byte 255 is a common prefix's index and the rest (_CHANNEL_PREFIXES in Python).
local CHANNEL_PREFIXES = {'branch:to:', '__start__', 'messages'}
local function versions(rec)
  if string.sub(rec, 1, 1) ~= RMARK then return cjson.decode(rpart(rec, 1)) end
  local n, pos = vint(rec, 2)
  local stop = pos + n
  local out, prev = {}, nil
  while pos < stop do
    local ch, m
    ch, pos = vpart(rec, pos)
    if string.byte(ch, 1) == 255 then ch = CHANNEL_PREFIXES[string.byte(ch, 2) + 1] .. string.sub(ch, 3) end
    m, pos = vint(rec, pos)
    if m > 0 then
      prev = string.sub(rec, pos, pos + m - 2)
      pos = pos + m - 1
    end
    out[#out + 1] = ch
    out[#out + 1] = prev
  end
  return out
end
-- lg:wk members under checkpoint field f (P(ns) cid) .. '\0' name lg:wv fields of two kinds: writes of the layout
-- before packed writes ('f\0task\0idx', one write in 8-hex-digit length-prefixed parts) and the tasks of a
-- checkpoint that spilled out of its packed value ('f\0\1task', a packed value). Whether lg:wk exists is asked once
-- per script: most threads never have it.
local side_state = nil
local function has_side(K)
  if side_state == nil then side_state = redis.call('EXISTS', K[5]) == 1 end
  return side_state
end
local function chunked(cmd, key, items)
  for i = 1, #items, 1000 do redis.call(cmd, key, unpack(items, i, math.min(i + 999, #items))) end
end
local function side_members(K, f)
  if not has_side(K) then return {} end
  return prefix_range(K[5], f .. '\0')
end
local function side_values(K, members)
  if #members == 0 then return {} end
  local values = hmget(K[6], members)
  local out = {}
  for i = 1, #values do
    if values[i] then out[#out + 1] = values[i] end
  end
  return out
end
local function drop_members(K, members)
  if #members > 0 then
    chunked('HDEL', K[6], members)
    chunked('ZREM', K[5], members)
  end
end
-- A packed write value (lg:wv field P(ns) cid, all of a checkpoint's writes): '\2', then groups
-- V(task_id) V(body), body = V(task_path) and writes varint(zigzag idx) V(channel) V(type) V(bytes); V(x) is
-- varint(#x) x. Its groups: {task_id, raw group}.
local WMARK = '\2'
local function wgroups(v)
  local out = {}
  local pos, n = 2, #v
  while pos <= n do
    local start = pos
    local tid, len
    tid, pos = vpart(v, pos)
    len, pos = vint(v, pos)
    pos = pos + len
    out[#out + 1] = {tid, string.sub(v, start, pos - 1)}
  end
  return out
end
-- A group's task path and writes {zigzag idx, raw write}.
local function wlist(g)
  local _, pos = vpart(g, 1)
  local path, len
  len, pos = vint(g, pos)
  path, pos = vpart(g, pos)
  local ws = {}
  while pos <= #g do
    local start = pos
    local z, l
    z, pos = vint(g, pos)
    for _ = 1, 3 do
      l, pos = vint(g, pos)
      pos = pos + l
    end
    ws[#ws + 1] = {z, string.sub(g, start, pos - 1)}
  end
  return path, ws
end
local function wgroup(tid, path, ws)
  local parts = {venc(#path), path}
  for _, w in ipairs(ws) do parts[#parts + 1] = w[2] end
  local body = table.concat(parts)
  return {tid, venc(#tid) .. tid .. venc(#body) .. body}
end
-- The old layout's write values (8-hex-digit length, then the bytes, per part: task_id, idx, channel, type,
-- bytes, task_path) as one packed value; consecutive writes of one task and path share a group.
local function hexpart(s, pos)
  local n = tonumber(string.sub(s, pos, pos + 7), 16)
  return string.sub(s, pos + 8, pos + 7 + n), pos + 8 + n
end
local function from_legacy(values)
  local out = {WMARK}
  local tid, path, ws = nil, nil, {}
  for _, v in ipairs(values) do
    local p, pos = {}, 1
    for k = 1, 6 do p[k], pos = hexpart(v, pos) end
    if p[1] ~= tid or p[6] ~= path then
      if tid then out[#out + 1] = wgroup(tid, path, ws)[2] end
      tid, path, ws = p[1], p[6], {}
    end
    local idx = tonumber(p[2])
    local z = idx * 2
    if idx < 0 then z = -idx * 2 - 1 end
    -- the type as text (_type_part in Python: after a NUL when empty or starting below 0x20)
    local kind = p[4]
    if #kind == 0 or string.byte(kind, 1) < 32 then kind = '\0' .. kind end
    ws[#ws + 1] = {z, venc(z) .. venc(#p[3]) .. p[3] .. venc(#kind) .. kind .. venc(#p[5]) .. p[5]}
  end
  if tid then out[#out + 1] = wgroup(tid, path, ws)[2] end
  return table.concat(out)
end
-- Packed value inc merged into packed value cur: a (task_id, idx) cur holds is kept unless upsert. A task new to
-- cur is appended as it is; only a task already there is parsed write by write.
local function wmerge(cur, inc, upsert)
  local cg = wgroups(cur)
  local tasks = {}
  for _, g in ipairs(cg) do tasks[g[1]] = true end
  for _, g in ipairs(wgroups(inc)) do
    local tid = g[1]
    if not tasks[tid] then
      cg[#cg + 1] = g
      tasks[tid] = true
    else
      local path, ws = wlist(g[2])
      local have, parsed = {}, {}
      for i, c in ipairs(cg) do
        if c and c[1] == tid then
          local cpath, cws = wlist(c[2])
          parsed[i] = {cpath, cws, false}
          for j, w in ipairs(cws) do have[w[1]] = {i, j} end
        end
      end
      local kept = {}
      for _, w in ipairs(ws) do
        local at = have[w[1]]
        if not at then
          kept[#kept + 1] = w
        elseif upsert then
          parsed[at[1]][2][at[2]] = false
          parsed[at[1]][3] = true
          kept[#kept + 1] = w
        end
      end
      for i, p in pairs(parsed) do
        if p[3] then
          local left = {}
          for _, w in ipairs(p[2]) do
            if w then left[#left + 1] = w end
          end
          if #left > 0 then cg[i] = wgroup(tid, p[1], left) else cg[i] = false end
        end
      end
      if #kept > 0 then cg[#cg + 1] = wgroup(tid, path, kept) end
    end
  end
  local out = {WMARK}
  for _, g in ipairs(cg) do
    if g then out[#out + 1] = g[2] end
  end
  return table.concat(out)
end
-- A task new to a checkpoint whose packed value holds this many bytes gets a field of its own (a spill, indexed in
-- lg:wk): a fan-out of many tasks on one checkpoint then costs O(1) a write instead of rewriting an ever longer
-- value (a 340 KB value costs the script ~2 ms to read, merge and write back).
local SPILL_AT = 4096
-- Store the writes of packed value inc under checkpoint field f (HSETNX per (task_id, idx) unless upsert, as
-- before): into its packed value, or a task's spill. The checkpoint's writes of the old layout move into the
-- packed value first (only a checkpoint without a packed value can hold them: its first merge moves them).
local function merge_writes(K, f, inc, upsert)
  local cur = redis.call('HGET', K[6], f)
  local dirty = false
  if not cur then
    -- lg:wk members of a checkpoint without a packed value are old-layout writes (a spill needs a packed value)
    local members = side_members(K, f)
    if #members > 0 then
      cur = from_legacy(side_values(K, members))
      drop_members(K, members)
      dirty = true
    end
  end
  if not cur then
    redis.call('HSET', K[6], f, inc)
    return
  end
  local tasks = {}
  for _, g in ipairs(wgroups(cur)) do tasks[g[1]] = true end
  local size = #cur
  local head = {WMARK}
  for _, g in ipairs(wgroups(inc)) do
    local tid = g[1]
    local spill = f .. '\0\1' .. tid
    local spilled = nil
    if not tasks[tid] and has_side(K) then spilled = redis.call('HGET', K[6], spill) end
    if spilled then
      redis.call('HSET', K[6], spill, wmerge(spilled, WMARK .. g[2], upsert))
    elseif tasks[tid] or size < SPILL_AT then
      head[#head + 1] = g[2]
      size = size + #g[2]
      tasks[tid] = true
    else
      redis.call('HSET', K[6], spill, WMARK .. g[2])
      redis.call('ZADD', K[5], 0, spill)
      side_state = true
    end
  end
  if #head > 1 then
    redis.call('HSET', K[6], f, wmerge(cur, table.concat(head), upsert))
  elseif dirty then
    redis.call('HSET', K[6], f, cur)
  end
end
local function drop_writes(K, f)
  redis.call('HDEL', K[6], f)
  drop_members(K, side_members(K, f))
end
local function bundle(out, K, pfx, cid, rec, head)
  -- K: ids, all, cp, blobs, wk, wv. Appends head, rec, the blob values in the order of the versions array and
  -- the write values (the packed value, then its spills and any of the old layout) to out, a flat array (see _read_bundles)
  local v = versions(rec)
  local blobs = {}
  if #v > 0 then
    local fields = {}
    for i = 1, #v, 2 do fields[#fields + 1] = pfx .. v[i] .. '\0' .. v[i + 1] end
    blobs = hmget(K[4], fields)
  end
  local writes = side_values(K, side_members(K, pfx .. cid))
  local packed = redis.call('HGET', K[6], pfx .. cid)
  if packed then table.insert(writes, 1, packed) end
  out[#out + 1] = head
  out[#out + 1] = rec
  put_all(out, blobs)
  put_all(out, writes)
end
local function touch(K, ttl)
  for i = 1, 7 do redis.call('PEXPIRE', K[i], ttl) end
end
local function stale(tomb, id)
  local floor = redis.call('HGET', tomb, 'floor')
  if floor and le(id, floor) then return true end
  return redis.call('HEXISTS', tomb, 'd' .. id) == 1
end
