"""The ClickHouse schema of the cold tier: table layout, DDL rendering and the versioned migrations.

The DDL lives in ``contextkit_clickhouse/migrations/NNN_<name>.sql`` files (the only copy); this module reads them,
substitutes the placeholders for database, table prefix, engine, cluster and TTL, and applies the ones not yet
recorded in the ``<prefix>schema_migrations`` table. Rendering does no I/O, so the generated cluster DDL can be
checked without a cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from string import Template

from contextkit.backend.migrations import Migration as SharedMigration
from contextkit.backend.migrations import load_migrations as load_migration_files
from contextkit.backend.tables import KEY_COLUMNS, ArchiveTables  # KEY_COLUMNS is re-exported
from contextkit.errors import ConfigError
from contextkit.naming import legacy_name, percent_name

__all__ = [
    "KEY_COLUMNS",
    "MAX_TABLE_FILE_NAME",
    "OWNER_TABLE",
    "TABLE_COLUMNS",
    "Migration",
    "SchemaTarget",
    "AIECS_BACKUP_SUFFIX",
    "aiecs_copy_statements",
    "legacy_table_prefix_for",
    "load_migrations",
    "migrations_table_ddl",
    "owner_table_ddl",
    "quote_identifier",
    "table_prefix_for",
]

#: Columns written by the store, in insert order, with their ClickHouse types (sent with every insert, which saves
#: clickhouse-connect a DESCRIBE round trip per batch). ``version`` (and ``last_seq``) come from migration 002.
TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    ArchiveTables.SESSIONS: (
        ("session_id", "String"),
        ("user_id", "String"),
        ("event_type", "LowCardinality(String)"),
        ("payload", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
        ("version", "UInt64"),
        ("last_seq", "UInt64"),
    ),
    ArchiveTables.CONVERSATIONS: (
        ("session_id", "String"),
        ("seq", "UInt64"),
        ("message_id", "String"),
        ("role", "LowCardinality(String)"),
        ("content", "String"),
        ("metadata", "String"),
        ("timestamp", "DateTime64(6, 'UTC')"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
        ("version", "UInt64"),
    ),
    ArchiveTables.TASK_CONTEXTS: (
        ("session_id", "String"),
        ("context_data", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
        ("version", "UInt64"),
    ),
    ArchiveTables.CHECKPOINTS: (
        ("thread_id", "String"),
        ("checkpoint_id", "String"),
        ("data", "String"),
        ("metadata", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
        ("version", "UInt64"),
    ),
    ArchiveTables.CHECKPOINT_WRITES: (
        ("thread_id", "String"),
        ("checkpoint_id", "String"),
        ("task_id", "String"),
        ("writes_data", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
        ("version", "UInt64"),
    ),
    ArchiveTables.CONVERSATION_SESSIONS: (
        ("session_key", "String"),
        ("session_data", "String"),
        ("created_at", "DateTime64(6, 'UTC')"),
        ("event_id", "String"),
        ("version", "UInt64"),
    ),
}

# Letters, digits and the other characters of a percent name: none needs escaping inside backquotes or quotes.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.~%\-]+$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.~%\-]*$")
_FILE_NAME_SAFE = re.compile(r"[A-Za-z0-9_]")
#: Longest table name, as ClickHouse writes it into a file name (every character outside ``[A-Za-z0-9_]`` takes
#: three bytes there), that a derived prefix may produce; a namespace past it falls back to a hashed prefix.
MAX_TABLE_FILE_NAME = 200
#: The longest table name a prefix is put in front of.
_LONGEST_TABLE = "context_conversation_sessions_local"
#: The table whose comment names the namespace owning a prefix.
OWNER_TABLE = "namespace_owner"
_REPLICATED_ENGINE = "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"


def quote_identifier(name: str) -> str:
    """``name`` in backticks; only letters, digits and ``_ . ~ % -`` are accepted, so no escaping is ever needed."""
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"not a plain ClickHouse identifier: {name!r} (letters, digits and _ . ~ % - only)")
    return f"`{name}`"


def _file_name_length(name: str) -> int:
    return sum(1 if _FILE_NAME_SAFE.match(char) else 3 for char in name)


def table_prefix_for(namespace: str) -> str:
    """The table prefix of a namespace: its percent name (:func:`contextkit.naming.percent_name`), then ``_``.

    A namespace of letters, digits, ``_``, ``.`` and ``-`` (every namespace the configuration accepts) is its own
    percent name, so ``contextkit`` keeps the prefix ``contextkit_`` of earlier versions; ``MyApp`` gets ``MyApp_``
    and ``my-app`` ``my-app_`` (ClickHouse names are case-sensitive). The percent name decodes back to the
    namespace, and no table name ends with ``_`` plus another table name, so two namespaces never share a table.
    A namespace whose tables would get too long a name falls back to :func:`legacy_table_prefix_for`; that one is
    not injective, so the store records the namespace owning each prefix and refuses a second one.
    """
    prefix = percent_name(namespace) + "_"
    if namespace and _file_name_length(prefix + _LONGEST_TABLE) <= MAX_TABLE_FILE_NAME:
        return prefix
    return legacy_table_prefix_for(namespace)


def legacy_table_prefix_for(namespace: str) -> str:
    """The table prefix versions before the percent names gave a namespace (the store finds tables under it again,
    so an archive written before the upgrade stays readable; also the fallback for a namespace too long for its
    percent name): its lowercase letters, digits and ``_``, then ``_``, with 8 hex digits of its SHA-1 when
    characters were replaced or the name was long. Not injective (``A`` and ``a_6dcd4ce2`` both give
    ``a_6dcd4ce2_``), which is why it is no longer the first choice.
    """
    cleaned = legacy_name(namespace, longest=40, keep=40)
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
            raise ConfigError(f"table prefix {self.table_prefix!r} may hold only letters, digits and _ . ~ % -")
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


class Migration(SharedMigration):
    """One versioned migration file: its version, name, raw text and checksum (recorded with it)."""

    __slots__ = ()

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


def load_migrations() -> tuple[Migration, ...]:
    """Every ``migrations/NNN_name.sql`` shipped in the package, by version."""
    return load_migration_files("contextkit_clickhouse", Migration)


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


def owner_table_ddl(target: SchemaTarget, namespace: str) -> str:
    """DDL of the table whose comment names the namespace owning ``target``'s prefix (its percent name).

    ClickHouse has no transactions, but it runs two ``CREATE TABLE IF NOT EXISTS`` of one name one after the other
    (and an ``ON CLUSTER`` one in queue order on every node): the first creates the table with its comment, the
    second changes nothing. So the comment read back afterwards names the same owner for every claimant.
    """
    name = f"{quote_identifier(target.database)}.{quote_identifier(target.table_prefix + OWNER_TABLE)}"
    on_cluster = f" {target.on_cluster}" if target.cluster else ""
    # A percent name holds no quote or backslash, so it is safe inside the string literal as it is.
    return (
        f"CREATE TABLE IF NOT EXISTS {name}{on_cluster} (namespace String) ENGINE = MergeTree ORDER BY tuple() "
        f"COMMENT '{percent_name(namespace)}'"
    )


#: The suffix under which :func:`aiecs_adoption` keeps a table the original ContextEngine (AIECS) created.
AIECS_BACKUP_SUFFIX = "__aiecs_original"


def _row_hash(columns: str) -> str:
    return f"lower(hex(cityHash64({columns})))"


def aiecs_copy_statements(target: SchemaTarget) -> dict[str, str]:
    """Per archive table, the ``INSERT ... SELECT`` copying the rows of the original's table (kept under
    :data:`AIECS_BACKUP_SUFFIX`) into contextkit's: the original's columns as they are, plus an event id derived
    from the row, and for messages their position in the stream (by time), their id (the agent message's own when
    the metadata has one) and their time; a checkpoint's ``data`` becomes the document contextkit stores there."""

    def copy(name: str, columns: str, select: str) -> str:
        return (
            f"INSERT INTO {target.table(name)} ({columns}) SELECT {select} "
            f"FROM {target.table(name + AIECS_BACKUP_SUFFIX)}"
        )

    conversation_hash = _row_hash("session_id, role, content, metadata, created_at")
    return {
        ArchiveTables.SESSIONS: copy(
            ArchiveTables.SESSIONS,
            "session_id, user_id, event_type, payload, created_at, event_id",
            "session_id, user_id, event_type, payload, created_at, concat('aiecs:context_sessions:', "
            + _row_hash("session_id, user_id, event_type, payload, created_at") + ")",
        ),
        ArchiveTables.CONVERSATIONS: copy(
            ArchiveTables.CONVERSATIONS,
            "session_id, seq, message_id, role, content, metadata, timestamp, created_at, event_id",
            "session_id, row_number() OVER (PARTITION BY session_id ORDER BY created_at, "
            + conversation_hash + "), "
            "if(JSONExtractString(metadata, 'message_id') != '', JSONExtractString(metadata, 'message_id'), "
            f"concat('aiecs:', {conversation_hash})), role, content, metadata, created_at, created_at, "
            f"concat('aiecs:context_conversations:', {conversation_hash})",
        ),
        ArchiveTables.TASK_CONTEXTS: copy(
            ArchiveTables.TASK_CONTEXTS,
            "session_id, context_data, created_at, event_id",
            "session_id, context_data, created_at, concat('aiecs:context_task_contexts:', "
            + _row_hash("session_id, context_data, created_at") + ")",
        ),
        ArchiveTables.CHECKPOINTS: copy(
            ArchiveTables.CHECKPOINTS,
            "thread_id, checkpoint_id, data, metadata, created_at, event_id",
            "thread_id, checkpoint_id, concat('{\"checkpoint_id\":', toJSONString(checkpoint_id), "
            "',\"thread_id\":', toJSONString(thread_id), ',\"data\":', data, ',\"metadata\":', metadata, "
            "',\"created_at\":', toJSONString(formatDateTime(created_at, '%Y-%m-%dT%H:%i:%S')), '}'), metadata, "
            "created_at, concat('aiecs:context_checkpoints:', "
            + _row_hash("thread_id, checkpoint_id, data, metadata, created_at") + ")",
        ),
        ArchiveTables.CHECKPOINT_WRITES: copy(
            ArchiveTables.CHECKPOINT_WRITES,
            "thread_id, checkpoint_id, task_id, writes_data, created_at, event_id",
            "thread_id, checkpoint_id, task_id, writes_data, created_at, concat('aiecs:context_checkpoint_writes:', "
            + _row_hash("thread_id, checkpoint_id, task_id, writes_data, created_at") + ")",
        ),
        ArchiveTables.CONVERSATION_SESSIONS: copy(
            ArchiveTables.CONVERSATION_SESSIONS,
            "session_key, session_data, created_at, event_id",
            "session_key, session_data, created_at, concat('aiecs:context_conversation_sessions:', "
            + _row_hash("session_key, session_data, created_at") + ")",
        ),
    }

