"""Connecting to Redis: client construction, cluster detection and error translation.

The options are validated by :class:`~contextkit_redis.options.RedisOptions` (re-exported here). :func:`connect`
builds the client (a plain ``redis.asyncio.Redis`` over a ``BlockingConnectionPool``, or a
``redis.asyncio.cluster.RedisCluster``), detecting cluster mode with ``INFO cluster`` when asked to.
:class:`Gate` runs every backend call within the timeout and turns driver errors into
:class:`~contextkit.errors.BackendUnavailable`; the LangGraph checkpointer reuses it.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from contextkit.errors import BackendUnavailable, ConfigError, OwnerUnknown, SerializationError
from contextkit.masking import mask_secrets
from contextkit_redis.options import RedisOptions

__all__ = ["Connected", "Gate", "RedisOptions", "build_cluster", "build_standalone", "connect"]

T = TypeVar("T")

_NO_MAINT_NOTIFICATIONS: Any = None
try:  # redis-py 7+ has the module; older versions have no maintenance notifications
    from redis.maint_notifications import MaintNotificationsConfig
except ImportError:  # pragma: no cover - depends on the installed redis-py
    pass
else:
    # Only from 8.1 do asyncio connections take the option (7.x and 8.0 refuse the keyword, and check pooled
    # connections as before).
    if "maint_notifications_config" in inspect.signature(aioredis.connection.AbstractConnection.__init__).parameters:
        _NO_MAINT_NOTIFICATIONS = MaintNotificationsConfig(enabled=False)
_HAS_TIMEOUT_CM = sys.version_info >= (3, 11)
# The error reply of a script that met an owner it has no meta for (contextkit_redis.scripts.UNKNOWN_REPLY).
_UNKNOWN_REPLY = "CKUNKNOWN"
# ... and of one that met an owner whose meta is older than the server's current run (contextkit_redis.scripts).
_STALE_REPLY = "CKSTALE"
# ... and of a session update whose counters would leave their range (contextkit_redis.scripts.RANGE_REPLY).
_RANGE_REPLY = "CKRANGE"
def build_standalone(options: RedisOptions) -> aioredis.Redis:
    """A plain client over a BlockingConnectionPool (waits up to ``pool_timeout`` for a free connection)."""
    # No client-side retries: a retried Lua script could apply its increments twice. A dead pooled
    # connection is detected (and reopened) when it is taken from the pool, so recovery needs no retry.
    # The asyncio Retry: redis-py 8.2 converts a synchronous one with a UserWarning on every client.
    kwargs = {**options.common_kwargs(), "retry": Retry(NoBackoff(), 0)}
    if _NO_MAINT_NOTIFICATIONS is not None:
        # With maintenance notifications on "auto" (redis-py 7+), the pool skips its check of a connection
        # it hands out, so a socket the server closed (restart) fails the next command instead of reopening.
        kwargs["maint_notifications_config"] = _NO_MAINT_NOTIFICATIONS
    if options.url:
        extra = dict(options.ssl_kwargs) if options.url.startswith("rediss://") else {}
        pool = aioredis.BlockingConnectionPool.from_url(
            options.url, max_connections=options.max_connections, timeout=options.pool_timeout, **kwargs, **extra
        )
    else:
        conn_kwargs: dict[str, Any] = {"host": options.host, "port": options.port, "db": options.db, **kwargs}
        if options.ssl:
            conn_kwargs.update(options.ssl_kwargs)
            conn_kwargs["connection_class"] = aioredis.SSLConnection
        pool = aioredis.BlockingConnectionPool(
            max_connections=options.max_connections, timeout=options.pool_timeout, **conn_kwargs
        )
    return aioredis.Redis(connection_pool=pool)

def build_cluster(options: RedisOptions, host: str, port: int) -> RedisCluster:
    """A cluster client seeded with one node; it discovers the others."""
    if options.db not in (0, None):
        raise ConfigError("Redis Cluster has only database 0")
    return RedisCluster(
        host=host,
        port=port,
        max_connections=options.max_connections,
        **options.common_kwargs(),
        **options.ssl_connect_kwargs(),
    )


@dataclass
class Connected:
    """The outcome of :func:`connect`: the client, whether it is a cluster, and whether the store owns it."""

    client: Any
    cluster: bool
    owned: bool


async def _close_client(client: Any) -> None:
    try:
        await client.aclose()
    finally:
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            await pool.disconnect()


ConnectHook = Callable[[Any], Awaitable[None]]


def install_connect_hook(client: Any, hook: ConnectHook) -> None:
    """Run ``hook(connection)`` (after the connection's own handshake) on every connection ``client``'s pool opens
    or reopens from now on, connections it already holds included: the store checks there that the server is the
    one it knew (see ``RedisHotStore``). A plain client only; the hook chains any ``redis_connect_func`` set before.
    """
    pool = client.connection_pool
    previous = pool.connection_kwargs.get("redis_connect_func")

    async def handshake(connection: Any) -> None:
        if previous is not None:
            await previous(connection)
        else:
            await connection.on_connect()
        await hook(connection)

    pool.connection_kwargs["redis_connect_func"] = handshake
    # Connections already made keep the callback they were built with: give them this one too. (Attribute names
    # of redis-py's ConnectionPool; a pool without them holds no connection yet.)
    for name in ("_available_connections", "_in_use_connections"):
        for connection in list(getattr(pool, name, ()) or ()):
            if connection is not None:
                connection.redis_connect_func = handshake


async def connect(options: RedisOptions, on_connect: ConnectHook | None = None) -> Connected:
    """Build the client, PING it and detect cluster mode; the caller bounds this with its timeout. ``on_connect``
    is installed on a plain client before its first connection (:func:`install_connect_hook`)."""
    if options.client is not None:
        client = options.client
        is_cluster = isinstance(client, RedisCluster)
        if not is_cluster:
            if on_connect is not None:
                install_connect_hook(client, on_connect)
            await client.ping()
            if options.cluster is None and await _cluster_enabled(client):
                raise ConfigError("the Redis server is a cluster node: hand in a redis.asyncio.cluster.RedisCluster")
        else:
            await client.initialize()
            await client.ping()
        return Connected(client, is_cluster, owned=False)
    if options.cluster is True:
        client = build_cluster(options, *options.seed_node())
        try:
            await client.initialize()
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        return Connected(client, True, owned=True)
    client = build_standalone(options)
    if on_connect is not None:
        install_connect_hook(client, on_connect)
    try:
        await client.ping()
        detect = options.cluster is None and not (options.url or "").startswith("unix://")
        if not detect or not await _cluster_enabled(client):
            return Connected(client, False, owned=True)
    except BaseException:
        await _close_client(client)
        raise
    await _close_client(client)
    cluster = build_cluster(options, *options.seed_node())
    try:
        await cluster.initialize()
        await cluster.ping()
    except BaseException:
        await cluster.aclose()
        raise
    return Connected(cluster, True, owned=True)


async def _cluster_enabled(client: Any) -> bool:
    info = await client.info("cluster")
    return str(info.get("cluster_enabled", 0)) == "1"


async def close(connected: Connected) -> None:
    """Close a client the store owns (a caller's client is left open)."""
    if connected.owned:
        await _close_client(connected.client)


class Gate:
    """Runs backend calls within the timeout and translates driver errors.

    Every ``redis.exceptions.RedisError`` (connection refused, timeouts, ClusterDownError, MOVED loops, a
    server error reply), ``OSError`` and the deadline itself become
    :class:`~contextkit.errors.BackendUnavailable`, its message passed through
    :func:`contextkit.masking.mask_secrets`. On a cluster, where redis-py's per-node pools raise instead of
    waiting, a semaphore sized like the pool makes callers wait (up to the timeout) for a free slot, as the
    BlockingConnectionPool does on plain Redis.
    """

    def __init__(self, target: str, timeout: float, secrets: frozenset[str], limit: int | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self._secrets = secrets
        self._limit = asyncio.Semaphore(limit) if limit else None

    def unavailable(self, op: str, exc: BaseException | None) -> BackendUnavailable:
        """The BackendUnavailable to raise for ``exc`` during ``op``."""
        detail = f"no reply within {self.timeout:g}s" if exc is None else f"{type(exc).__name__}: {exc}"
        return BackendUnavailable(mask_secrets(f"redis {op} failed on {self.target}: {detail}", self._secrets))

    async def __call__(self, op: str, call: Awaitable[T]) -> T:
        """Await ``call`` within the timeout; raise BackendUnavailable on any driver failure."""
        try:
            if _HAS_TIMEOUT_CM:
                # asyncio.timeout (3.11+) runs the call in the current task; wait_for spawns a task per call.
                # The ignore is for a Python 3.10 checker, to which asyncio.timeout does not exist.
                async with asyncio.timeout(self.timeout):  # type: ignore[attr-defined,unused-ignore]
                    return await (call if self._limit is None else self._limited(call))
            return await asyncio.wait_for(self._limited(call), self.timeout)
        except asyncio.TimeoutError:
            raise self.unavailable(op, None) from None
        except ResponseError as exc:
            if str(exc).startswith(_UNKNOWN_REPLY):
                # a script's "owner unknown" answer (see contextkit_redis.scripts): the store names the owner
                raise OwnerUnknown("") from None
            if str(exc).startswith(_STALE_REPLY):
                raise OwnerUnknown("", stale=True) from None
            if str(exc).startswith(_RANGE_REPLY):
                field = str(exc)[len(_RANGE_REPLY) :].strip() or "a counter"
                raise SerializationError(
                    f"redis {op}: {field} would leave its range (not finite, or beyond a signed 64-bit integer); "
                    "nothing was applied"
                ) from None
            raise self.unavailable(op, exc) from None
        except (RedisError, OSError) as exc:
            raise self.unavailable(op, exc) from None

    async def _limited(self, call: Awaitable[T]) -> T:
        started = False
        try:
            if self._limit is None:
                started = True
                return await call
            async with self._limit:
                started = True
                return await call
        finally:
            # a call still waiting for the semaphore when the deadline hit was never started: close it
            if not started and inspect.iscoroutine(call):
                call.close()
