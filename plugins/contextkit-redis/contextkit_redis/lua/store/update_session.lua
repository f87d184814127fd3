--! uses: side owner
local RANGE_REPLY = 'CKRANGE'

-- KEYS: session family (6), meta [, index shard (4)] [, outbox stream (last)]
-- ARGV: side, ttl_ms, archived, archive, requests, errors, processing_time, last_activity, last_activity_us,
--       event head JSON, n, field, value, ...
-- Returns the session hash, or false when there is no session (nothing written).
local bad = guard(KEYS[7], ARGV[3])
if bad then return redis.error_reply(bad) end
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
-- The counters are checked before anything is written (what a script wrote before an error stays written, so a
-- failing HINCRBY / HINCRBYFLOAT would leave the other increments applied, and a retry would count them twice).
if ARGV[5] ~= '0' or ARGV[6] ~= '0' or ARGV[7] ~= '0' then
  local c = redis.call('HMGET', KEYS[1], 'request_count', 'error_count', 'total_processing_time')
  for i = 1, 2 do
    -- Lua numbers are doubles: 2^63 and above (or rounding to it) is beyond HINCRBY's signed 64-bit range.
    local v = (tonumber(c[i] or '0') or 0) + tonumber(ARGV[4 + i])
    if ARGV[4 + i] ~= '0' and (v >= 9223372036854775807 or v < -9223372036854775807) then
      return redis.error_reply(RANGE_REPLY .. (i == 1 and ' request_count' or ' error_count'))
    end
  end
  -- HINCRBYFLOAT adds in long double: 1e308 + 1e308 is stored as "2e+308", which every reader takes for inf.
  local t = (tonumber(c[3] or '0') or math.huge) + tonumber(ARGV[7])
  if ARGV[7] ~= '0' and (t ~= t or t == math.huge or t == -math.huge) then
    return redis.error_reply(RANGE_REPLY .. ' total_processing_time')
  end
end
if ARGV[5] ~= '0' then redis.call('HINCRBY', KEYS[1], 'request_count', ARGV[5]) end
if ARGV[6] ~= '0' then redis.call('HINCRBY', KEYS[1], 'error_count', ARGV[6]) end
if ARGV[7] ~= '0' then redis.call('HINCRBYFLOAT', KEYS[1], 'total_processing_time', ARGV[7]) end
local cur = tonumber(redis.call('HGET', KEYS[1], 'last_activity_us') or '0')
if tonumber(ARGV[9]) > cur then
  redis.call('HSET', KEYS[1], 'last_activity', ARGV[8], 'last_activity_us', ARGV[9])
end
local n = tonumber(ARGV[11])
for i = 0, n - 1 do redis.call('HSET', KEYS[1], ARGV[12 + 2 * i], ARGV[13 + 2 * i]) end
if redis.call('EXISTS', KEYS[7]) == 0 then
  local legacy = redis.call('GET', KEYS[3])
  if legacy then redis.call('HSET', KEYS[7], 's', legacy) end
end
redis.call('HSET', KEYS[1], 'version', redis.call('HINCRBY', KEYS[7], 'v', 1))
stamp(KEYS[7], ARGV[3])
refresh(1, ARGV[2])
local rec = redis.call('HGETALL', KEYS[1])
if ARGV[1] == '1' then
  local h = {}
  for i = 1, #rec, 2 do h[rec[i]] = rec[i + 1] end
  side(side_keys(8), 'max', h['session_id'], h['last_activity_us'], h['status'], 0, 0)
end
if ARGV[4] == '1' then redis.call('XADD', KEYS[#KEYS], '*', 's', ARGV[10], unpack(rec)) end
return rec
