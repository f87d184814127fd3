"""Namespaces keep apart on real servers, and a physical name another namespace owns is refused.

The names themselves are proven injective in ``tests/test_namespace_names.py``; here the stores run against real
servers: a PostgreSQL and a Redis this module starts itself (so the literal namespaces of the report, ``A`` and
``a_6dcd4ce2``, can be used without touching the machine's servers), the session's ClickHouse (a database of this
module, dropped at the end) and SQLite files. The owner records (PostgreSQL ``<schema>.contextkit_namespace``,
ClickHouse ``<prefix>namespace_owner``) are shown refusing a second namespace on the names that are not injective:
an explicit ``schema`` / ``table_prefix``, the hashed fallback of a namespace too long for its percent name, and
the name an earlier version gave a namespace, which stays readable after the upgrade.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import clickhouse_connect
import pytest
import redis.asyncio as aioredis

from contextkit.archiver import outbox_table_sql
from contextkit.errors import ConfigError
from contextkit.records import Message, Session, utcnow
from contextkit.stores import StoreSettings
from contextkit.testing.cold import message_event, session_event
from contextkit.testing.hot import make_message, make_session
from contextkit.testing.services.clickhouse_server import ClickHouseService
from contextkit.testing.services.postgres_server import PostgresServer
from contextkit.testing.services.redis_servers import RedisServer, private_redis_server
from contextkit_clickhouse import ClickHouseColdStore
from contextkit_clickhouse.schema import OWNER_TABLE as CLICKHOUSE_OWNER_TABLE
from contextkit_clickhouse.schema import legacy_table_prefix_for
from contextkit_postgres import PostgresColdStore
from contextkit_postgres.options import legacy_schema_from_namespace, schema_from_namespace
from contextkit_postgres.schema import OWNER_TABLE as POSTGRES_OWNER_TABLE
from contextkit_redis import RedisHotStore
from contextkit_sqlite import SqliteColdStore, SqliteHotStore

TIMEOUT = 15.0
#: The two namespaces of the report: ``a_`` + 8 hex of sha1("A") was the old schema and prefix of both.
REPORTED = ("A", "a_6dcd4ce2")


def settings(namespace: str) -> StoreSettings:
    return StoreSettings(namespace=namespace, timeout=TIMEOUT)


def session(session_id: str, user_id: str) -> Session:
    now = utcnow()
    return Session(session_id, user_id, now, now)


def message(seq: int, content: str) -> Message:
    return Message("user", content, utcnow() + timedelta(microseconds=seq), {}, id=uuid.uuid4().hex, seq=seq)


async def archive_one_session_each(stores: dict[str, Any]) -> None:
    """Every store archives session ``s1`` of a user named after its namespace, and one message of its own."""
    for namespace, store in stores.items():
        await store.write_events([session_event(session("s1", f"user of {namespace}"), "create")])
        await store.write_events([message_event("s1", message(1, f"said in {namespace}"))])


async def assert_each_reads_its_own(stores: dict[str, Any]) -> None:
    for namespace, store in stores.items():
        found = await store.read_session("s1")
        assert found is not None and found.user_id == f"user of {namespace}", (namespace, found)
        assert [m.content for m in await store.read_history("s1", None)] == [f"said in {namespace}"]


async def delete_in_the_second_and_check_the_first(stores: dict[str, Any]) -> None:
    """The report: the second kit deleted the first one's session. A delete now stays in its own archive."""
    first, second = stores.values()
    await second.write_events([session_event(session("s1", "gone"), "delete")])
    assert await second.read_session("s1") is None
    kept = await first.read_session("s1")
    assert kept is not None and kept.user_id.startswith("user of ")


# -- PostgreSQL ------------------------------------------------------------------------------------------------------
async def _pg_execute(dsn: str, *statements: str) -> list[Any]:
    conn = await asyncpg.connect(dsn, timeout=TIMEOUT)
    try:
        results = []
        for statement in statements:
            results.append(await conn.fetch(statement))
        return results
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def names_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module (trust authentication): literal schema names never meet other tests."""
    server = PostgresServer.create_or_skip()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def pg_stores(names_postgres: PostgresServer) -> AsyncIterator[Any]:
    """Builds opened PostgreSQL cold stores on the module's server; closes them and drops every schema after."""
    made: list[PostgresColdStore] = []

    async def build(namespace: str, **options: Any) -> PostgresColdStore:
        store = PostgresColdStore(settings(namespace), {"url": names_postgres.dsn, **options})
        made.append(store)
        await store.open()
        return store

    yield build
    for store in made:
        await store.aclose()
    [rows] = await _pg_execute(
        names_postgres.dsn,
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('public', 'information_schema')",
    )
    for (name,) in rows:
        await _pg_execute(names_postgres.dsn, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.mark.postgres
async def test_postgres_a_and_a_6dcd4ce2_get_their_own_schemas_and_archives(pg_stores: Any) -> None:
    """``A`` and ``a_6dcd4ce2`` shared the schema ``a_6dcd4ce2``; now each has its own, reads only its own session
    and messages, and a delete in one leaves the other's session in place."""
    stores = {namespace: await pg_stores(namespace) for namespace in REPORTED}
    assert [store.schema for store in stores.values()] == ["A", "a_6dcd4ce2"]
    await archive_one_session_each(stores)
    await assert_each_reads_its_own(stores)
    await delete_in_the_second_and_check_the_first(stores)


@pytest.mark.postgres
async def test_postgres_a_schema_owned_by_another_namespace_is_refused_with_a_config_error(
    pg_stores: Any, names_postgres: PostgresServer
) -> None:
    """Two namespaces given one explicit ``schema``: the second store's open raises ConfigError naming both; the
    owner reopens as before, and the owner record holds its namespace."""
    owner = await pg_stores("team-a", schema="shared_archive")
    await owner.write_events([session_event(session("s1", "a"), "create")])
    with pytest.raises(ConfigError, match=r"holds the archive of namespace 'team-a', not of 'team-b'"):
        await pg_stores("team-b", schema="shared_archive")
    again = await pg_stores("team-a", schema="shared_archive")
    assert (await again.read_session("s1")) is not None
    rows = (await _pg_execute(names_postgres.dsn, f"SELECT namespace FROM shared_archive.{POSTGRES_OWNER_TABLE}"))[0]
    assert [row["namespace"] for row in rows] == ["team-a"]


@pytest.mark.postgres
async def test_postgres_the_hashed_schema_of_a_long_namespace_is_refused_to_the_namespace_named_like_it(
    pg_stores: Any,
) -> None:
    """A 64-character namespace has no room for its percent name and keeps its hashed schema (as before); the
    plain namespace spelled like that schema maps to the same name, and its store is refused."""
    long_namespace = "x" * 64
    hashed = schema_from_namespace(long_namespace)
    assert hashed == schema_from_namespace(hashed) == legacy_schema_from_namespace(long_namespace)
    await pg_stores(long_namespace)
    with pytest.raises(ConfigError, match="holds the archive of namespace"):
        await pg_stores(hashed)


@pytest.mark.postgres
async def test_postgres_an_archive_written_under_the_old_schema_name_stays_readable_after_the_upgrade(
    pg_stores: Any, names_postgres: PostgresServer
) -> None:
    """``my-app`` was archived in ``my_app_431cf07b`` by an earlier version (emulated: that schema without the
    owner table and migration 004). After the upgrade the store finds it there, reads it, and records the owner,
    so the plain namespace ``my_app_431cf07b`` (which maps to that name) is refused rather than sharing it."""
    old = legacy_schema_from_namespace("my-app")
    assert old == "my_app_431cf07b" and schema_from_namespace("my-app") == "my-app"
    before = await pg_stores("my-app", schema=old)
    await archive_one_session_each({"my-app": before})
    await before.aclose()
    await _pg_execute(
        names_postgres.dsn,
        f"DROP TABLE {old}.{POSTGRES_OWNER_TABLE}",
        f"DELETE FROM {old}.contextkit_migrations WHERE version = 4",
    )
    upgraded = await pg_stores("my-app")
    assert upgraded.schema == old
    assert upgraded.migrations_applied == [4]
    await assert_each_reads_its_own({"my-app": upgraded})
    with pytest.raises(ConfigError, match="holds the archive of namespace 'my-app'"):
        await pg_stores(old)
    # a namespace with no archive under its old name starts in its new schema
    fresh = await pg_stores("Fresh-App")
    assert fresh.schema == "Fresh-App"


# -- ClickHouse ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def names_database() -> str:
    """The ClickHouse database of this module (so literal prefixes never meet other tests)."""
    return f"cknames_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def ch_stores(clickhouse: ClickHouseService, names_database: str) -> AsyncIterator[Any]:
    """Builds opened ClickHouse cold stores in the module's database; drops the database after the test."""
    made: list[ClickHouseColdStore] = []

    async def build(namespace: str, **options: Any) -> ClickHouseColdStore:
        store = ClickHouseColdStore(settings(namespace), {"url": clickhouse.database_url(names_database), **options})
        made.append(store)
        await store.open()
        return store

    yield build
    for store in made:
        await store.aclose()
    client = await clickhouse_connect.get_async_client(dsn=clickhouse.url)
    try:
        await client.command(f"DROP DATABASE IF EXISTS `{names_database}` SYNC")
    finally:
        await client.close()


async def _ch_query(store: ClickHouseColdStore, sql: str, **parameters: Any) -> list[Any]:
    result = await store._require_client().query(sql, parameters=parameters)
    return list(result.result_rows)


@pytest.mark.clickhouse
async def test_clickhouse_a_and_a_6dcd4ce2_get_their_own_tables_and_archives(ch_stores: Any, names_database: str) -> None:
    """``A`` and ``a_6dcd4ce2`` shared the prefix ``a_6dcd4ce2_``; now their tables differ and so do their archives."""
    stores = {namespace: await ch_stores(namespace) for namespace in REPORTED}
    assert [store.target.table_prefix for store in stores.values()] == ["A_", "a_6dcd4ce2_"]
    await archive_one_session_each(stores)
    await assert_each_reads_its_own(stores)
    await delete_in_the_second_and_check_the_first(stores)
    tables = {row[0] for row in await _ch_query(stores["A"], "SELECT name FROM system.tables WHERE database = {d:String}",
                                                 d=names_database)}
    assert {"A_context_sessions", "a_6dcd4ce2_context_sessions", "A_namespace_owner"} <= tables


@pytest.mark.clickhouse
async def test_clickhouse_a_prefix_owned_by_another_namespace_is_refused_with_a_config_error(ch_stores: Any) -> None:
    """Two namespaces given one explicit ``table_prefix``: the second store's open raises ConfigError."""
    owner = await ch_stores("team-a", table_prefix="shared_")
    await owner.write_events([session_event(session("s1", "a"), "create")])
    with pytest.raises(ConfigError, match=r"holds the archive of namespace 'team-a', not of 'team-b'"):
        await ch_stores("team-b", table_prefix="shared_")
    again = await ch_stores("team-a", table_prefix="shared_")
    assert await again.read_session("s1") is not None


@pytest.mark.clickhouse
async def test_clickhouse_an_archive_under_the_old_prefix_stays_readable_and_the_old_name_is_refused_to_others(
    ch_stores: Any,
) -> None:
    """``my-app`` was archived under ``my_app_431cf07b_`` by an earlier version (emulated: its tables without the
    owner table). After the upgrade the store keeps that prefix and reads the archive; the plain namespace
    ``my_app_431cf07b`` (which maps to that prefix) is refused."""
    old = legacy_table_prefix_for("my-app")
    assert old == "my_app_431cf07b_"
    before = await ch_stores("my-app", table_prefix=old)
    await archive_one_session_each({"my-app": before})
    await before._require_client().command(f"DROP TABLE {before.target.table(CLICKHOUSE_OWNER_TABLE)} SYNC")
    upgraded = await ch_stores("my-app")
    assert upgraded.target.table_prefix == old
    await assert_each_reads_its_own({"my-app": upgraded})
    with pytest.raises(ConfigError, match="holds the archive of namespace 'my-app'"):
        await ch_stores(old[:-1])
    fresh = await ch_stores("Fresh-App")
    assert fresh.target.table_prefix == "Fresh-App_"


# -- Redis -----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def names_redis() -> Iterator[RedisServer]:
    """A redis-server of this module: literal namespaces never meet other tests' keys."""
    with private_redis_server() as server:
        yield server


@pytest.mark.redis
async def test_redis_namespaces_that_shared_keys_or_key_prefixes_keep_apart(names_redis: RedisServer) -> None:
    """``A`` / ``a_6dcd4ce2`` and ``a`` / ``a:b`` (whose old prefix ``a:`` began every key of ``a:b``): each store
    reads only its own session and history, and dropping ``a`` leaves every key of ``a:b``."""
    namespaces = [*REPORTED, "a", "a:b"]
    stores = {ns: RedisHotStore(settings(ns), {"url": names_redis.url}) for ns in namespaces}
    client = aioredis.Redis.from_url(names_redis.url)
    try:
        for namespace, store in stores.items():
            await store.open()
            await store.put_session(make_session("s1", user_id=f"user of {namespace}"))
            await store.append_messages("s1", [make_message(f"said in {namespace}")])
        for namespace, store in stores.items():
            found = await store.get_session("s1")
            assert found is not None and found.user_id == f"user of {namespace}"
            assert [m.content for m in await store.read_history("s1", None)] == [f"said in {namespace}"]
        keys_of_ab = {key async for key in client.scan_iter(match=stores["a:b"].keys.scan_pattern())}
        assert keys_of_ab and all(key.startswith(b"a%3Ab:") for key in keys_of_ab)
        await stores["a"].drop_namespace()
        assert await stores["a"].get_session("s1") is None
        assert {key async for key in client.scan_iter(match=stores["a:b"].keys.scan_pattern())} == keys_of_ab
        assert (await stores["a:b"].get_session("s1")) is not None
    finally:
        for store in stores.values():
            await store.aclose()
        await client.flushall()
        await client.aclose()


# -- SQLite ----------------------------------------------------------------------------------------------------------
async def test_sqlite_a_and_a_6dcd4ce2_keep_apart_in_one_file(tmp_path: Path) -> None:
    """The hot and cold tiers keep the namespace in a column; the outbox tables differ, even without regard to
    case (``A`` and ``a``), which is how SQLite compares table names."""
    path = str(tmp_path / "shared.sqlite3")
    namespaces = [*REPORTED, "a"]
    hot = {ns: SqliteHotStore(settings(ns), {"path": path}) for ns in namespaces}
    cold = {ns: SqliteColdStore(settings(ns), {"path": str(tmp_path / "cold.sqlite3")}) for ns in REPORTED}
    try:
        for namespace, store in hot.items():
            await store.open()
            await store.put_session(make_session("s1", user_id=f"user of {namespace}"))
        for namespace, store in hot.items():
            found = await store.get_session("s1")
            assert found is not None and found.user_id == f"user of {namespace}"
        assert len({store.outbox_table.lower() for store in hot.values()}) == len(namespaces)
        for store in cold.values():
            await store.open()
        await archive_one_session_each(cold)
        await assert_each_reads_its_own(cold)
        await delete_in_the_second_and_check_the_first(cold)
    finally:
        for store in [*hot.values(), *cold.values()]:
            await store.aclose()


async def test_sqlite_events_left_in_the_old_hashed_outbox_table_are_taken_over_on_open(tmp_path: Path) -> None:
    """An earlier version named the outbox ``ck_outbox_<16 hex of sha256(namespace)>``: opening renames that table
    (its events kept, in order), or merges it into the new one when both exist, so no event is stranded."""
    path = tmp_path / "hot.sqlite3"
    store = SqliteHotStore(settings("My-App"), {"path": str(path)})
    legacy = store._legacy_outbox_table
    assert store.outbox_table == "ck_outbox__4dy_2d_41pp" and legacy.startswith("ck_outbox_") and legacy != store.outbox_table

    def fill(table: str, ids: list[str]) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(outbox_table_sql(table))
            conn.executemany(f"INSERT INTO {table} (event_id, created_at, body) VALUES (?, ?, ?)",
                             [(i, "2024-01-01T00:00:00+00:00", "{}") for i in ids])
        conn.close()

    def contents() -> dict[str, list[str]]:
        with sqlite3.connect(path) as conn:
            names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'ck_outbox_%'")]
            found = {name: [r[0] for r in conn.execute(f"SELECT event_id FROM {name} ORDER BY seq")] for name in names}
        conn.close()
        return found

    await store.open()  # creates the file and the hot tables
    await store.aclose()
    fill(legacy, ["e1", "e2"])
    reopened = SqliteHotStore(settings("My-App"), {"path": str(path)})
    await reopened.open()
    await reopened.aclose()
    assert contents() == {store.outbox_table: ["e1", "e2"]}
    fill(legacy, ["e3", "e1"])  # an older process still wrote to its table; e1 is there twice
    again = SqliteHotStore(settings("My-App"), {"path": str(path)})
    await again.open()
    await again.aclose()
    assert contents() == {store.outbox_table: ["e1", "e2", "e3"]}
