"""The hot store's Lua scripts (``lua/store/*.lua``, see :mod:`contextkit_redis.lua`) and the runner that calls them.

Each script touches the keys of one owner (one hash tag, so one slot) and may also update the owner's index
shard. With a cold tier (``archived``) every write script checks the owner's meta first (an owner the store has
no meta for gets the error reply :data:`UNKNOWN_REPLY`, which the store raises as ``OwnerUnknown``), takes the
owner's next version from it and XADDs the write's archive event to the outbox stream, all in the script. On
plain Redis the index keys are passed too (``ARGV[1] == "1"``) and the whole change is one atomic script call; on
a cluster the index shard lives in another slot, so the store calls the ``side`` script separately right after (see
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

from contextkit_redis import lua

_hiredis_pack: Any
try:  # installed with contextkit-redis (redis[hiredis]); optional for a redis-py installed without it
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - depends on the environment
    _hiredis_pack = None

#: The most connections a :class:`ScriptSet` keeps checked out of the pool between calls.
_KEEP_MAX = 8

__all__ = ["ALL_SCRIPTS", "EPOCH", "RANGE_REPLY", "UNKNOWN_REPLY", "ScriptSet"]

#: The error reply of a write script for an owner the store has no meta for, with a cold tier archiving it: the
#: caller must ask the archive first (contextkit.errors.OwnerUnknown, raised by the store for this error reply).
UNKNOWN_REPLY = "CKUNKNOWN"

#: The error reply of ``update_session`` for an update whose counters would leave their range (a total that is not
#: finite, a count beyond a signed 64-bit integer), followed by the field's name; nothing was written.
RANGE_REPLY = "CKRANGE"

ALL_SCRIPTS: dict[str, str] = lua.group("store")
"""Every script of the hot store (``lua/store/*.lua``), by the name :class:`ScriptSet` registers it under."""

#: The script that stamps the namespace's epoch (run with EVAL while connecting, before the set is registered).
EPOCH = ALL_SCRIPTS["epoch"]


def _pack(conn: Any, args: tuple[Any, ...]) -> Any:
    """The RESP bytes of a command: hiredis's C packer (several times faster than redis-py's pure-Python one on a
    checkpoint write's 25 arguments), or the connection's own packer without hiredis or for arguments it refuses."""
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

    ``Connection.send_packed_command`` bounds the write with ``asyncio.wait_for`` when the client has a socket
    timeout (the store's clients do), which on Python 3.11 wraps the write in a new Task: one more task and loop
    iteration per command, a measurable share of a script call's CPU (docs/benchmarks.md, "Measurements behind
    design choices"). The callers here already run under the store's deadline
    (:class:`~contextkit_redis.connection.Gate`, one ``asyncio.timeout``), so the stream is written directly; a
    write that fails or is cancelled leaves the connection to be discarded by the caller, as the public method
    would. ``_writer`` is private to redis-py: ``tests/test_redis_py_contract.py`` fails by name when a release
    changes it, and a connection without it (another redis-py layout) takes the public method.
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
    ``read_response``, the layer redis-py's own pipelines use. Through ``client.evalsha`` a call costs more CPU (a
    BlockingConnectionPool checkout and release take a condition, a timeout and observability hooks; figures in
    docs/benchmarks.md), and every LangGraph checkpoint write or read is one script call.

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
