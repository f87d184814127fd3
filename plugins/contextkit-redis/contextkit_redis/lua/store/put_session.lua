--! uses: side owner
-- KEYS: session family (6), meta [, index shard (4)] [, outbox stream (last)]
-- ARGV: side, ttl_ms, archived, archive, session_id, user_id, created_at, last_activity, last_activity_us,
--       request_count, error_count, total_processing_time, status, metadata, task context JSON or '',
--       session event head JSON, task context event JSON (without its version)
-- Returns the session's version.
local bad = guard(KEYS[7], ARGV[3])
if bad then return redis.error_reply(bad) end
if redis.call('EXISTS', KEYS[7]) == 0 then
  local legacy = redis.call('GET', KEYS[3])
  if legacy then redis.call('HSET', KEYS[7], 's', legacy) end
end
local v = redis.call('HINCRBY', KEYS[7], 'v', 1)
redis.call('HDEL', KEYS[7], 't')
stamp(KEYS[7], ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'session_id', ARGV[5], 'user_id', ARGV[6], 'created_at', ARGV[7],
  'last_activity', ARGV[8], 'last_activity_us', ARGV[9], 'request_count', ARGV[10], 'error_count', ARGV[11],
  'total_processing_time', ARGV[12], 'status', ARGV[13], 'metadata', ARGV[14], 'version', v)
local tv = 0
if ARGV[15] ~= '' then
  tv = redis.call('HINCRBY', KEYS[7], 'v', 1)
  redis.call('HSET', KEYS[7], 'tv', tv)
  redis.call('SET', KEYS[4], ARGV[15])
end
refresh(1, ARGV[2])
if ARGV[1] == '1' then side(side_keys(8), 'set', ARGV[5], ARGV[9], ARGV[13], 0, 0) end
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[#KEYS], '*', 's', ARGV[16], unpack(session_fields(KEYS[1])))
  if tv > 0 then redis.call('XADD', KEYS[#KEYS], '*', 'e', ARGV[17], 'v', tv) end
end
return v
