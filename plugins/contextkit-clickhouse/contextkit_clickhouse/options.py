"""The options of the ClickHouse cold tier: :class:`ClickHouseOptions`, validated without I/O and without
clickhouse-connect.

:func:`parse_options` checks the tier's options (``url`` or ``host`` / ``port`` / ``username`` / ``password`` /
``database`` / ``secure``; ``cluster``, ``ttl_days``, ``table_prefix``, ``compress``, ``ddl_timeout``; ``client``)
and :meth:`ClickHouseOptions.from_env` reads the seed's variables (``CLICKHOUSE_HOST`` / ``PORT`` / ``USER`` /
``PASSWORD`` / ``DATABASE``; ``CLICKHOUSE_ENABLED=true`` selects the tier when ``CONTEXT_PERMANENT_BACKEND`` is
unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from contextkit.errors import ConfigError
from contextkit.masking import check_url_credentials, mask_secrets, remember_secrets, secrets_in
from contextkit.plugins import EnvOptions
from contextkit_clickhouse.schema import quote_identifier

__all__ = ["ENV_VARIABLES", "ClickHouseOptions", "parse_options"]

#: The environment variables the tier reads (the seed's names), by option.
ENV_VARIABLES: dict[str, str] = {
    "host": "CLICKHOUSE_HOST",
    "port": "CLICKHOUSE_PORT",
    "username": "CLICKHOUSE_USER",
    "password": "CLICKHOUSE_PASSWORD",
    "database": "CLICKHOUSE_DATABASE",
}
#: The seed's legacy switch: true selects the clickhouse cold tier when ``CONTEXT_PERMANENT_BACKEND`` is unset.
ENABLED_VARIABLE = "CLICKHOUSE_ENABLED"
_SCHEMES = {"http": False, "clickhouse": False, "https": True, "clickhouses": True}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_KNOWN_OPTIONS = frozenset(
    {
        "url",
        "host",
        "port",
        "username",
        "user",
        "password",
        "database",
        "secure",
        "cluster",
        "ttl_days",
        "client",
        "table_prefix",
        "compress",
        "ddl_timeout",
    }
)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"clickhouse option {name!r} must be true or false, got {value!r}")


def _as_int(name: str, value: Any, *, minimum: int = 1) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    except ValueError:
        raise ConfigError(f"clickhouse option {name!r} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or number < minimum:
        raise ConfigError(f"clickhouse option {name!r} must be a whole number >= {minimum}, got {value!r}")
    return number


class ClickHouseOptions:
    """Connection and schema options of the ClickHouse cold tier, parsed and validated (no I/O).

    :param host: server host name; ``localhost`` by default.
    :param port: HTTP(S) port; 8123, or 8443 when ``secure``.
    :param username: ClickHouse user (``default``).
    :param password: its password; never shown by ``repr``, ``describe()`` or error messages.
    :param database: database holding the tables (created when missing).
    :param secure: use HTTPS.
    :param cluster: a cluster name: Replicated engines, ``ON CLUSTER`` DDL and Distributed tables.
    :param ttl_days: retention in days (a table TTL on ``created_at``), or None to keep everything.
    :param table_prefix: table name prefix; derived from the namespace when None.
    :param compress: compress HTTP bodies (clickhouse-connect's ``compress``).
    :param ddl_timeout: seconds a migration statement may take (``ON CLUSTER`` DDL waits for every node).
    :param secrets: every secret of the options (see :func:`contextkit.masking.secrets_in`), hidden from every
        message along with ``password``.
    """

    __slots__ = (
        "cluster",
        "compress",
        "database",
        "ddl_timeout",
        "host",
        "password",
        "port",
        "secrets",
        "secure",
        "table_prefix",
        "ttl_days",
        "username",
    )

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int | None = None,
        username: str = "default",
        password: str = "",
        database: str = "default",
        secure: bool = False,
        cluster: str | None = None,
        ttl_days: int | None = None,
        table_prefix: str | None = None,
        compress: bool = True,
        ddl_timeout: float = 180.0,
        secrets: frozenset[str] = frozenset(),
    ) -> None:
        self.host = host
        self.port = port if port is not None else (8443 if secure else 8123)
        self.username = username
        self.password = password
        self.database = database
        self.secure = secure
        self.cluster = cluster
        self.ttl_days = ttl_days
        self.table_prefix = table_prefix
        self.compress = compress
        self.ddl_timeout = ddl_timeout
        self.secrets = secrets | ({password} if password else set())

    def __repr__(self) -> str:
        return f"ClickHouseOptions(target={self.target!r}, cluster={self.cluster!r}, ttl_days={self.ttl_days!r})"

    @property
    def target(self) -> str:
        """The server URL without the password: ``http://user@host:port/database``."""
        scheme = "https" if self.secure else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return mask_secrets(f"{scheme}://{self.username}@{host}:{self.port}/{self.database}", self.secrets)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvOptions:
        """The options :data:`ENV_VARIABLES` set in ``env`` (unvalidated text: :func:`parse_options` checks them
        with the rest); ``CLICKHOUSE_ENABLED=true`` selects the clickhouse cold tier."""
        found = EnvOptions.read("clickhouse", env, ENV_VARIABLES)
        if env.get(ENABLED_VARIABLE, "").strip().lower() in _TRUE:
            return EnvOptions(found.backend, found.options, found.variables, selects=("cold",))
        return found


def parse_options(options: Mapping[str, Any]) -> ClickHouseOptions:
    """Validate the factory options (``url`` or ``host``/``port``/...; explicit keys override the URL's parts).

    Raises :class:`~contextkit.errors.ConfigError` for unknown keys and bad values; the message never holds the
    password.
    """
    secrets = secrets_in(options)
    remember_secrets(secrets)
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown clickhouse option(s) {unknown}; known: {sorted(_KNOWN_OPTIONS)}")
    values: dict[str, Any] = {"secrets": secrets}
    url = options.get("url")
    if url:
        check_url_credentials(str(url), "clickhouse url")
        parts = urlsplit(str(url))
        if parts.scheme not in _SCHEMES:
            scheme = mask_secrets(parts.scheme, secrets)
            raise ConfigError(f"clickhouse url scheme must be one of {sorted(_SCHEMES)}, got {scheme!r}")
        values["secure"] = _SCHEMES[parts.scheme]
        try:
            port = parts.port
        except ValueError:
            raise ConfigError("clickhouse url has an invalid port") from None
        if parts.hostname:
            values["host"] = parts.hostname
        if port:
            values["port"] = port
        if parts.username:
            values["username"] = unquote(parts.username)
        if parts.password:
            values["password"] = unquote(parts.password)
        database = parts.path.strip("/")
        if database:
            values["database"] = unquote(database)
    for key in ("host", "username", "password", "database", "cluster", "table_prefix"):
        if options.get(key) is not None:
            values[key] = str(options[key])
    if options.get("user") is not None and options.get("username") is None:
        values["username"] = str(options["user"])
    if options.get("port") not in (None, ""):
        values["port"] = _as_int("port", options["port"])
    if options.get("secure") is not None:
        values["secure"] = _as_bool("secure", options["secure"])
    if options.get("compress") is not None:
        values["compress"] = _as_bool("compress", options["compress"])
    if options.get("ttl_days") not in (None, ""):
        values["ttl_days"] = _as_int("ttl_days", options["ttl_days"])
    if options.get("ddl_timeout") is not None:
        try:
            values["ddl_timeout"] = float(options["ddl_timeout"])
        except (TypeError, ValueError):
            raise ConfigError(f"clickhouse option 'ddl_timeout' must be seconds, got {options['ddl_timeout']!r}") from None
    if values.get("cluster") == "":
        values["cluster"] = None
    parsed = ClickHouseOptions(**values)
    quote_identifier(parsed.database)
    return parsed
