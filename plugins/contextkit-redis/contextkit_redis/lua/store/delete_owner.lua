--! uses: side owner
-- KEYS: every data key of the owner (9: session family, checkpoint family), meta [, index shard (4)]
--       [, outbox stream (last)]
-- ARGV: side, owner id, archived, archive, mode ('delete' | 'evict'), tombstone_ttl_ms, delete event head JSON
-- Returns {session existed, messages removed, checkpoints removed}. 'delete' with archived keeps the meta as a
-- tombstone (version + 1, the stream's highest seq) and writes the delete event, unless the owner holds nothing
-- and is a tombstone already (or never had anything); 'evict' forgets the owner, meta included, with no event.
if ARGV[5] == 'delete' then
  local bad = guard(KEYS[10], ARGV[3])
  if bad then return redis.error_reply(bad) end
end
local existed = redis.call('EXISTS', KEYS[1])
local messages = redis.call('LLEN', KEYS[2])
local checkpoints = redis.call('HLEN', KEYS[7])
local holds = redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[4], KEYS[6], KEYS[7], KEYS[9]) > 0
if ARGV[5] == 'delete' and ARGV[3] ~= '0' then
  local meta = KEYS[10]
  local last = seq_of(meta, KEYS[3])
  local had = (tonumber(redis.call('HGET', meta, 'v') or '0') > 0 or last > 0) and redis.call('HEXISTS', meta, 't') == 0
  if holds or had then
    local record = {}
    if existed == 1 then record = session_fields(KEYS[1]) end
    local v = redis.call('HINCRBY', meta, 'v', 1)
    redis.call('HSET', meta, 's', last, 't', '1', 'dv', v, 'ds', last)
    redis.call('HDEL', meta, 'tv', 'cv')
    stamp(meta, ARGV[3])
    redis.call('PEXPIRE', meta, ARGV[6])
    if ARGV[4] == '1' then
      redis.call('XADD', KEYS[#KEYS], '*', 'd', ARGV[7], 'v', v, 'q', last, unpack(record))
    end
  end
else
  redis.call('UNLINK', KEYS[10])
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
if ARGV[1] == '1' then side(side_keys(11), 'del', ARGV[2], 0, '', -messages, -checkpoints) end
return {existed, messages, checkpoints}
