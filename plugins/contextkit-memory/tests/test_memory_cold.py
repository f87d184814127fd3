"""The in-process cold tier: idempotent writes, reads as the ColdStore protocol documents them, simulated outages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from contextkit.errors import BackendUnavailable, ConfigError, InvalidInput
from contextkit.plugins import get_plugin_manager
from contextkit.records import ArchiveEvent, Message
from contextkit.stores import ColdStore, StoreSettings
from contextkit.testing.hot import make_session
from contextkit_memory.cold import MemoryColdStore

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def cold(**options: Any) -> MemoryColdStore:
    store = get_plugin_manager().backends.get("cold", "memory").factory(StoreSettings(namespace="c"), options)
    assert isinstance(store, MemoryColdStore)
    return store


def message_event(key: str, seq: int, message_id: str | None = None, **kw: Any) -> ArchiveEvent:
    message = Message(role="user", content=f"m{seq}", timestamp=T0, seq=seq, id=message_id or f"id-{seq}")
    return ArchiveEvent("context_conversations", key, {"message": message.to_dict()}, **kw)


def session_event(event_type: str, at: datetime, **fields: Any) -> ArchiveEvent:
    session = make_session("s1", **fields)
    return ArchiveEvent(
        "context_sessions", "s1", {"event_type": event_type, "session": session.to_dict()}, created_at=at
    )


async def test_the_registered_cold_store_satisfies_the_protocol() -> None:
    store = cold()
    await store.open()
    assert isinstance(store, ColdStore)
    assert store.describe()["backend"] == "memory"
    assert (await store.health())["status"] == "healthy"
    await store.aclose()
    await store.aclose()


async def test_writing_the_same_event_twice_keeps_one_row() -> None:
    store = cold()
    event = message_event("s1", 1)
    await store.write_events([event, event])
    await store.write_events([event, message_event("s1", 2)])
    assert await store.count_events("context_conversations") == 2
    assert await store.count_events("context_conversations", "s1") == 2
    assert await store.count_events("context_conversations", "other") == 0
    assert await store.count_events("context_sessions") == 0


async def test_read_session_is_the_newest_event_by_created_at_then_write_order() -> None:
    store = cold()
    await store.write_events(
        [
            session_event("update", T0 + timedelta(seconds=5), request_count=5),
            session_event("create", T0, request_count=0),
            session_event("update", T0 + timedelta(seconds=5), request_count=6),
        ]
    )
    session = await store.read_session("s1")
    assert session is not None
    assert session.request_count == 6
    assert await store.read_session("missing") is None


async def test_read_session_after_a_delete_event_is_none() -> None:
    store = cold()
    await store.write_events([session_event("create", T0), session_event("delete", T0 + timedelta(seconds=1))])
    assert await store.read_session("s1") is None


async def test_read_history_is_newest_before_seq_in_seq_order_each_message_once() -> None:
    store = cold()
    events = [message_event("s1", seq) for seq in (3, 1, 2, 5, 4)]
    events.append(message_event("s1", 2, message_id="id-2"))  # same message archived again (a new event id)
    events.append(message_event("s2", 1))
    await store.write_events(events)
    assert [m.seq for m in await store.read_history("s1", None)] == [1, 2, 3, 4, 5]
    assert [m.seq for m in await store.read_history("s1", 2)] == [4, 5]
    assert [m.seq for m in await store.read_history("s1", 2, before_seq=4)] == [2, 3]
    assert [m.seq for m in await store.read_history("s1", None, before_seq=3)] == [1, 2]
    assert await store.read_history("s1", 0) == []
    assert await store.read_history("missing", 10) == []
    assert [m.content for m in await store.read_history("s2", None)] == ["m1"]


async def test_documents_read_back_newest_and_as_copies() -> None:
    store = cold()
    payload: dict[str, Any] = {"context": {"v": 1}}
    await store.write_events(
        [
            ArchiveEvent("context_task_contexts", "s1", payload, created_at=T0),
            ArchiveEvent("context_task_contexts", "s1", {"context": {"v": 2}}, created_at=T0 + timedelta(1)),
            ArchiveEvent("context_conversation_sessions", "k1", {"session": {"session_id": "s1"}}),
            ArchiveEvent("context_checkpoints", "t1", {"checkpoint_id": "a", "document": {"n": 1}}, created_at=T0),
            ArchiveEvent(
                "context_checkpoints", "t1", {"checkpoint_id": "b", "document": {"n": 2}}, created_at=T0 + timedelta(1)
            ),
            ArchiveEvent("context_checkpoint_writes", "t1", {"checkpoint_id": "a", "task_id": "x", "writes": [1]}),
        ]
    )
    payload["context"]["v"] = 99
    context = await store.read_task_context("s1")
    assert context == {"v": 2}
    assert context is not None
    context["v"] = 3
    assert await store.read_task_context("s1") == {"v": 2}
    assert await store.read_conversation_session("k1") == {"session_id": "s1"}
    assert await store.read_checkpoint_document("t1", None) == {"n": 2}
    assert await store.read_checkpoint_document("t1", "a") == {"n": 1}
    assert await store.read_checkpoint_document("t1", "zz") is None
    assert await store.read_task_context("missing") is None
    assert await store.count_events("context_checkpoint_writes", "t1") == 1


async def test_an_outage_rejects_writes_without_storing_and_recovers() -> None:
    store = cold()
    store.set_available(False)
    with pytest.raises(BackendUnavailable):
        await store.write_events([message_event("s1", 1)])
    with pytest.raises(BackendUnavailable):
        await store.read_history("s1", None)
    with pytest.raises(BackendUnavailable):
        await store.open()
    assert (await store.health())["status"] == "unhealthy"
    store.set_available(True)
    await store.write_events([message_event("s1", 1)])
    assert await store.count_events("context_conversations") == 1


async def test_fail_option_starts_in_an_outage() -> None:
    store = cold(fail=True)
    with pytest.raises(BackendUnavailable):
        await store.write_events([message_event("s1", 1)])
    with pytest.raises(ConfigError):
        MemoryColdStore.from_options(StoreSettings(), {"fail": "yes"})
    with pytest.raises(ConfigError):
        MemoryColdStore.from_options(StoreSettings(), {"url": "x"})


async def test_a_batch_with_an_unknown_table_stores_nothing() -> None:
    store = cold()
    with pytest.raises(InvalidInput):
        await store.write_events([message_event("s1", 1), ArchiveEvent("nope", "k", {})])
    assert await store.count_events("context_conversations") == 0
