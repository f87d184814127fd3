"""Batches bounded by bytes as well as count, an in-process outbox bounded by bytes, write timeouts that scale
with a batch's size (issue 15, "big events"). The real-PostgreSQL drain is
``tests/integration/test_archive_big_events.py``; a Redis stream's bound is checked in
``tests/integration/test_archive_refusals.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextkit import ContextKit
from contextkit.archiver import FileOutbox, MemoryOutbox, event_size, write_timeout
from contextkit.config import load_config
from contextkit.errors import BackendUnavailable, ConfigError
from contextkit.records import ArchiveEvent


def _doc(key: str, size: int) -> ArchiveEvent:
    return ArchiveEvent("context_task_contexts", key, {"context": {"blob": "x" * size}})


def test_event_size_follows_the_json_size() -> None:
    small, big = _doc("k", 10), _doc("k", 1_000_000)
    assert 150 < event_size(small) < 400
    assert 1_000_000 < event_size(big) < 1_001_000
    # Non-ASCII text counts up to 3 bytes a character (UTF-8), never less than its length.
    assert event_size(ArchiveEvent("context_task_contexts", "k", {"context": {"t": "汉" * 1000}})) >= 3000


def test_write_timeout_scales_with_count_and_bytes() -> None:
    assert write_timeout(5.0, [_doc("k", 10)]) == 5.0
    assert write_timeout(5.0, [_doc("k", 10)] * 10_000) == pytest.approx(10.0)
    assert write_timeout(5.0, [_doc("k", 40 * 1024 * 1024)]) == pytest.approx(50.0, rel=0.01)


async def test_memory_outbox_batches_are_bounded_by_bytes_and_peek_ahead_counts_a_byte_bound_as_full() -> None:
    outbox = MemoryOutbox()
    events = [_doc("a", 100), _doc("b", 100), _doc("big", 5_000), _doc("c", 100), _doc("d", 100)]
    await outbox.push(events)
    assert await outbox.peek(10, max_bytes=1000) == events[:2]  # stops before the big one
    assert await outbox.peek_ahead(10, max_bytes=1000) == [events[2]]  # alone, though over the bound
    assert await outbox.peek_ahead(10, max_bytes=1000) == []  # two small ones left: not a full batch
    assert await outbox.peek_ahead(2, max_bytes=1000) == events[3:]  # full by count
    assert await outbox.peek(10) == events  # no byte bound: count only
    await outbox.ack([e.event_id for e in events[:3]])
    assert outbox.pending_bytes == event_size(events[3]) + event_size(events[4])


async def test_memory_outbox_is_bounded_by_bytes_too() -> None:
    outbox = MemoryOutbox(max_pending=1000, max_pending_bytes=10_000)
    assert outbox.has_room(1)
    await outbox.push([_doc("a", 6_000)])
    assert outbox.has_room(1)  # 6 KB of 10 KB
    await outbox.push([_doc("b", 6_000)])  # over by its own size, as the write checked before it allows
    assert not outbox.has_room(1)
    first, _ = await outbox.peek(10)
    await outbox.ack([first.event_id])
    assert outbox.has_room(1)
    await outbox.dead_letter([])
    assert await outbox.depth() == 1


async def test_a_kit_on_the_memory_tier_refuses_writes_once_the_outbox_holds_max_pending_bytes() -> None:
    """The cold tier down, 400 KB messages: the outbox of 1 MB refuses the write that would hold more (typed,
    nothing written), and accepts writes again once the archive caught up."""
    config = {
        "hot": "memory", "cold": "memory",
        "archiver": {"flush_interval": 0.01, "max_backoff": 0.05, "max_pending_bytes": 1_000_000},
    }
    kit = await ContextKit.from_config(config, env={}).open()
    try:
        assert kit.archiver is not None and kit.cold is not None
        await kit.create_session("s", "u")
        assert await kit.archiver.flush(5)
        kit.cold.set_available(False)  # type: ignore[attr-defined]
        for _ in range(3):  # 3 x 400 KB: the third goes over 1 MB (checked before it, with 800 KB waiting)
            await kit.add_message("s", "user", "x" * 400_000)
        accepted = 3
        with pytest.raises(BackendUnavailable, match="outbox is full"):
            await kit.add_message("s", "user", "x" * 400_000)
        assert len(await kit.get_conversation_history("s", limit=100)) == accepted
        kit.cold.set_available(True)  # type: ignore[attr-defined]
        assert await kit.archiver.flush(10)
        await kit.add_message("s", "user", "room again")
    finally:
        await kit.aclose()


async def test_file_outbox_batches_are_bounded_by_the_stored_bytes(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "o.db")
    try:
        events = [_doc("a", 100), _doc("big", 50_000), _doc("b", 100), _doc("c", 100)]
        await outbox.push(events)
        assert await outbox.peek(10, max_bytes=10_000) == events[:1]
        assert await outbox.peek_ahead(10, max_bytes=10_000) == [events[1]]
        assert await outbox.peek_ahead(10, max_bytes=10_000) == []
        assert await outbox.peek(10) == events
    finally:
        await outbox.aclose()


def test_batch_bytes_and_max_pending_bytes_are_configurable_and_checked() -> None:
    config = load_config({"archiver": {"batch_bytes": 1024, "max_pending_bytes": 4096}}, env={})
    assert (config.archiver.batch_bytes, config.archiver.max_pending_bytes) == (1024, 4096)
    defaults = load_config({}, env={}).archiver
    assert (defaults.batch_bytes, defaults.max_pending_bytes) == (8 * 1024 * 1024, 512 * 1024 * 1024)
    with pytest.raises(ConfigError, match="batch_bytes"):
        load_config({"archiver": {"batch_bytes": 0}}, env={})
