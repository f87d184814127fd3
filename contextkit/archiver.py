"""Dual-write without loss: the outbox and the archiver that drains it into the cold tier.

The hot path never waits for the cold tier: a write pushes its :class:`~contextkit.records.ArchiveEvent` objects
into an :class:`Outbox` and returns. A background :class:`Archiver` task reads the outbox in batches, writes them to
the cold tier (idempotently, on ``event_id``) and only then acknowledges them, so an event leaves the outbox only
once the cold tier holds it. While the cold tier is down the archiver retries with exponential backoff and
jitter; events wait in the outbox, they are never dropped.

Outboxes: :class:`MemoryOutbox` (in-process; as durable as the memory hot tier), :class:`FileOutbox` (a local SQLite
file that survives a crash of the process) and any outbox a hot tier provides (a Redis stream).

The hot path pays as little as it can for the archive: an in-process outbox queues a conversation message as the
record itself (:meth:`MemoryOutbox.queue_message`, called by the memory hot tier inside the append) and builds its
event and JSON form when the archiver reads it, off the caller's clock; it is exactly as durable either way (the
process holds it). A durable outbox encodes and stores the event before the call returns. The JSON of events is
:mod:`contextkit.codec`'s (:func:`archive_json` / :func:`archive_loads`, also importable from here).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import operator
import random
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from contextkit.backend.tables import ArchiveTables
from contextkit.codec import archive_json, archive_loads
from contextkit.config import ArchiverConfig
from contextkit.errors import BackendUnavailable, ConfigError, CorruptData, InvalidInput, SerializationError
from contextkit.records import ArchiveEvent, Message, from_iso, to_iso, utcnow
from contextkit.stores import ArchiveSpec, Capability, ColdStore
from contextkit.tiered.events import message_event, message_fields_event

__all__ = [
    "Archiver",
    "BytesBoundedPeek",
    "DeadLetter",
    "DeadLetterBox",
    "FileOutbox",
    "MemoryOutbox",
    "Outbox",
    "PeekAhead",
    "PushCounter",
    "SharedDrain",
    "archive_json",
    "archive_loads",
    "event_size",
    "message_event",
    "message_event_heads",
    "outbox_table_sql",
    "takes_max_bytes",
    "write_timeout",
]

logger = logging.getLogger("contextkit.archiver")



_EVENT_ID = operator.attrgetter("event_id")

# How many of the refused events this process set aside it lists in Archiver.dead_letters (the letters
# themselves stay in the outbox's dead letters, however many).
_RECENT_DEAD = 1000

# A conversation message queued by its fields (MemoryOutbox.queue_message / queue_messages): (key, seq, role,
# content, timestamp, message id, copy of its metadata or None for empty, event id or None, event time or None).
# Fields rather than the Message: the hot tier frees a message it trims even while its event waits here, and a
# tuple of strings, numbers and datetimes leaves the garbage collector's generations after its first pass (an
# idle archiver holds many). Its event is built once, by the first peek that reaches it, and replaces it in the
# queue, so its id never changes.
_Deferred = tuple[str, int, str, str, datetime, str, "dict[str, Any] | None", "str | None", "datetime | None"]


def _deferred_event(item: _Deferred) -> ArchiveEvent:
    key, seq, role, content, timestamp, message_id, metadata, event_id, created_at = item
    return message_fields_event(
        key, seq, role, content, timestamp, message_id, {} if metadata is None else metadata, event_id, created_at
    )


def _value_size(value: Any) -> int:
    """About how many bytes ``value`` takes as JSON: text by its length (times 3 unless ASCII: a UTF-8 character
    takes up to 3 bytes outside the astral planes), 9 per scalar, containers by their items. Cheap: ``len`` of a
    10 MB string costs nothing, only containers are walked, and their scalar items inline (this runs on the hot
    path of the memory tier, for every event it queues)."""
    kind = type(value)
    if kind is str:
        return len(value) + 2 if value.isascii() else 3 * len(value) + 2
    if kind is dict:
        size = 2
        for key, item in value.items():
            size += len(key) + 4 if type(key) is str else 12
            item_kind = type(item)
            if item_kind is str:
                size += len(item) if item.isascii() else 3 * len(item)
            elif item_kind is int or item_kind is float or item_kind is bool or item is None:
                size += 9
            else:
                size += _value_size(item)
        return size
    if kind is list or kind is tuple:
        size = 2
        for item in value:
            item_kind = type(item)
            if item_kind is str:
                size += 3 + (len(item) if item.isascii() else 3 * len(item))
            elif item_kind is int or item_kind is float or item_kind is bool or item is None:
                size += 9
            else:
                size += 1 + _value_size(item)
        return size
    if kind is bytes or kind is bytearray:
        return 2 * len(value)
    # Subclasses and other containers (a MappingProxy, a str subclass): the slow way, rarely.
    if isinstance(value, str):
        return 3 * len(value) + 2
    if isinstance(value, Mapping):
        return _value_size(dict(value))
    if isinstance(value, (list, tuple)):
        return _value_size(list(value))
    return 9


def event_size(event: ArchiveEvent) -> int:
    """About how many bytes the JSON of ``event`` takes (see ``[archiver] batch_bytes``)."""
    payload = event.payload
    if event.table == ArchiveTables.CONVERSATIONS:
        # The common case, thousands per batch: a message's size is its content and its metadata.
        message = payload.get("message")
        if type(message) is dict:
            content, metadata = message.get("content"), message.get("metadata")
            if type(content) is str:
                size = 300 + len(event.key) + (len(content) if content.isascii() else 3 * len(content))
                return size + _value_size(metadata) if metadata else size
    return 160 + _value_size(event.key) + _value_size(payload)


#: Bytes a cold write is given one ``timeout`` for (see :func:`write_timeout`): far below what PostgreSQL or
#: ClickHouse take in per second, so only a stalled server runs out of it.
WRITE_BYTES_PER_TIMEOUT = 4 * 1024 * 1024


#: What a cold tier's ``write_events`` raises for the data itself (retrying gives the same answer): the archiver
#: isolates the events it concerns as dead letters. ``BackendUnavailable`` (an outage) retries the whole batch.
_REFUSED = (InvalidInput, CorruptData)


def write_timeout(timeout: float, events: Sequence[ArchiveEvent]) -> float:
    """The time a cold tier gives one ``write_events`` batch: ``timeout`` (the per-call setting) for every 5,000
    events or every :data:`WRITE_BYTES_PER_TIMEOUT` bytes, whichever is more, and never less than ``timeout``. A
    10 MB LangGraph state must not time out (and be retried whole, forever) where a 1 KB message would not."""
    size = sum(map(event_size, events))
    return timeout * max(1.0, len(events) / 5000, size / WRITE_BYTES_PER_TIMEOUT)


def _deferred_size(item: _Deferred) -> int:
    key, content, metadata = item[0], item[3], item[6]
    size = 300 + len(key) + (len(content) if content.isascii() else 3 * len(content))
    return size + _value_size(metadata) if metadata else size


def takes_max_bytes(method: Any) -> bool:
    """Whether an outbox's ``peek`` / ``peek_ahead`` takes ``max_bytes`` (contextkit's own do; a third party's, or
    a subclass overriding them, may not)."""
    try:
        return "max_bytes" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _bounded(sizes: Any, count: int, max_bytes: int | None) -> tuple[int, bool]:
    """How many of ``sizes`` (in order) make a batch of at most ``count`` events and ``max_bytes`` bytes (at least
    one event, however big), and whether the batch is full (a bound was reached, not the end of ``sizes``)."""
    if max_bytes is None:
        n = sum(1 for _ in itertools.islice(sizes, count)) if not hasattr(sizes, "__len__") else min(count, len(sizes))
        return n, n >= count
    n = 0
    total = 0
    for size in itertools.islice(sizes, count):
        if max_bytes is not None and n and total + size > max_bytes:
            return n, True
        total += size
        n += 1
    return n, n >= count or (max_bytes is not None and total >= max_bytes)


def message_event_heads(key: str, archive: ArchiveSpec, count: int) -> list[str]:
    """The JSON of each message's archive event up to its message, for a hot store with ``atomic_outbox``:
    ``head + message JSON + "}}"`` is the JSON of the ``ArchiveEvent.to_dict()`` that :class:`ArchiveSpec`
    describes (the same keys in the same order), so the store completes it once it knows the message's seq.

    Built from the escaped fields rather than by dumping a throwaway event per message, which is slower on every
    archived append (figures in docs/benchmarks.md, "Measurements behind design choices"). Raises ``InvalidInput``
    when the spec does not name ``count`` events.
    """
    if len(archive.event_ids) != count or len(archive.created_at) != count:
        raise InvalidInput(f"the archive spec names {len(archive.event_ids)} event(s) for {count} message(s)")
    try:
        middle = f',"table":{archive_json(archive.table)},"key":{archive_json(key)},"created_at":"'
        # An id of plain characters (every id new_event_id draws) and an ISO timestamp need no escaping: quoted
        # directly, they are what archive_json writes, without its cost on every archived append.
        return [
            f'{{"event_id":{_quoted(event_id)}{middle}{to_iso(created_at)}","payload":{{"message":'
            for event_id, created_at in zip(archive.event_ids, archive.created_at, strict=True)
        ]
    except (TypeError, ValueError, AttributeError) as exc:
        raise SerializationError(f"archive event cannot be stored as JSON: {exc}") from exc


_PLAIN = re.compile(r"[0-9A-Za-z_.:+-]*")


def _quoted(text: str) -> str:
    return f'"{text}"' if type(text) is str and _PLAIN.fullmatch(text) else archive_json(text)


@runtime_checkable
class Outbox(Protocol):
    """A queue of archive events waiting for the cold tier. Events leave it only through :meth:`ack`."""

    durable: bool

    def has_room(self, count: int) -> bool:
        """True if ``count`` more events fit (checked before a hot write, so a full outbox refuses the write)."""
        ...

    async def push(self, events: Sequence[ArchiveEvent]) -> None:
        """Append events (at the tail, in order)."""
        ...

    async def peek(self, count: int) -> list[ArchiveEvent]:
        """Up to ``count`` of the oldest events, without removing them."""
        ...

    async def ack(self, event_ids: Sequence[str]) -> None:
        """Remove events the cold tier has stored."""
        ...

    async def depth(self) -> int:
        """Number of events waiting."""
        ...

    async def oldest(self) -> datetime | None:
        """``created_at`` of the oldest waiting event."""
        ...

    async def aclose(self) -> None:
        """Release resources; pending events stay (in a durable outbox) for the next start."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An archive event the cold tier refused as data (an :class:`~contextkit.errors.InvalidInput`:
    :class:`~contextkit.errors.EventRefused` from the server, ``SerializationError`` before any I/O; or
    :class:`~contextkit.errors.CorruptData`, stored data it needed that cannot be read), set aside so
    it no longer blocks the outbox: kept with the reason and when it was refused, until an operator fixed the
    cause and replays it (``contextkit dead-letters replay``)."""

    event: ArchiveEvent
    reason: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """``{"event": ArchiveEvent.to_dict(), "reason", "at"}`` (what durable outboxes store)."""
        return {"event": self.event.to_dict(), "reason": self.reason, "at": to_iso(self.at)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeadLetter:
        """Rebuild from :meth:`to_dict` output."""
        return cls(ArchiveEvent.from_dict(data["event"]), str(data["reason"]), from_iso(str(data["at"])))


@runtime_checkable
class DeadLetterBox(Protocol):
    """An outbox that keeps the archiver's dead letters next to its events, exactly as durable as they are (a
    Redis hash beside the streams, a table beside the outbox table, a list in process).

    :meth:`dead_letter` stores the letters *before* it removes their events from the outbox, so a crash in
    between leaves an event in both places (refused again and kept once: letters are keyed by event id), never
    in neither.
    """

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Keep ``letters`` and remove their events from the outbox."""
        ...

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The letters kept, oldest first (at most ``limit``)."""
        ...

    async def dead_letter_count(self) -> int:
        """How many letters are kept."""
        ...

    async def replay_dead_letters(self, event_ids: Sequence[str] | None = None) -> int:
        """Put the letters' events (those named, or all) back at the tail of the outbox and forget the letters;
        returns how many were replayed. Cold writes are idempotent on ``event_id``, so a replay interrupted
        between the two steps archives each event once."""
        ...


def _letter_ids(letters: Sequence[DeadLetter]) -> list[str]:
    return [letter.event.event_id for letter in letters]


@runtime_checkable
class PeekAhead(Protocol):
    """An outbox that can read past the batches in flight: what lets the archiver write several at once.

    ``peek`` hands out the oldest events and starts a new window; each ``peek_ahead`` then hands out the next
    ``count`` events after every event handed out since (and not acknowledged), or nothing, without moving, when
    fewer than ``count`` wait: only full batches are written ahead, a partial one waits for its accumulation window.
    """

    async def peek_ahead(self, count: int, max_bytes: int | None = None) -> list[ArchiveEvent]:
        """The ``count`` events (and at most ``max_bytes`` bytes, one event at least) after those handed out since
        the last :meth:`Outbox.peek`, or ``[]``."""
        ...


class BytesBoundedPeek(Protocol):
    """An outbox whose ``peek`` also stops at ``max_bytes`` (contextkit's own do: they know their stored sizes and
    read no further). Not runtime-checkable: every outbox has a ``peek``, so the archiver reads the signature
    (:func:`takes_max_bytes`) and trims what a plain ``peek`` handed out otherwise."""

    async def peek(self, count: int, max_bytes: int | None = None) -> list[ArchiveEvent]:
        """Up to ``count`` of the oldest events and at most ``max_bytes`` bytes (one event at least)."""
        ...


@runtime_checkable
class PushCounter(Protocol):
    """An outbox that counts, for :meth:`Outbox.has_room`, the events a hot store wrote into it itself
    (``atomic_outbox``) without reading its length back: :meth:`Archiver.notify` tells it."""

    def count_pushed(self, count: int) -> None:
        """Count ``count`` events written into the outbox by a hot store's own atomic step."""
        ...


@runtime_checkable
class SharedDrain(Protocol):
    """A durable outbox that several processes drain, one at a time per part (the Redis streams' drain lease)."""

    async def drained_elsewhere(self) -> bool:
        """True when every waiting event is in a part another process holds the drain of: a closing kit then
        leaves them to it instead of waiting for a crashed holder's lease to lapse."""
        ...


class MemoryOutbox:
    """An in-process outbox: fast, bounded by ``max_pending`` events and ``max_pending_bytes`` bytes (about: see
    :func:`event_size`), lost with the process (like the memory tier). Reads hand out batches bounded by count and,
    when asked, by bytes.

    Conversation messages may be queued as the records themselves (:meth:`queue_message`): their events are built
    when :meth:`peek` first reaches them, in queue order, each exactly once.
    """

    durable = False
    # Slots: has_room and queue_messages run in every archived write of the memory tier.
    __slots__ = ("_bytes", "_dead", "_events", "_handed", "_max", "_max_bytes", "_sizes")

    def __init__(self, max_pending: int = 1_000_000, max_pending_bytes: int | None = None) -> None:
        self._events: deque[ArchiveEvent | _Deferred] = deque()
        # The size of each queued event, in the same order (what max_pending_bytes and batch_bytes count).
        self._sizes: deque[int] = deque()
        self._bytes = 0
        self._max = max_pending
        self._max_bytes = max_pending_bytes
        # Events at the head handed out by peek / peek_ahead and not acknowledged yet (the batches in flight).
        self._handed = 0
        # Dead letters, by event id: in process like the events themselves (DeadLetterBox).
        self._dead: dict[str, DeadLetter] = {}

    def has_room(self, count: int) -> bool:
        """See :meth:`Outbox.has_room`: False once ``max_pending`` events or ``max_pending_bytes`` bytes wait (the
        write being checked may then go over the byte bound by its own size, at most the kit's size limits)."""
        if len(self._events) + count > self._max:
            return False
        return self._max_bytes is None or self._bytes < self._max_bytes

    @property
    def pending_bytes(self) -> int:
        """About how many bytes the waiting events take."""
        return self._bytes

    async def push(self, events: Sequence[ArchiveEvent]) -> None:
        """See :meth:`Outbox.push`."""
        self.push_nowait(events)

    def push_nowait(self, events: Sequence[ArchiveEvent]) -> None:
        """:meth:`push` without an ``await``: a hot store in this process calls it inside the critical section of
        the write the events describe (nothing can run between the write and its events)."""
        sizes = [event_size(event) for event in events]
        self._events.extend(events)
        self._sizes.extend(sizes)
        self._bytes += sum(sizes)

    def queue_message(
        self,
        key: str,
        message: Message,
        seq: int,
        event_id: str | None = None,
        created_at: datetime | None = None,
    ) -> None:
        """Queue the archive event of ``message`` (number ``seq`` of stream ``key``, under ``event_id`` or a new
        id, created at ``created_at`` or the message's timestamp) without building it yet.

        The event is :func:`message_event` of it, built by the first :meth:`peek` that reaches it; the metadata
        is copied now (one level, as ``to_dict`` does), so a caller changing the message's dict afterwards does
        not change the archive.
        """
        metadata = message.metadata
        item = (
            key,
            seq,
            message.role,
            message.content,
            message.timestamp,
            message.id,
            dict(metadata) if metadata else None,
            event_id,
            created_at,
        )
        size = _deferred_size(item)
        self._events.append(item)
        self._sizes.append(size)
        self._bytes += size

    def queue_messages(self, key: str, messages: Sequence[Message]) -> None:
        """Queue the archive events of ``messages``, stored in stream ``key`` under their own ``seq``, each under a
        new id and created at its message's timestamp (what :data:`~contextkit.stores.DEFERRED_MESSAGE_EVENTS`
        asks): :meth:`queue_message` of each, the id drawn when the event is built.

        The memory hot tier calls it inside every archived append, so it does the work of :meth:`queue_message`
        inline (the size of :func:`_deferred_size`, no id, no time): each call saved counts on that path.
        """
        events = self._events
        sizes = self._sizes
        base = 300 + len(key)
        added = 0
        for message in messages:
            content = message.content
            size = base + len(content) if content.isascii() else base + 3 * len(content)
            metadata: dict[str, Any] | None = None
            if message.metadata:
                metadata = dict(message.metadata)
                size += _value_size(metadata)
            events.append(
                (key, message.seq, message.role, content, message.timestamp, message.id, metadata, None, None)
            )
            sizes.append(size)
            added += size
        self._bytes += added

    async def peek(self, count: int, max_bytes: int | None = None) -> list[ArchiveEvent]:
        """See :meth:`Outbox.peek`; with ``max_bytes``, the batch also stops before it would pass that many bytes
        (one event at least)."""
        n, _ = _bounded(self._sizes, count, max_bytes)
        self._handed = n
        return self._hand_out(0, n)

    async def peek_ahead(self, count: int, max_bytes: int | None = None) -> list[ArchiveEvent]:
        """See :meth:`PeekAhead.peek_ahead`; a batch bounded by ``max_bytes`` is a full one too."""
        start = self._handed
        if count <= 0:
            return []
        n, full = _bounded(itertools.islice(self._sizes, start, None), count, max_bytes)
        if not full:
            return []
        self._handed = start + n
        return self._hand_out(start, n)

    def _hand_out(self, start: int, n: int) -> list[ArchiveEvent]:
        events = self._events
        built: list[ArchiveEvent] = []
        deferred = False
        for item in itertools.islice(events, start, start + n):
            if isinstance(item, tuple):
                deferred = True
                built.append(_deferred_event(item))
            else:
                built.append(item)
        if deferred:
            # Put the built events back in place of the records, so a retry sees the same events and ids.
            events.rotate(-start)
            for _ in range(n):
                events.popleft()
            events.extendleft(reversed(built))
            events.rotate(start)
        return built

    async def ack(self, event_ids: Sequence[str]) -> None:
        """See :meth:`Outbox.ack`."""
        events = self._events
        n = len(event_ids)
        if 0 < n <= len(events):
            # The archiver acks the batch it peeked: the head of the queue, in order. Compared in C (a batch is
            # thousands of events); a head that is still a record raises AttributeError and takes the long path.
            try:
                head_ids: list[str] = list(map(_EVENT_ID, itertools.islice(events, n)))
            except AttributeError:
                head_ids = []
            if head_ids == event_ids or head_ids == list(event_ids):
                sizes = self._sizes
                freed = 0
                for _ in range(n):
                    events.popleft()
                    freed += sizes.popleft()
                self._bytes -= freed
                self._handed = max(0, self._handed - n)
                return
        done = set(event_ids)
        removed = 0
        # The archiver acks the batches it peeked in order, so this is a prefix of the queue (built events); a
        # batch acked past one that failed, or one refused event set aside, takes the scan below.
        sizes = self._sizes
        while events:
            head = events[0]
            if isinstance(head, tuple) or head.event_id not in done:
                break
            events.popleft()
            self._bytes -= sizes.popleft()
            removed += 1
        if removed < len(done) and events:
            kept = [
                (e, size) for e, size in zip(events, sizes, strict=True) if isinstance(e, tuple) or e.event_id not in done
            ]
            if len(kept) != len(events):
                removed += len(events) - len(kept)
                self._events = deque(e for e, _ in kept)
                self._sizes = deque(size for _, size in kept)
                self._bytes = sum(self._sizes)
        # Only handed-out events are acknowledged: whatever left the queue was among them.
        self._handed = max(0, self._handed - removed)

    async def depth(self) -> int:
        """See :meth:`Outbox.depth`."""
        return len(self._events)

    async def oldest(self) -> datetime | None:
        """See :meth:`Outbox.oldest`."""
        if not self._events:
            return None
        head = self._events[0]
        return (head[8] or head[4]) if isinstance(head, tuple) else head.created_at

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """See :meth:`DeadLetterBox.dead_letter` (kept in process, like the events)."""
        for letter in letters:
            self._dead[letter.event.event_id] = letter
        await self.ack(_letter_ids(letters))

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """See :meth:`DeadLetterBox.dead_letters`."""
        return list(itertools.islice(self._dead.values(), limit))

    async def dead_letter_count(self) -> int:
        """See :meth:`DeadLetterBox.dead_letter_count`."""
        return len(self._dead)

    async def replay_dead_letters(self, event_ids: Sequence[str] | None = None) -> int:
        """See :meth:`DeadLetterBox.replay_dead_letters`."""
        wanted = list(self._dead) if event_ids is None else [i for i in dict.fromkeys(event_ids) if i in self._dead]
        self.push_nowait([self._dead.pop(event_id).event for event_id in wanted])
        return len(wanted)

    async def aclose(self) -> None:
        """Nothing to release."""


_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def outbox_table_sql(table: str = "outbox") -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` of a :class:`FileOutbox` table (``table`` a plain identifier)."""
    if not _TABLE_NAME.fullmatch(table):
        raise ConfigError(f"outbox table name must be a plain SQL identifier, got {table!r}")
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "event_id TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, body TEXT NOT NULL)"
    )


class FileOutbox:
    """A durable outbox in a local SQLite file (WAL). Survives a crash of the application process.

    :param path: the SQLite file (created with its directory when missing).
    :param max_pending: most events waiting; beyond it ``has_room`` is False and the kit refuses writes.
    :param table: the table holding the events (:func:`outbox_table_sql` creates it), so one database file can
        hold several outboxes: the SQLite hot tier keeps one per namespace in its own file and writes a message's
        event in the transaction that stores the message.
    """

    durable = True
    def __init__(self, path: str | Path, max_pending: int = 10_000_000, *, table: str = "outbox") -> None:
        self._create_sql = outbox_table_sql(table)  # checks the name before any I/O
        self.path = Path(path)
        self.table = table
        #: The table of its dead letters (:class:`DeadLetterBox`), in the same file.
        self.dead_table = f"{table}_dead"
        self._max = max_pending
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._count = 0
        # seq of the newest event handed out by peek / peek_ahead (the end of the batches in flight).
        self._cursor = 0

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(self._create_sql)
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.dead_table} (event_id TEXT PRIMARY KEY, at TEXT NOT NULL, "
                "reason TEXT NOT NULL, body TEXT NOT NULL)"
            )
            self._count = conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]
            self._conn = conn
        return self._conn

    def _run(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            try:
                return fn(self._connect(), *args)
            except sqlite3.Error as exc:
                raise BackendUnavailable(f"outbox file {self.path} failed: {exc}") from exc

    def has_room(self, count: int) -> bool:
        """See :meth:`Outbox.has_room`."""
        return self._count + count <= self._max

    def count_pushed(self, count: int) -> None:
        """Count ``count`` events another connection wrote into the table (the SQLite hot tier's appends), for
        :meth:`has_room`."""
        self._count += count

    async def push(self, events: Sequence[ArchiveEvent]) -> None:
        """See :meth:`Outbox.push`."""
        await asyncio.to_thread(self._run, self._inserter(events))

    def push_nowait(self, events: Sequence[ArchiveEvent]) -> None:
        """:meth:`push` on the calling thread, committed when it returns: a hot store in this process (the memory
        tier with ``outbox_path``) calls it inside the critical section of the write the events describe, before it
        applies the write, so a failed push leaves nothing written."""
        self._run(self._inserter(events))

    def _inserter(self, events: Sequence[ArchiveEvent]) -> Callable[[sqlite3.Connection], None]:
        # NaN is written as before (a value the cold tier refuses is set aside by the archiver, not by this push).
        rows = [(e.event_id, e.created_at.isoformat(), archive_json(e.to_dict(), allow_nan=True)) for e in events]

        def insert(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN")
                cur = conn.executemany(f"INSERT OR IGNORE INTO {self.table} (event_id, created_at, body) VALUES (?,?,?)", rows)
                self._count += cur.rowcount

        return insert

    async def peek(self, count: int, max_bytes: int | None = None) -> list[ArchiveEvent]:
        """See :meth:`Outbox.peek`; with ``max_bytes``, the batch also stops before its stored JSON would pass that
        many bytes (one event at least), and no more is read from the file."""
        self._cursor = 0
        return await self._select(count, max_bytes, full_only=False)

    async def peek_ahead(self, count: int, max_bytes: int | None = None) -> list[ArchiveEvent]:
        """See :meth:`PeekAhead.peek_ahead`; a batch bounded by ``max_bytes`` is a full one too."""
        if count <= 0:
            return []
        return await self._select(count, max_bytes, full_only=True)

    async def _select(self, count: int, max_bytes: int | None, *, full_only: bool) -> list[ArchiveEvent]:
        after = self._cursor

        def select(conn: sqlite3.Connection) -> tuple[list[tuple[int, str]], bool]:
            # Row by row: the cursor stops reading at the byte bound (a big body is never loaded for nothing).
            cursor = conn.execute(
                f"SELECT seq, length(body), body FROM {self.table} WHERE seq > ? ORDER BY seq LIMIT ?", (after, count)
            )
            rows: list[tuple[int, str]] = []
            total = 0
            for seq, size, body in cursor:
                if max_bytes is not None and rows and total + size > max_bytes:
                    cursor.close()
                    return rows, True
                total += size
                rows.append((seq, body))
            return rows, len(rows) >= count or (max_bytes is not None and total >= max_bytes)

        rows, full = await asyncio.to_thread(self._run, select)
        if full_only and not full:
            return []
        if rows:
            self._cursor = rows[-1][0]
        return [ArchiveEvent.from_dict(archive_loads(body)) for _, body in rows]

    async def ack(self, event_ids: Sequence[str]) -> None:
        """See :meth:`Outbox.ack`."""
        ids = [(i,) for i in event_ids]

        def delete(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN")
                cur = conn.executemany(f"DELETE FROM {self.table} WHERE event_id = ?", ids)
                self._count = max(0, self._count - cur.rowcount)

        await asyncio.to_thread(self._run, delete)

    async def depth(self) -> int:
        """See :meth:`Outbox.depth`."""
        return int(await asyncio.to_thread(self._run, lambda c: c.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]))

    async def oldest(self) -> datetime | None:
        """See :meth:`Outbox.oldest`."""
        row = await asyncio.to_thread(
            self._run, lambda c: c.execute(f"SELECT created_at FROM {self.table} ORDER BY seq LIMIT 1").fetchone()
        )
        return from_iso(row[0]) if row else None

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """See :meth:`DeadLetterBox.dead_letter`: one transaction stores the letters and deletes their events."""
        rows = [
            (letter.event.event_id, to_iso(letter.at), letter.reason,
             archive_json(letter.event.to_dict(), allow_nan=True))
            for letter in letters
        ]
        ids = [(row[0],) for row in rows]

        def move(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN")
                conn.executemany(
                    f"INSERT OR REPLACE INTO {self.dead_table} (event_id, at, reason, body) VALUES (?,?,?,?)", rows
                )
                cur = conn.executemany(f"DELETE FROM {self.table} WHERE event_id = ?", ids)
                self._count = max(0, self._count - cur.rowcount)

        await asyncio.to_thread(self._run, move)

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """See :meth:`DeadLetterBox.dead_letters`."""

        def select(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            return conn.execute(
                f"SELECT at, reason, body FROM {self.dead_table} ORDER BY at, event_id LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()

        rows = await asyncio.to_thread(self._run, select)
        return [DeadLetter(ArchiveEvent.from_dict(archive_loads(body)), reason, from_iso(at)) for at, reason, body in rows]

    async def dead_letter_count(self) -> int:
        """See :meth:`DeadLetterBox.dead_letter_count`."""
        return int(
            await asyncio.to_thread(self._run, lambda c: c.execute(f"SELECT count(*) FROM {self.dead_table}").fetchone()[0])
        )

    async def replay_dead_letters(self, event_ids: Sequence[str] | None = None) -> int:
        """See :meth:`DeadLetterBox.replay_dead_letters`: one transaction moves them back into the outbox table."""

        def move(conn: sqlite3.Connection) -> int:
            with conn:
                conn.execute("BEGIN")
                if event_ids is None:
                    rows = conn.execute(f"SELECT event_id, body FROM {self.dead_table} ORDER BY at, event_id").fetchall()
                else:
                    rows = [
                        row for i in dict.fromkeys(event_ids)
                        for row in conn.execute(f"SELECT event_id, body FROM {self.dead_table} WHERE event_id = ?", (i,))
                    ]
                for event_id, body in rows:
                    created_at = ArchiveEvent.from_dict(archive_loads(body)).created_at.isoformat()
                    cur = conn.execute(
                        f"INSERT OR IGNORE INTO {self.table} (event_id, created_at, body) VALUES (?,?,?)",
                        (event_id, created_at, body),
                    )
                    self._count += cur.rowcount
                    conn.execute(f"DELETE FROM {self.dead_table} WHERE event_id = ?", (event_id,))
                return len(rows)

        return int(await asyncio.to_thread(self._run, move))

    async def aclose(self) -> None:
        """Close the file; pending events stay in it."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class Archiver:
    """Drains an :class:`Outbox` into a :class:`~contextkit.stores.ColdStore` in the background.

    Start it with :meth:`start`; the hot stores write events into the outbox themselves, in the atomic step of each
    write, and the kit then calls :meth:`notify`; :meth:`submit` pushes events the caller built (imports, the
    LangGraph adapter). :meth:`aclose` drains what it can
    within ``drain_timeout`` and leaves the rest in the outbox.
    """

    # Slots: notify runs after every archived write, and 30-odd attributes in an instance dict slow its lookups.
    __slots__ = (
        "_awake",
        "_batch_bytes",
        "_batch_size",
        "_bounded_peek",
        "_bounds_bytes",
        "_cold_open",
        "_dead_box",
        "_depth_hint",
        "_full",
        "_full_noted",
        "_idle",
        "_kept",
        "_peek_ahead",
        "_push_counter",
        "_queued_total",
        "_stopping",
        "_task",
        "_wake",
        "_window",
        "batches",
        "cold",
        "config",
        "consecutive_failures",
        "dead_lettered",
        "dead_letters",
        "failures",
        "last_error",
        "last_error_at",
        "last_success_at",
        "left_at_close",
        "outbox",
        "rows",
    )

    def __init__(self, cold: ColdStore, outbox: Outbox, config: ArchiverConfig, *, cold_open: bool = True) -> None:
        self.cold = cold
        self.outbox = outbox
        self.config = config
        self._cold_open = cold_open
        self._wake = asyncio.Event()
        # Set when a full batch is waiting or a flush wants everything now: ends the accumulation window early.
        self._full = asyncio.Event()
        # True from the write that set _full until the loop clears it: writes past batch_size then skip the call.
        self._full_noted = False
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.batches = 0
        self.rows = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self.last_success_at: datetime | None = None
        self._depth_hint = 0
        # Events ever queued: a peek that finds the outbox empty while this moved may have read before the push
        # landed (a durable outbox's push completes after the archiver woke), so the archiver reads again.
        self._queued_total = 0
        self._batch_size = config.batch_size
        # Batches bounded by bytes too: by the outbox as it reads (it knows its stored sizes and reads no further)
        # or, for an outbox that cannot, by trimming what it handed out (and then without reading ahead).
        self._batch_bytes = config.batch_bytes
        ahead = outbox if isinstance(outbox, PeekAhead) else None
        self._bounds_bytes = takes_max_bytes(outbox.peek) and (ahead is None or takes_max_bytes(ahead.peek_ahead))
        # The signature was read just above: this outbox's peek takes max_bytes.
        self._bounded_peek = cast(BytesBoundedPeek, outbox) if self._bounds_bytes else None
        self._awake = False
        # Batches written at once: more than one only where the cold tier takes concurrent writes and the outbox
        # can read past the batches in flight (by bytes too).
        concurrent = Capability.CONCURRENT_WRITES.value in cold.capabilities
        self._window = max(1, config.max_in_flight) if concurrent and ahead is not None and self._bounds_bytes else 1
        self._peek_ahead: PeekAhead | None = ahead if self._window > 1 else None
        self._push_counter: PushCounter | None = outbox if isinstance(outbox, PushCounter) else None
        #: The events this process set aside as refused by the cold tier, with the reason (the newest
        #: :data:`_RECENT_DEAD` of them). The letters themselves live in the outbox (:class:`DeadLetterBox`, as
        #: durable as it) and are listed by :meth:`list_dead_letters`; an outbox without that keeps them here.
        self.dead_letters: list[tuple[ArchiveEvent, str]] = []
        self._dead_box: DeadLetterBox | None = outbox if isinstance(outbox, DeadLetterBox) else None
        self._kept: dict[str, DeadLetter] = {}
        #: Events this process set aside as dead letters since it started.
        self.dead_lettered = 0
        #: Events left in the outbox when :meth:`aclose` returned (None before, or when it could not be read).
        self.left_at_close: int | None = None

    def start(self) -> None:
        """Start the background task on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="contextkit-archiver")

    def has_room(self, count: int) -> bool:
        """Whether the outbox accepts ``count`` more events."""
        return self.outbox.has_room(count)

    async def submit(self, events: Sequence[ArchiveEvent]) -> None:
        """Queue events for the cold tier and wake the archiver; returns without waiting for the cold tier."""
        if not events:
            return
        await self.outbox.push(events)
        self._queued(len(events))

    def _queued(self, count: int) -> None:
        self._depth_hint += count
        self._queued_total += count
        if not self._awake:
            self._wake_up()
        if self._depth_hint >= self._batch_size and not self._full_noted:
            self._full_noted = True
            self._full.set()

    def _wake_up(self) -> None:
        # Once per idle period, not per event: until the loop finds the outbox empty again, _idle stays clear and
        # _wake set (only that branch of _run changes them back, together with _awake).
        self._awake = True
        self._idle.clear()
        self._wake.set()

    def notify(self, count: int) -> None:
        """Wake the archiver for ``count`` events the hot store already wrote into this outbox itself (capability
        ``atomic_outbox``); counts them toward the outbox's room like :meth:`submit` would."""
        if count <= 0:
            return
        if self._push_counter is not None:
            self._push_counter.count_pushed(count)
        # _queued inline: this runs after every archived write, and a call is a good part of its cost.
        self._depth_hint += count
        self._queued_total += count
        if not self._awake:
            self._wake_up()
        if self._depth_hint >= self._batch_size and not self._full_noted:
            self._full_noted = True
            self._full.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until the outbox is empty (True) or ``timeout`` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if await self.outbox.depth() == 0:
                    return True
            except Exception:
                # The outbox cannot be read (its server is down): keep waiting, it may come back in time.
                if deadline is None or time.monotonic() >= deadline:
                    raise
            if self._task is None or self._task.done():
                return False
            self._wake.set()
            self._full.set()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=min(0.05, remaining) if remaining else 0.05)

    async def ensure_cold_open(self) -> None:
        """Open the cold tier if it was down when the kit started (raises ``BackendUnavailable`` while it still
        is); the archiver's first write and the tiered layer's first read of the archive both need it open."""
        if not self._cold_open:
            await self.cold.open()
            self._cold_open = True

    async def settle(self, cutoff: datetime, timeout: float) -> bool:
        """Wait until no event created before ``cutoff`` waits in the outbox (True), or ``timeout`` seconds passed
        (False). The tiered layer calls it before it asks the archive about an owner the hot tier does not know:
        the archive's answer must include every event of that owner still waiting here."""
        deadline = time.monotonic() + timeout
        while True:
            oldest = await self.outbox.oldest()
            if oldest is None or oldest >= cutoff:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._task is None or self._task.done():
                return False
            self._wake.set()
            self._full.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=min(0.05, remaining))

    async def aclose(self, timeout: float | None = None) -> bool:
        """Drain within ``timeout`` (default ``drain_timeout``), stop the task, close the outbox.

        Never raises for a tier that is down (the outbox's or the cold one): it drains what it can in the time,
        stops the task whatever happens, and reports what stays in the outbox in :attr:`left_at_close` (None when
        the outbox cannot be read), a WARNING log and the ``left_at_close`` metric. Returns True when nothing was
        left pending.
        """
        try:
            drained = await self.flush(self.config.drain_timeout if timeout is None else timeout)
        except Exception as exc:  # the outbox cannot be read: nothing more can be drained
            self._record_failure(exc)
            drained = False
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # The task ends here whatever it was doing; its own errors were recorded as they happened.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        left: int | None = 0
        if not drained:
            try:
                left = await self.outbox.depth()
            except Exception as exc:
                left = None
                logger.warning(
                    "archiver closed; the outbox cannot be read (%s): its events stay there if it is durable",
                    self.last_error if self.last_error else f"{type(exc).__name__}: {exc}",
                )
            if left:
                lost = "" if self.outbox.durable else " (an in-process outbox: they are lost with the process)"
                logger.warning("archiver closed with %d event(s) left in the outbox%s", left, lost)
        self.left_at_close = left
        try:
            await self.outbox.aclose()
        except Exception as exc:  # a durable outbox keeps its events; nothing to release on a dead server
            logger.debug("closing the outbox failed: %s: %s", type(exc).__name__, exc)
        return drained and left == 0

    async def _run(self) -> None:
        delay = 0.0
        while not self._stopping:
            seen = self._queued_total
            try:
                batch = await self._peek()
                if (
                    batch and len(batch) < self._batch_size and delay == 0.0 and self.config.flush_interval > 0
                    and not self._bytes_full(batch)
                ):
                    # Let a burst accumulate: the cold tiers want large batches, not one row per insert.
                    # Every write sets _wake, so waiting on it here would end the window at the next write and
                    # archive one event at a time; only a full batch or a flush ends it early.
                    if not self._full.is_set():
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(self._full.wait(), timeout=self.config.flush_interval)
                    self._full.clear()
                    self._full_noted = False
                    seen = self._queued_total
                    batch = await self._peek()
            except Exception as exc:
                self._record_failure(exc)
                await asyncio.sleep(self._backoff())
                continue
            if not batch:
                if self._queued_total != seen:
                    continue
                self._depth_hint = 0
                self._idle.set()
                self._wake.clear()
                self._awake = False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                continue
            if await self._write_window(batch):
                delay = 0.0
            else:
                delay = self._backoff()
                await asyncio.sleep(delay)

    async def _peek(self) -> list[ArchiveEvent]:
        """The oldest batch: at most ``batch_size`` events and ``batch_bytes`` bytes (one event at least)."""
        if self._bounded_peek is not None:
            return await self._bounded_peek.peek(self._batch_size, max_bytes=self._batch_bytes)
        batch = await self.outbox.peek(self._batch_size)
        n, _ = _bounded(map(event_size, batch), len(batch), self._batch_bytes)
        return batch[:n]

    def _bytes_full(self, batch: list[ArchiveEvent]) -> bool:
        """Whether a batch short of ``batch_size`` events is full by bytes (no point waiting for more). Walks the
        payloads' containers only, never a string's bytes: cheap beside the write."""
        total = 0
        for event in batch:
            total += event_size(event)
            if total >= self._batch_bytes // 2:
                return True
        return False

    async def _write_window(self, first: list[ArchiveEvent]) -> bool:
        """Write ``first`` and, while a backlog waits and the window allows, the full batches after it, each in
        its own task; acknowledge them in outbox order. False when a write or an ack failed (recorded): the
        caller backs off, and the next peek starts again at the oldest event not acknowledged."""
        loop = asyncio.get_running_loop()
        in_flight: deque[tuple[list[ArchiveEvent], asyncio.Task[list[ArchiveEvent]]]] = deque()
        in_flight.append((first, loop.create_task(self._store(first))))
        peek_ahead = self._peek_ahead
        ok = True
        try:
            while in_flight:
                # The first write of a connection opens the cold tier: no overlap until it is open.
                while (
                    ok and peek_ahead is not None and self._cold_open and len(in_flight) < self._window
                    and not self._stopping
                ):
                    try:
                        batch = await peek_ahead.peek_ahead(self._batch_size, max_bytes=self._batch_bytes)
                    except Exception:  # the next peek from the head meets the same fault and records it
                        peek_ahead = None
                        break
                    if not batch:
                        break
                    in_flight.append((batch, loop.create_task(self._store(batch))))
                batch, task = in_flight[0]
                try:
                    written = await task
                    await self.outbox.ack([e.event_id for e in written])
                except Exception as exc:
                    # Batches after this one still finish and are acknowledged (their ids then simply stay out
                    # of the retried window); nothing more is started until the backoff.
                    ok = False
                    self._record_failure(exc)
                    continue
                finally:
                    in_flight.popleft()
                self.batches += 1
                self.rows += len(written)
                self._depth_hint = max(0, self._depth_hint - len(batch))
                if ok:
                    self.consecutive_failures = 0
                self.last_success_at = utcnow()
        finally:
            for _, task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)
        return ok

    async def _store(self, batch: list[ArchiveEvent]) -> list[ArchiveEvent]:
        """Write ``batch`` to the cold tier; returns the events stored (those it refuses as data are set aside as
        dead letters by :meth:`_isolate_refused`). Raises when the cold tier is unavailable."""
        await self.ensure_cold_open()
        try:
            await self.cold.write_events(batch)
        except _REFUSED as exc:
            # Refused as data (EventRefused, SerializationError; CorruptData: stored data the write needed cannot
            # be read), not as an outage: the same batch would be refused on every retry and block the queue.
            return await self._isolate_refused(batch, exc)
        return batch

    async def _isolate_refused(self, batch: list[ArchiveEvent], refusal: Exception) -> list[ArchiveEvent]:
        """Split a refused ``batch`` in halves, writing each half, until every refused event is alone; keep those
        as dead letters (out of the outbox) and return the events written, for the caller to acknowledge.

        ``k`` refused events among ``n`` cost about ``2 k log2(n)`` writes, not ``n``. An outage in the middle
        sets aside the letters isolated so far, acknowledges what was written and raises: the rest is retried.
        """
        written: list[ArchiveEvent] = []
        letters: list[DeadLetter] = []

        async def split(events: list[ArchiveEvent], exc: Exception) -> None:
            if len(events) == 1:
                letters.append(DeadLetter(events[0], f"{type(exc).__name__}: {exc}"[:2000], utcnow()))
                return
            middle = len(events) // 2
            for half in (events[:middle], events[middle:]):
                try:
                    await self.cold.write_events(half)
                except _REFUSED as half_exc:
                    await split(half, half_exc)
                else:
                    written.extend(half)

        try:
            await split(batch, refusal)
        except Exception:
            if letters:
                await self._set_aside(letters)
            if written:
                await self.outbox.ack([e.event_id for e in written])
            raise
        await self._set_aside(letters)
        return written

    async def _set_aside(self, letters: list[DeadLetter]) -> None:
        """Keep ``letters`` (in the outbox's dead letters when it has them, else here) and take their events out
        of the outbox."""
        if self._dead_box is not None:
            await self._dead_box.dead_letter(letters)
        else:
            for letter in letters:
                self._kept[letter.event.event_id] = letter
            await self.outbox.ack(_letter_ids(letters))
        self.dead_lettered += len(letters)
        self.dead_letters.extend((letter.event, letter.reason) for letter in letters)
        del self.dead_letters[:-_RECENT_DEAD]
        for letter in letters:
            logger.error(
                "archive event %s (%s) refused by the cold tier and kept as a dead letter "
                "(contextkit dead-letters list / replay): %s",
                letter.event.event_id, letter.event.table, letter.reason,
            )

    async def list_dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters kept (every process's, where the outbox is shared), oldest first."""
        if self._dead_box is not None:
            return await self._dead_box.dead_letters(limit)
        return list(itertools.islice(self._kept.values(), limit))

    async def dead_letter_count(self) -> int:
        """How many dead letters are kept."""
        if self._dead_box is not None:
            return await self._dead_box.dead_letter_count()
        return len(self._kept)

    async def replay_dead_letters(self, event_ids: Sequence[str] | None = None) -> int:
        """Put dead letters (those named, or all) back into the outbox once the cause is fixed, and wake the
        archiver; returns how many were replayed. A letter refused again comes back as a dead letter."""
        if self._dead_box is not None:
            count = await self._dead_box.replay_dead_letters(event_ids)
        else:
            wanted = list(self._kept) if event_ids is None else [i for i in dict.fromkeys(event_ids) if i in self._kept]
            events = [self._kept[event_id].event for event_id in wanted]
            await self.outbox.push(events)
            for event_id in wanted:
                del self._kept[event_id]
            count = len(events)
        if count:
            self._queued(count)
        return count

    def _record_failure(self, exc: BaseException) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_error_at = utcnow()
        if self.consecutive_failures in (1, 10) or self.consecutive_failures % 100 == 0:
            logger.warning("archiving failed (%d in a row), will retry: %s", self.consecutive_failures, self.last_error)

    def _backoff(self) -> float:
        base = min(self.config.max_backoff, 0.05 * (2 ** min(self.consecutive_failures, 10)))
        return float(base * (0.5 + random.random() / 2))

    async def metrics(self) -> dict[str, Any]:
        """Queue depth, oldest pending age, batches, rows, failures and the last error."""
        outbox_error = None
        depth: int | None = None
        oldest: datetime | None = None
        dead: int | None = None
        try:
            depth = await self.outbox.depth()
            oldest = await self.outbox.oldest()
            dead = await self.dead_letter_count()
        except Exception as exc:  # metrics and health never raise; the outbox's server may be down
            outbox_error = f"{type(exc).__name__}: {exc}"
        return {
            "queue_depth": depth,
            "oldest_pending_age": (utcnow() - oldest).total_seconds() if oldest else 0.0,
            "batches": self.batches,
            "rows": self.rows,
            "failures": self.failures,
            # Kept in the outbox's dead letters (every process's where it is shared); None when unreadable.
            "dead_letters": dead,
            "dead_lettered": self.dead_lettered,
            "left_at_close": self.left_at_close,
            "outbox_error": outbox_error,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "last_success_at": self.last_success_at.isoformat() if self.last_success_at else None,
            "outbox": type(self.outbox).__name__,
            "outbox_durable": self.outbox.durable,
            "cold_connected": self._cold_open,
            "max_in_flight": self._window,
            "running": self._task is not None and not self._task.done(),
        }
