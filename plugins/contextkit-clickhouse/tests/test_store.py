"""ClickHouseColdStore against a real ClickHouse: the six tables, idempotent batches, deduplicated ordered reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from contextkit.errors import BackendUnavailable, ConfigError, InvalidInput, SerializationError
from contextkit.plugins import PluginManager
from contextkit.records import ArchiveEvent, ConversationParticipant, ConversationSession, Message, Session
from contextkit.stores import ColdStore, StoreSettings
from contextkit.testing.services import free_port
from contextkit.testing.services.clickhouse_server import ClickHouseService
from contextkit_clickhouse import ClickHouseColdStore

pytestmark = pytest.mark.clickhouse

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def message_event(key: str, seq: int, *, message_id: str | None = None, at: datetime = T0) -> ArchiveEvent:
    message = Message(
        "user" if seq % 2 else "assistant",
        f"message {seq}",
        at + timedelta(seconds=seq),
        {"n": seq, "tags": ["a", "é"]},
        id=message_id or f"{key}-m{seq}",
        seq=seq,
    )
    return ArchiveEvent("context_conversations", key, {"message": message.to_dict()}, created_at=at + timedelta(seconds=seq))


def session_event(session: Session, event_type: str, at: datetime) -> ArchiveEvent:
    return ArchiveEvent(
        "context_sessions", session.session_id, {"event_type": event_type, "session": session.to_dict()}, created_at=at
    )


async def raw_count(store: ClickHouseColdStore, table: str) -> int:
    result = await store._require_client().query(f"SELECT count() FROM {store.target.table(table)}")
    return int(result.result_rows[0][0])


def test_entry_point_registers_clickhouse_cold_tier_with_alias_ch() -> None:
    """Installing the package is enough: ``clickhouse`` and ``ch`` name the same cold factory, which does no I/O."""
    backends = PluginManager().backends
    assert backends.get("cold", "ch").factory is backends.get("cold", "clickhouse").factory
    store = backends.get("cold", "ch").factory(StoreSettings(namespace="wiring"), {"host": "nowhere.invalid"})
    assert isinstance(store, ClickHouseColdStore)
    assert isinstance(store, ColdStore)


async def test_all_six_tables_round_trip_through_reads(store: ClickHouseColdStore) -> None:
    """Each table's payload comes back from its read: session, history, task context, checkpoint, conversation
    session; checkpoint writes are counted."""
    session = Session("s1", "u1", T0, T0 + timedelta(seconds=5), 3, 1, 0.5, "active", {"source": "web"})
    conv = ConversationSession(
        "s1",
        (ConversationParticipant("u1", "user"), ConversationParticipant("a1", "agent", "coder")),
        "user_to_agent",
        T0,
        T0,
    )
    events = [
        session_event(session, "create", T0),
        message_event("s1", 1),
        message_event("s1", 2),
        ArchiveEvent("context_task_contexts", "s1", {"context": {"user_id": "u1", "metadata": {"mode": "x"}}}),
        ArchiveEvent(
            "context_checkpoints", "s1", {"checkpoint_id": "c1", "document": {"step": 1, "metadata": {"source": "loop"}}}
        ),
        ArchiveEvent(
            "context_checkpoint_writes", "s1", {"checkpoint_id": "c1", "task_id": "t1", "writes": [["messages", ["test"]]]}
        ),
        ArchiveEvent("context_conversation_sessions", conv.session_key, {"session": conv.to_dict()}),
    ]
    await store.write_events(events)

    assert await store.read_session("s1") == session
    history = await store.read_history("s1", None)
    assert [m.seq for m in history] == [1, 2]
    assert history[0] == Message.from_dict(events[1].payload["message"])
    assert await store.read_task_context("s1") == {"user_id": "u1", "metadata": {"mode": "x"}}
    assert await store.read_checkpoint_document("s1", "c1") == {"step": 1, "metadata": {"source": "loop"}}
    assert await store.read_conversation_session(conv.session_key) == conv.to_dict()
    assert await store.count_events("context_checkpoint_writes", "s1") == 1
    for table in ("context_sessions", "context_task_contexts", "context_checkpoints", "context_conversation_sessions"):
        assert await store.count_events(table) == 1


async def test_missing_records_read_as_none_or_empty(store: ClickHouseColdStore) -> None:
    """Reads of keys never archived return None / [] / 0, not errors."""
    assert await store.read_session("nope") is None
    assert await store.read_history("nope", 10) == []
    assert await store.read_task_context("nope") is None
    assert await store.read_conversation_session("nope") is None
    assert await store.read_checkpoint_document("nope", None) is None
    assert await store.count_events("context_conversations", "nope") == 0


async def test_a_retried_batch_is_stored_and_read_once(store: ClickHouseColdStore) -> None:
    """Writing the same batch three times leaves one event each: physical duplicates exist until ClickHouse
    merges, but counts and reads never show them, and OPTIMIZE FINAL collapses them on the ReplacingMergeTree key."""
    events = [message_event("s", i) for i in range(1, 101)]
    events.append(session_event(Session("s", "u", T0, T0), "create", T0))
    for _ in range(3):
        await store.write_events(events)
    assert await raw_count(store, "context_conversations") == 300
    assert await store.count_events("context_conversations", "s") == 100
    assert await store.count_events("context_sessions") == 1
    assert [m.seq for m in await store.read_history("s", None)] == list(range(1, 101))

    client = store._require_client()
    await client.command(f"OPTIMIZE TABLE {store.target.table('context_conversations')} FINAL")
    assert await raw_count(store, "context_conversations") == 100


async def test_history_returns_newest_n_oldest_first_and_pages_with_before_seq(store: ClickHouseColdStore) -> None:
    """``read_history(key, n)`` is the newest n in chronological order; ``before_seq`` pages further back."""
    await store.write_events([message_event("s", i) for i in range(1, 21)])
    assert [m.seq for m in await store.read_history("s", 5)] == [16, 17, 18, 19, 20]
    assert [m.seq for m in await store.read_history("s", 5, before_seq=16)] == [11, 12, 13, 14, 15]
    assert [m.seq for m in await store.read_history("s", None, before_seq=4)] == [1, 2, 3]
    assert await store.read_history("s", 0) == []


async def test_the_same_message_archived_under_two_event_ids_shows_once(store: ClickHouseColdStore) -> None:
    """A message re-archived (a new event id, same message id) is one message in the history."""
    first = message_event("s", 1)
    again = ArchiveEvent("context_conversations", "s", first.payload, created_at=T0 + timedelta(minutes=5))
    await store.write_events([first, message_event("s", 2), again])
    history = await store.read_history("s", None)
    assert [m.id for m in history] == ["s-m1", "s-m2"]


async def test_read_session_returns_the_state_of_the_newest_event(store: ClickHouseColdStore) -> None:
    """Session events written out of order still read back as of the newest ``created_at``; with equal times the
    later lifecycle state wins."""
    base = Session("s", "u", T0, T0)
    updated = Session("s", "u", T0, T0 + timedelta(seconds=9), request_count=4)
    ended = Session("s", "u", T0, T0 + timedelta(seconds=9), request_count=4, status="completed")
    await store.write_events([session_event(updated, "update", T0 + timedelta(seconds=9))])
    await store.write_events([session_event(base, "create", T0)])
    assert await store.read_session("s") == updated
    await store.write_events([session_event(ended, "end", T0 + timedelta(seconds=9))])
    assert (await store.read_session("s")).status == "completed"  # type: ignore[union-attr]


async def test_newest_task_context_and_checkpoint_documents_win(store: ClickHouseColdStore) -> None:
    """Task context, conversation session and checkpoint reads return the newest archived version."""
    await store.write_events(
        [
            ArchiveEvent("context_task_contexts", "s", {"context": {"v": 2}}, created_at=T0 + timedelta(seconds=2)),
            ArchiveEvent("context_task_contexts", "s", {"context": {"v": 1}}, created_at=T0),
            ArchiveEvent("context_checkpoints", "t", {"checkpoint_id": "c1", "document": {"v": 1}}, created_at=T0),
            ArchiveEvent(
                "context_checkpoints", "t", {"checkpoint_id": "c2", "document": {"v": 2}}, created_at=T0 + timedelta(seconds=1)
            ),
        ]
    )
    assert await store.read_task_context("s") == {"v": 2}
    assert await store.read_checkpoint_document("t", None) == {"v": 2}
    assert await store.read_checkpoint_document("t", "c1") == {"v": 1}
    assert await store.read_checkpoint_document("t", "c3") is None


@pytest.mark.parametrize("key", ["a'b", "a\\b", "{key:String}", "日本語 🙂", "x' OR '1'='1", "%s", ""])
async def test_hostile_keys_are_parameters_never_sql(store: ClickHouseColdStore, key: str) -> None:
    """Keys go to the server as bound parameters: quotes, backslashes and placeholders are just text."""
    await store.write_events([message_event(key, 1), message_event("other", 1)])
    history = await store.read_history(key, None)
    assert [m.id for m in history] == [f"{key}-m1"]
    assert await store.count_events("context_conversations", key) == 1


async def test_malformed_events_raise_and_write_nothing(store: ClickHouseColdStore) -> None:
    """A batch holding a bad event fails before anything is sent: unknown table -> InvalidInput, a payload missing
    its fields or holding NaN -> SerializationError."""
    good = message_event("s", 1)
    with pytest.raises(InvalidInput):
        await store.write_events([good, ArchiveEvent("context_nope", "s", {})])
    with pytest.raises(SerializationError):
        await store.write_events([good, ArchiveEvent("context_conversations", "s", {"no": "message"})])
    with pytest.raises(SerializationError):
        await store.write_events([good, ArchiveEvent("context_task_contexts", "s", {"context": {"x": float("nan")}})])
    assert await store.count_events("context_conversations") == 0
    with pytest.raises(InvalidInput):
        await store.count_events("context_nope")


async def test_namespaces_are_isolated_in_separate_tables(store_url: str, fresh_settings: Callable[[], StoreSettings]) -> None:
    """Two stores on different namespaces never see each other's events; ``a-b`` and ``a_b`` differ."""
    stores = [
        ClickHouseColdStore(StoreSettings(namespace=ns, timeout=30), {"url": store_url})
        for ns in (f"{fresh_settings().namespace}-x", fresh_settings().namespace)
    ]
    assert (
        ClickHouseColdStore(StoreSettings(namespace="a-b"), {}).target.table_prefix
        != ClickHouseColdStore(StoreSettings(namespace="a_b"), {}).target.table_prefix
    )
    try:
        for cold in stores:
            await cold.open()
        await stores[0].write_events([message_event("s", 1)])
        assert await stores[1].read_history("s", None) == []
        assert len(await stores[0].read_history("s", None)) == 1
    finally:
        for cold in stores:
            await cold.drop_tables()
            await cold.aclose()


async def test_migrations_are_recorded_and_applied_once(store: ClickHouseColdStore) -> None:
    """``open`` records every migration (001-003) in ``<prefix>schema_migrations``; opening again (or concurrently)
    applies nothing new and keeps the data."""
    await store.write_events([message_event("s", 1)])
    assert await store.migrate() == []
    twins = [ClickHouseColdStore(store.settings, {"url": store.options.target}) for _ in range(3)]
    await asyncio.gather(*(t.open() for t in twins))
    for twin in twins:
        await twin.aclose()
    rows = (
        await store._require_client().query(f"SELECT version, name FROM {store.target.table('schema_migrations')} FINAL")
    ).result_rows
    assert sorted(tuple(r) for r in rows) == [
        (1, "context_tables"),
        (2, "versions_and_deletes"),
        (3, "conversation_session_index"),
    ]
    assert await store.count_events("context_conversations") == 1


async def test_ttl_days_adds_a_retention_ttl_to_every_table(store_url: str, fresh_settings: Callable[[], StoreSettings]) -> None:
    """``ttl_days`` creates the tables with ``TTL toDateTime(created_at) + INTERVAL n DAY``."""
    cold = ClickHouseColdStore(fresh_settings(), {"url": store_url, "ttl_days": "30"})
    await cold.open()
    try:
        client = cold._require_client()
        for table in ("context_sessions", "context_conversations"):
            ddl = (await client.query(f"SHOW CREATE TABLE {cold.target.table(table)}")).result_rows[0][0]
            assert "TTL toDateTime(created_at) + toIntervalDay(30)" in ddl
            assert "ReplacingMergeTree" in ddl
            assert "PARTITION BY toYYYYMM(created_at)" in ddl
    finally:
        await cold.drop_tables()
        await cold.aclose()


async def test_a_handed_in_client_is_used_and_never_closed(
    clickhouse: ClickHouseService, fresh_settings: Callable[[], StoreSettings]
) -> None:
    """With ``client=``, the store runs its queries on it and ``aclose()`` leaves it open for its owner."""
    import clickhouse_connect

    client = await clickhouse_connect.get_async_client(dsn=clickhouse.url)
    cold = ClickHouseColdStore(fresh_settings(), {"client": client, "database": "contextkit_test"})
    try:
        await cold.open()
        await cold.write_events([message_event("s", 1)])
        await cold.drop_tables()
        await cold.aclose()
        await cold.aclose()
        assert (await client.query("SELECT 1")).result_rows == [(1,)]
        assert cold.describe()["owns_client"] is False
    finally:
        await client.close()


async def test_unreachable_server_raises_backend_unavailable_and_health_says_unhealthy() -> None:
    """Nothing listening: ``open`` raises BackendUnavailable within the timeout; the message names the target
    without the password; ``health()`` reports unhealthy and does not raise."""
    port = free_port()
    cold = ClickHouseColdStore.from_options(
        StoreSettings(namespace="down", timeout=2), {"url": f"http://alice:hunter2-secret@127.0.0.1:{port}/db"}
    )
    with pytest.raises(BackendUnavailable) as caught:
        await cold.open()
    assert "hunter2-secret" not in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value)
    report = await cold.health()
    assert report["status"] == "unhealthy"
    assert "hunter2-secret" not in repr(report)
    with pytest.raises(BackendUnavailable):
        await cold.write_events([message_event("s", 1)])
    await cold.aclose()


async def test_health_reports_version_and_latency(store: ClickHouseColdStore) -> None:
    """``health()`` runs ``SELECT version()`` and reports status, latency and the server version."""
    report = await store.health()
    assert report["status"] == "healthy"
    assert report["latency_ms"] >= 0
    assert report["version"]


def test_describe_and_repr_never_show_the_password() -> None:
    """``describe()`` and ``repr`` show user, host, port and database, never the password."""
    cold = ClickHouseColdStore.from_options(
        StoreSettings(namespace="x"), {"url": "https://bob:p%40ss-w0rd@ch.example:8443/analytics", "cluster": "prod"}
    )
    described = cold.describe()
    assert described["target"] == "https://bob@ch.example:8443/analytics"
    assert described["cluster"] == "prod"
    for text in (repr(described), repr(cold), repr(cold.options)):
        assert "p@ss-w0rd" not in text and "p%40ss-w0rd" not in text
    assert cold.options.password == "p@ss-w0rd"


def test_options_from_the_seed_environment_mapping() -> None:
    """The composer passes CLICKHOUSE_HOST/PORT/USER/PASSWORD/DATABASE as strings; they parse like typed values."""
    cold = ClickHouseColdStore.from_options(
        StoreSettings(),
        {"host": "ch", "port": "9123", "username": "u", "password": "p", "database": "ctx", "secure": "false", "ttl_days": "7"},
    )
    assert (cold.options.host, cold.options.port, cold.options.database) == ("ch", 9123, "ctx")
    assert cold.options.ttl_days == 7
    assert cold.options.secure is False


@pytest.mark.parametrize(
    "options",
    [
        {"url": "ftp://host/db"},
        {"port": "eighty"},
        {"ttl_days": 0},
        {"ttl_days": "soon"},
        {"database": "bad-name;DROP"},
        {"cluster": "bad cluster`"},
        {"table_prefix": "no spaces"},
        {"unknown_option": 1},
        {"secure": "maybe"},
    ],
)
def test_invalid_options_raise_config_error(options: dict[str, object]) -> None:
    """A bad option is a ConfigError when the factory runs, before any I/O."""
    with pytest.raises(ConfigError):
        ClickHouseColdStore.from_options(StoreSettings(), options)
