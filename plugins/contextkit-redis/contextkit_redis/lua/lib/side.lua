-- The index/stats update shared by every script of the store. ks = {by_activity, by_id, active, stats}.
-- mode: "set" (score replaces), "max" (score only moves forward), "del" (drop the id), "none" (counters only).
local function side(ks, mode, id, score, status, dm, dc)
  if mode == 'del' then
    redis.call('ZREM', ks[1], id)
    redis.call('ZREM', ks[2], id)
    redis.call('ZREM', ks[3], id)
  elseif mode == 'set' or mode == 'max' then
    local s = tonumber(score)
    local function put(k)
      if mode == 'max' then
        local cur = redis.call('ZSCORE', k, id)
        if cur and tonumber(cur) >= s then return end
      end
      redis.call('ZADD', k, score, id)
    end
    put(ks[1])
    redis.call('ZADD', ks[2], 0, id)
    if status == 'active' then put(ks[3]) else redis.call('ZREM', ks[3], id) end
  end
  dm = tonumber(dm)
  dc = tonumber(dc)
  if dm ~= 0 then redis.call('HINCRBY', ks[4], 'messages', dm) end
  if dc ~= 0 then redis.call('HINCRBY', ks[4], 'checkpoints', dc) end
end
local function side_keys(first)
  return {KEYS[first], KEYS[first + 1], KEYS[first + 2], KEYS[first + 3]}
end
