--! uses: checkpoint nodes
-- Remove checkpoints (with their writes), purge orphan writes, rewrite records, drop unreferenced blobs and the
-- shared list nodes that only the dropped records reached.
-- KEYS: ids, all, cp, blobs, wk, wv, nss
-- ARGV: ngroups, then per namespace: pfx, ns, ndel, cid..., npurge, cid..., nfix, cid, record, ...
local a = 2
local removed = 0
for _ = 1, tonumber(ARGV[1]) do
  local pfx, ns = ARGV[a], ARGV[a + 1]
  a = a + 2
  local candidates = {}
  local n = tonumber(ARGV[a]); a = a + 1
  for j = a, a + n - 1 do
    local cid = ARGV[j]
    local rec = redis.call('HGET', KEYS[3], pfx .. cid)
    if rec then
      local v = versions(rec)
      for i = 1, #v, 2 do candidates[pfx .. v[i] .. '\0' .. v[i + 1]] = true end
      redis.call('HDEL', KEYS[3], pfx .. cid)
      removed = removed + 1
    end
    redis.call('ZREM', KEYS[1], pfx .. cid)
    redis.call('ZREM', KEYS[2], cid .. '\0' .. ns)
    drop_writes(KEYS, pfx .. cid)
  end
  a = a + n
  n = tonumber(ARGV[a]); a = a + 1
  for j = a, a + n - 1 do drop_writes(KEYS, pfx .. ARGV[j]) end
  a = a + n
  n = tonumber(ARGV[a]); a = a + 1
  for j = a, a + 2 * n - 1, 2 do
    if redis.call('HEXISTS', KEYS[3], pfx .. ARGV[j]) == 1 then redis.call('HSET', KEYS[3], pfx .. ARGV[j], ARGV[j + 1]) end
  end
  a = a + 2 * n
  if next(candidates) ~= nil then
    local remaining = {}
    for _, m in ipairs(prefix_range(KEYS[1], pfx)) do
      local rec = redis.call('HGET', KEYS[3], m)
      if rec then
        local v = versions(rec)
        for i = 1, #v, 2 do
          local field = pfx .. v[i] .. '\0' .. v[i + 1]
          candidates[field] = nil
          remaining[field] = v[i]
        end
      end
    end
    -- The nodes the dropped list records reach, per channel; a channel with a record of an unknown format keeps
    -- all of them.
    local dropped, channels = {}, {}
    for field in pairs(candidates) do
      local raw = redis.call('HGET', KEYS[4], field)
      if raw and is_record(raw) then
        local channel = string.sub(field, #pfx + 1, string.find(field, '\0', #pfx + 1, true) - 1)
        if channels[channel] ~= false then channels[channel] = reach(KEYS[4], pfx, channel, raw, dropped) end
      end
      redis.call('HDEL', KEYS[4], field)
    end
    if next(dropped) ~= nil then
      local kept = {}
      for field, channel in pairs(remaining) do
        if channels[channel] then
          local raw = redis.call('HGET', KEYS[4], field)
          if raw and is_record(raw) and not reach(KEYS[4], pfx, channel, raw, kept) then channels[channel] = false end
        end
      end
      for field in pairs(dropped) do
        local channel = string.sub(field, #pfx + 1, string.find(field, '\0', #pfx + 1, true) - 1)
        if channels[channel] and not kept[field] then redis.call('HDEL', KEYS[4], field) end
      end
    end
  end
  if redis.call('ZLEXCOUNT', KEYS[1], '[' .. pfx, '[' .. pfx .. '\255') == 0 then redis.call('SREM', KEYS[7], ns) end
end
return removed
