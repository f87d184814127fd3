"""The Lua scripts of the Redis tier and the runner that calls them.

Each script touches the keys of one owner (one hash tag, so one slot) and may also update the owner's index
shard. On plain Redis the index keys are passed too (``ARGV[1] == "1"``) and the whole change is one atomic
script call; on a cluster the index shard lives in another slot, so the store calls :data:`SIDE` separately
right after (see :mod:`contextkit_redis.store` for the consistency this gives).

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
    "BOUNDS",
    "DELETE_OWNER",
    "DROP_STREAM",
    "GET_CHECKPOINT",
    "LIST_CHECKPOINTS",
    "PRUNE",
    "PRUNE_THREAD",
    "PUT_CHECKPOINT",
    "PUT_SESSION",
    "PUT_WRITES",
    "READ_THREAD",
    "REPLACE_HISTORY",
    "SIDE",
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

PUT_SESSION = (
    _SIDE_FN
    + """
-- KEYS: session family (6) [, index shard (4)]
-- ARGV: side, ttl_ms, session_id, user_id, created_at, last_activity, last_activity_us,
--       request_count, error_count, total_processing_time, status, metadata
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'session_id', ARGV[3], 'user_id', ARGV[4], 'created_at', ARGV[5],
  'last_activity', ARGV[6], 'last_activity_us', ARGV[7], 'request_count', ARGV[8], 'error_count', ARGV[9],
  'total_processing_time', ARGV[10], 'status', ARGV[11], 'metadata', ARGV[12])
for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
if ARGV[1] == '1' then side(side_keys(7), 'set', ARGV[3], ARGV[7], ARGV[11], 0, 0) end
return 1
"""
)

UPDATE_SESSION = (
    _SIDE_FN
    + """
-- KEYS: session family (6) [, index shard (4)]
-- ARGV: side, ttl_ms, requests, errors, processing_time, last_activity, last_activity_us, n, field, value, ...
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[3] ~= '0' then redis.call('HINCRBY', KEYS[1], 'request_count', ARGV[3]) end
if ARGV[4] ~= '0' then redis.call('HINCRBY', KEYS[1], 'error_count', ARGV[4]) end
if ARGV[5] ~= '0' then redis.call('HINCRBYFLOAT', KEYS[1], 'total_processing_time', ARGV[5]) end
local cur = tonumber(redis.call('HGET', KEYS[1], 'last_activity_us') or '0')
if tonumber(ARGV[7]) > cur then
  redis.call('HSET', KEYS[1], 'last_activity', ARGV[6], 'last_activity_us', ARGV[7])
end
local n = tonumber(ARGV[8])
for i = 0, n - 1 do redis.call('HSET', KEYS[1], ARGV[9 + 2 * i], ARGV[10 + 2 * i]) end
for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
local rec = redis.call('HGETALL', KEYS[1])
if ARGV[1] == '1' then
  local h = {}
  for i = 1, #rec, 2 do h[rec[i]] = rec[i + 1] end
  side(side_keys(7), 'max', h['session_id'], h['last_activity_us'], h['status'], 0, 0)
end
return rec
"""
)

DELETE_OWNER = (
    _SIDE_FN
    + """
-- KEYS: every key of the owner (9) [, index shard (4)]. ARGV: side, session_id
-- Returns {record existed, conversation keys registered, messages removed, checkpoints removed}.
local existed = redis.call('EXISTS', KEYS[1])
local convs = redis.call('SMEMBERS', KEYS[5])
local messages = redis.call('LLEN', KEYS[2])
local checkpoints = redis.call('HLEN', KEYS[7])
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
if ARGV[1] == '1' then side(side_keys(10), 'del', ARGV[2], 0, '', -messages, -checkpoints) end
return {existed, convs, messages, checkpoints}
"""
)

DROP_STREAM = """
-- KEYS: conversation document, history, seq of one conversation session. Returns the messages removed.
local messages = redis.call('LLEN', KEYS[2])
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
return messages
"""

APPEND = (
    _SIDE_FN
    + """
-- KEYS: session family (6: session, history, seq, ...) [, index shard (4)] [, outbox stream (last)]
-- ARGV: side, cap, ttl_ms, key, activity, activity_us, n, n message bodies without their opening brace,
--       then (with an outbox stream) n event heads: the event JSON up to its message, which closes with '}}'.
-- Returns {first seq, kept delta, events written (0/1), session status or false, session last_activity_us}.
local n = tonumber(ARGV[7])
local last = redis.call('INCRBY', KEYS[3], n)
local first = last - n + 1
local archive = #ARGV > 7 + n and first > 1
local batch = {}
local length = 0
for i = 1, n do
  local body = '{"seq":' .. string.format('%d', first + i - 1) .. ',' .. ARGV[i + 7]
  batch[#batch + 1] = body
  -- the outbox entry is the archive event of the stored message: same seq, in the same atomic step
  if archive then redis.call('XADD', KEYS[#KEYS], '*', 'e', ARGV[i + 7 + n] .. body .. '}}') end
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
-- activity on a stream keeps its whole session alive (the record's TTL follows its history)
for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
if ARGV[1] == '1' then
  if status then
    side(side_keys(7), 'max', ARGV[4], string.format('%d', la), status, n - trimmed, 0)
  else
    side(side_keys(7), 'none', '', 0, '', n - trimmed, 0)
  end
end
return {first, n - trimmed, archive and 1 or 0, status, string.format('%d', la)}
"""
)

REPLACE_HISTORY = (
    _SIDE_FN
    + """
-- KEYS: history, seq [, index shard (4)]. ARGV: side, cap, ttl_ms, highest seq given, messages (JSON)...
-- Returns the change in kept messages.
local before = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
local batch = {}
for i = 5, #ARGV do
  batch[#batch + 1] = ARGV[i]
  if #batch == 1000 then redis.call('RPUSH', KEYS[1], unpack(batch)); batch = {} end
end
if #batch > 0 then redis.call('RPUSH', KEYS[1], unpack(batch)) end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[4]) > cur then redis.call('SET', KEYS[2], ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local delta = redis.call('LLEN', KEYS[1]) - before
if ARGV[1] == '1' and delta ~= 0 then side(side_keys(3), 'none', '', 0, '', delta, 0) end
return delta
"""
)

BOUNDS = """
-- KEYS: history, seq. Returns {oldest kept message or false, highest seq assigned or false}
return {redis.call('LINDEX', KEYS[1], 0), redis.call('GET', KEYS[2])}
"""

PUT_CHECKPOINT = (
    _SIDE_FN
    + """
-- KEYS: cp_docs, cp_order, cp_writes [, index shard (4), seed thread index]
-- ARGV: side, ttl_ms, checkpoint_id, document, thread_id
local new = redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
if new == 1 then redis.call('RPUSH', KEYS[2], ARGV[3]) end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
if ARGV[1] == '1' then
  if new == 1 then side(side_keys(4), 'none', '', 0, '', 0, 1) end
  redis.call('ZADD', KEYS[8], 0, ARGV[5])
end
return new
"""
)

GET_CHECKPOINT = """
-- KEYS: cp_docs, cp_order. ARGV: "1" and a checkpoint id, or "0" for the newest
local cid = ARGV[2]
if ARGV[1] == '0' then
  cid = redis.call('LINDEX', KEYS[2], -1)
  if not cid then return false end
end
return redis.call('HGET', KEYS[1], cid)
"""

LIST_CHECKPOINTS = """
-- KEYS: cp_docs, cp_order. ARGV: limit (> 0). Newest first.
local ids = redis.call('LRANGE', KEYS[2], -tonumber(ARGV[1]), -1)
local out = {}
for i = #ids, 1, -1 do
  local doc = redis.call('HGET', KEYS[1], ids[i])
  if doc then out[#out + 1] = doc end
end
return out
"""

PUT_WRITES = """
-- KEYS: cp_writes, cp_docs, cp_order [, seed thread index]. ARGV: ttl_ms, checkpoint_id, JSON items joined by
-- commas (no brackets), thread_id
local cur = redis.call('HGET', KEYS[1], ARGV[2])
local value
if cur and cur ~= '[]' then
  value = string.sub(cur, 1, -2) .. ',' .. ARGV[3] .. ']'
else
  value = '[' .. ARGV[3] .. ']'
end
redis.call('HSET', KEYS[1], ARGV[2], value)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
if KEYS[4] then redis.call('ZADD', KEYS[4], 0, ARGV[4]) end
return 1
"""

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


ALL_SCRIPTS: dict[str, str] = {
    "side": SIDE,
    "prune": PRUNE,
    "put_session": PUT_SESSION,
    "update_session": UPDATE_SESSION,
    "delete_owner": DELETE_OWNER,
    "drop_stream": DROP_STREAM,
    "append": APPEND,
    "replace_history": REPLACE_HISTORY,
    "bounds": BOUNDS,
    "put_checkpoint": PUT_CHECKPOINT,
    "get_checkpoint": GET_CHECKPOINT,
    "list_checkpoints": LIST_CHECKPOINTS,
    "put_writes": PUT_WRITES,
    "prune_thread": PRUNE_THREAD,
    "read_thread": READ_THREAD,
}
"""Every script of the hot store, by the name :class:`ScriptSet` registers it under."""
