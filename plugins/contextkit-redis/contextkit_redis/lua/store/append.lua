--! uses: side owner
-- KEYS: session family (6), meta [, index shard (4)] [, outbox stream (last)]
-- ARGV: side, cap, ttl_ms, key, activity, activity_us, archived, n, n message bodies without their opening brace,
--       then (with an outbox stream) n event heads: the event JSON up to its message, which closes with '}}'.
-- Returns {first seq, kept delta, events written, session status or false, session last_activity_us}.
local bad = guard(KEYS[7], ARGV[7])
if bad then return redis.error_reply(bad) end
local n = tonumber(ARGV[8])
local last = seq_of(KEYS[7], KEYS[3]) + n
redis.call('HSET', KEYS[7], 's', last)
redis.call('HDEL', KEYS[7], 't')
stamp(KEYS[7], ARGV[7])
local first = last - n + 1
local archive = #ARGV > 8 + n
local batch = {}
local length = 0
for i = 1, n do
  local body = '{"seq":' .. string.format('%d', first + i - 1) .. ',' .. ARGV[i + 8]
  batch[#batch + 1] = body
  -- the outbox entry is the archive event of the stored message: same seq, in the same atomic step
  if archive then redis.call('XADD', KEYS[#KEYS], '*', 'e', ARGV[i + 8 + n] .. body .. '}}') end
  if #batch == 1000 then length = redis.call('RPUSH', KEYS[2], unpack(batch)); batch = {} end
end
if #batch > 0 then length = redis.call('RPUSH', KEYS[2], unpack(batch)) end
local cap = tonumber(ARGV[2])
local trimmed = 0
if length > cap then
  trimmed = length - cap
  redis.call('LTRIM', KEYS[2], -cap, -1)
end
-- a message is activity of the session whose history this is: last_activity moves forward (never back)
local status = false
local la = 0
local rec = redis.call('HMGET', KEYS[1], 'last_activity_us', 'status')
if rec[2] then
  status = rec[2]
  la = tonumber(rec[1] or '0')
  if tonumber(ARGV[6]) > la then
    redis.call('HSET', KEYS[1], 'last_activity', ARGV[5], 'last_activity_us', ARGV[6])
    la = tonumber(ARGV[6])
  end
end
-- activity on a stream keeps its whole owner alive (the record's TTL follows its history)
refresh(1, ARGV[3])
if ARGV[1] == '1' then
  if status then
    side(side_keys(8), 'max', ARGV[4], string.format('%d', la), status, n - trimmed, 0)
  else
    side(side_keys(8), 'none', '', 0, '', n - trimmed, 0)
  end
end
return {first, n - trimmed, archive and n or 0, status, string.format('%d', la)}
