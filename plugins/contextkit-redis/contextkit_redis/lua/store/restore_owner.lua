--! uses: side owner
-- KEYS: session family (6), meta [, index shard (4)]
-- ARGV: side, ttl_ms, tombstone_ttl_ms, cap, version, last_seq, deleted ('1'/'0'), session hash fields count
--       (2 per field), task context JSON or '', its version, conversation JSON or '', its version, message count,
--       archived flag, then the session fields, then the messages (JSON).
-- Puts the archive's state back where the store has no meta for the owner (put-if-absent). A meta written in the
-- server's current run is left as it is (writes that raced this read-through stay). A meta older than that run
-- (the server restarted from an older snapshot) is reconciled: counters raised to the archive's, and each record
-- the archive holds a newer version of replaced by it. Returns 1 when it changed something, else 0.
local meta = KEYS[7]
local flag = ARGV[14]
local nfields = tonumber(ARGV[8])
local count = tonumber(ARGV[13])
local fields = {}
for i = 15, 14 + nfields do fields[#fields + 1] = ARGV[i] end
local messages = {}
for i = 15 + nfields, 14 + nfields + count do messages[#messages + 1] = ARGV[i] end
local h = {}
for i = 1, #fields, 2 do h[fields[i]] = fields[i + 1] end
local function put_history()
  local before = redis.call('LLEN', KEYS[2])
  redis.call('DEL', KEYS[2])
  local batch = {}
  for i = 1, #messages do
    batch[#batch + 1] = messages[i]
    if #batch == 1000 then redis.call('RPUSH', KEYS[2], unpack(batch)); batch = {} end
  end
  if #batch > 0 then redis.call('RPUSH', KEYS[2], unpack(batch)) end
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
  if ARGV[1] == '1' then side(side_keys(8), 'none', '', 0, '', redis.call('LLEN', KEYS[2]) - before, 0) end
end
local function put_session()
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], unpack(fields))
  if ARGV[1] == '1' then side(side_keys(8), 'set', h['session_id'], h['last_activity_us'], h['status'], 0, 0) end
end
if redis.call('EXISTS', meta) == 1 then
  if not stale(meta, flag) then return 0 end
  local archived_version = tonumber(ARGV[5])
  redis.call('HSET', meta, 'v', math.max(tonumber(redis.call('HGET', meta, 'v') or '0'), archived_version))
  if tonumber(ARGV[6]) > seq_of(meta, KEYS[3]) then
    -- the archive's stream is ahead of this copy: its tail replaces what was kept
    redis.call('HSET', meta, 's', ARGV[6])
    put_history()
  end
  local hot_version = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
  if nfields > 0 and tonumber(h['version'] or '0') > hot_version then
    put_session()
  elseif ARGV[7] == '1' and hot_version >= 0 and hot_version < archived_version then
    -- the archive's newest write is a delete this copy never saw
    local sid = redis.call('HGET', KEYS[1], 'session_id')
    redis.call('DEL', KEYS[1], KEYS[4], KEYS[6])
    if ARGV[1] == '1' then side(side_keys(8), 'del', sid, 0, '', 0, 0) end
  end
  if ARGV[9] ~= '' and tonumber(ARGV[10]) > tonumber(redis.call('HGET', meta, 'tv') or '0') then
    redis.call('SET', KEYS[4], ARGV[9])
    redis.call('HSET', meta, 'tv', ARGV[10])
  end
  if ARGV[11] ~= '' and tonumber(ARGV[12]) > tonumber(redis.call('HGET', meta, 'cv') or '0') then
    redis.call('SET', KEYS[6], ARGV[11])
    redis.call('HSET', meta, 'cv', ARGV[12])
  end
  stamp(meta, flag)
  refresh(1, ARGV[2])
  return 1
end
local last = math.max(tonumber(ARGV[6]), tonumber(redis.call('GET', KEYS[3]) or '0'))
redis.call('HSET', meta, 'v', ARGV[5], 's', last)
redis.call('DEL', KEYS[3])
stamp(meta, flag)
local restored = false
if nfields > 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  put_session()
  restored = true
end
if ARGV[9] ~= '' then
  redis.call('SET', KEYS[4], ARGV[9], 'NX')
  redis.call('HSET', meta, 'tv', ARGV[10])
  restored = true
end
if ARGV[11] ~= '' then
  redis.call('SET', KEYS[6], ARGV[11], 'NX')
  redis.call('HSET', meta, 'cv', ARGV[12])
  restored = true
end
if count > 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  put_history()
  restored = true
end
if ARGV[7] == '1' and not restored then
  redis.call('HSET', meta, 't', '1')
  redis.call('PEXPIRE', meta, ARGV[3])
else
  refresh(1, ARGV[2])
end
return 1
