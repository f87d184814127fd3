"""Connecting to Redis: option parsing, client construction, cluster detection and error translation.

:class:`RedisOptions` turns the tier's options mapping into a validated, secret-free description without any
I/O. :func:`connect` builds the client (a plain ``redis.asyncio.Redis`` over a ``BlockingConnectionPool``, or a
``redis.asyncio.cluster.RedisCluster``), detecting cluster mode with ``INFO cluster`` when asked to.
:class:`Gate` runs every backend call within the timeout and turns driver errors into
:class:`~contextkit.errors.BackendUnavailable`; the LangGraph checkpointer reuses it.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl as ssl_module
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from contextkit.errors import BackendUnavailable, ConfigError, OwnerUnknown
from contextkit.masking import check_url_credentials, mask_secrets, remember_secrets, secrets_in
from contextkit.stores import StoreSettings

__all__ = ["Connected", "Gate", "RedisOptions", "connect"]

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

_KNOWN_OPTIONS = frozenset(
    {
        "url",
        "host",
        "port",
        "db",
        "password",
        "username",
        "ssl",
        "ssl_ca_certs",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_cert_reqs",
        "max_connections",
        "pool_timeout",
        "socket_timeout",
        "socket_connect_timeout",
        "cluster",
        "client",
        "index_shards",
        # read by the composer (fallback to memory when Redis is down at start), not by the store
        "fallback",
    }
)
_CERT_REQS = {"none": ssl_module.CERT_NONE, "optional": ssl_module.CERT_OPTIONAL, "required": ssl_module.CERT_REQUIRED}
_CERT_REQS_NAMES: dict[int, str] = {int(mode): name for name, mode in _CERT_REQS.items()}


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"redis option {name} must be a boolean, got {value!r}")


def _as_number(value: Any, name: str, kind: type, minimum: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"redis option {name} must be a number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"redis option {name} must be >= {minimum}, got {value!r}")
    return number


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return ""


@dataclass(frozen=True)
class RedisOptions:
    """The validated options of a Redis tier; :meth:`describe_target` never shows a password."""

    url: str | None
    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    ssl: bool
    ssl_kwargs: Mapping[str, Any]
    max_connections: int
    pool_timeout: float
    socket_timeout: float
    socket_connect_timeout: float
    cluster: bool | None  # None: detect
    client: Any
    index_shards: int | None
    #: Every secret of the options (see :func:`contextkit.masking.secrets_in`), hidden from every message.
    secrets: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"RedisOptions(target={self.describe_target()!r}, cluster={self.cluster!r})"

    @classmethod
    def parse(cls, settings: StoreSettings, options: Mapping[str, Any]) -> RedisOptions:
        """Validate ``options`` (see the package README for each key); raises ``ConfigError``."""
        secrets = secrets_in(options)
        remember_secrets(secrets)
        unknown = sorted(set(options) - _KNOWN_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown redis option(s) {unknown}; known: {sorted(_KNOWN_OPTIONS)}")
        url = options.get("url")
        if isinstance(url, str) and "://" in url and not _scheme(url):
            raise ConfigError("redis url cannot be parsed (check brackets, host and port)")
        if url is not None and (not isinstance(url, str) or _scheme(url) not in {"redis", "rediss", "unix"}):
            raise ConfigError(f"redis url must start with redis://, rediss:// or unix://, got {mask_secrets(str(url), secrets)}")
        if isinstance(url, str):
            check_url_credentials(url, "redis url")
        if isinstance(url, str) and not url.startswith("unix://"):
            try:
                parsed_port = urlsplit(url).port  # raises on a port that is not a number or out of range
            except ValueError:
                parsed_port = -1
            if parsed_port == -1:
                raise ConfigError(f"redis url has an invalid host or port: {mask_secrets(url, secrets)}")
        if url and options.get("ssl") and not url.startswith("rediss://"):
            raise ConfigError("ssl=true needs a rediss:// url (or host/port options)")
        cluster_opt = options.get("cluster", "auto")
        cluster: bool | None
        if isinstance(cluster_opt, str) and cluster_opt.strip().lower() == "auto":
            cluster = None
        else:
            cluster = _as_bool(cluster_opt, "cluster")
        ssl_kwargs: dict[str, Any] = {}
        for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if options.get(key) is not None:
                ssl_kwargs[key] = str(options[key])
        if options.get("ssl_cert_reqs") is not None:
            reqs = options["ssl_cert_reqs"]
            # Handed to redis-py by name: every supported version takes "none" / "optional" / "required", while an
            # ssl.VerifyMode only works from 6.0 (5.x leaves its SSL context without cert_reqs and fails to connect).
            name = reqs.lower() if isinstance(reqs, str) else _CERT_REQS_NAMES.get(reqs) if isinstance(reqs, int) else None
            if name not in _CERT_REQS:
                raise ConfigError(f"redis option ssl_cert_reqs must be one of {sorted(_CERT_REQS)}, got {reqs!r}")
            ssl_kwargs["ssl_cert_reqs"] = name
        use_ssl = _as_bool(options.get("ssl", False), "ssl") or bool(url and url.startswith("rediss://"))
        if url and url.startswith("unix://") and cluster:
            raise ConfigError("a unix:// socket cannot point at a Redis Cluster")
        shards = options.get("index_shards")
        return cls(
            url=url,
            host=str(options.get("host", "127.0.0.1")),
            port=_as_number(options.get("port", 6379), "port", int, 1),
            db=_as_number(options.get("db", 0), "db", int, 0),
            username=None if options.get("username") is None else str(options["username"]),
            password=None if options.get("password") is None else str(options["password"]),
            ssl=use_ssl,
            ssl_kwargs=ssl_kwargs,
            max_connections=_as_number(options.get("max_connections", 50), "max_connections", int, 1),
            pool_timeout=_as_number(options.get("pool_timeout", settings.timeout), "pool_timeout", float, 0),
            socket_timeout=_as_number(options.get("socket_timeout", settings.timeout), "socket_timeout", float, 0),
            socket_connect_timeout=_as_number(
                options.get("socket_connect_timeout", settings.timeout), "socket_connect_timeout", float, 0
            ),
            cluster=cluster,
            client=options.get("client"),
            index_shards=None if shards is None else _as_number(shards, "index_shards", int, 1),
            secrets=secrets,
        )

    def describe_target(self) -> str:
        """Where the tier connects, without credentials."""
        if self.client is not None:
            return f"<caller's {type(self.client).__name__}>"
        if self.url:
            return mask_secrets(self.url, self.secrets)
        scheme = "rediss" if self.ssl else "redis"
        user = f"{self.username}@" if self.username else ""
        return mask_secrets(f"{scheme}://{user}{self.host}:{self.port}/{self.db}", self.secrets)

    def _common_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
        }
        if self.username is not None:
            kwargs["username"] = self.username
        if self.password is not None:
            kwargs["password"] = self.password
        return kwargs

    def _ssl_kwargs(self) -> dict[str, Any]:
        return {"ssl": True, **self.ssl_kwargs} if self.ssl else {}

    def build_standalone(self) -> aioredis.Redis:
        """A plain client over a BlockingConnectionPool (waits up to ``pool_timeout`` for a free connection)."""
        # No client-side retries: a retried Lua script could apply its increments twice. A dead pooled
        # connection is detected (and reopened) when it is taken from the pool, so recovery needs no retry.
        # The asyncio Retry: redis-py 8.2 converts a synchronous one with a UserWarning on every client.
        kwargs = {**self._common_kwargs(), "retry": Retry(NoBackoff(), 0)}
        if _NO_MAINT_NOTIFICATIONS is not None:
            # With maintenance notifications on "auto" (redis-py 7+), the pool skips its check of a connection
            # it hands out, so a socket the server closed (restart) fails the next command instead of reopening.
            kwargs["maint_notifications_config"] = _NO_MAINT_NOTIFICATIONS
        if self.url:
            extra = dict(self.ssl_kwargs) if self.url.startswith("rediss://") else {}
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=self.max_connections, timeout=self.pool_timeout, **kwargs, **extra
            )
        else:
            conn_kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "db": self.db, **kwargs}
            if self.ssl:
                conn_kwargs.update(self.ssl_kwargs)
                conn_kwargs["connection_class"] = aioredis.SSLConnection
            pool = aioredis.BlockingConnectionPool(max_connections=self.max_connections, timeout=self.pool_timeout, **conn_kwargs)
        return aioredis.Redis(connection_pool=pool)

    def build_cluster(self, host: str, port: int) -> RedisCluster:
        """A cluster client seeded with one node; it discovers the others."""
        if self.db not in (0, None):
            raise ConfigError("Redis Cluster has only database 0")
        return RedisCluster(
            host=host,
            port=port,
            max_connections=self.max_connections,
            **self._common_kwargs(),
            **self._ssl_kwargs(),
        )

    def seed_node(self) -> tuple[str, int]:
        """The host and port the options point at (for the cluster client)."""
        if self.url:
            parts = urlsplit(self.url)
            return parts.hostname or "127.0.0.1", parts.port or 6379
        return self.host, self.port


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
        client = options.build_cluster(*options.seed_node())
        try:
            await client.initialize()
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        return Connected(client, True, owned=True)
    client = options.build_standalone()
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
    cluster = options.build_cluster(*options.seed_node())
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
