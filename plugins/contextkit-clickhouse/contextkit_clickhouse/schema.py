"""The ClickHouse schema of the cold tier: table layout, DDL rendering and the versioned migrations.

The DDL lives in ``contextkit_clickhouse/migrations/NNN_<name>.sql`` files (the only copy); this module reads them,
substitutes the placeholders for database, table prefix, engine, cluster and TTL, and applies the ones not yet
recorded in the ``<prefix>schema_migrations`` table. Rendering does no I/O, so the generated cluster DDL can be
checked without a cluster.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from string import Template

from contextkit.errors import ConfigError

__all__ = [
    "KEY_COLUMNS",
    "TABLE_COLUMNS",
    "Migration",
    "SchemaTarget",
    "load_migrations",
    "migrations_table_ddl",
    "quote_identifier",
    "table_prefix_for",
]

#: The lookup-key column of each archive table (``ArchiveEvent.key`` goes there).
KEY_COLUMNS: dict[str, str] = {
    "context_sessions": "session_id",
    "context_conversations": "session_id",
    "context_task_contexts": "session_id",
    "context_checkpoints": "thread_id",
    "context_checkpoint_writes": "thread_id",
    "context_conversation_sessions": "session_key",
}

#: Columns written by the store, in insert order, with their ClickHouse types (sent with every insert, which saves
#: clickhouse-connect a DESCRIBE round trip per batch).
TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "context_sessions": (
        ("session_id", "String"),
        ("user_id", "String"),
        ("event_type", "LowCardinality(String)"),
        ("payload", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
    ),
    "context_conversations": (
        ("session_id", "String"),
        ("seq", "UInt64"),
        ("message_id", "String"),
        ("role", "LowCardinality(String)"),
        ("content", "String"),
        ("metadata", "String"),
        ("timestamp", "DateTime64(6, 'UTC')"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
    ),
    "context_task_contexts": (
        ("session_id", "String"),
        ("context_data", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
    ),
    "context_checkpoints": (
        ("thread_id", "String"),
        ("checkpoint_id", "String"),
        ("data", "String"),
        ("metadata", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
    ),
    "context_checkpoint_writes": (
        ("thread_id", "String"),
        ("checkpoint_id", "String"),
        ("task_id", "String"),
        ("writes_data", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
    ),
    "context_conversation_sessions": (
        ("session_key", "String"),
        ("session_data", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
    ),
}

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]+$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_PREFIX = re.compile(r"^[A-Za-z0-9_]*$")
_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_REPLICATED_ENGINE = "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"


def quote_identifier(name: str) -> str:
    """``name`` in backticks; only plain identifiers are accepted, so no escaping is ever needed."""
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"not a plain ClickHouse identifier: {name!r} (letters, digits and _ only)")
    return f"`{name}`"


def table_prefix_for(namespace: str) -> str:
    """The table prefix of a namespace: its lowercase letters, digits and ``_``, then ``_``.

    When the namespace had other characters (or was long), a short hash of the original is added, so two
    namespaces never share tables (``a-b`` and ``a_b`` differ).
    """
    cleaned = re.sub(r"[^a-z0-9_]", "_", namespace.lower())
    if cleaned != namespace or len(cleaned) > 40:
        digest = hashlib.sha1(namespace.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[:40]}_{digest}"
    return f"{cleaned}_" if cleaned else ""


@dataclass(frozen=True, slots=True)
class SchemaTarget:
    """Where and how the tables are created: database, table prefix, optional cluster and retention."""

    database: str
    table_prefix: str
    cluster: str | None = None
    ttl_days: int | None = None

    def __post_init__(self) -> None:
        quote_identifier(self.database)
        if not _PREFIX.match(self.table_prefix):
            raise ConfigError(f"table prefix {self.table_prefix!r} may hold only letters, digits and _")
        if self.cluster is not None and not _CLUSTER_NAME.match(self.cluster):
            raise ConfigError(f"cluster name {self.cluster!r} may hold only letters, digits, '_', '.' and '-'")
        if self.ttl_days is not None and (
            isinstance(self.ttl_days, bool) or not isinstance(self.ttl_days, int) or self.ttl_days <= 0
        ):
            raise ConfigError(f"ttl_days must be a positive whole number of days, got {self.ttl_days!r}")

    def table(self, name: str) -> str:
        """The qualified name reads and inserts use (the Distributed table on a cluster)."""
        return f"{quote_identifier(self.database)}.{quote_identifier(self.table_prefix + name)}"

    @property
    def on_cluster(self) -> str:
        """``ON CLUSTER `name``` or nothing."""
        return f"ON CLUSTER `{self.cluster}`" if self.cluster else ""

    def placeholders(self) -> dict[str, str]:
        """The values substituted into the migration files."""
        return {
            "db": quote_identifier(self.database),
            "db_name": f"'{self.database}'",
            "prefix": self.table_prefix,
            "local": "_local" if self.cluster else "",
            "on_cluster": self.on_cluster,
            "engine": _REPLICATED_ENGINE if self.cluster else "ReplacingMergeTree",
            "ttl": f"TTL toDateTime(created_at) + INTERVAL {self.ttl_days} DAY" if self.ttl_days else "",
            "cluster": f"'{self.cluster}'" if self.cluster else "''",
        }


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned migration file: its version, name, raw text and checksum."""

    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file text (recorded with the migration)."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    def statements(self, target: SchemaTarget) -> list[str]:
        """The DDL statements of this migration for ``target``, in order (cluster-only ones only on a cluster)."""
        values = target.placeholders()
        rendered = []
        body: list[str] = []
        cluster_only = False
        # A statement ends at a line ending with ";"; comment lines (which may hold ";") are never part of one.
        for line in self.text.splitlines():
            stripped = line.strip()
            if stripped.startswith("--"):
                cluster_only = cluster_only or stripped == "-- @cluster-only"
                continue
            if not stripped:
                continue
            body.append(line.rstrip())
            if stripped.endswith(";"):
                sql = Template("\n".join(body).rstrip().rstrip(";")).substitute(values)
                if target.cluster or not cluster_only:
                    # empty placeholders leave blank lines and trailing spaces behind; drop them for readable DDL
                    rendered.append("\n".join(part.rstrip() for part in sql.splitlines() if part.strip()))
                body, cluster_only = [], False
        if body:
            raise ConfigError(f"migration {self.version:03d}_{self.name}.sql ends without ';'")
        return rendered


def load_migrations() -> list[Migration]:
    """Every ``migrations/NNN_name.sql`` shipped in the package, by version."""
    found = []
    for entry in resources.files("contextkit_clickhouse").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"two migration files share a version: {versions}")
    return found


def migrations_table_ddl(target: SchemaTarget) -> str:
    """DDL of the table recording applied migrations.

    On a cluster it is replicated to every node of every shard (one ZooKeeper path without ``{shard}``), so a
    client connected to any node sees which migrations ran.
    """
    engine = (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}', applied_at)"
        if target.cluster
        else "ReplacingMergeTree(applied_at)"
    )
    name = f"{quote_identifier(target.database)}.{quote_identifier(target.table_prefix + 'schema_migrations')}"
    on_cluster = f" {target.on_cluster}" if target.cluster else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {name}{on_cluster}\n"
        "(\n"
        "    version     UInt32,\n"
        "    name        String,\n"
        "    checksum    String,\n"
        "    applied_at  DateTime64(3, 'UTC')\n"
        ")\n"
        f"ENGINE = {engine}\n"
        "ORDER BY version"
    )
