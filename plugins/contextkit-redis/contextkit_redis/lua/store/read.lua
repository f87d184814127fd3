--! uses: owner
-- KEYS: meta, data key. ARGV: archived flag, command, arguments... Runs the read; archived, an empty answer from
-- an owner the store has no meta for is CKUNKNOWN (present data is answered as it is), and any answer from an
-- owner whose meta is older than the server's run is CKSTALE.
local r = redis.call(ARGV[2], KEYS[2], unpack(ARGV, 3))
if ARGV[1] ~= '0' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    if not r or (type(r) == 'table' and #r == 0) or r == 0 then return redis.error_reply('CKUNKNOWN') end
  elseif stale(KEYS[1], ARGV[1]) then
    return redis.error_reply('CKSTALE')
  end
end
return r
