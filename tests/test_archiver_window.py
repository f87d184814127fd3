"""The archiver writes several batches at once on a cold tier that allows it (``concurrent_writes``): the outboxes
read past the batches in flight, batches are acknowledged in order, a failed batch is retried without losing or
duplicating an event, and a cold tier without the capability gets one batch at a time; events queued while the
archiver reads an empty outbox are read at once, not after its idle wake-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contextkit.archiver import Archiver, FileOutbox, MemoryOutbox
from contextkit.config import ArchiverConfig
from contextkit.errors import BackendUnavailable
from contextkit.records import ArchiveEvent, Message, utcnow
from contextkit.stores import Capability, StoreSettings
from contextkit.testing.outbox import check_peek_ahead
from contextkit_memory.cold import MemoryColdStore


async def test_memory_outbox_reads_past_batches_in_flight() -> None:
    await check_peek_ahead(MemoryOutbox())


async def test_file_outbox_reads_past_batches_in_flight(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "box.sqlite3")
    try:
        await check_peek_ahead(outbox)
    finally:
        await outbox.aclose()


async def test_memory_outbox_builds_deferred_messages_in_place_when_reading_ahead() -> None:
    """Messages queued as records are built by the read that reaches them, also in the middle of the queue, and
    keep their event ids when read again (a retried batch is the same events)."""
    outbox = MemoryOutbox()
    now = utcnow()
    for i in range(6):
        outbox.queue_message("s", Message(role="user", content=f"m{i}", timestamp=now), i + 1)
    head = await outbox.peek(2)
    ahead = await outbox.peek_ahead(2)
    assert [e.payload["message"]["content"] for e in head + ahead] == ["m0", "m1", "m2", "m3"]
    again = await outbox.peek(6)
    assert [e.event_id for e in again[:4]] == [e.event_id for e in head + ahead]
    assert [e.payload["message"]["seq"] for e in again] == [1, 2, 3, 4, 5, 6]


class _Recording(MemoryColdStore):
    """A memory cold tier that counts the writes in flight at once and fails the writes it is told to."""

    def __init__(self, *, concurrent: bool = True) -> None:
        super().__init__(StoreSettings(namespace="window"))
        if not concurrent:
            self.capabilities = frozenset()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_next: set[int] = set()
        self.calls = 0
        self.batches: list[list[str]] = []
        self.wrote = asyncio.Event()

    async def write_events(self, events: Sequence[ArchiveEvent]) -> None:
        self.calls += 1
        call = self.calls
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            # The first write of a window is the slowest, so the ones after it finish first.
            await asyncio.sleep(0.02 if len(self.batches) % 2 == 0 else 0.001)
            if call in self.fail_next:
                raise BackendUnavailable(f"write {call} failed (test)")
            await super().write_events(events)
            self.batches.append([e.event_id for e in events])
            self.wrote.set()
        finally:
            self.in_flight -= 1


def _events(count: int) -> list[ArchiveEvent]:
    return [ArchiveEvent("context_sessions", f"s{i % 7}", {"event_type": "update", "session": {"i": i}})
            for i in range(count)]


async def _drain(cold: _Recording, outbox: Any, events: list[ArchiveEvent], **config: Any) -> Archiver:
    archiver = Archiver(cold, outbox, ArchiverConfig(batch_size=10, flush_interval=0.01, max_backoff=0.05, **config))
    archiver.start()
    await archiver.submit(events)
    assert await archiver.flush(10)
    await archiver.aclose()
    return archiver


async def test_a_backlog_is_written_several_batches_at_once_and_acknowledged_in_order() -> None:
    cold = _Recording()
    events = _events(95)
    archiver = await _drain(cold, MemoryOutbox(), events, max_in_flight=3)
    assert cold.most_in_flight == 3
    assert await cold.count_events("context_sessions") == 95
    assert sorted(i for batch in cold.batches for i in batch) == sorted(e.event_id for e in events)
    assert archiver.rows == 95 and archiver.failures == 0
    assert (await archiver.metrics())["max_in_flight"] == 3


async def test_a_failed_batch_in_a_window_is_retried_and_nothing_is_lost_or_duplicated(tmp_path: Path) -> None:
    """The first write of the window fails while the later ones succeed: after the backoff the archiver starts
    over at the failed batch; every event is stored exactly once (cold writes are idempotent on event_id)."""
    for outbox in (MemoryOutbox(), FileOutbox(tmp_path / "box.sqlite3")):
        cold = _Recording()
        cold.fail_next = {1, 5}
        events = _events(60)
        archiver = await _drain(cold, outbox, events, max_in_flight=2)
        assert archiver.failures == 2
        assert await cold.count_events("context_sessions") == 60
        stored = [i for batch in cold.batches for i in batch]
        assert sorted(set(stored)) == sorted(e.event_id for e in events)
        assert await outbox.depth() == 0


async def test_a_cold_tier_without_concurrent_writes_gets_one_batch_at_a_time() -> None:
    cold = _Recording(concurrent=False)
    archiver = await _drain(cold, MemoryOutbox(), _events(50), max_in_flight=4)
    assert cold.most_in_flight == 1
    assert (await archiver.metrics())["max_in_flight"] == 1
    assert await cold.count_events("context_sessions") == 50


async def test_the_capability_is_declared_where_concurrent_writes_are_safe() -> None:
    assert Capability.CONCURRENT_WRITES.value in MemoryColdStore(StoreSettings()).capabilities


class _ReadsBeforePush(MemoryOutbox):
    """An outbox whose peek reads, then waits for the test before returning: a push that lands meanwhile is not
    in what the peek read (as with a durable outbox whose push completes while the archiver reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.release = asyncio.Event()
        self.hold = True

    async def peek(self, count: int) -> list[ArchiveEvent]:
        read = await super().peek(count)
        if self.hold and not read:
            self.hold = False
            self.reading.set()
            await self.release.wait()
        return read


async def test_events_queued_while_the_archiver_reads_an_empty_outbox_are_not_left_waiting() -> None:
    """The archiver wakes, reads an empty outbox, and events are queued before that read returns: it reads again
    at once instead of sleeping until its next idle wake-up (1 s) with the events pending."""
    cold = _Recording(concurrent=False)
    outbox = _ReadsBeforePush()
    archiver = Archiver(cold, outbox, ArchiverConfig(batch_size=10, flush_interval=0.01))
    archiver.start()
    try:
        await asyncio.wait_for(outbox.reading.wait(), 5)
        await archiver.submit(_events(3))  # the archiver is awake (reading): no wake-up is sent
        outbox.release.set()
        async def stored() -> None:
            while await cold.count_events("context_sessions") < 3:
                cold.wrote.clear()
                await cold.wrote.wait()

        # Well under the idle wake-up of 1 s.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stored(), 0.7)
        assert await cold.count_events("context_sessions") == 3, "events waited for the idle wake-up"
    finally:
        await archiver.aclose()


_ARCHIVE_DOC = Path(__file__).resolve().parents[1] / "docs" / "archive.md"


async def test_every_archiver_metric_is_documented() -> None:
    """docs/archive.md's metrics table names every key of ``Archiver.metrics()`` (so the page cannot drift)."""
    doc = _ARCHIVE_DOC.read_text(encoding="utf-8")
    table = doc[doc.index("## What to watch") : doc.index("## Tuning")]
    archiver = Archiver(_Recording(), MemoryOutbox(), ArchiverConfig())
    missing = [key for key in await archiver.metrics() if f"`{key}`" not in table]
    assert not missing, f"docs/archive.md does not describe archiver metric(s) {missing}"


async def test_every_tiering_metric_and_option_is_documented() -> None:
    """docs/archive.md names every key of the tiered layer's metrics and every ``[tiering]`` option."""
    from dataclasses import fields

    from contextkit.config import TieringConfig
    from contextkit.tiered import TieringStats

    doc = _ARCHIVE_DOC.read_text(encoding="utf-8")
    watch = doc[doc.index("## What to watch") : doc.index("## Tuning")]
    tuning = doc[doc.index("## Tuning") :]
    missing = [key for key in TieringStats().as_dict() if f"`{key}`" not in watch]
    missing += [f.name for f in fields(TieringConfig) if f"`{f.name}`" not in tuning]
    assert not missing, f"docs/archive.md does not describe {missing}"


async def test_a_full_batch_ends_the_accumulation_window_again_after_the_archiver_cleared_it() -> None:
    """Events queued by a hot store and notified (the memory tier's appends) that fill a batch end the archiver's
    wait for more (flush_interval, here far longer than the test waits) every time, not only the first: the
    archiver clears its signal when it reads, and the next full batch sets it again."""
    cold = _Recording(concurrent=False)
    outbox = MemoryOutbox()
    archiver = Archiver(cold, outbox, ArchiverConfig(batch_size=10, flush_interval=600.0))
    archiver.start()
    now = utcnow()
    seq = 0

    def queue(count: int) -> None:
        nonlocal seq
        messages = []
        for _ in range(count):
            seq += 1
            messages.append(Message("user", f"m{seq}", now, seq=seq))
        outbox.queue_messages("s", messages)
        archiver.notify(count)

    async def archived(count: int) -> None:
        while await cold.count_events("context_conversations") < count:
            cold.wrote.clear()
            await cold.wrote.wait()

    try:
        for written in (10, 20, 30):
            queue(4)  # a partial batch: the archiver waits for more
            await asyncio.sleep(0.05)
            queue(6)  # the batch is full: the wait ends
            await asyncio.wait_for(archived(written), 10)
        assert [len(batch) for batch in cold.batches] == [10, 10, 10]
    finally:
        await archiver.aclose()
