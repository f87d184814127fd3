"""The options of the Redis hot tier: :class:`RedisOptions`, validated without I/O and without redis-py.

The package README describes each option; :meth:`RedisOptions.parse` checks a mapping of them (the tier's table
of the configuration) and :meth:`RedisOptions.from_env` reads the seed's variables (``REDIS_URL``,
``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_DB`` / ``REDIS_PASSWORD``, ``REDIS_REQUIRE_NOEVICTION``). This module
imports no driver, so the plugin's hooks can use it while ``redis`` stays unimported until a store connects.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from contextkit.errors import ConfigError
from contextkit.masking import check_url_credentials, mask_secrets, remember_secrets, secrets_in
from contextkit.plugins import EnvOptions
from contextkit.stores import StoreSettings

__all__ = ["ENV_VARIABLES", "RedisOptions"]

#: The environment variables the tier reads (the seed's names), by option. ``REDIS_URL`` or ``REDIS_HOST`` also
#: selects the redis hot tier when ``CONTEXTKIT_HOT`` is unset.
ENV_VARIABLES: dict[str, str] = {
    "url": "REDIS_URL",
    "host": "REDIS_HOST",
    "port": "REDIS_PORT",
    "db": "REDIS_DB",
    "password": "REDIS_PASSWORD",
    "require_noeviction": "REDIS_REQUIRE_NOEVICTION",
}

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
        "require_noeviction",
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

    #: A ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL; wins over host/port/db. None: use them.
    url: str | None
    #: Where to connect without a URL (``127.0.0.1``).
    host: str
    #: The port without a URL (6379).
    port: int
    #: The database number without a URL (0; a cluster has only 0).
    db: int
    #: The ACL user, or None.
    username: str | None
    #: The password, or None; never shown by ``describe()``, ``health()``, a repr or an error.
    password: str | None
    #: TLS on (``ssl`` option, or a ``rediss://`` URL).
    ssl: bool
    #: ``ssl_ca_certs`` / ``ssl_certfile`` / ``ssl_keyfile`` / ``ssl_cert_reqs`` as given, for the client.
    ssl_kwargs: Mapping[str, Any]
    #: Pool size (50): callers wait up to :attr:`pool_timeout` for a free connection.
    max_connections: int
    #: Seconds to wait for a free pooled connection (default: the tier's timeout).
    pool_timeout: float
    #: Seconds a command may wait for its reply (default: the tier's timeout).
    socket_timeout: float
    #: Seconds a connection may take to open (default: the tier's timeout).
    socket_connect_timeout: float
    #: Redis Cluster: True / False forced, None detected at open (``INFO cluster``; the ``auto`` option).
    cluster: bool | None
    #: A caller's ``redis.asyncio.Redis`` or ``RedisCluster``, used as is and never closed; None: the store builds one.
    client: Any
    #: Index shards (sorted sets) per namespace, or None for the default.
    index_shards: int | None
    #: Refuse to open on a server whose ``maxmemory-policy`` is not ``noeviction`` (or cannot be read).
    require_noeviction: bool = False
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
            require_noeviction=_as_bool(options.get("require_noeviction", False), "require_noeviction"),
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

    def common_kwargs(self) -> dict[str, Any]:
        """The client keywords every connection takes: timeouts and credentials."""
        kwargs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
        }
        if self.username is not None:
            kwargs["username"] = self.username
        if self.password is not None:
            kwargs["password"] = self.password
        return kwargs

    def ssl_connect_kwargs(self) -> dict[str, Any]:
        """The TLS keywords of a cluster client (empty without TLS)."""
        return {"ssl": True, **self.ssl_kwargs} if self.ssl else {}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvOptions:
        """The options :data:`ENV_VARIABLES` set in ``env`` (unvalidated text: :meth:`parse` checks them with
        the rest); a URL or host selects the redis hot tier."""
        found = EnvOptions.read("redis", env, ENV_VARIABLES)
        if "url" in found.options or "host" in found.options:
            return EnvOptions(found.backend, found.options, found.variables, selects=("hot",))
        return found

    def seed_node(self) -> tuple[str, int]:
        """The host and port the options point at (for the cluster client)."""
        if self.url:
            parts = urlsplit(self.url)
            return parts.hostname or "127.0.0.1", parts.port or 6379
        return self.host, self.port
