"""Versioned migrations of the PostgreSQL cold tier: recorded, run once, safe when processes start together."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from importlib import resources

import asyncpg
import pytest

from contextkit.records import ARCHIVE_TABLES, Session, utcnow
from contextkit.stores import StoreSettings
from contextkit.testing.cold import session_event
from contextkit.testing.postgres_server import find_postgres_bindir
from contextkit.testing.services import missing_service
from contextkit_postgres.schema import MIGRATIONS_TABLE, load_migrations
from contextkit_postgres.store import PostgresColdStore

pytestmark = pytest.mark.postgres

StoreBuilder = Callable[..., PostgresColdStore]


async def _fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=15)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _tables(url: str, schema: str) -> set[str]:
    rows = await _fetch(url, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
    return {row[0] for row in rows}


def test_the_first_migration_ships_as_a_sql_file_in_the_package() -> None:
    """001_context_permanent_tables.sql is a package resource, and it is what the code runs (one source of truth)."""
    sql_file = resources.files("contextkit_postgres").joinpath("migrations/001_context_permanent_tables.sql")
    text = sql_file.read_text(encoding="utf-8")
    first = load_migrations()[0]
    assert (first.version, first.name) == (1, "context_permanent_tables")
    assert first.sql == text
    for table in ARCHIVE_TABLES:
        assert f':"schema".{table}' in text
    assert 'CREATE TABLE IF NOT EXISTS "x""y".context_sessions' in first.render('x"y')


async def test_open_creates_the_six_tables_and_records_each_version(
    pg_stores: StoreBuilder, new_settings: Callable[..., StoreSettings], postgres_url: str
) -> None:
    store = pg_stores(new_settings())
    await store.open()
    assert store.migrations_applied == [m.version for m in load_migrations()]
    assert await _tables(postgres_url, store.schema) == {*ARCHIVE_TABLES, MIGRATIONS_TABLE}
    rows = await _fetch(postgres_url, f'SELECT version, name, applied_at FROM "{store.schema}".{MIGRATIONS_TABLE}')
    assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in load_migrations()]
    assert all(r["applied_at"] is not None for r in rows)
    health = await store.health()
    assert health["schema_version"] == health["schema_version_expected"] == load_migrations()[-1].version


async def test_reopening_an_up_to_date_schema_runs_no_migration(
    pg_stores: StoreBuilder, new_settings: Callable[..., StoreSettings], postgres_url: str
) -> None:
    settings = new_settings()
    first = pg_stores(settings)
    await first.open()
    before = await _fetch(postgres_url, f'SELECT version, applied_at FROM "{first.schema}".{MIGRATIONS_TABLE}')
    await first.aclose()
    second = pg_stores(settings)
    await second.open()
    await second.open()  # idempotent
    assert second.migrations_applied == []
    after = await _fetch(postgres_url, f'SELECT version, applied_at FROM "{second.schema}".{MIGRATIONS_TABLE}')
    assert after == before


async def test_stores_opening_concurrently_on_a_fresh_schema_all_succeed(
    pg_stores: StoreBuilder, new_settings: Callable[..., StoreSettings], postgres_url: str
) -> None:
    """Four stores (four pools, as four processes would have) open the same fresh schema at once: the advisory
    lock lets one migrate and the others find the work done."""
    settings = new_settings()
    stores = [pg_stores(settings) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    applied = sorted(v for store in stores for v in store.migrations_applied)
    assert applied == [m.version for m in load_migrations()]
    rows = await _fetch(postgres_url, f'SELECT version FROM "{settings.namespace}".{MIGRATIONS_TABLE}')
    assert [r[0] for r in rows] == [m.version for m in load_migrations()]
    reports = await asyncio.gather(*(store.health() for store in stores))
    assert [r["status"] for r in reports] == ["healthy"] * 4


async def test_the_sql_file_applied_by_hand_with_psql_is_adopted_by_the_store(
    pg_stores: StoreBuilder, new_settings: Callable[..., StoreSettings], postgres_url: str
) -> None:
    """``psql -v schema=... -f 001_context_permanent_tables.sql`` creates the tables; a store opened afterwards
    records the migration without failing on the existing objects."""
    bindir = find_postgres_bindir()
    psql = str(bindir / "psql") if bindir and (bindir / "psql").is_file() else shutil.which("psql")
    if psql is None:
        missing_service("psql", "the psql client is not installed")
    settings = new_settings()
    store = pg_stores(settings)
    sql_path = resources.files("contextkit_postgres").joinpath("migrations/001_context_permanent_tables.sql")
    with resources.as_file(sql_path) as path:
        result = await asyncio.to_thread(
            subprocess.run,
            [psql, postgres_url, "-v", "ON_ERROR_STOP=1", "-v", f"schema={store.schema}", "-q", "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert await _tables(postgres_url, store.schema) == set(ARCHIVE_TABLES)
    await store.open()
    # 001 is recorded (its objects exist already); the later ones are applied.
    assert store.migrations_applied == [m.version for m in load_migrations()]
    assert await _tables(postgres_url, store.schema) == {*ARCHIVE_TABLES, MIGRATIONS_TABLE}


async def test_schema_from_a_namespace_with_punctuation_is_valid_and_distinct(pg_stores: StoreBuilder, run_prefix: str) -> None:
    """Namespaces that differ only in punctuation get distinct, valid schemas (never one shared archive)."""
    one = pg_stores(StoreSettings(namespace=f"{run_prefix}-App:one", timeout=15.0))
    two = pg_stores(StoreSettings(namespace=f"{run_prefix}_app_one", timeout=15.0))
    await asyncio.gather(one.open(), two.open())
    assert one.schema != two.schema
    assert one.schema.startswith(run_prefix)
    now = utcnow()
    await one.write_events([session_event(Session("s1", "u1", now, now), "create")])
    assert await two.count_events("context_sessions") == 0
    assert await one.count_events("context_sessions") == 1
