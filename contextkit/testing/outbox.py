"""Checks of the archiver's outbox contract, shared by every outbox's tests (in-process, file, Redis stream).

:func:`check_peek_ahead` drives an empty outbox through the reads the archiver makes when it writes several
batches at once (:class:`contextkit.archiver.PeekAhead`) and asserts what each returns; :func:`check_batch_bytes`
checks reads bounded by ``max_bytes`` (``[archiver] batch_bytes``) and :func:`check_dead_letters` the
:class:`contextkit.archiver.DeadLetterBox` contract. Call them from a test::

    async def test_my_outbox_reads_past_batches_in_flight():
        await check_peek_ahead(MyOutbox(...))

The outbox must be empty and drained by this process alone. Events are pushed with distinct keys, so a sharded
outbox spreads them over its shards; order is compared by push order, which every outbox keeps. Only test code
imports this module.
"""

from __future__ import annotations

import uuid
from typing import cast

from contextkit.archiver import BytesBoundedPeek, DeadLetter, DeadLetterBox, Outbox, PeekAhead, takes_max_bytes
from contextkit.backend.tables import ArchiveTables
from contextkit.records import ArchiveEvent, utcnow

__all__ = ["check_batch_bytes", "check_dead_letters", "check_peek_ahead"]


def _events(count: int, tag: str) -> list[ArchiveEvent]:
    return [ArchiveEvent(ArchiveTables.SESSIONS, f"{tag}-{i}", {"i": i}) for i in range(count)]


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


def _sized(tag: str, sizes: list[int]) -> list[ArchiveEvent]:
    return [
        ArchiveEvent(ArchiveTables.TASK_CONTEXTS, f"{tag}-{i}", {"context": {"blob": "x" * size}})
        for i, size in enumerate(sizes)
    ]


async def check_batch_bytes(outbox: Outbox, *, ordered: bool = True) -> None:
    """Assert reads bounded by bytes on an empty ``outbox`` whose ``peek`` / ``peek_ahead`` take ``max_bytes``
    (leaves it empty): a batch stops before the event that would take it past the bound, an event bigger than
    the bound is a batch by itself, a ``peek_ahead`` batch ended by bytes counts as full (one that is not, as
    before, is not handed out), and without ``max_bytes`` only the count bounds a batch."""
    tag = uuid.uuid4().hex[:8]
    small, big = 100, 50_000
    events = _sized(tag, [small, small, big, small, small])
    await outbox.push(events)
    bound = 10_000
    assert takes_max_bytes(outbox.peek), "this check is for an outbox whose peek takes max_bytes"
    first = await cast(BytesBoundedPeek, outbox).peek(10, max_bytes=bound)
    if ordered:
        assert _ids(first) == _ids(events[:2]), "a batch stops before the event that would pass max_bytes"
        assert isinstance(outbox, PeekAhead), "an ordered outbox bounded by bytes reads ahead (PeekAhead)"
        second = await outbox.peek_ahead(10, max_bytes=bound)
        assert _ids(second) == _ids(events[2:3]), "an event bigger than max_bytes is a batch by itself (full)"
        assert await outbox.peek_ahead(10, max_bytes=bound) == [], "2 small events: neither bound reached"
        assert _ids(await outbox.peek_ahead(2, max_bytes=bound)) == _ids(events[3:])
    else:
        assert 1 <= len(first) <= 5
    everything = await outbox.peek(10)
    assert sorted(_ids(everything)) == sorted(_ids(events)), "without max_bytes only the count bounds a batch"
    await outbox.ack(_ids(everything))
    assert await outbox.depth() == 0


async def check_dead_letters(outbox: Outbox) -> None:
    """Assert the :class:`contextkit.archiver.DeadLetterBox` contract on an empty ``outbox`` without dead letters
    (leaves both empty): a letter leaves the outbox and is kept with its reason; a replay puts the event back (the
    same event, at the tail), named or all, and forgets the letter; unknown ids replay nothing."""
    assert isinstance(outbox, DeadLetterBox), f"{type(outbox).__name__} keeps no dead letters"
    tag = uuid.uuid4().hex[:8]
    events = _events(3, tag)
    await outbox.push(events)
    # A cluster's outbox merges its slot streams: the order of a batch is not the order of the pushes.
    handed = {event.event_id: event for event in await outbox.peek(3)}
    assert sorted(handed) == sorted(_ids(events))
    refused = [
        DeadLetter(handed[events[0].event_id], "EventRefused: too big", utcnow()),
        DeadLetter(handed[events[2].event_id], "other", utcnow()),
    ]
    await outbox.dead_letter(refused)
    assert await outbox.depth() == 1 and await outbox.dead_letter_count() == 2
    kept = await outbox.dead_letters()
    assert sorted(letter.event.event_id for letter in kept) == sorted(_ids([events[0], events[2]]))
    assert {letter.reason for letter in kept} == {"EventRefused: too big", "other"}
    assert [letter.event for letter in kept if letter.event.event_id == events[0].event_id] == [events[0]]
    assert len(await outbox.dead_letters(1)) == 1
    assert await outbox.replay_dead_letters(["no-such-event"]) == 0
    assert await outbox.replay_dead_letters([events[2].event_id]) == 1
    assert await outbox.dead_letter_count() == 1
    assert await outbox.replay_dead_letters() == 1
    assert await outbox.dead_letter_count() == 0 and await outbox.dead_letters() == []
    back = await outbox.peek(10)
    assert sorted(_ids(back)) == sorted(_ids(events)), "replayed events are back in the outbox"
    assert [e for e in back if e.event_id == events[0].event_id] == [events[0]]
    await outbox.ack(_ids(back))
    assert await outbox.depth() == 0

