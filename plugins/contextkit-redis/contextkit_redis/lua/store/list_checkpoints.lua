--! uses: owner
-- KEYS: cp_docs, cp_order, meta. ARGV: limit (> 0), archived flag. Newest first.
local ids = redis.call('LRANGE', KEYS[2], -tonumber(ARGV[1]), -1)
local out = {}
for i = #ids, 1, -1 do
  local doc = redis.call('HGET', KEYS[1], ids[i])
  if doc then out[#out + 1] = doc end
end
if ARGV[2] ~= '0' then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    if #out == 0 then return redis.error_reply('CKUNKNOWN') end
  elseif stale(KEYS[3], ARGV[2]) then
    return redis.error_reply('CKSTALE')
  end
end
return out
