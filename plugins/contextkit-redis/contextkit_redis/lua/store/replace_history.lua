--! uses: side owner
-- KEYS: session family (6), meta [, index shard (4)]. ARGV: side, cap, ttl_ms, archived, highest seq given,
-- messages (JSON)... Returns the change in kept messages.
local bad = guard(KEYS[7], ARGV[4])
if bad then return redis.error_reply(bad) end
local before = redis.call('LLEN', KEYS[2])
local top = math.max(seq_of(KEYS[7], KEYS[3]), tonumber(ARGV[5]))
redis.call('HSET', KEYS[7], 's', top)
stamp(KEYS[7], ARGV[4])
redis.call('DEL', KEYS[2], KEYS[3])
local batch = {}
for i = 6, #ARGV do
  batch[#batch + 1] = ARGV[i]
  if #batch == 1000 then redis.call('RPUSH', KEYS[2], unpack(batch)); batch = {} end
end
if #batch > 0 then redis.call('RPUSH', KEYS[2], unpack(batch)) end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
refresh(1, ARGV[3])
local delta = redis.call('LLEN', KEYS[2]) - before
if ARGV[1] == '1' and delta ~= 0 then side(side_keys(8), 'none', '', 0, '', delta, 0) end
return delta
