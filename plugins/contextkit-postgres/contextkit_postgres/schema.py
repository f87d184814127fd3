"""Versioned schema migrations of the PostgreSQL cold tier.

Migrations are the SQL files of ``contextkit_postgres/migrations/`` named ``NNN_description.sql`` (the files are
the single source of truth; they use psql's ``:"schema"`` placeholder, so they also run by hand with
``psql -v schema=...``). :func:`migrate` applies the missing ones in order and records each in
``<schema>.contextkit_migrations``, all in one transaction that first takes a transaction-scoped advisory lock
derived from the schema name: two processes starting together never race, and the loser sees the winner's work.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from contextkit_postgres.options import quote_identifier

__all__ = ["MIGRATIONS_TABLE", "Migration", "applied_versions", "load_migrations", "migrate"]

MIGRATIONS_TABLE = "contextkit_migrations"
_FILE_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name and SQL (with the ``:"schema"`` placeholder)."""

    version: int
    name: str
    sql: str

    def render(self, schema: str) -> str:
        """The SQL with the schema substituted as a quoted identifier."""
        return self.sql.replace(':"schema"', quote_identifier(schema))


@lru_cache(maxsize=1)
def load_migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, ordered by version."""
    found = []
    for entry in resources.files("contextkit_postgres").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migration files share a version: {versions}")
    return tuple(found)


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


async def migrate(conn: Any, schema: str, timeout: float | None = None) -> list[int]:
    """Apply the missing migrations on ``conn``; returns the versions applied now (``[]`` when up to date)."""
    migrations = load_migrations()
    wanted = {m.version for m in migrations}
    # The common case (already migrated) needs no lock and no write.
    if wanted <= await applied_versions(conn, schema):
        return []
    quoted = quote_identifier(schema)
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema), timeout=timeout)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}", timeout=timeout)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quoted}.{MIGRATIONS_TABLE} ("
            " version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())",
            timeout=timeout,
        )
        done = await applied_versions(conn, schema)
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.render(schema), timeout=timeout)
            await conn.execute(
                f"INSERT INTO {quoted}.{MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
                timeout=timeout,
            )
            applied_now.append(migration.version)
    return applied_now
