"""The archiver's durable outbox on the Redis hot tier: :class:`RedisStreamOutbox` (a Redis stream per namespace).

Events waiting for the cold tier live in Redis, not in the application process, so they survive a crash of the
app (and a restart of Redis as far as its own persistence goes: AOF/RDB). Layout: ``<namespace>:#outbox:{#o<n>}``
streams, one on plain Redis and :data:`CLUSTER_SHARDS` on a cluster (each shard its own hash tag, so its slot
and node; ``push`` picks the shard by a hash of the event key, which keeps one key's events in order). Each entry
holds one field ``e``: the JSON of :meth:`ArchiveEvent.to_dict`.

* ``push``: XADD per event, all in one pipeline (one round trip). No MAXLEN: trimming would drop events the cold
  tier never got. ``has_room`` bounds the stream instead (``max_pending``, checked against the length this
  outbox last saw plus what it pushed since).
* The hot store writes the events of a conversation append itself (capability ``atomic_outbox``): on plain Redis
  the XADDs run inside the APPEND script, so the message and its archive event are stored together or not at all;
  on a cluster (the stream is another slot) they follow in one pipeline. Same field, same JSON, same shard.
* ``peek``: XRANGE from the start of each shard (merged by stream id), so a batch the cold tier refused is read
  again on the next try; ``peek_ahead`` continues after the last entry handed out in each shard (the archiver
  writes several batches at once on a cold tier that allows it). ``ack``: XDEL of entries handed out.
* Several processes on one namespace: each shard has a drain *lease* (``SET NX PX``, renewed by every peek of
  the holder, released on ``aclose`` or when the shard is empty). Only the holder reads the shard, so N app
  processes do not write every batch N times; a holder that dies loses the lease after ``lease`` seconds and
  another process takes over. If a lease lapses during a long cold write, two processes may write the same batch:
  cold writes are idempotent on ``event_id``, so delivery is at-least-once and the archive holds each event once.
  (A consumer group would spread one shard over several drainers, but needs XAUTOCLAIM of a dead consumer's
  pending entries; the archive is batch-bound, not drainer-bound, so one drainer per shard is enough.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contextkit.codec import archive_json, archive_loads
from contextkit.errors import SerializationError
from contextkit.records import ArchiveEvent

if TYPE_CHECKING:
    from contextkit_redis.store import RedisHotStore

__all__ = ["CLUSTER_SHARDS", "RedisStreamOutbox"]

#: Stream shards on a Redis Cluster (one on plain Redis).
CLUSTER_SHARDS = 8

_PEEK = """
-- KEYS: stream, lease. ARGV: token, lease_ms, count, start ('-', or '(' and the last id handed out).
-- Returns {holder?, length, entries}.
local holder = redis.call('GET', KEYS[2])
local length = redis.call('XLEN', KEYS[1])
if holder and holder ~= ARGV[1] then return {0, length, {}} end
if length == 0 then
  if holder then redis.call('DEL', KEYS[2]) end
  return {1, 0, {}}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, length, redis.call('XRANGE', KEYS[1], ARGV[4], '+', 'COUNT', ARGV[3])}
"""

_RELEASE = """
-- KEYS: lease. ARGV: token
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _stream_id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq or 0)


def _event(body: bytes) -> ArchiveEvent:
    try:
        return ArchiveEvent.from_dict(archive_loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise SerializationError(f"an outbox entry is not an archive event: {exc!r}") from exc


def _body(fields: Any) -> bytes:
    if isinstance(fields, dict):
        return bytes(fields[b"e"])
    items = list(fields)
    for i in range(0, len(items) - 1, 2):
        if items[i] == b"e":
            return bytes(items[i + 1])
    raise SerializationError("an outbox entry has no 'e' field")


class RedisStreamOutbox:
    """The :class:`contextkit.archiver.Outbox` of the Redis hot tier (see the module docstring).

    :param store: the opened ``RedisHotStore`` whose client, namespace and timeout it uses (it does not close it).
    :param max_pending: most events waiting; beyond it ``has_room`` is False and the kit refuses writes instead of
        losing events.
    :param lease: seconds a drain lease lasts without renewal (how long a dead process blocks a shard).
    """

    durable = True

    def __init__(self, store: RedisHotStore, *, max_pending: int = 10_000_000, lease: float = 5.0) -> None:
        self._store = store
        self._max = max_pending
        self._lease_ms = max(1, int(lease * 1000))
        self._token = uuid.uuid4().hex
        self.shards = CLUSTER_SHARDS if store.cluster else 1
        self._streams = [store.keys.outbox_stream(n) for n in range(self.shards)]
        self._leases = [f"{stream}:lease" for stream in self._streams]
        client = store.client
        self._peek_script = client.register_script(_PEEK)
        self._release_script = client.register_script(_RELEASE)
        self._count = 0
        self._peeked: dict[str, list[tuple[int, bytes]]] = {}
        self._cursors: list[str] = ["-"] * self.shards

    def __repr__(self) -> str:
        return f"RedisStreamOutbox(namespace={self._store.settings.namespace!r}, shards={self.shards})"

    @property
    def streams(self) -> list[str]:
        """The stream keys (one per shard)."""
        return list(self._streams)

    def _shard(self, key: str) -> int:
        return self._store.keys.outbox_shard(key, self.shards)

    def stream_for(self, key: str) -> str:
        """The stream that holds the events of ``key`` (the hot store writes there for ``atomic_outbox``)."""
        return self._streams[self._shard(key)]

    def has_room(self, count: int) -> bool:
        """See :meth:`contextkit.archiver.Outbox.has_room` (no I/O: the length last seen plus pushes since)."""
        return self._count + count <= self._max

    def count_pushed(self, count: int) -> None:
        """Count ``count`` events the hot store wrote into the streams itself (``atomic_outbox``), for
        :meth:`has_room`."""
        self._count += count

    async def push(self, events: Sequence[ArchiveEvent]) -> None:
        """XADD every event to its shard, in one pipeline."""
        if not events:
            return
        pipe = self._store.client.pipeline(transaction=False)
        for event in events:
            try:
                body = archive_json(event.to_dict())
            except (TypeError, ValueError) as exc:
                raise SerializationError(f"archive event {event.event_id} cannot be stored as JSON: {exc}") from exc
            pipe.xadd(self._streams[self._shard(event.key)], {"e": body})
        await self._store.gate("outbox push", pipe.execute())
        self._count += len(events)

    async def peek(self, count: int) -> list[ArchiveEvent]:
        """The oldest ``count`` events of the shards this process holds the lease of, without removing them."""
        self._peeked = {}
        self._cursors = ["-"] * self.shards
        if count <= 0:
            return []
        return await self._read(count, full_only=False)

    async def peek_ahead(self, count: int) -> list[ArchiveEvent]:
        """The ``count`` events after those handed out since the last :meth:`peek` (merged over the shards), or
        ``[]`` when fewer wait; see :class:`contextkit.archiver.PeekAhead`."""
        if count <= 0:
            return []
        return await self._read(count, full_only=True)

    async def _read(self, count: int, *, full_only: bool) -> list[ArchiveEvent]:
        replies = await asyncio.gather(
            *(
                self._store.gate(
                    "outbox peek",
                    self._peek_script(keys=[stream, lease], args=[self._token, self._lease_ms, count, start]),
                )
                for stream, lease, start in zip(self._streams, self._leases, self._cursors, strict=True)
            )
        )
        entries: list[tuple[tuple[int, int], int, bytes, bytes]] = []
        total = 0
        for shard, (_, length, rows) in enumerate(replies):
            total += int(length)
            for sid, fields in rows:
                entries.append((_stream_id(sid), shard, sid, _body(fields)))
        self._count = total
        if full_only and len(entries) < count:
            return []
        entries.sort(key=lambda item: item[0])
        events = []
        peeked, cursors = self._peeked, self._cursors
        for _, shard, sid, body in entries[:count]:
            event = _event(body)
            peeked.setdefault(event.event_id, []).append((shard, sid))
            # Entries of one shard come in id order: the last one handed out is where the next read starts.
            cursors[shard] = "(" + sid.decode()
            events.append(event)
        return events

    async def ack(self, event_ids: Sequence[str]) -> None:
        """XDEL the entries of the last peek that carry these event ids."""
        by_shard: dict[int, list[bytes]] = {}
        for event_id in event_ids:
            for shard, sid in self._peeked.pop(event_id, ()):
                by_shard.setdefault(shard, []).append(sid)
        if not by_shard:
            return
        pipe = self._store.client.pipeline(transaction=False)
        for shard, sids in by_shard.items():
            pipe.xdel(self._streams[shard], *sids)
        removed = await self._store.gate("outbox ack", pipe.execute())
        self._count = max(0, self._count - sum(int(n) for n in removed))

    async def depth(self) -> int:
        """XLEN summed over the shards (every process's pending events)."""
        pipe = self._store.client.pipeline(transaction=False)
        for stream in self._streams:
            pipe.xlen(stream)
        total = sum(int(n) for n in await self._store.gate("outbox depth", pipe.execute()))
        self._count = total
        return total

    async def oldest(self) -> datetime | None:
        """``created_at`` of the oldest waiting event over the shards."""
        pipe = self._store.client.pipeline(transaction=False)
        for stream in self._streams:
            pipe.xrange(stream, "-", "+", count=1)
        heads = await self._store.gate("outbox oldest", pipe.execute())
        times = [_event(_body(rows[0][1])).created_at for rows in heads if rows]
        return min(times) if times else None

    async def aclose(self) -> None:
        """Release this process's drain leases (another process takes over at once); events stay in Redis."""
        if self._store._connected is None:
            return
        for lease in self._leases:
            try:
                await self._store.gate("outbox close", self._release_script(keys=[lease], args=[self._token]))
            except Exception:  # a dead server must not fail shutdown; the lease expires by itself
                return
