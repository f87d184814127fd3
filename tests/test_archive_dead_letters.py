"""Refused vs outage, bisection and dead letters on the in-process tiers and SQLite files (issue 15, item 1).

The PostgreSQL / ClickHouse / Redis side is in ``tests/integration/test_archive_refusals.py``; here the cold tier
is the memory one (with a switch that makes it refuse chosen events) or a SQLite file whose length limit is
lowered so that SQLite itself refuses a big event.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.archiver import DeadLetter, FileOutbox, MemoryOutbox
from contextkit.errors import BackendUnavailable, EventRefused, LimitExceeded
from contextkit.records import ArchiveEvent, utcnow
from contextkit.stores import StoreSettings, max_key_bytes
from contextkit_memory.cold import MemoryColdStore


class PickyCold(MemoryColdStore):
    """A memory cold tier that refuses, as data, every batch holding a message whose content starts with
    ``refuse`` (while ``picky``), fails ``outages`` batches as an outage first, and counts its writes."""

    def __init__(self, settings: StoreSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.picky = True
        self.outages = 0
        self.calls = 0

    async def write_events(self, events: Sequence[ArchiveEvent]) -> None:
        self.calls += 1
        if self.outages:
            self.outages -= 1
            raise BackendUnavailable("connection refused (test)")
        if self.picky and any(str(e.payload.get("message", {}).get("content", "")).startswith("refuse") for e in events):
            raise EventRefused("value rejected (test)")
        await super().write_events(events)


async def _kit(cold: MemoryColdStore, **config: Any) -> ContextKit:
    built = ContextKit.from_config(
        {"hot": "memory", "cold": "memory", "archiver": {"flush_interval": 0.01, "max_backoff": 0.05}, **config}, env={}
    )
    return await ContextKit(built.hot, cold, config=built.config).open()


async def _contents(cold: MemoryColdStore, key: str) -> list[str]:
    return [m.content for m in await cold.read_history(key, None)]


async def test_a_refused_batch_is_bisected_and_only_the_refused_events_are_set_aside() -> None:
    """1,000 messages in one batch, 2 of them refused: both become dead letters, the 998 others are archived in
    order, in about 2 k log2(n) writes (not one per event), and nothing counts as a failure."""
    cold = PickyCold(StoreSettings(namespace="bisect"))
    kit = await _kit(cold, archiver={"flush_interval": 0.5, "batch_size": 1000})
    try:
        assert kit.archiver is not None
        contents = [f"m{i}" for i in range(1000)]
        contents[137] = "refuse-a"
        contents[862] = "refuse-b"
        for content in contents:
            await kit.add_message("s", "user", content)
        assert await kit.archiver.flush(10)
        assert await _contents(cold, "s") == [c for c in contents if not c.startswith("refuse")]
        letters = await kit.archiver.list_dead_letters()
        assert [letter.event.payload["message"]["content"] for letter in letters] == ["refuse-a", "refuse-b"]
        assert all(letter.reason == "EventRefused: value rejected (test)" for letter in letters)
        assert cold.calls <= 1 + 2 * 2 * math.ceil(math.log2(1000))
        metrics = await kit.archiver.metrics()
        assert metrics["dead_letters"] == 2 and metrics["dead_lettered"] == 2
        assert metrics["failures"] == 0 and metrics["queue_depth"] == 0
        health = await kit.health_check()
        assert health["status"] == "degraded"
        assert any("2 archive event(s) refused by the cold tier" in issue for issue in health["issues"])
    finally:
        await kit.aclose()


async def test_an_outage_retries_the_whole_batch_and_sets_nothing_aside() -> None:
    cold = PickyCold(StoreSettings(namespace="outage"))
    cold.outages = 3
    kit = await _kit(cold)
    try:
        assert kit.archiver is not None
        for i in range(50):
            await kit.add_message("s", "user", f"m{i}")
        assert await kit.archiver.flush(10)
        assert await _contents(cold, "s") == [f"m{i}" for i in range(50)]
        metrics = await kit.archiver.metrics()
        assert metrics["failures"] == 3 and metrics["dead_letters"] == 0 and metrics["consecutive_failures"] == 0
    finally:
        await kit.aclose()


async def test_an_outage_in_the_middle_of_a_split_loses_nothing() -> None:
    """The batch is refused, then the cold tier goes down while it is being split: what was isolated stays a dead
    letter, the rest is retried once the tier is back; every accepted message is archived once, in order."""

    class DownMidSplit(PickyCold):
        async def write_events(self, events: Sequence[ArchiveEvent]) -> None:
            if self.calls == 2:
                self.outages = 2
            await super().write_events(events)

    cold = DownMidSplit(StoreSettings(namespace="midsplit"))
    kit = await _kit(cold, archiver={"flush_interval": 0.5, "batch_size": 64, "max_backoff": 0.05})
    try:
        assert kit.archiver is not None
        contents = [f"m{i}" for i in range(64)]
        contents[5] = "refuse-early"
        contents[60] = "refuse-late"
        for content in contents:
            await kit.add_message("s", "user", content)
        assert await kit.archiver.flush(10)
        assert await _contents(cold, "s") == [c for c in contents if not c.startswith("refuse")]
        assert sorted(e.payload["message"]["content"] for e, _ in kit.archiver.dead_letters) == ["refuse-early", "refuse-late"]
        assert (await kit.archiver.metrics())["failures"] >= 1
    finally:
        await kit.aclose()


async def test_dead_letters_of_an_in_process_outbox_are_replayed_once_the_cause_is_fixed() -> None:
    cold = PickyCold(StoreSettings(namespace="replay"))
    kit = await _kit(cold)
    try:
        assert kit.archiver is not None
        for content in ("a", "refuse-me", "b"):
            await kit.add_message("s", "user", content)
        assert await kit.archiver.flush(5)
        assert await kit.archiver.dead_letter_count() == 1
        assert await kit.archiver.replay_dead_letters(["no-such-id"]) == 0
        # Refused again while the cause is still there: a dead letter again, not a retry loop.
        assert await kit.archiver.replay_dead_letters() == 1
        assert await kit.archiver.flush(5)
        assert await kit.archiver.dead_letter_count() == 1
        cold.picky = False
        (letter,) = await kit.archiver.list_dead_letters()
        assert await kit.archiver.replay_dead_letters([letter.event.event_id]) == 1
        assert await kit.archiver.flush(5)
        assert await kit.archiver.dead_letter_count() == 0
        assert sorted(await _contents(cold, "s")) == ["a", "b", "refuse-me"]
        assert (await kit.health_check())["status"] == "healthy"
    finally:
        await kit.aclose()


async def test_a_file_outbox_keeps_its_dead_letters_across_processes(tmp_path: Path) -> None:
    """Memory hot tier with ``outbox_path``: the letter is moved into the file's dead-letter table in the same
    transaction that removes the event; a new outbox on the file (a new process) lists and replays it."""
    path = tmp_path / "outbox.db"
    cold = PickyCold(StoreSettings(namespace="file"))
    kit = await _kit(cold, archiver={"flush_interval": 0.01, "outbox_path": str(path)})
    try:
        assert kit.archiver is not None
        for content in ("a", "refuse-me", "b"):
            await kit.add_message("s", "user", content)
        assert await kit.archiver.flush(5)
    finally:
        assert await kit.aclose() == 0
    outbox = FileOutbox(path)
    try:
        assert await outbox.depth() == 0 and await outbox.dead_letter_count() == 1
        (letter,) = await outbox.dead_letters()
        assert letter.event.payload["message"]["content"] == "refuse-me"
        assert letter.reason == "EventRefused: value rejected (test)"
        assert await outbox.replay_dead_letters() == 1
        assert await outbox.dead_letter_count() == 0
        (event,) = await outbox.peek(10)
        assert event == letter.event
    finally:
        await outbox.aclose()


async def test_memory_outbox_dead_letter_protocol() -> None:
    outbox = MemoryOutbox()
    events = [ArchiveEvent("context_sessions", f"k{i}", {"event_type": "create", "session": None}) for i in range(3)]
    await outbox.push(events)
    assert await outbox.peek(3) == events
    await outbox.dead_letter([DeadLetter(events[1], "refused", utcnow())])
    assert await outbox.depth() == 2 and await outbox.dead_letter_count() == 1
    assert [letter.event for letter in await outbox.dead_letters()] == [events[1]]
    assert await outbox.replay_dead_letters() == 1
    assert await outbox.peek(3) == [events[0], events[2], events[1]]
    letter = DeadLetter(events[0], "why", utcnow())
    assert DeadLetter.from_dict(letter.to_dict()) == letter


async def test_sqlite_refuses_a_value_over_its_length_limit_and_the_archiver_dead_letters_it(tmp_path: Path) -> None:
    """A real refusal: a SQLite cold tier whose SQLITE_LIMIT_LENGTH is lowered refuses a big message
    (``sqlite3.DataError``: string or blob too big) as ``EventRefused``; the small ones are archived."""
    from contextkit_sqlite.cold import SqliteColdStore

    cold = SqliteColdStore(StoreSettings(namespace="toobig"), {"path": str(tmp_path / "cold.db")})
    built = ContextKit.from_config({"hot": "memory", "cold": "memory", "archiver": {"flush_interval": 0.01}}, env={})
    kit = ContextKit(built.hot, cold, config=built.config)
    await kit.open()
    try:
        assert kit.archiver is not None
        await cold._db.run(lambda conn: conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 20_000))
        big = ArchiveEvent("context_task_contexts", "t", {"context": {"blob": "x" * 50_000}})
        with pytest.raises(EventRefused, match="too big"):
            await cold.write_events([big])
        await kit.add_message("s", "user", "small 1")
        await kit.archiver.submit([big])
        await kit.add_message("s", "user", "small 2")
        assert await kit.archiver.flush(5)
        assert [m.content for m in await cold.read_history("s", None)] == ["small 1", "small 2"]
        assert [letter.event.event_id for letter in await kit.archiver.list_dead_letters()] == [big.event_id]
    finally:
        await kit.aclose()


class LimitedCold(MemoryColdStore):
    max_key_bytes = 30


async def test_ids_over_a_tiers_declared_limit_are_refused_at_the_edge_in_utf8_bytes() -> None:
    cold = LimitedCold(StoreSettings(namespace="limits"))
    assert max_key_bytes(cold) == 30
    kit = await _kit(cold)
    try:
        await kit.create_session("a" * 30, "u")
        await kit.create_session("é" * 15, "u")  # 30 bytes
        with pytest.raises(LimitExceeded, match=r"31 bytes long in UTF-8 \(16 characters\); the memory cold tier"):
            await kit.create_session("é" * 15 + "x", "u")
        with pytest.raises(LimitExceeded, match="at most 30 bytes"):
            await kit.add_message("汉" * 11, "user", "x")
        with pytest.raises(LimitExceeded):
            await kit.store_checkpoint("t", "c" * 31, {"k": 1})
        assert kit.archiver is not None and await kit.archiver.flush(5)
        assert (await kit.archiver.metrics())["dead_letters"] == 0
    finally:
        await kit.aclose()


def test_a_malformed_declared_limit_is_a_type_error() -> None:
    class Bad:
        max_key_bytes = "10"

    with pytest.raises(TypeError, match="max_key_bytes"):
        max_key_bytes(Bad())
    assert max_key_bytes(object()) is None


def test_postgres_and_clickhouse_classify_refusals_and_outages() -> None:
    """The drivers' exception classes: data and limit errors are refusals, connection errors outages."""
    asyncpg = pytest.importorskip("asyncpg")
    from contextkit_postgres.cold import PostgresColdStore

    store = PostgresColdStore(StoreSettings(namespace="classify"), {"url": "postgresql://u@127.0.0.1:1/db"})
    refused = store._translate(asyncpg.ProgramLimitExceededError("index row size 6032 exceeds btree"), "write_events")
    assert isinstance(refused, EventRefused) and "ProgramLimitExceededError" in str(refused)
    w = "write_events"
    assert isinstance(store._translate(asyncpg.NumericValueOutOfRangeError("out of range"), w), EventRefused)
    assert isinstance(store._translate(asyncpg.CheckViolationError("check"), w), EventRefused)
    assert isinstance(store._translate(asyncpg.ConnectionDoesNotExistError("gone"), w), BackendUnavailable)
    assert isinstance(store._translate(TimeoutError(), w), BackendUnavailable)
    # Outside a write of events a constraint is no refusal of data (two processes migrating at once).
    assert isinstance(store._translate(asyncpg.UniqueViolationError("dup"), "connect"), BackendUnavailable)

    pytest.importorskip("clickhouse_connect")
    from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

    from contextkit_clickhouse.cold import _refuses_data

    assert _refuses_data(DatabaseError("Code: 131. DB::Exception: String too large. (TOO_LARGE_STRING_SIZE)"))
    assert _refuses_data(DatabaseError("boom", code=53))
    assert _refuses_data(DataError("cannot encode value for UInt64 column"))
    assert not _refuses_data(DatabaseError("Code: 241. DB::Exception: Memory limit exceeded (MEMORY_LIMIT_EXCEEDED)"))
    assert not _refuses_data(OperationalError("Error HTTPConnectionPool: connection refused"))
    assert not _refuses_data(OSError("connection reset"))


async def test_the_in_process_and_file_outboxes_meet_the_shared_checks(tmp_path: Path) -> None:
    """contextkit.testing.outbox: the dead-letter and byte-bound contracts every outbox's tests run."""
    from contextkit.testing.outbox import check_batch_bytes, check_dead_letters

    await check_dead_letters(MemoryOutbox())
    await check_batch_bytes(MemoryOutbox())
    outbox = FileOutbox(tmp_path / "checks.db")
    try:
        await check_dead_letters(outbox)
        await check_batch_bytes(outbox)
    finally:
        await outbox.aclose()
