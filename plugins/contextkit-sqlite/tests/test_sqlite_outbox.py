"""The SQLite hot tier's own archive outbox: a table of its database file, written in the append's transaction.

A kit on a SQLite hot tier with a cold tier needs no ``outbox_path``: a message and its archive event are committed
together, both survive the process, and the next kit on the file drains what the last one left.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.archiver import FileOutbox, message_event
from contextkit.errors import CapabilityNotSupported
from contextkit.records import Message, new_event_id, utcnow
from contextkit.stores import ArchiveSpec, Capability, StoreSettings
from contextkit_memory.cold import MemoryColdStore
from contextkit_sqlite import SqliteHotStore


def _store(path: str) -> SqliteHotStore:
    return SqliteHotStore(StoreSettings(namespace=f"ob-{uuid.uuid4().hex[:8]}"), {"path": path})


def test_a_file_database_declares_an_atomic_outbox_and_an_in_memory_one_does_not(tmp_path: Path) -> None:
    on_file = _store(str(tmp_path / "hot.sqlite3"))
    assert {Capability.OUTBOX.value, Capability.ATOMIC_OUTBOX.value} <= on_file.capabilities
    in_memory = _store(":memory:")
    assert Capability.OUTBOX.value not in in_memory.capabilities
    with pytest.raises(CapabilityNotSupported):
        in_memory.outbox()


async def test_an_append_with_an_archive_spec_commits_its_events_with_the_messages(tmp_path: Path) -> None:
    """The events the append writes are what the kit would have pushed (message_event of the stored message,
    under the spec's ids and times), from a new stream's first message on (the store numbers it, nobody
    renumbers it later); namespaces sharing the file have outboxes of their own."""
    path = str(tmp_path / "hot.sqlite3")
    store, other = _store(path), _store(path)
    await store.open()
    await other.open()
    try:
        outbox, other_outbox = store.outbox(), other.outbox()
        now = utcnow()
        first_spec = _spec(1, now)
        first = await store.append_messages("s", [Message("user", "first", now)], archive=first_spec)
        assert first[0].seq == 1 and await outbox.depth() == 1
        messages = [Message("user", f"m{i}", now, {"i": i}) for i in range(3)]
        spec = _spec(3, now)
        stored = await store.append_messages("s", messages, archive=spec)
        assert [m.seq for m in stored] == [2, 3, 4]
        events = await outbox.peek(10)
        ids = (*first_spec.event_ids, *spec.event_ids)
        expected = [message_event("s", m, m.seq, event_id) for m, event_id in zip([*first, *stored], ids, strict=True)]
        assert [e.to_dict() for e in events] == [e.to_dict() for e in expected]
        assert await other_outbox.depth() == 0
        await outbox.aclose()
        await other_outbox.aclose()
    finally:
        await store.aclose()
        await other.aclose()


def _spec(count: int, at: Any) -> ArchiveSpec:
    return ArchiveSpec("context_conversations", tuple(new_event_id() for _ in range(count)), (at,) * count)


async def test_events_left_by_a_closed_kit_are_drained_by_the_next_kit_on_the_file(tmp_path: Path) -> None:
    """The cold tier goes down once a kit created its session (a new owner needs the archive's word): the
    messages the kit then writes wait in the SQLite file (no ``outbox_path`` configured) when it closes; a new
    kit on the same file, with the cold tier up, archives each message once."""
    path = str(tmp_path / "hot.sqlite3")
    config: dict[str, Any] = {
        "hot": {"backend": "sqlite", "path": path}, "namespace": "ob", "archiver": {"flush_interval": 0.01},
    }
    settings = StoreSettings(namespace="ob", archived=True)
    hot = SqliteHotStore(settings, {"path": path})
    cold = MemoryColdStore(settings)
    kit = ContextKit(hot, cold, config=ContextKit.from_config(config, env={}).config)
    await kit.open()
    assert kit.archiver is not None and isinstance(kit.archiver.outbox, FileOutbox)
    await kit.create_session("s", "u")
    assert await kit.archiver.flush(5)
    cold.set_available(False)
    for i in range(20):
        await kit.add_message("s", "user", f"m{i}")
    await kit.aclose(drain_timeout=0.2)
    left = FileOutbox(path, table=hot.outbox_table)
    assert await left.depth() == 20
    await left.aclose()

    cold.set_available(True)
    hot = SqliteHotStore(settings, {"path": path})
    second = ContextKit(hot, cold, config=ContextKit.from_config(config, env={}).config)
    await second.open()
    try:
        assert second.archiver is not None and await second.archiver.flush(10)
        archived = await cold.read_history("s", None)
        assert [m.seq for m in archived] == list(range(1, 21))
        assert [m.content for m in archived] == [f"m{i}" for i in range(20)]
        assert await cold.count_events("context_conversations", "s") == 20
    finally:
        await second.aclose()
