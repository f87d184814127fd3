"""The generated DDL: single-server and cluster variants of migrations 001 to 003, checked as text and by ClickHouse's
parser.

A real cluster (ZooKeeper/Keeper, several nodes) cannot run here; the README says how to run this DDL on one.
"""

from __future__ import annotations

import re

import pytest

from contextkit.records import ARCHIVE_TABLES
from contextkit.stores import StoreSettings
from contextkit.testing.services.clickhouse_server import ClickHouseService
from contextkit_clickhouse import ClickHouseColdStore
from contextkit_clickhouse.schema import KEY_COLUMNS, TABLE_COLUMNS, SchemaTarget, load_migrations, table_prefix_for

ORDER_BY = {
    "context_sessions": ["session_id", "created_at", "event_id"],
    "context_conversations": ["session_id", "seq", "event_id"],
    "context_task_contexts": ["session_id", "created_at", "event_id"],
    "context_checkpoints": ["thread_id", "created_at", "event_id"],
    "context_checkpoint_writes": ["thread_id", "checkpoint_id", "created_at", "event_id"],
    "context_conversation_sessions": ["session_key", "created_at", "event_id"],
}
REPLICATED = "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"


def cluster_store(**options: object) -> ClickHouseColdStore:
    return ClickHouseColdStore.from_options(StoreSettings(namespace="app"), {"database": "ctx", "cluster": "prod", **options})


def creates(statements: list[str]) -> dict[str, str]:
    """``{table name: statement}`` of the CREATE TABLE statements."""
    found = {}
    for statement in statements:
        match = re.match(r"CREATE TABLE IF NOT EXISTS `ctx`\.`([a-z_]+)`", statement)
        if match:
            found[match.group(1)] = statement
    return found


def test_migration_001_is_the_shipped_sql_file() -> None:
    """The DDL comes from ``migrations/001_context_tables.sql`` (one source of truth), version 1."""
    migrations = load_migrations()
    assert (migrations[0].version, migrations[0].name) == (1, "context_tables")
    assert "CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_sessions${local}`" in migrations[0].text


def test_single_server_ddl_uses_replacing_merge_tree_keyed_on_the_read_path_and_event_id() -> None:
    """Without a cluster: ReplacingMergeTree, PARTITION BY month, ORDER BY (key, seq|created_at, event_id), no
    ON CLUSTER, no Replicated engine, no Distributed table, no TTL unless asked."""
    store = ClickHouseColdStore.from_options(StoreSettings(namespace="app"), {"database": "ctx"})
    statements = store.ddl()
    tables = creates(statements)
    assert set(tables) == {f"app_{t}" for t in ARCHIVE_TABLES} | {"app_schema_migrations", "app_namespace_owner"}
    for table in ARCHIVE_TABLES:
        ddl = tables[f"app_{table}"]
        assert "ENGINE = ReplacingMergeTree\n" in ddl
        assert "PARTITION BY toYYYYMM(created_at)" in ddl
        order_by = re.search(r"ORDER BY \((.*)\)", ddl)
        assert order_by is not None
        keys = [k.strip() for k in order_by.group(1).split(",")]
        assert keys == ORDER_BY[table]
        assert "TTL" not in ddl
    text = "\n".join(statements)
    for absent in ("ON CLUSTER", "Replicated", "Distributed", "${", "_local"):
        assert absent not in text
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `ctx`"


def test_every_written_column_is_created_with_the_same_type() -> None:
    """The columns the store inserts (with their types) are exactly the columns migration 001 creates plus those
    migration 002 adds, in that order."""
    migrations = load_migrations()
    created_by_001 = migrations[0].statements(SchemaTarget("ctx", "app_"))
    added_by_002 = migrations[1].statements(SchemaTarget("ctx", "app_"))
    for table, columns in TABLE_COLUMNS.items():
        ddl = next(s for s in created_by_001 if f"`app_{table}`" in s.splitlines()[0])
        body = ddl[ddl.index("(") + 1 : ddl.index("\nENGINE")]
        created = [line.split(None, 1) for line in body.splitlines() if line.strip() and line.strip() != ")"]
        declared = [(name, kind.rstrip(",").split(" DEFAULT ")[0]) for name, kind in created]
        alter = next(s for s in added_by_002 if f"`app_{table}`" in s.splitlines()[0])
        declared += re.findall(r"ADD COLUMN IF NOT EXISTS (\w+) (\w+) DEFAULT 0", alter)
        assert declared == [(name, kind) for name, kind in columns], table


def test_migration_002_adds_version_everywhere_and_last_seq_to_sessions_only() -> None:
    """002 adds ``version UInt64 DEFAULT 0`` to all six tables and ``last_seq`` to ``context_sessions``, by ALTER
    ... ADD COLUMN IF NOT EXISTS (metadata only: existing parts are not rewritten), and leaves every sorting key as
    it is (retries still collapse on event_id)."""
    migration = load_migrations()[1]
    assert (migration.version, migration.name) == (2, "versions_and_deletes")
    statements = migration.statements(SchemaTarget("ctx", "app_"))
    assert len(statements) == len(ARCHIVE_TABLES)
    for table in ARCHIVE_TABLES:
        alter = next(s for s in statements if s.startswith(f"ALTER TABLE `ctx`.`app_{table}`"))
        assert "ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0" in alter
        assert ("last_seq" in alter) == (table == "context_sessions")
        assert "ORDER BY" not in alter and "MODIFY" not in alter


def test_migration_003_indexes_the_session_of_conversation_sessions_on_the_data_tables_only() -> None:
    """003 adds (then builds for existing parts) a bloom filter on the expression conversation_keys_of filters on,
    on the table holding the data: the ``_local`` one on a cluster, never the Distributed one."""
    migration = load_migrations()[2]
    assert (migration.version, migration.name) == (3, "conversation_session_index")
    for target, table in ((SchemaTarget("ctx", "app_"), "`app_context_conversation_sessions`"),
                          (SchemaTarget("ctx", "app_", cluster="prod"), "`app_context_conversation_sessions_local`")):
        add, build = migration.statements(target)
        assert add.splitlines()[0].startswith(f"ALTER TABLE `ctx`.{table}")
        assert "ADD INDEX IF NOT EXISTS conversation_session_id JSONExtractString(session_data, 'session_id')" in add
        assert "TYPE bloom_filter(0.01) GRANULARITY 1" in add
        assert build.splitlines()[0].startswith(f"ALTER TABLE `ctx`.{table}")
        assert build.endswith("MATERIALIZE INDEX conversation_session_id")


def test_cluster_migration_002_alters_the_local_tables_then_the_distributed_ones() -> None:
    """On a cluster 002 alters each ``_local`` replicated table ON CLUSTER, then each Distributed table ON CLUSTER
    (an insert through the Distributed table needs the column on both)."""
    statements = load_migrations()[1].statements(SchemaTarget("ctx", "app_", cluster="prod"))
    heads = [s.splitlines()[0] for s in statements]
    locals_ = [f"ALTER TABLE `ctx`.`app_{t}_local` ON CLUSTER `prod`" for t in ARCHIVE_TABLES]
    distributed = [f"ALTER TABLE `ctx`.`app_{t}` ON CLUSTER `prod`" for t in ARCHIVE_TABLES]
    assert heads == locals_ + distributed
    for statement in statements:
        assert "ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0" in statement


def test_cluster_ddl_uses_replicated_engines_on_cluster_and_distributed_tables() -> None:
    """With ``cluster``: every local table is ReplicatedReplacingMergeTree ON CLUSTER with the {shard}/{replica}
    macros and a ``_local`` name; a Distributed table with the plain name shards it by the lookup key; the database
    and the migrations table are created ON CLUSTER too; locals come before the Distributed tables."""
    statements = cluster_store().ddl()
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `ctx` ON CLUSTER `prod`"
    tables = creates(statements)
    order = list(tables)
    for table in ARCHIVE_TABLES:
        local = tables[f"app_{table}_local"]
        assert local.splitlines()[0].endswith("ON CLUSTER `prod`")
        assert f"ENGINE = {REPLICATED}" in local
        assert "PARTITION BY toYYYYMM(created_at)" in local
        assert re.search(r"ORDER BY \(.*event_id\)", local)
        distributed = tables[f"app_{table}"]
        assert distributed.splitlines()[0].endswith("ON CLUSTER `prod`")
        assert f"AS `ctx`.`app_{table}_local`" in distributed
        assert f"ENGINE = Distributed('prod', 'ctx', 'app_{table}_local', cityHash64({KEY_COLUMNS[table]}))" in distributed
        assert order.index(f"app_{table}_local") < order.index(f"app_{table}")
    migrations = tables["app_schema_migrations"]
    assert "ON CLUSTER `prod`" in migrations
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}', applied_at)" in migrations
    assert "${" not in "\n".join(statements)


def test_cluster_ddl_with_ttl_days_adds_the_ttl_to_local_tables_only() -> None:
    """``ttl_days`` puts the retention TTL on the replicated local tables (Distributed tables hold no data)."""
    tables = creates(cluster_store(ttl_days=90).ddl())
    for table in ARCHIVE_TABLES:
        assert tables[f"app_{table}_local"].endswith("TTL toDateTime(created_at) + INTERVAL 90 DAY")
        assert "TTL" not in tables[f"app_{table}"]


def test_cluster_store_declares_the_cluster_capability() -> None:
    """A cluster store says so in ``capabilities`` and ``describe()``."""
    store = cluster_store()
    assert "cluster" in store.capabilities
    assert store.describe()["cluster"] == "prod"
    assert "cluster" not in ClickHouseColdStore.from_options(StoreSettings(), {}).capabilities


def test_table_prefix_keeps_namespaces_apart_and_can_be_overridden() -> None:
    """The prefix is the namespace's percent name and ``_`` (a plain name keeps its earlier prefix); ``table_prefix=""``
    gives the bare table names."""
    assert table_prefix_for("contextkit") == "contextkit_"
    assert table_prefix_for("a-b") != table_prefix_for("a_b")
    assert table_prefix_for("A") != table_prefix_for("a_6dcd4ce2")
    assert re.fullmatch(r"[A-Za-z0-9_.~%-]+", table_prefix_for("Ünï {code}: *"))
    bare = ClickHouseColdStore.from_options(StoreSettings(), {"table_prefix": ""})
    assert "CREATE TABLE IF NOT EXISTS `default`.`context_sessions`" in "\n".join(bare.ddl())


@pytest.mark.clickhouse
async def test_generated_cluster_ddl_parses_with_clickhouse_parser(clickhouse: ClickHouseService) -> None:
    """Every generated cluster statement is valid ClickHouse SQL: ``formatQuery`` (the server's own parser)
    accepts it; a broken statement would be a syntax error here rather than on a production cluster."""
    import clickhouse_connect

    client = await clickhouse_connect.get_async_client(dsn=clickhouse.url)
    try:
        statements = cluster_store(ttl_days=30).ddl()
        assert sum(s.startswith("ALTER TABLE") for s in statements) == 2 * len(ARCHIVE_TABLES) + 2
        for statement in statements:
            result = await client.query("SELECT formatQuery({q:String})", parameters={"q": statement})
            normalised = result.result_rows[0][0]
            assert "ON CLUSTER" in normalised
    finally:
        await client.close()
