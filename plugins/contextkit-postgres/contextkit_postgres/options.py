"""The options of the PostgreSQL cold tier: parsing, the schema name of a namespace, and keeping the password out of
sight.

The composer hands the factory a mapping built from the configuration (``[postgres]`` in TOML, or the seed's
``CONTEXT_PG_URL`` > ``POSTGRES_URL`` and ``CONTEXT_PG_DATABASE``). :func:`parse_options` checks it without any I/O
and returns a :class:`PostgresOptions`, whose ``secrets`` every message goes through
:func:`contextkit.masking.mask_secrets` with (driver errors can echo the DSN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from contextkit.errors import ConfigError
from contextkit.masking import check_url_credentials, mask_secrets, remember_secrets, secrets_in
from contextkit.naming import legacy_name, percent_name
from contextkit.plugins import EnvOptions

__all__ = [
    "ENV_VARIABLES",
    "KNOWN_OPTIONS",
    "PostgresOptions",
    "legacy_schema_from_namespace",
    "parse_options",
    "schema_from_namespace",
]

KNOWN_OPTIONS = frozenset(
    {
        "url",
        "database",
        "schema",
        "min_size",
        "max_size",
        "pool",
        "ssl",
        "host",
        "port",
        "user",
        "password",
        "statement_cache_size",
        "server_settings",
    }
)
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
#: The environment variables the tier reads (the seed's names), by option; for ``url`` the first one set wins.
ENV_VARIABLES: dict[str, str | tuple[str, ...]] = {
    "url": ("CONTEXT_PG_URL", "POSTGRES_URL"),
    "database": "CONTEXT_PG_DATABASE",
}


def schema_from_namespace(namespace: str) -> str:
    """The PostgreSQL schema of a namespace: its percent name (:func:`contextkit.naming.percent_name`), used as a
    quoted identifier.

    A namespace of letters, digits, ``_``, ``.`` and ``-`` (every namespace the configuration accepts) is its own
    schema name: ``contextkit`` and ``myapp`` keep the schema earlier versions gave them, ``MyApp`` and ``my-app``
    get ``"MyApp"`` and ``"my-app"``. Other characters are percent-encoded, and a leading ``pg_`` (reserved by
    PostgreSQL) is written ``%70g_``, so the name always decodes back to the namespace: two namespaces never share a
    schema. A name that does not fit in 63 bytes (an empty or very long namespace) falls back to
    :func:`legacy_schema_from_namespace`; that name is not injective, so the store records the namespace owning
    each schema and refuses a second one (:func:`contextkit_postgres.schema.claim_schema`).
    """
    name = percent_name(namespace)
    if name.startswith("pg_"):
        name = "%70" + name[1:]
    if name and len(name) <= _MAX_IDENTIFIER_BYTES:  # a percent name is ASCII: characters are bytes
        return name
    return legacy_schema_from_namespace(namespace)


def legacy_schema_from_namespace(namespace: str) -> str:
    """The schema name versions before the percent names gave a namespace (found again by
    :func:`contextkit_postgres.schema.resolve_schema`, so their archives stay readable; also the fallback for a
    namespace whose percent name does not fit). Lowercase ``[a-z0-9_]``, at most 63 bytes: other characters became
    ``_``, a digit or ``pg_`` start got ``ck_``, and a rewritten or long name got 8 hex digits of its SHA-1. Not
    injective (``A`` and ``a_6dcd4ce2`` both give ``a_6dcd4ce2``), which is why it is no longer the first choice.
    """
    # An empty name, one starting with a digit, or with pg_ (reserved for system schemas) gets ck_ in front.
    return legacy_name(
        namespace,
        longest=_MAX_IDENTIFIER_BYTES,
        keep=_MAX_IDENTIFIER_BYTES - 9,
        reserved=lambda name: not name or name[0].isdigit() or name.startswith("pg_"),
    )


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class PostgresOptions:
    """Validated options of one store (see the package README for their meaning)."""

    #: A ``postgresql://`` URL (a ``+driver`` suffix dropped), or None when ``host`` / ``pool`` is given.
    url: str | None
    #: The database, overriding the URL's (``CONTEXT_PG_DATABASE``), or None.
    database: str | None
    #: The schema holding the tables: the ``schema`` option, else derived from the namespace.
    schema: str
    #: Connections the pool keeps open (1).
    min_size: int
    #: Most connections the pool opens (5).
    max_size: int
    #: A caller's asyncpg pool, used as is and never closed; None: the store creates one at open.
    pool: Any | None
    #: asyncpg's connect keywords from the options: ``host``, ``port``, ``user``, ``password``, ``ssl``,
    #: ``server_settings``, ``statement_cache_size``.
    connect_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: The schema an earlier version gave the namespace, when it differs from :attr:`schema` (None when the
    #: ``schema`` option is set): :meth:`PostgresColdStore.open` keeps using it if it holds this namespace's archive.
    legacy_schema: str | None = None
    #: Every secret of the options (see :func:`contextkit.masking.secrets_in`), hidden from every message.
    secrets: frozenset[str] = frozenset()

    def target(self) -> dict[str, Any]:
        """Where the store points, without credentials: host, port, database, user, schema, TLS mode."""
        info: dict[str, Any] = {"host": None, "port": None, "database": None, "user": None}
        if self.url:
            parts = urlsplit(self.url)
            netloc = parts.netloc.rpartition("@")
            userinfo, hostinfo = netloc[0], netloc[2]
            info["user"] = (unquote(userinfo.split(":", 1)[0]) or None) if userinfo else None
            try:
                info["host"], info["port"] = parts.hostname, parts.port
            except ValueError:  # several hosts ("h1:5432,h2:5433"): report them as written
                info["host"] = unquote(hostinfo) or None
            info["database"] = unquote(parts.path.lstrip("/")) or None
            query = parse_qs(parts.query)
            if "host" in query and not info["host"]:
                info["host"] = query["host"][0]
            if "sslmode" in query:
                info["sslmode"] = query["sslmode"][0]
        for key in ("host", "port", "user"):
            if self.connect_kwargs.get(key) is not None:
                info[key] = self.connect_kwargs[key]
        if self.database:
            info["database"] = self.database
        if self.connect_kwargs.get("ssl") is not None:
            ssl = self.connect_kwargs["ssl"]
            info["ssl"] = ssl if isinstance(ssl, (str, bool)) else type(ssl).__name__
        info["schema"] = self.schema
        # A user name or host read from a URL is no secret, but a mistyped URL can put a piece of one there.
        return {key: mask_secrets(value, self.secrets) if isinstance(value, str) else value for key, value in info.items()}

    def __repr__(self) -> str:
        return f"PostgresOptions({self.target()!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvOptions:
        """The options :data:`ENV_VARIABLES` set in ``env`` (unvalidated text: :func:`parse_options` checks them
        with the rest). The seed selects the tier with ``CONTEXT_PERMANENT_BACKEND=postgres``."""
        return EnvOptions.read("postgres", env, ENV_VARIABLES)


def _int_option(options: Mapping[str, Any], name: str, default: int, minimum: int) -> int:
    value = options.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"postgres option {name!r} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or number < minimum or str(number) != str(value).strip():
        raise ConfigError(f"postgres option {name!r} must be an integer >= {minimum}, got {value!r}")
    return number


def parse_options(namespace: str, options: Mapping[str, Any]) -> PostgresOptions:
    """Check the factory options (no I/O) and derive the schema; raise :class:`ConfigError` on a bad value."""
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise ConfigError(
            f"unknown postgres option(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(KNOWN_OPTIONS))}"
        )
    secrets = secrets_in(options)
    remember_secrets(secrets)
    url = options.get("url")
    if url is not None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigError("postgres option 'url' must be a postgresql:// URL")
        url = url.strip()
        scheme, sep, rest = url.partition("://")
        # SQLAlchemy-style URLs ("postgresql+asyncpg://") name a driver asyncpg does not understand.
        base_scheme = scheme.split("+", 1)[0].lower()
        if not sep:
            # asyncpg reads URLs only; a libpq keyword string ("host=... password=...") is never echoed back.
            raise ConfigError(
                "postgres option 'url' must be a postgresql:// URL; a libpq keyword string (host=... dbname=...) "
                "is not supported: use the URL form or the host, port, user, password and database options"
            )
        if base_scheme not in ("postgresql", "postgres"):
            shown = mask_secrets(scheme, secrets)
            raise ConfigError(f"postgres option 'url' must start with postgresql://, got scheme {shown!r}")
        check_url_credentials(url, "postgres url", single_at=True)  # asyncpg ends the user info at the first '@'
        url = f"{base_scheme}://{rest}"
    database = options.get("database")
    if database is not None and (not isinstance(database, str) or not database.strip()):
        raise ConfigError("postgres option 'database' must be a non-empty string")
    schema = options.get("schema")
    legacy_schema: str | None = None
    if schema is None:
        schema = schema_from_namespace(namespace)
        legacy_schema = legacy_schema_from_namespace(namespace)
        if legacy_schema == schema:
            legacy_schema = None
    elif not isinstance(schema, str) or not schema or "\x00" in schema:
        raise ConfigError("postgres option 'schema' must be a non-empty string")
    elif len(schema.encode("utf-8")) > _MAX_IDENTIFIER_BYTES or schema.lower().startswith("pg_"):
        raise ConfigError(f"postgres schema {schema!r} is longer than 63 bytes or starts with the reserved 'pg_'")
    min_size = _int_option(options, "min_size", 1, 0)
    max_size = _int_option(options, "max_size", 5, 1)
    if min_size > max_size:
        raise ConfigError(f"postgres option min_size ({min_size}) is larger than max_size ({max_size})")
    pool = options.get("pool")
    if pool is not None and not (hasattr(pool, "acquire") and hasattr(pool, "close")):
        raise ConfigError(f"postgres option 'pool' must be an asyncpg pool, got {type(pool).__name__}")
    if pool is None and url is None and not options.get("host"):
        raise ConfigError("the postgres cold tier needs a 'url' option (or CONTEXT_PG_URL / POSTGRES_URL), a 'host', or a 'pool'")
    connect: dict[str, Any] = {}
    for key in ("host", "user", "password", "ssl", "server_settings"):
        if options.get(key) is not None:
            connect[key] = options[key]
    if options.get("port") is not None:
        connect["port"] = _int_option(options, "port", 5432, 1)
    if options.get("statement_cache_size") is not None:
        # 0 is what PgBouncer in transaction mode needs.
        connect["statement_cache_size"] = _int_option(options, "statement_cache_size", 100, 0)
    return PostgresOptions(
        url=url,
        database=database.strip() if isinstance(database, str) else None,
        schema=schema,
        min_size=min_size,
        max_size=max_size,
        pool=pool,
        connect_kwargs=connect,
        legacy_schema=legacy_schema,
        secrets=secrets,
    )
