"""Registration, options, describe/health without secrets, unreachable servers, handed-in pools, bad data."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from contextkit.errors import BackendUnavailable, ConfigError, SerializationError
from contextkit.plugins import PluginManager
from contextkit.records import ArchiveEvent, Message, Session, utcnow
from contextkit.stores import ColdStore, StoreSettings
from contextkit.testing.cold import message_event, session_event, task_context_event
from contextkit.testing.services import free_port
from contextkit_postgres import plugin as postgres_plugin
from contextkit_postgres.cold import PostgresColdStore
from contextkit_postgres.options import legacy_schema_from_namespace, parse_options, schema_from_namespace

SECRET = "s3cr3t-Pa55"


def test_plugin_registers_postgres_with_the_seed_aliases() -> None:
    manager = PluginManager(load_entrypoints=False)
    manager.register(postgres_plugin, name="postgres")
    for name in ("postgres", "pg", "postgresql", "PostgreSQL"):
        info = manager.backends.get("cold", name)
        assert info.name == "postgres"
        assert isinstance(info.factory(StoreSettings(), {"url": "postgresql://h/db"}), PostgresColdStore)


def test_plugin_is_found_through_its_entry_point() -> None:
    manager = PluginManager()
    assert manager.backends.get("cold", "pg").name == "postgres"


def test_factory_does_no_io_and_builds_a_cold_store() -> None:
    store = PostgresColdStore.from_options(StoreSettings(), {"url": f"postgresql://u:{SECRET}@db.invalid:6543/app"})
    assert isinstance(store, ColdStore)
    assert store.describe()["host"] == "db.invalid"


def test_describe_and_repr_never_show_the_password() -> None:
    store = PostgresColdStore.from_options(
        StoreSettings(namespace="my-app"),
        {"url": f"postgresql+asyncpg://app:{SECRET}@db.example:6543/appdb?sslmode=require", "database": "other"},
    )
    described = store.describe()
    assert described["host"] == "db.example"
    assert described["port"] == 6543
    assert described["database"] == "other"
    assert described["user"] == "app"
    assert described["sslmode"] == "require"
    assert described["schema"] == schema_from_namespace("my-app")
    assert described["pool"] == {"min_size": 1, "max_size": 5, "owned": True}
    assert SECRET not in repr(described)
    assert SECRET not in repr(store)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "postgresql://h/db", "bogus": 1}, "unknown postgres option"),
        ({"url": "mysql://h/db"}, "postgresql://"),
        ({"url": ""}, "url"),
        ({}, "needs a 'url'"),
        ({"url": "postgresql://h/db", "min_size": 6}, "larger than max_size"),
        ({"url": "postgresql://h/db", "max_size": "many"}, "integer"),
        ({"url": "postgresql://h/db", "max_size": 0}, ">= 1"),
        ({"url": "postgresql://h/db", "schema": "pg_catalog"}, "reserved"),
        ({"url": "postgresql://h/db", "schema": "x" * 64}, "63 bytes"),
        ({"url": "postgresql://h/db", "pool": object()}, "asyncpg pool"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PostgresColdStore.from_options(StoreSettings(), options)


def test_options_from_the_environment_layer_are_coerced() -> None:
    parsed = parse_options("ns", {"url": "postgresql://h/db", "min_size": "2", "max_size": "8", "port": "5433"})
    assert (parsed.min_size, parsed.max_size) == (2, 8)
    assert parsed.connect_kwargs["port"] == 5433


@pytest.mark.parametrize(
    "namespace",
    ["contextkit", "my-app", "My App", "9lives", "pg_thing", "ünïcode", "a" * 100, "x:y", "x_y", "", "__"],
)
def test_schema_names_derived_from_namespaces_are_valid_schema_names(namespace: str) -> None:
    """At most 63 bytes, never the reserved ``pg_`` start, printable ASCII without quotes, and stable."""
    schema = schema_from_namespace(namespace)
    assert schema
    assert len(schema.encode()) <= 63
    assert not schema.startswith("pg_")
    assert all(c.isascii() and c.isprintable() and c not in "\"'" for c in schema)
    assert schema == schema_from_namespace(namespace)


def test_distinct_namespaces_get_distinct_schemas_and_plain_identifiers_keep_theirs() -> None:
    names = ["my-app", "my_app", "My_App", "my app", "a" * 100, "a" * 101, "contextkit", "A", "a_6dcd4ce2", "pg_x"]
    assert len({schema_from_namespace(n) for n in names}) == len(names)
    # a plain identifier keeps the schema earlier versions gave it (its archive is found where it was)
    for plain in ("contextkit", "myapp", "my_app", "a_6dcd4ce2", "_x9"):
        assert schema_from_namespace(plain) == legacy_schema_from_namespace(plain) == plain
    assert schema_from_namespace("A") == "A"
    assert schema_from_namespace("pg_x") == "%70g_x"


async def test_open_on_an_unreachable_port_raises_backend_unavailable_without_the_password() -> None:
    port = free_port()  # nothing listens there
    store = PostgresColdStore.from_options(StoreSettings(timeout=2.0), {"url": f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/test"})
    with pytest.raises(BackendUnavailable) as caught:
        await asyncio.wait_for(store.open(), 10)
    assert SECRET not in str(caught.value)
    report = await store.health()
    assert report["status"] == "unhealthy"
    assert SECRET not in repr(report)
    await store.aclose()


@pytest.mark.postgres
async def test_a_handed_in_pool_is_used_and_never_closed(postgres_url: str, new_settings: Callable[..., StoreSettings]) -> None:
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=2)
    try:
        store = PostgresColdStore.from_options(new_settings(), {"pool": pool})
        await store.open()
        now = utcnow()
        await store.write_events([session_event(Session("s1", "u1", now, now), "create")])
        assert await store.count_events("context_sessions") == 1
        assert store.describe()["pool"]["owned"] is False
        await store.drop_schema()
        await store.aclose()
        assert not pool.is_closing()
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


@pytest.mark.postgres
async def test_the_database_option_overrides_the_urls_database(
    postgres_url: str, new_settings: Callable[..., StoreSettings]
) -> None:
    """CONTEXT_PG_DATABASE semantics: the URL names a database that does not exist; ``database`` picks the real one."""
    base, _, database = postgres_url.rpartition("/")
    store = PostgresColdStore(new_settings(), {"url": f"{base}/contextkit_no_such_db", "database": database})
    try:
        await store.open()
        assert (await store.health())["status"] == "healthy"
        await store.drop_schema()
    finally:
        await store.aclose()


@pytest.mark.postgres
async def test_a_nul_character_raises_serialization_error_and_writes_nothing_of_the_batch(
    pg_stores: Callable[..., PostgresColdStore], new_settings: Callable[..., StoreSettings]
) -> None:
    """PostgreSQL cannot store U+0000 (text or jsonb): the batch is refused whole with SerializationError (not
    BackendUnavailable, which would make the archiver retry it forever)."""
    store = pg_stores(new_settings())
    await store.open()
    now = utcnow()
    good = session_event(Session("s1", "u1", now, now), "create")
    for bad in (
        message_event("s1", Message("user", "before\x00after", now)),
        task_context_event("s1", {"k": "v\x00"}),
        message_event("s1", Message("user", "ok", now, metadata={"k\x00": 1})),
    ):
        with pytest.raises(SerializationError):
            await store.write_events([good, bad])
    assert await store.count_events("context_sessions") == 0
    # A literal backslash-u0000 (six characters) is ordinary text.
    literal = Message("user", "\\u0000", now, metadata={"k": "\\u0000"}, seq=1)
    await store.write_events([message_event("s1", literal)])
    assert (await store.read_history("s1", None))[0] == literal


@pytest.mark.postgres
async def test_malformed_payload_raises_serialization_error(
    pg_stores: Callable[..., PostgresColdStore], new_settings: Callable[..., StoreSettings]
) -> None:
    store = pg_stores(new_settings())
    await store.open()
    with pytest.raises(SerializationError):
        await store.write_events([ArchiveEvent("context_conversations", "s1", {"no_message": 1})])
    with pytest.raises(SerializationError):
        await store.write_events([ArchiveEvent("context_sessions", "s1", {"event_type": "create", "session": {"x": 1}})])
    assert await store.count_events("context_conversations") == 0
