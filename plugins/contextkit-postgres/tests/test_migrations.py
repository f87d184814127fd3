"""Versioned migrations of the PostgreSQL cold tier: recorded, run once, safe when processes start together."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from importlib import resources

import asyncpg
import pytest

from contextkit.records import ARCHIVE_TABLES, Session, utcnow
from contextkit.stores import EventHead, OwnerState, StoreSettings, Versioned
from contextkit.testing.cold import session_event
from contextkit.testing.services import missing_service
from contextkit.testing.services.postgres_server import find_postgres_bindir
from contextkit.tiered import events
from contextkit_postgres.cold import PostgresColdStore
from contextkit_postgres.schema import MIGRATIONS_TABLE, OWNER_TABLE, load_migrations

pytestmark = pytest.mark.postgres

StoreBuilder = Callable[..., PostgresColdStore]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


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
    assert await _tables(postgres_url, store.schema) == {*ARCHIVE_TABLES, MIGRATIONS_TABLE, OWNER_TABLE}
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
    assert await _tables(postgres_url, store.schema) == {*ARCHIVE_TABLES, MIGRATIONS_TABLE, OWNER_TABLE}


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


async def test_an_archive_made_before_versions_migrates_in_place_and_reads_as_before(
    pg_stores: StoreBuilder, new_settings: Callable[..., StoreSettings], postgres_url: str
) -> None:
    """A schema at migration 002 holding rows the earlier store wrote (no version column; a delete whose payload is
    the session, without last_seq) is migrated by open(): 003 and 004, in place. The old rows get version 0 and read
    as before (the newest by created_at; the old delete hides its session and the task context written before it,
    and no message: the archive then kept a deleted session's history readable); new rows, with versions, win over
    them whatever their clocks say."""
    store = pg_stores(new_settings())
    schema, old = store.schema, load_migrations()[:2]
    q = f'"{schema}"'
    conn = await asyncpg.connect(postgres_url, timeout=15)
    try:
        async with conn.transaction():
            for migration in old:
                await conn.execute(migration.render(schema))
            await conn.execute(
                f"CREATE TABLE {q}.{MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())"
            )
            await conn.executemany(
                f"INSERT INTO {q}.{MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)", [(m.version, m.name) for m in old]
            )
        sessions = {n: Session("s1", "u1", T0, T0 + timedelta(seconds=n), request_count=n) for n in (1, 2, 3)}
        gone = Session("gone", "u2", T0, T0)
        await conn.executemany(
            f"INSERT INTO {q}.context_sessions (event_id, session_id, user_id, event_type, payload, created_at) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            [
                ("e1", "s1", "u1", "create", json.dumps(sessions[1].to_dict()), _at(1)),
                ("e3", "s1", "u1", "update", json.dumps(sessions[3].to_dict()), _at(3)),
                ("e2", "s1", "u1", "update", json.dumps(sessions[2].to_dict()), _at(2)),
                ("g1", "gone", "u2", "create", json.dumps(gone.to_dict()), _at(1)),
                ("g2", "gone", "u2", "delete", json.dumps(gone.to_dict()), _at(5)),
            ],
        )
        await conn.executemany(
            f"INSERT INTO {q}.context_conversations (event_id, session_id, role, content, seq, message_id, sent_at, "
            "created_at) VALUES ($1, $2, 'user', $3, $4, $1, $5, $5)",
            [(f"{key}-m{seq}", key, f"{key} {seq}", seq, _at(seq)) for key, count in (("s1", 3), ("gone", 2))
             for seq in range(1, count + 1)],
        )
        await conn.executemany(
            f"INSERT INTO {q}.context_task_contexts (event_id, session_id, context_data, created_at) "
            "VALUES ($1, $2, $3::jsonb, $4)",
            [("t2", "s1", '{"v": 2}', _at(2)), ("t1", "s1", '{"v": 1}', _at(1)), ("t3", "gone", '{"v": 3}', _at(4))],
        )
        await conn.execute(
            f"INSERT INTO {q}.context_conversation_sessions (event_id, session_key, session_data, created_at) "
            """VALUES ('k1', 'k1', '{"session_id": "s1", "session_key": "k1"}', $1)""",
            _at(1),
        )
        await conn.executemany(
            f"INSERT INTO {q}.context_checkpoints (event_id, thread_id, checkpoint_id, data, created_at) "
            "VALUES ($1, 's1', 'c1', $2::jsonb, $3)",
            [("c2", '{"n": 2}', _at(2)), ("c1", '{"n": 1}', _at(1))],
        )
    finally:
        await conn.close()

    await store.open()
    assert store.migrations_applied == [3, 4]
    got = await store.read_session("s1")
    assert got == sessions[3] and got is not None and got.version == 0
    assert await store.read_session("gone") is None
    assert [m.content for m in await store.read_history("gone", None)] == ["gone 1", "gone 2"]
    assert [m.seq for m in await store.read_history("s1", 2)] == [2, 3]
    assert await store.read_task_context("s1") == {"v": 2}
    assert await store.read_task_context("gone") is None
    assert await store.read_conversation_session("k1") == {"session_id": "s1", "session_key": "k1"}
    assert await store.conversation_keys_of("s1") == ["k1"]
    assert await store.read_checkpoint_document("s1", "c1") == {"n": 2}
    assert await store.read_checkpoint_document("s1", None) == {"n": 2}
    assert await store.read_owner("s1") == OwnerState(
        "s1", version=0, last_seq=3, session=sessions[3], task_context=Versioned(0, {"v": 2})
    )
    assert await store.read_owner("gone") == OwnerState("gone", version=0, last_seq=2, deleted=True)
    versions = await _fetch(postgres_url, f"SELECT DISTINCT version FROM {q}.context_sessions")
    assert [r[0] for r in versions] == [0]

    # Versioned rows on top: the hot tier's order wins over the old rows' later clocks.
    later = replace(Session("s1", "u1", T0, T0, request_count=9), version=1)
    await store.write_events([events.session_event(later, EventHead("update", "v1", _at(0)))])
    assert await store.read_session("s1") == later
    indexes = {r[0] for r in await _fetch(postgres_url, "SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema)}
    assert {"context_sessions_session_version_idx", "context_sessions_delete_idx"} <= indexes
    assert "context_sessions_session_created_idx" not in indexes
