"""Versioned schema migrations of the PostgreSQL cold tier.

Migrations are the SQL files of ``contextkit_postgres/migrations/`` named ``NNN_description.sql`` (the files are
the single source of truth; they use psql's ``:"schema"`` placeholder, so they also run by hand with
``psql -v schema=...``). :func:`migrate` applies the missing ones in order and records each in
``<schema>.contextkit_migrations`` (the shared runner, :mod:`contextkit.backend.migrations`), all in one
transaction that first takes a transaction-scoped advisory lock derived from the schema name: two processes
starting together never race, and the loser sees the winner's work.

Ownership: migration 004 adds ``<schema>.contextkit_namespace``, one row naming the namespace that owns the schema.
:func:`resolve_schema` picks the schema a store opens (its namespace's percent name, or the name an earlier version
gave the namespace when that one holds its archive), and :func:`claim_schema` records the owner on first use and
raises :class:`~contextkit.errors.ConfigError` when another namespace owns the schema.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from importlib import resources
from typing import Any

from contextkit.backend.migrations import Migration as SharedMigration
from contextkit.backend.migrations import apply_migrations
from contextkit.backend.migrations import load_migrations as load_migration_files
from contextkit.errors import ConfigError
from contextkit_postgres.options import quote_identifier

__all__ = [
    "MIGRATIONS_TABLE",
    "OWNER_TABLE",
    "Migration",
    "adopt_aiecs_tables",
    "applied_versions",
    "claim_schema",
    "load_migrations",
    "migrate",
    "resolve_schema",
    "schema_owner",
]

MIGRATIONS_TABLE = "contextkit_migrations"
#: The table (created by migration 004) holding the namespace that owns its schema.
OWNER_TABLE = "contextkit_namespace"


class Migration(SharedMigration):
    """One migration file: its version, name and SQL (``text``, with the ``:"schema"`` placeholder)."""

    __slots__ = ()

    @property
    def sql(self) -> str:
        """The SQL as written in the file."""
        return self.text

    def render(self, schema: str) -> str:
        """The SQL with the schema substituted as a quoted identifier."""
        return self.text.replace(':"schema"', quote_identifier(schema))


@lru_cache(maxsize=1)
def load_migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, ordered by version."""
    return load_migration_files("contextkit_postgres", Migration)


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"contextkit_postgres:migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def applied_versions(conn: Any, schema: str) -> set[int]:
    """Versions recorded in the schema's migrations table (empty when the table does not exist yet)."""
    table = f"{quote_identifier(schema)}.{MIGRATIONS_TABLE}"
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
    if not exists:
        return set()
    return {int(row[0]) for row in await conn.fetch(f"SELECT version FROM {table}")}


class _Ledger:
    """The migrations of one schema on one connection (:class:`contextkit.backend.migrations.MigrationLedger`):
    applied in one transaction that first takes a transaction-scoped advisory lock derived from the schema name,
    so the DDL and its records commit together and two processes starting at once never race."""

    def __init__(self, conn: Any, schema: str, timeout: float | None) -> None:
        self.conn = conn
        self.schema = schema
        self.quoted = quote_identifier(schema)
        self.timeout = timeout

    async def applied(self) -> set[int]:
        return await applied_versions(self.conn, self.schema)

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self.conn.transaction():
            await self.conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(self.schema), timeout=self.timeout)
            await self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quoted}", timeout=self.timeout)
            await self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.quoted}.{MIGRATIONS_TABLE} ("
                " version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())",
                timeout=self.timeout,
            )
            yield

    async def apply(self, migration: Migration) -> None:
        if migration.version == 1:
            # A schema never migrated may hold the original ContextEngine's tables: they become contextkit's.
            await adopt_aiecs_tables(self.conn, self.schema, self.timeout)
        await self.conn.execute(migration.render(self.schema), timeout=self.timeout)
        await self.conn.execute(
            f"INSERT INTO {self.quoted}.{MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)",
            migration.version,
            migration.name,
            timeout=self.timeout,
        )


async def migrate(conn: Any, schema: str, timeout: float | None = None) -> list[int]:
    """Apply the missing migrations on ``conn``; returns the versions applied now (``[]`` when up to date)."""
    return await apply_migrations(_Ledger(conn, schema, timeout), load_migrations())


def _adoption_blocks() -> dict[str, str]:
    """The adoption statements per table (``migrations/adopt_aiecs_tables.sql``, one block per table)."""
    text = resources.files("contextkit_postgres").joinpath("migrations", "adopt_aiecs_tables.sql").read_text("utf-8")
    blocks: dict[str, str] = {}
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and lines[0].startswith("-- table: "):
            blocks[lines[0][len("-- table: ") :].strip()] = "\n".join(lines[1:])
    return blocks


async def adopt_aiecs_tables(conn: Any, schema: str, timeout: float | None = None) -> list[str]:
    """Adopt, in ``schema``, the tables the original ContextEngine (AIECS) created: each of the six that exists
    without an ``event_id`` column gets contextkit's columns, its rows kept (see ``adopt_aiecs_tables.sql``).
    Returns the tables adopted. Called by :func:`migrate` (in its transaction) for a schema never migrated."""
    adopted = []
    for table, sql in _adoption_blocks().items():
        if not await _exists(conn, schema, table):
            continue
        has_event_id = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2 AND column_name = 'event_id')",
            schema,
            table,
        )
        if not has_event_id:
            await conn.execute(Migration(0, "adopt_aiecs_tables", sql).render(schema), timeout=timeout)
            adopted.append(table)
    return adopted


async def _exists(conn: Any, schema: str, table: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{quote_identifier(schema)}.{table}"))


async def schema_owner(conn: Any, schema: str) -> str | None:
    """The namespace recorded as the owner of ``schema``, or None (no owner yet, or a schema of an earlier version)."""
    if not await _exists(conn, schema, OWNER_TABLE):
        return None
    owner = await conn.fetchval(f"SELECT namespace FROM {quote_identifier(schema)}.{OWNER_TABLE}")
    return None if owner is None else str(owner)


async def resolve_schema(conn: Any, schema: str, legacy_schema: str | None, namespace: str) -> str:
    """The schema a store of ``namespace`` opens: ``schema`` (the percent name), unless it holds no archive yet and
    ``legacy_schema`` (the name an earlier version gave the namespace) holds one that no other namespace owns; so an
    archive written before the upgrade stays readable, in place."""
    if legacy_schema is None or legacy_schema == schema or await _exists(conn, schema, MIGRATIONS_TABLE):
        return schema
    if not await _exists(conn, legacy_schema, MIGRATIONS_TABLE):
        return schema
    owner = await schema_owner(conn, legacy_schema)
    return legacy_schema if owner in (None, namespace) else schema


async def claim_schema(conn: Any, schema: str, namespace: str, timeout: float | None = None) -> None:
    """Record ``namespace`` as the owner of ``schema`` unless one is recorded already (one atomic INSERT: of two
    namespaces claiming together, one wins); raise :class:`~contextkit.errors.ConfigError` when the owner is
    another namespace."""
    table = f"{quote_identifier(schema)}.{OWNER_TABLE}"
    owner = await conn.fetchval(f"SELECT namespace FROM {table}", timeout=timeout)
    if owner is None:
        await conn.execute(
            f"INSERT INTO {table} (namespace) VALUES ($1) ON CONFLICT (singleton) DO NOTHING", namespace, timeout=timeout
        )
        owner = await conn.fetchval(f"SELECT namespace FROM {table}", timeout=timeout)
    if owner != namespace:
        raise ConfigError(
            f"the postgres schema {schema!r} holds the archive of namespace {owner!r}, not of {namespace!r}; give "
            f"this namespace a schema of its own ([postgres] schema = ...) or use another namespace"
        )
