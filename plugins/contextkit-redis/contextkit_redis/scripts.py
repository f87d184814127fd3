"""The Lua scripts of the Redis tier and the runner that calls them.

Each script touches the keys of one owner (one hash tag, so one slot) and may also update the owner's index
shard. With a cold tier (``archived``) every write script checks the owner's meta first (an owner the store has
no meta for gets the error reply :data:`UNKNOWN_REPLY`, which the store raises as ``OwnerUnknown``), takes the
owner's next version from it and XADDs the write's archive event to the outbox stream, all in the script. On
plain Redis the index keys are passed too (``ARGV[1] == "1"``) and the whole change is one atomic script call; on
a cluster the index shard lives in another slot, so the store calls :data:`SIDE` separately right after (see
:mod:`contextkit_redis.hot` for the consistency this gives).

Scripts are ``redis-py`` Script objects: they run with EVALSHA and re-load themselves on NOSCRIPT (after a
server restart or SCRIPT FLUSH), so no SHA is cached across an outage. The helpers are reusable by the LangGraph
checkpointer (:class:`ScriptSet` registers any extra source).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

_hiredis_pack: Any
try:  # installed with contextkit-redis (redis[hiredis]); optional for a redis-py installed without it
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - depends on the environment
    _hiredis_pack = None

#: The most connections a :class:`ScriptSet` keeps checked out of the pool between calls.
_KEEP_MAX = 8

__all__ = [
    "APPEND",
    "BACKFILL",
    "BOUNDS",
    "DELETE_MARK",
    "DELETE_OWNER",
    "EPOCH",
    "GET_CHECKPOINT",
    "LIST_CHECKPOINTS",
    "PRUNE",
    "PRUNE_THREAD",
    "PUT_CHECKPOINT",
    "PUT_DOCUMENT",
    "PUT_SESSION",
    "PUT_WRITES",
    "RANGE_REPLY",
    "READ",
    "READ_THREAD",
    "REPLACE_HISTORY",
    "RESTORE_OWNER",
    "SIDE",
    "UNKNOWN_REPLY",
    "UPDATE_SESSION",
    "ScriptSet",
]

# The index/stats update shared by every script. ks = {by_activity, by_id, active, stats}.
# mode: "set" (score replaces), "max" (score only moves forward), "del" (drop the id), "none" (counters only).
_SIDE_FN = """
local function side(ks, mode, id, score, status, dm, dc)
  if mode == 'del' then
    redis.call('ZREM', ks[1], id)
    redis.call('ZREM', ks[2], id)
    redis.call('ZREM', ks[3], id)
  elseif mode == 'set' or mode == 'max' then
    local s = tonumber(score)
    local function put(k)
      if mode == 'max' then
        local cur = redis.call('ZSCORE', k, id)
        if cur and tonumber(cur) >= s then return end
      end
      redis.call('ZADD', k, score, id)
    end
    put(ks[1])
    redis.call('ZADD', ks[2], 0, id)
    if status == 'active' then put(ks[3]) else redis.call('ZREM', ks[3], id) end
  end
  dm = tonumber(dm)
  dc = tonumber(dc)
  if dm ~= 0 then redis.call('HINCRBY', ks[4], 'messages', dm) end
  if dc ~= 0 then redis.call('HINCRBY', ks[4], 'checkpoints', dc) end
end
local function side_keys(first)
  return {KEYS[first], KEYS[first + 1], KEYS[first + 2], KEYS[first + 3]}
end
"""

SIDE = (
    _SIDE_FN
    + """
-- KEYS: index shard (4). ARGV: mode, id, score, status, messages delta, checkpoints delta
side(side_keys(1), ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return 1
"""
)

PRUNE = """
-- Drop index entries of a session whose record is gone. KEYS: index shard (4) [, session record].
-- With the record key (plain Redis) the check and the removal are atomic, so a concurrent re-create wins.
if KEYS[5] and redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""

# Shared by the scripts of an owner: KEYS[first .. first + 6] are the owner's session family (session, history,
# legacy seq, task, conversations, conversation) and its meta, which live and expire together.
_OWNER_FN = """
local function refresh(first, ttl)
  for i = first, first + 6 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
-- The highest stream seq: the meta's, or (data written before the meta existed) the legacy counter's.
local function seq_of(meta, legacy)
  local s = redis.call('HGET', meta, 's')
  if s then return tonumber(s) end
  return tonumber(redis.call('GET', legacy) or '0')
end
local function session_fields(key)
  return redis.call('HGETALL', key)
end
-- The archived flag of a call: '0' (no cold tier), '1' (archived, no epoch: a cluster) or, on plain Redis, the key
-- of the namespace's epoch hash. Archived, an owner without meta is unknown (CKUNKNOWN), and one whose meta was
-- written before the server's current run began may be older than the archive (CKSTALE: restarted from an older
-- snapshot); both send the caller to the archive first.
local function stale(meta, flag)
  if flag == '0' or flag == '1' then return false end
  local cur = redis.call('HGET', flag, 'e')
  return cur ~= false and tonumber(redis.call('HGET', meta, 'e') or '0') < tonumber(cur)
end
local function guard(meta, flag)
  if flag == '0' then return nil end
  if redis.call('EXISTS', meta) == 0 then return 'CKUNKNOWN' end
  if stale(meta, flag) then return 'CKSTALE' end
  return nil
end
-- Mark the meta as written in the server's current run.
local function stamp(meta, flag)
  if flag ~= '0' and flag ~= '1' then
    local cur = redis.call('HGET', flag, 'e')
    if cur then redis.call('HSET', meta, 'e', cur) end
  end
end
"""

# An owner the store has no meta for, with a cold tier archiving it: the caller must ask the archive first
# (contextkit.errors.OwnerUnknown, raised by the store for this error reply).
UNKNOWN_REPLY = "CKUNKNOWN"

PUT_SESSION = (
    _SIDE_FN
    + _OWNER_FN
    + """
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
"""
)

#: The error reply of UPDATE_SESSION for an update whose counters would leave their range (a total that is not
#: finite, a count beyond a signed 64-bit integer), followed by the field's name; nothing was written.
RANGE_REPLY = "CKRANGE"

UPDATE_SESSION = (
    _SIDE_FN
    + _OWNER_FN
    + f"local RANGE_REPLY = '{RANGE_REPLY}'\n"
    + """
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
"""
)

DELETE_OWNER = (
    _SIDE_FN
    + _OWNER_FN
    + """
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
"""
)

APPEND = (
    _SIDE_FN
    + _OWNER_FN
    + """
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
"""
)

REPLACE_HISTORY = (
    _SIDE_FN
    + _OWNER_FN
    + """
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
"""
)

BACKFILL = (
    _SIDE_FN
    + _OWNER_FN
    + """
-- KEYS: session family (6), meta [, index shard (4)]. ARGV: side, cap, ttl_ms, archived, then (seq, message
-- JSON) pairs in ascending seq. Inserts, at the head, the messages older than every kept one, at most the room
-- the cap leaves (the newest of them). Returns how many were inserted.
local bad = guard(KEYS[7], ARGV[4])
if bad then return redis.error_reply(bad) end
local length = redis.call('LLEN', KEYS[2])
local room = tonumber(ARGV[2]) - length
if room <= 0 then return 0 end
local floor
if length > 0 then
  floor = tonumber(cjson.decode(redis.call('LINDEX', KEYS[2], 0))['seq'])
else
  floor = seq_of(KEYS[7], KEYS[3]) + 1
end
local picked = {}
for i = 5, #ARGV, 2 do
  if tonumber(ARGV[i]) < floor then picked[#picked + 1] = ARGV[i + 1] end
end
local start = math.max(1, #picked - room + 1)
local inserted = 0
for i = #picked, start, -1 do
  redis.call('LPUSH', KEYS[2], picked[i])
  inserted = inserted + 1
end
if inserted > 0 then
  refresh(1, ARGV[3])
  if ARGV[1] == '1' then side(side_keys(8), 'none', '', 0, '', inserted, 0) end
end
return inserted
"""
)

RESTORE_OWNER = (
    _SIDE_FN
    + _OWNER_FN
    + """
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
"""
)

PUT_DOCUMENT = (
    _OWNER_FN
    + """
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
"""
)

READ = (
    _OWNER_FN
    + """
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
"""
)

DELETE_MARK = (
    _OWNER_FN
    + """
-- KEYS: meta. ARGV: archived flag. Returns {version, last seq} of the owner's last delete the meta remembers.
local bad = guard(KEYS[1], ARGV[1])
if bad then return redis.error_reply(bad) end
local mark = redis.call('HMGET', KEYS[1], 'dv', 'ds')
return {tonumber(mark[1] or '0'), tonumber(mark[2] or '0')}
"""
)

BOUNDS = (
    _OWNER_FN
    + """
-- KEYS: history, legacy seq, meta. ARGV: archived. Returns {oldest kept message or false, highest seq}.
local bad = guard(KEYS[3], ARGV[1])
if bad then return redis.error_reply(bad) end
return {redis.call('LINDEX', KEYS[1], 0), seq_of(KEYS[3], KEYS[2])}
"""
)

PUT_CHECKPOINT = (
    _SIDE_FN
    + _OWNER_FN
    + """
-- KEYS: session family (6), meta, cp_docs, cp_order, cp_writes [, index shard (4), seed thread index]
--       [, outbox stream (last)]
-- ARGV: side, ttl_ms, checkpoint_ttl_ms, archived, archive, checkpoint_id, document, thread_id, event JSON
-- Returns 1 for a new checkpoint id, 0 for a replaced one.
local bad = guard(KEYS[7], ARGV[4])
if bad then return redis.error_reply(bad) end
local v = redis.call('HINCRBY', KEYS[7], 'v', 1)
redis.call('HDEL', KEYS[7], 't')
stamp(KEYS[7], ARGV[4])
local new = redis.call('HSET', KEYS[8], ARGV[6], ARGV[7])
if new == 1 then redis.call('RPUSH', KEYS[9], ARGV[6]) end
for i = 8, 10 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
refresh(1, ARGV[2])
if ARGV[1] == '1' then
  if new == 1 then side(side_keys(11), 'none', '', 0, '', 0, 1) end
  redis.call('ZADD', KEYS[15], 0, ARGV[8])
end
if ARGV[5] == '1' then redis.call('XADD', KEYS[#KEYS], '*', 'e', ARGV[9], 'v', v) end
return new
"""
)

GET_CHECKPOINT = (
    _OWNER_FN
    + """
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
"""
)

LIST_CHECKPOINTS = (
    _OWNER_FN
    + """
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
"""
)

PUT_WRITES = (
    _OWNER_FN
    + """
-- KEYS: session family (6), meta, cp_writes, cp_docs, cp_order [, seed thread index] [, outbox stream (last)]
-- ARGV: ttl_ms, checkpoint_ttl_ms, archived, archive, checkpoint_id, JSON items joined by commas (no brackets),
--       thread_id, event JSON (without its version), index ('1' when the thread index key is given)
local bad = guard(KEYS[7], ARGV[3])
if bad then return redis.error_reply(bad) end
local v = redis.call('HINCRBY', KEYS[7], 'v', 1)
redis.call('HDEL', KEYS[7], 't')
stamp(KEYS[7], ARGV[3])
local cur = redis.call('HGET', KEYS[8], ARGV[5])
local value
if cur and cur ~= '[]' then
  value = string.sub(cur, 1, -2) .. ',' .. ARGV[6] .. ']'
else
  value = '[' .. ARGV[6] .. ']'
end
redis.call('HSET', KEYS[8], ARGV[5], value)
for i = 8, 10 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
refresh(1, ARGV[1])
if ARGV[9] == '1' then redis.call('ZADD', KEYS[11], 0, ARGV[7]) end
if ARGV[4] == '1' then redis.call('XADD', KEYS[#KEYS], '*', 'e', ARGV[8], 'v', v) end
return v
"""
)

PRUNE_THREAD = """
-- Drop a seed checkpoint thread from its index once its keys are gone. KEYS: thread index [, cp_docs, cp_writes].
-- With the thread's keys (plain Redis) the check and the removal are atomic, so a concurrent put wins.
if KEYS[2] and (redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

READ_THREAD = """
-- KEYS: cp_docs, cp_order, cp_writes. Returns {ids in insertion order, docs (HGETALL), writes (HGETALL)}.
return {redis.call('LRANGE', KEYS[2], 0, -1), redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[3])}
"""


def _pack(conn: Any, args: tuple[Any, ...]) -> Any:
    """The RESP bytes of a command: hiredis's C packer (2 us for a checkpoint write's 25 arguments, against 14 us
    for redis-py's pure-Python one), or the connection's own packer without hiredis or for arguments it refuses."""
    if _hiredis_pack is not None:
        try:
            return _hiredis_pack(args)
        except TypeError:
            pass  # e.g. a memoryview: redis-py's packer takes it (or names the problem)
    return conn.pack_command(*args)


async def _ready(conn: Any) -> None:
    """Reconnect a kept connection the server closed (or that holds unread data) before it is used.

    The pool's own ``ensure_connection`` skips this check when redis-py's maintenance notifications are on their
    default (``auto``), which a caller's client may have; a command sent on a closed socket would fail.
    """
    await conn.connect()  # a no-op while connected
    check = getattr(conn, "can_read", None) or conn.can_read_destructive
    try:
        stale = await check()
    except (RedisConnectionError, OSError):
        stale = True
    if stale:
        await conn.disconnect()
        await conn.connect()


async def _send(conn: Any, command: Any) -> None:
    """Write a packed command on ``conn``.

    ``Connection.send_packed_command`` bounds the write with ``asyncio.wait_for``, which on Python 3.11 wraps the
    write in a new Task: one more task and loop iteration per command (measured: 20-25 us of CPU of a ~150 us
    call). The callers here already run under the store's deadline (:class:`~contextkit_redis.connection.Gate`,
    one ``asyncio.timeout``), so the stream is written directly; a write that fails or is cancelled leaves the
    connection to be discarded by the caller, as the public method would. A connection without the stream
    attribute (another redis-py layout) takes the public method.
    """
    writer = getattr(conn, "_writer", None)
    if not isinstance(writer, asyncio.StreamWriter):
        await conn.send_packed_command(command, False)
        return
    if isinstance(command, bytes):
        writer.write(command)
    else:
        writer.writelines(command)  # redis-py's own packer returns chunks
    await writer.drain()


class ScriptSet:
    """The scripts registered on one client, by name, and the connections that run them.

    ``redis-py`` Script objects keep the source, so a NOSCRIPT reply (server restarted, script cache flushed)
    re-loads the script instead of failing; nothing here caches server state.

    On a plain ``redis.asyncio.Redis`` client, a script call (and a :meth:`read`) skips the client's command
    machinery and runs on a connection this set keeps checked out of the client's pool: the command is packed by
    hiredis (:func:`_pack`), written to the connection's stream (:func:`_send`) and its reply read with
    ``read_response``, the layer redis-py's own pipelines use. Through ``client.evalsha`` a call cost ~25 us more
    CPU here (a BlockingConnectionPool checkout and release take a condition, a timeout and observability hooks),
    and every LangGraph checkpoint write or read is one script call.

    The kept connections stay counted by the pool, so ``max_connections`` still bounds the total; at most
    :attr:`keep` are kept (at most half the pool, so other commands still find free connections), the rest go
    back. A kept connection is checked before use (:func:`_ready`: a dead socket reconnects before the command is
    sent, never after, so nothing is retried); an error reply keeps it; a failed, timed-out or cancelled call
    disconnects it and returns it to the pool. Cluster clients use ``redis-py``'s path unchanged. :meth:`release`
    returns the kept connections (the store calls it when it closes).
    """

    def __init__(self, client: Any, sources: dict[str, str]) -> None:
        self._scripts = {name: client.register_script(source) for name, source in sources.items()}
        self._client = client
        pool = getattr(client, "connection_pool", None)
        direct = isinstance(client, aioredis.Redis) and isinstance(pool, aioredis.ConnectionPool)
        self._pool: Any = pool if direct else None
        limit = getattr(pool, "max_connections", None) or 2**31
        #: How many connections this set keeps out of the pool between calls.
        self.keep = min(_KEEP_MAX, limit // 2) if direct else 0
        if self.keep <= 0:
            self._pool = None
        self._idle: list[Any] = []

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` with ``keys`` and ``args``; returns the raw reply."""
        script = self._scripts[name]
        if self._pool is None:
            return await script(keys=list(keys), args=list(args))
        return await self._direct(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    async def read(self, *args: Any) -> Any:
        """Run a read command whose raw reply is what the caller wants (``LRANGE``, ``GET``: no redis-py response
        callback applies) on the same connections as the scripts."""
        if self._pool is None:
            return await self._client.execute_command(*args)
        return await self._direct(args, None)

    async def _direct(self, args: tuple[Any, ...], script: Any) -> Any:
        pool = self._pool
        idle = self._idle
        if idle:
            conn = idle.pop()
            try:
                await _ready(conn)
            except BaseException:
                await self._discard(conn)
                raise
        else:
            conn = await pool.get_connection()
        try:
            command = _pack(conn, args)
            try:
                await _send(conn, command)
                reply = await conn.read_response()
            except NoScriptError:
                if script is None:
                    raise
                # the server lost its script cache (restart, SCRIPT FLUSH): load and run once more
                await _send(conn, _pack(conn, ("SCRIPT", "LOAD", script.script)))
                await conn.read_response()
                await _send(conn, command)
                reply = await conn.read_response()
        except ResponseError:
            # an error reply leaves the connection in step: keep it
            await self._put_back(conn)
            raise
        except BaseException:
            # a broken, timed-out or cancelled call may leave a reply unread on the socket
            await self._discard(conn)
            raise
        await self._put_back(conn)
        return reply

    async def _put_back(self, conn: Any) -> None:
        if len(self._idle) < self.keep:
            self._idle.append(conn)
        else:
            await self._pool.release(conn)

    async def _discard(self, conn: Any) -> None:
        try:
            await conn.disconnect(nowait=True)
        finally:
            await self._pool.release(conn)

    async def release(self) -> None:
        """Return the kept connections to the client's pool (idempotent); calls still running return theirs to the
        pool when they finish."""
        self.keep = 0
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)


EPOCH = """
-- KEYS: the namespace's epoch hash. ARGV: the run id of the server this connection reached.
-- The epoch is the server time (ms) at which a run of the server was first seen: every meta stamped before it
-- (so every meta an older snapshot can hold) compares lower. Returns the current epoch.
if redis.call('HGET', KEYS[1], 'run') == ARGV[1] then return redis.call('HGET', KEYS[1], 'e') end
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'e') or '0') + 1)
redis.call('HSET', KEYS[1], 'e', string.format('%d', e), 'run', ARGV[1])
return string.format('%d', e)
"""

ALL_SCRIPTS: dict[str, str] = {
    "side": SIDE,
    "prune": PRUNE,
    "put_session": PUT_SESSION,
    "update_session": UPDATE_SESSION,
    "delete_owner": DELETE_OWNER,
    "append": APPEND,
    "replace_history": REPLACE_HISTORY,
    "backfill": BACKFILL,
    "restore_owner": RESTORE_OWNER,
    "put_document": PUT_DOCUMENT,
    "read": READ,
    "bounds": BOUNDS,
    "delete_mark": DELETE_MARK,
    "put_checkpoint": PUT_CHECKPOINT,
    "get_checkpoint": GET_CHECKPOINT,
    "list_checkpoints": LIST_CHECKPOINTS,
    "put_writes": PUT_WRITES,
    "prune_thread": PRUNE_THREAD,
    "read_thread": READ_THREAD,
    "epoch": EPOCH,
}
"""Every script of the hot store, by the name :class:`ScriptSet` registers it under."""
