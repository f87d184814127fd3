--! uses: owner
-- KEYS: session family (6), meta [, parent registry (plain Redis: conversation sessions)] [, outbox (last)]
-- ARGV: ttl_ms, archived, archive, family ('task' | 'conversation'), document JSON, event JSON (without its
--       version), key to register in the parent registry or ''
-- Returns the document's version.
local bad = guard(KEYS[7], ARGV[2])
if bad then return redis.error_reply(bad) end
if redis.call('EXISTS', KEYS[7]) == 0 then
  local legacy = redis.call('GET', KEYS[3])
  if legacy then redis.call('HSET', KEYS[7], 's', legacy) end
end
local v = redis.call('HINCRBY', KEYS[7], 'v', 1)
redis.call('HDEL', KEYS[7], 't')
stamp(KEYS[7], ARGV[2])
if ARGV[4] == 'task' then
  redis.call('SET', KEYS[4], ARGV[5])
  redis.call('HSET', KEYS[7], 'tv', v)
else
  redis.call('SET', KEYS[6], ARGV[5])
  redis.call('HSET', KEYS[7], 'cv', v)
end
refresh(1, ARGV[1])
if ARGV[7] ~= '' then
  redis.call('SADD', KEYS[8], ARGV[7])
  redis.call('PEXPIRE', KEYS[8], ARGV[1])
end
if ARGV[3] == '1' then redis.call('XADD', KEYS[#KEYS], '*', 'e', ARGV[6], 'v', v) end
return v
