"""The archiver's durable outbox on the Redis hot tier: :class:`RedisStreamOutbox`, Redis streams of the namespace.

Events waiting for the cold tier live in Redis, not in the application process, so they survive a crash of the
app (and a restart of Redis as far as its own persistence goes: AOF/RDB). Each write script of the hot store XADDs
its archive event to the outbox stream *in the same script* as the write (``atomic_outbox``), so the stream must
be in the slot of the owner the script writes:

* on plain Redis there is one stream, ``<namespace>:#outbox:{#o0}``;
* on a cluster there is one stream per hash slot (:meth:`KeyLayout.outbox_for_slot`), written by the owners of that
  slot. This process reads the slots it wrote to (the store tells it after each write) and, every
  ``sweep_interval`` seconds (and at the first read), looks for waiting events in every slot's stream (an XLEN of
  each, pipelined per node), so what a crashed process left behind is found by any live one.

Each entry is one archive event in one of the shapes of :mod:`contextkit_redis.entries`.

* ``peek``: XRANGE from the start of each stream (merged by stream id), so a batch the cold tier refused is read
  again on the next try; ``peek_ahead`` continues after the last entry handed out in each stream (the archiver
  writes several batches at once on a cold tier that allows it). ``ack``: XDEL of entries handed out.
* No MAXLEN: trimming would drop events the cold tier never got. ``has_room`` bounds the outbox instead
  (``max_pending``, checked against the length this outbox last saw plus what was written since).
* Dead letters (events the cold tier refused as data, :class:`contextkit.archiver.DeadLetterBox`): a hash of the
  namespace, ``<namespace>:#dead:{#o0}``, event id -> JSON of the letter. A letter is written there before its
  entry is XDELed from the stream (so a crash in between leaves it in both, refused again and kept once, never in
  neither); a replay XADDs the events back to their streams before it HDELs the letters.
* Several processes on one namespace: each stream has a drain *lease* (``SET NX PX``, renewed by every peek of the
  holder, released on ``aclose`` or when the stream is empty). Only the holder reads the stream, so N app
  processes do not write every batch N times; a holder that dies loses the lease after ``lease`` seconds and
  another process takes over. A kit closing while another process holds the lease of every stream with events
  does not wait to drain them (:meth:`RedisStreamOutbox.drained_elsewhere`): they stay in Redis for the holder, or
  for the next process once a dead holder's lease lapses. If a lease lapses during a long cold write, two
  processes may write the same batch: cold writes are idempotent on ``event_id``, so delivery is at-least-once
  and the archive holds each event once.
"""

from __future__ import annotations

import asyncio
import binascii
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contextkit.archiver import DeadLetter
from contextkit.codec import archive_json, archive_loads
from contextkit.errors import SerializationError
from contextkit.records import ArchiveEvent
from contextkit_redis import lua
from contextkit_redis.entries import as_hash, decode_entry

if TYPE_CHECKING:
    from contextkit_redis.hot import RedisHotStore

__all__ = ["SLOTS", "RedisStreamOutbox", "slot_of"]

#: Hash slots of a Redis Cluster.
SLOTS = 16384

# The drain lease's scripts (lua/outbox/*.lua).
_PEEK = lua.script("outbox/peek")
_RELEASE = lua.script("outbox/release")


def slot_of(tag: str) -> int:
    """The cluster hash slot of a key whose hash tag is ``tag`` (CRC16/XMODEM of its UTF-8, mod 16384)."""
    return binascii.crc_hqx(tag.encode("utf-8"), 0) % SLOTS


def _stream_id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq or 0)


def _ids(letters: Sequence[DeadLetter]) -> list[str]:
    return [letter.event.event_id for letter in letters]


def _entry_size(fields: Any) -> int:
    """Bytes of an entry's values (a flat [name, value, ...] list, or a mapping)."""
    values = fields.values() if isinstance(fields, dict) else fields[1::2]
    return sum(len(value) for value in values)


def _event(fields: Any) -> ArchiveEvent:
    """The archive event of an outbox entry's fields (a mapping or a flat list; see contextkit_redis.entries)."""
    return decode_entry(as_hash(fields))


class RedisStreamOutbox:
    """The :class:`contextkit.archiver.Outbox` of the Redis hot tier (see the module docstring).

    :param store: the opened ``RedisHotStore`` whose client, namespace and timeout it uses (it does not close it).
    :param max_pending: most events waiting; beyond it ``has_room`` is False and the kit refuses writes instead of
        losing events.
    :param lease: seconds a drain lease lasts without renewal (how long a dead process blocks a stream).
    :param sweep_interval: seconds between two looks for waiting events in every slot's stream (cluster only).
    """

    durable = True
    def __init__(
        self, store: RedisHotStore, *, max_pending: int = 10_000_000, lease: float = 5.0, sweep_interval: float = 60.0
    ) -> None:
        self._store = store
        self._max = max_pending
        self._lease_ms = max(1, int(lease * 1000))
        self._token = uuid.uuid4().hex
        self._cluster = store.cluster
        self._sweep_interval = sweep_interval
        self._next_sweep = 0.0
        client = store.client
        self._peek_script = client.register_script(_PEEK)
        self._release_script = client.register_script(_RELEASE)
        self._count = 0
        # The streams this outbox reads: the one stream, or (cluster) the slots written or found non-empty. A slot
        # leaves the set when a read finds it empty and nothing was written to it since (its generation is the same).
        self._active: dict[str, int] = {} if self._cluster else {store.keys.outbox_stream(0): 0}
        self._generation = 0
        self._peeked: dict[str, list[tuple[str, bytes]]] = {}
        self._cursors: dict[str, str] = {}
        # Oldest event time per stream as of its last read: what `oldest` answers from (cluster).
        self._oldest: dict[str, datetime] = {}

    def __repr__(self) -> str:
        return f"RedisStreamOutbox(namespace={self._store.settings.namespace!r}, streams={len(self._active)})"

    @property
    def streams(self) -> list[str]:
        """The stream keys this outbox currently reads (the one stream on plain Redis)."""
        return list(self._active)

    def written(self, stream: str) -> None:
        """Note that a write script XADDed to ``stream``: read it at the next peek (cluster; the one stream of plain
        Redis is always read)."""
        if self._cluster:
            self._generation += 1
            self._active[stream] = self._generation

    def has_room(self, count: int) -> bool:
        """See :meth:`contextkit.archiver.Outbox.has_room` (no I/O: the length last seen plus pushes since)."""
        return self._count + count <= self._max

    def count_pushed(self, count: int) -> None:
        """Count ``count`` events the hot store wrote into the streams itself (``atomic_outbox``), for
        :meth:`has_room`."""
        self._count += count

    async def push(self, events: Sequence[ArchiveEvent]) -> None:
        """XADD every event to the stream of its key, in one pipeline."""
        if not events:
            return
        pipe = self._store.client.pipeline(transaction=False)
        targets = []
        for event in events:
            try:
                body = archive_json(event.to_dict())
            except (TypeError, ValueError) as exc:
                raise SerializationError(f"archive event {event.event_id} cannot be stored as JSON: {exc}") from exc
            # the stream the store's write scripts XADD the owner's events to (one owner, one stream)
            stream = self._store._outbox_key(event.key)
            targets.append(stream)
            pipe.xadd(stream, {"e": body})
        await self._store.gate("outbox push", pipe.execute())
        for stream in targets:
            self.written(stream)
        self._count += len(events)

    async def peek(self, count: int, max_bytes: int | None = None) -> list[ArchiveEvent]:
        """The oldest ``count`` events of the streams this process holds the lease of, without removing them; with
        ``max_bytes``, no more than that many bytes of entries (one at least)."""
        self._peeked = {}
        self._cursors = {}
        if count <= 0:
            return []
        await self._sweep_if_due()
        return await self._read(count, max_bytes, full_only=False)

    async def peek_ahead(self, count: int, max_bytes: int | None = None) -> list[ArchiveEvent]:
        """The ``count`` events (or ``max_bytes`` bytes of them) after those handed out since the last :meth:`peek`
        (merged over the streams), or ``[]`` when fewer wait; see :class:`contextkit.archiver.PeekAhead`."""
        if count <= 0:
            return []
        return await self._read(count, max_bytes, full_only=True)

    async def _peek_stream(self, stream: str, start: str, count: int, max_bytes: int) -> Any:
        # The script call is created here, in the task that awaits it. Created by the caller and handed to a task,
        # it is never awaited when that task is cancelled before its first step (aclose() cancelling the archiver
        # mid-peek), and Python prints "coroutine 'AsyncScript.__call__' was never awaited".
        return await self._store.gate(
            "outbox peek",
            self._peek_script(
                keys=[stream, f"{stream}:lease"], args=[self._token, self._lease_ms, count, start, max_bytes]
            ),
        )

    async def _read(self, count: int, max_bytes: int | None, *, full_only: bool) -> list[ArchiveEvent]:
        streams = list(self._active.items())
        if not streams:
            self._count = 0
            return []
        cursors = self._cursors
        # return_exceptions: every stream's read has finished before a failure is raised (none is left running).
        outcomes = await asyncio.gather(
            *(self._peek_stream(stream, cursors.get(stream, "-"), count, max_bytes or 0) for stream, _ in streams),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        replies: list[Any] = outcomes
        entries: list[tuple[tuple[int, int], str, bytes, Any]] = []
        total = 0
        bounded = False
        for (stream, generation), (_, length, rows, full) in zip(streams, replies, strict=True):
            bounded = bounded or (bool(int(full)) and len(rows) < count)
            total += int(length)
            if int(length) == 0 and self._cluster and self._active.get(stream) == generation:
                del self._active[stream]  # drained, and nothing written since the read began
                self._oldest.pop(stream, None)
            for sid, fields in rows:
                entries.append((_stream_id(sid), stream, sid, fields))
        self._count = total
        entries.sort(key=lambda item: item[0])
        if max_bytes:
            # Merged over the streams: the oldest entries up to the bound (each stream already stopped at it).
            kept, size = 0, 0
            for _, _, _, fields in entries[:count]:
                entry_size = _entry_size(fields)
                if kept and size + entry_size > max_bytes:
                    bounded = True
                    break
                size += entry_size
                kept += 1
            bounded = bounded or size >= max_bytes
            entries = entries[:kept]
        if full_only and len(entries) < count and not bounded:
            return []
        events = []
        peeked, cursors = self._peeked, self._cursors
        first_seen: dict[str, datetime] = {}
        for _, stream, sid, fields in entries[:count]:
            event = _event(fields)
            peeked.setdefault(event.event_id, []).append((stream, sid))
            # Entries of one stream come in id order: the last one handed out is where the next read starts.
            cursors[stream] = "(" + sid.decode()
            first_seen.setdefault(stream, event.created_at)
            events.append(event)
        if not full_only:
            self._oldest.update(first_seen)
        return events

    async def ack(self, event_ids: Sequence[str]) -> None:
        """XDEL the entries of the last peek that carry these event ids."""
        by_stream: dict[str, list[bytes]] = {}
        for event_id in event_ids:
            for stream, sid in self._peeked.pop(event_id, ()):
                by_stream.setdefault(stream, []).append(sid)
        if not by_stream:
            return
        pipe = self._store.client.pipeline(transaction=False)
        for stream, sids in by_stream.items():
            pipe.xdel(stream, *sids)
        removed = await self._store.gate("outbox ack", pipe.execute())
        self._count = max(0, self._count - sum(int(n) for n in removed))

    async def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """See :meth:`contextkit.archiver.DeadLetterBox.dead_letter`: HSET the letters, then XDEL their entries."""
        if not letters:
            return
        mapping = {
            letter.event.event_id: archive_json(letter.to_dict(), allow_nan=True) for letter in letters
        }
        await self._store.gate("dead letter", self._store.client.hset(self._store.keys.dead_letters(), mapping=mapping))
        await self.ack(list(mapping))

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """See :meth:`contextkit.archiver.DeadLetterBox.dead_letters` (oldest refused first)."""
        raw = await self._store.gate("dead letters", self._store.client.hgetall(self._store.keys.dead_letters()))
        letters = sorted(
            (DeadLetter.from_dict(archive_loads(body)) for body in raw.values()),
            key=lambda letter: (letter.at, letter.event.event_id),
        )
        return letters if limit is None else letters[:limit]

    async def dead_letter_count(self) -> int:
        """See :meth:`contextkit.archiver.DeadLetterBox.dead_letter_count`."""
        return int(await self._store.gate("dead letters", self._store.client.hlen(self._store.keys.dead_letters())))

    async def replay_dead_letters(self, event_ids: Sequence[str] | None = None) -> int:
        """See :meth:`contextkit.archiver.DeadLetterBox.replay_dead_letters`: XADD the events back, then HDEL."""
        letters = await self.dead_letters()
        if event_ids is not None:
            wanted = set(event_ids)
            letters = [letter for letter in letters if letter.event.event_id in wanted]
        if not letters:
            return 0
        await self.push([letter.event for letter in letters])
        await self._store.gate(
            "dead letters replay", self._store.client.hdel(self._store.keys.dead_letters(), *_ids(letters))
        )
        return len(letters)

    async def depth(self) -> int:
        """Events waiting: XLEN of the stream (plain Redis: every process's); on a cluster, of the slot streams this
        process reads (its own writes, and what a sweep found)."""
        streams = list(self._active)
        if not streams:
            self._count = 0
            return 0
        pipe = self._store.client.pipeline(transaction=False)
        for stream in streams:
            pipe.xlen(stream)
        total = sum(int(n) for n in await self._store.gate("outbox depth", pipe.execute()))
        self._count = total
        return total

    async def oldest(self) -> datetime | None:
        """``created_at`` of the oldest waiting event: the stream's head on plain Redis; on a cluster the oldest of
        the heads this process saw at its last reads of the streams it reads, and of the heads of those it wrote to
        (or a sweep found) since, read now."""
        if self._cluster:
            unseen = [stream for stream in self._active if stream not in self._oldest]
            if unseen:
                pipe = self._store.client.pipeline(transaction=False)
                for stream in unseen:
                    pipe.xrange(stream, "-", "+", count=1)
                heads = await self._store.gate("outbox oldest", pipe.execute())
                for stream, head in zip(unseen, heads, strict=True):
                    if head:
                        self._oldest[stream] = _event(head[0][1]).created_at
            return min((self._oldest[s] for s in self._active if s in self._oldest), default=None)
        stream = self._store.keys.outbox_stream(0)
        heads = await self._store.gate("outbox oldest", self._store.client.xrange(stream, "-", "+", count=1))
        return _event(heads[0][1]).created_at if heads else None

    async def _sweep_if_due(self) -> None:
        """Cluster: every ``sweep_interval``, XLEN every slot's stream and read the non-empty ones too."""
        if not self._cluster or time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + self._sweep_interval
        keys = self._store.keys
        streams = [keys.outbox_for_slot(slot) for slot in range(SLOTS)]
        pipe = self._store.client.pipeline(transaction=False)
        for stream in streams:
            pipe.xlen(stream)
        lengths = await self._store.gate("outbox sweep", pipe.execute())
        for stream, length in zip(streams, lengths, strict=True):
            if int(length) and stream not in self._active:
                self._generation += 1
                self._active[stream] = self._generation

    async def drained_elsewhere(self) -> bool:
        """True when events wait only in streams whose drain lease another process holds (alive, or dead and its
        lease not expired yet): they are that process's, or the next holder's, to archive, and a closing kit
        leaves them in Redis instead of waiting up to ``lease`` seconds for a crashed peer's lease to lapse."""
        streams = list(self._active)
        if not streams:
            return False
        pipe = self._store.client.pipeline(transaction=False)
        for stream in streams:
            pipe.xlen(stream)
            pipe.get(f"{stream}:lease")
        replies = await self._store.gate("outbox lease check", pipe.execute())
        waiting = False
        for length, holder in zip(replies[::2], replies[1::2], strict=True):
            if int(length) == 0:
                continue
            waiting = True
            if holder is None or (holder.decode() if isinstance(holder, bytes) else holder) == self._token:
                return False  # this process can drain it
        return waiting

    async def aclose(self) -> None:
        """Release this process's drain leases (another process takes over at once); events stay in Redis."""
        if self._store._connected is None:
            return
        for stream in list(self._active):
            try:
                await self._store.gate("outbox close", self._release_script(keys=[f"{stream}:lease"], args=[self._token]))
            except Exception:  # a dead server must not fail shutdown; the lease expires by itself
                return
