"""Checks of the archiver's outbox contract, shared by every outbox's tests (in-process, file, Redis stream).

:func:`check_peek_ahead` drives an empty outbox through the reads the archiver makes when it writes several
batches at once (:class:`contextkit.archiver.PeekAhead`) and asserts what each returns. Call it from a test::

    async def test_my_outbox_reads_past_batches_in_flight():
        await check_peek_ahead(MyOutbox(...))

The outbox must be empty and drained by this process alone. Events are pushed with distinct keys, so a sharded
outbox spreads them over its shards; order is compared by push order, which every outbox keeps. Only test code
imports this module.
"""

from __future__ import annotations

import uuid

from contextkit.archiver import Outbox, PeekAhead
from contextkit.records import ArchiveEvent

__all__ = ["check_peek_ahead"]


def _events(count: int, tag: str) -> list[ArchiveEvent]:
    return [ArchiveEvent("context_sessions", f"{tag}-{i}", {"i": i}) for i in range(count)]


def _ids(events: list[ArchiveEvent]) -> list[str]:
    return [e.event_id for e in events]


async def check_peek_ahead(outbox: Outbox, *, ordered: bool = True) -> None:
    """Assert the ``peek`` / ``peek_ahead`` / ``ack`` contract on an empty ``outbox`` (leaves it empty).

    * ``peek_ahead`` continues after every event handed out since the last ``peek`` and only hands out full
      batches: with fewer than ``count`` waiting it returns ``[]`` and does not move, so a later call with a
      smaller count (or after more pushes) hands out exactly the events that follow.
    * ``ack`` of the first batch while a later one is in flight does not make ``peek_ahead`` repeat or skip any.
    * ``peek`` starts over at the oldest event not acknowledged, whatever was handed out before (a retry).

    ``ordered=False`` for a sharded outbox, which keeps push order per shard (so per key) only: batches are then
    compared as sets (still: no event twice, none missing).
    """
    assert isinstance(outbox, PeekAhead), f"{type(outbox).__name__} has no peek_ahead"

    def same(got: list[ArchiveEvent], want: list[ArchiveEvent], what: str) -> None:
        if ordered:
            assert _ids(got) == _ids(want), what
        else:
            assert len(got) == len(want) and set(_ids(got)) == set(_ids(want)), what

    tag = uuid.uuid4().hex[:8]
    events = _events(12, tag)
    await outbox.push(events)
    first = await outbox.peek(4)
    second = await outbox.peek_ahead(4)
    assert await outbox.peek_ahead(5) == [], "peek_ahead must hand out full batches only (4 wait, 5 asked)"
    await outbox.ack(_ids(first))
    third = await outbox.peek_ahead(4)
    assert len(first) == len(second) == len(third) == 4
    same(first + second + third, events, "peek then peek_ahead must hand out each event once, oldest first")
    if ordered:
        assert _ids(third) == _ids(events[8:12]), "an ack of the oldest batch must not move the read position"
    assert await outbox.peek_ahead(1) == []
    more = _events(3, tag + "b")
    await outbox.push(more)
    same(await outbox.peek_ahead(3), more, "events pushed later follow the ones in flight")
    # A write failed: the archiver starts over from the oldest event not acknowledged.
    retry = await outbox.peek(100)
    same(retry, second + third + more, "peek must start over at the oldest unacknowledged event")
    await outbox.ack(_ids(retry[4:8]))  # a later batch acknowledged before an earlier one
    assert await outbox.peek_ahead(2) == [], "everything waiting was handed out by the last peek"
    rest = retry[:4] + retry[8:]
    same(await outbox.peek(100), rest, "an ack removes exactly the events it names")
    await outbox.ack(_ids(rest))
    assert await outbox.depth() == 0
    assert await outbox.peek(10) == [] and await outbox.peek_ahead(1) == []
