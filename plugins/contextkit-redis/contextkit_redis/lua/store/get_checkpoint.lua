--! uses: owner
-- KEYS: cp_docs, cp_order, meta. ARGV: "1" and a checkpoint id, or "0" for the newest; archived flag.
local cid = ARGV[2]
if ARGV[1] == '0' then
  cid = redis.call('LINDEX', KEYS[2], -1)
end
local doc = false
if cid then doc = redis.call('HGET', KEYS[1], cid) end
if ARGV[3] ~= '0' then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    if not doc then return redis.error_reply('CKUNKNOWN') end
  elseif stale(KEYS[3], ARGV[3]) then
    return redis.error_reply('CKSTALE')
  end
end
return doc
