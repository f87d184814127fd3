"""What the Redis tier relies on inside redis-py beyond its public API, checked by name.

* ``redis.asyncio.Connection._writer`` (contextkit_redis.scripts._send): the connection's ``asyncio.StreamWriter``.
  A script call writes its packed command there directly; the public ``send_packed_command`` wraps every write in
  ``asyncio.wait_for`` when the client has a socket timeout (the store's clients do), which costs a Task per call
  (see docs/benchmarks.md, "Redis script calls"). Without the attribute the tier falls back to the public method:
  still correct, only slower, so nothing but this test would notice.
* ``ConnectionPool._available_connections`` / ``_in_use_connections`` and ``Connection.redis_connect_func``
  (contextkit_redis.connection.install_connect_hook): the restart check is installed on the connections a caller's
  pool already holds. Without them those connections would reconnect without the check, silently.

Each test names the attribute, so a redis-py release that changes one fails here, by name. The plugin's pyproject
caps redis-py below its next major for the same reason; nox -s "redis_py(lowest)" runs these on the lowest version.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio as aioredis


def _broken(member: str, what: str) -> str:
    return (
        f"redis-py {redis.__version__}: {member} {what}; the Redis tier relies on it "
        "(see tests/test_redis_py_contract.py) and must be adapted before this release is allowed"
    )


async def test_a_connected_connection_writes_through_its_stream_writer(redis_url: str) -> None:
    """``Connection._writer`` is the StreamWriter of the socket: a command written there is answered by
    ``read_response``, as ``contextkit_redis.scripts._send`` does it."""
    pool = aioredis.ConnectionPool.from_url(redis_url, socket_timeout=5.0)
    try:
        conn: Any = await pool.get_connection()
        try:
            await conn.connect()
            writer = getattr(conn, "_writer", None)
            assert isinstance(writer, asyncio.StreamWriter), _broken(
                "redis.asyncio.Connection._writer", "is no longer the connection's asyncio.StreamWriter"
            )
            writer.writelines(conn.pack_command("ECHO", "through the writer"))
            await writer.drain()
            assert await conn.read_response() == b"through the writer"
        finally:
            await pool.release(conn)
    finally:
        await pool.disconnect()


async def test_the_pool_lists_its_connections_in_the_two_collections(redis_url: str) -> None:
    """``ConnectionPool._in_use_connections`` holds a connection checked out, ``_available_connections`` one
    given back: install_connect_hook walks both."""
    pool = aioredis.ConnectionPool.from_url(redis_url)
    try:
        conn = await pool.get_connection()
        in_use = getattr(pool, "_in_use_connections", None)
        assert in_use is not None and conn in in_use, _broken(
            "ConnectionPool._in_use_connections", "no longer holds the connections checked out"
        )
        await pool.release(conn)
        available = getattr(pool, "_available_connections", None)
        assert available is not None and conn in available, _broken(
            "ConnectionPool._available_connections", "no longer holds the connections given back"
        )
    finally:
        await pool.disconnect()


async def test_a_connection_runs_its_redis_connect_func_when_it_reconnects(redis_url: str) -> None:
    """``Connection.redis_connect_func`` is taken from the pool's ``connection_kwargs`` and replaces the handshake
    of every (re)connect; install_connect_hook sets it on connections made before the hook existed."""
    pool = aioredis.ConnectionPool.from_url(redis_url)
    calls: list[str] = []
    try:
        conn: Any = await pool.get_connection()
        assert hasattr(conn, "redis_connect_func"), _broken("redis.asyncio.Connection.redis_connect_func", "is gone")

        async def hook(connection: Any) -> None:
            await connection.on_connect()
            calls.append("hook")

        conn.redis_connect_func = hook
        await conn.disconnect()
        await conn.connect()
        assert calls == ["hook"], _broken(
            "redis.asyncio.Connection.redis_connect_func", "is no longer called when the connection reconnects"
        )
        await conn.send_command("PING")
        assert await conn.read_response() in (b"PONG", "PONG")
        await pool.release(conn)
    finally:
        await pool.disconnect()
