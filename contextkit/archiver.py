"""Dual-write without loss: the outbox and the archiver that drains it into the cold tier.

The hot path never waits for the cold tier: a write pushes its :class:`~contextkit.records.ArchiveEvent` objects
into an :class:`Outbox` and returns. A background :class:`Archiver` task reads the outbox in batches, writes them to
the cold tier (idempotently, on ``event_id``) and only then acknowledges them, so an event leaves the outbox only
once the cold tier holds it. While the cold tier is down the archiver retries with exponential backoff and
jitter; events wait in the outbox, they are never dropped.

Outboxes: :class:`MemoryOutbox` (in-process; as durable as the memory hot tier), :class:`FileOutbox` (a local SQLite
file that survives a crash of the process) and any outbox a hot tier provides (a Redis stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from contextkit.config import ArchiverConfig
from contextkit.errors import BackendUnavailable, SerializationError
from contextkit.records import ArchiveEvent, from_iso, utcnow
from contextkit.stores import ColdStore

__all__ = ["Archiver", "FileOutbox", "MemoryOutbox", "Outbox"]

logger = logging.getLogger("contextkit.archiver")


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


class MemoryOutbox:
    """An in-process outbox: fast, bounded by ``max_pending``, lost with the process (like the memory tier)."""

    durable = False

    def __init__(self, max_pending: int = 1_000_000) -> None:
        self._events: deque[ArchiveEvent] = deque()
        self._max = max_pending

    def has_room(self, count: int) -> bool:
        """See :meth:`Outbox.has_room`."""
        return len(self._events) + count <= self._max

    async def push(self, events: Sequence[ArchiveEvent]) -> None:
        """See :meth:`Outbox.push`."""
        self._events.extend(events)

    async def peek(self, count: int) -> list[ArchiveEvent]:
        """See :meth:`Outbox.peek`."""
        return [self._events[i] for i in range(min(count, len(self._events)))]

    async def ack(self, event_ids: Sequence[str]) -> None:
        """See :meth:`Outbox.ack`."""
        done = set(event_ids)
        # The single archiver acks what it peeked, which is always a prefix of the queue.
        while self._events and self._events[0].event_id in done:
            self._events.popleft()
        if done and self._events:
            remaining = [e for e in self._events if e.event_id not in done]
            if len(remaining) != len(self._events):
                self._events = deque(remaining)

    async def depth(self) -> int:
        """See :meth:`Outbox.depth`."""
        return len(self._events)

    async def oldest(self) -> datetime | None:
        """See :meth:`Outbox.oldest`."""
        return self._events[0].created_at if self._events else None

    async def aclose(self) -> None:
        """Nothing to release."""


class FileOutbox:
    """A durable outbox in a local SQLite file (WAL). Survives a crash of the application process."""

    durable = True

    def __init__(self, path: str | Path, max_pending: int = 10_000_000) -> None:
        self.path = Path(path)
        self._max = max_pending
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._count = 0

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "event_id TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, body TEXT NOT NULL)"
            )
            self._count = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
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

    async def push(self, events: Sequence[ArchiveEvent]) -> None:
        """See :meth:`Outbox.push`."""
        rows = [(e.event_id, e.created_at.isoformat(), json.dumps(e.to_dict(), ensure_ascii=False)) for e in events]

        def insert(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN")
                cur = conn.executemany("INSERT OR IGNORE INTO outbox (event_id, created_at, body) VALUES (?,?,?)", rows)
                self._count += cur.rowcount

        await asyncio.to_thread(self._run, insert)

    async def peek(self, count: int) -> list[ArchiveEvent]:
        """See :meth:`Outbox.peek`."""

        def select(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute("SELECT body FROM outbox ORDER BY seq LIMIT ?", (count,))]

        bodies = await asyncio.to_thread(self._run, select)
        return [ArchiveEvent.from_dict(json.loads(body)) for body in bodies]

    async def ack(self, event_ids: Sequence[str]) -> None:
        """See :meth:`Outbox.ack`."""
        ids = [(i,) for i in event_ids]

        def delete(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN")
                cur = conn.executemany("DELETE FROM outbox WHERE event_id = ?", ids)
                self._count = max(0, self._count - cur.rowcount)

        await asyncio.to_thread(self._run, delete)

    async def depth(self) -> int:
        """See :meth:`Outbox.depth`."""
        return int(await asyncio.to_thread(self._run, lambda c: c.execute("SELECT count(*) FROM outbox").fetchone()[0]))

    async def oldest(self) -> datetime | None:
        """See :meth:`Outbox.oldest`."""
        row = await asyncio.to_thread(
            self._run, lambda c: c.execute("SELECT created_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        )
        return from_iso(row[0]) if row else None

    async def aclose(self) -> None:
        """Close the file; pending events stay in it."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class Archiver:
    """Drains an :class:`Outbox` into a :class:`~contextkit.stores.ColdStore` in the background.

    Start it with :meth:`start`; :meth:`submit` is what the hot path calls (or :meth:`notify`, when the hot store
    wrote the events into the outbox itself). :meth:`aclose` drains what it can
    within ``drain_timeout`` and leaves the rest in the outbox.
    """

    def __init__(self, cold: ColdStore, outbox: Outbox, config: ArchiverConfig, *, cold_open: bool = True) -> None:
        self.cold = cold
        self.outbox = outbox
        self.config = config
        self._cold_open = cold_open
        self._wake = asyncio.Event()
        # Set when a full batch is waiting or a flush wants everything now: ends the accumulation window early.
        self._full = asyncio.Event()
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
        #: Events the cold tier refused as malformed, with the reason: kept here (and counted in metrics) so an
        #: operator can inspect them; they no longer block the queue.
        self.dead_letters: list[tuple[ArchiveEvent, str]] = []

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
        self._depth_hint += len(events)
        self._idle.clear()
        self._wake.set()
        if self._depth_hint >= self.config.batch_size:
            self._full.set()

    def notify(self, count: int) -> None:
        """Wake the archiver for ``count`` events the hot store already wrote into this outbox itself (capability
        ``atomic_outbox``); counts them toward the outbox's room like :meth:`submit` would."""
        if count <= 0:
            return
        count_pushed = getattr(self.outbox, "count_pushed", None)
        if count_pushed is not None:
            count_pushed(count)
        self._depth_hint += count
        self._idle.clear()
        self._wake.set()
        if self._depth_hint >= self.config.batch_size:
            self._full.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until the outbox is empty (True) or ``timeout`` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while await self.outbox.depth() > 0:
            if self._task is None or self._task.done():
                return False
            self._wake.set()
            self._full.set()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=min(0.05, remaining) if remaining else 0.05)
        return True

    async def aclose(self, timeout: float | None = None) -> bool:
        """Drain within ``timeout`` (default ``drain_timeout``), stop the task, close the outbox.

        Returns True when nothing was left pending.
        """
        drained = await self.flush(self.config.drain_timeout if timeout is None else timeout)
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not drained:
            logger.warning("archiver closed with %d event(s) left in the outbox", await self.outbox.depth())
        await self.outbox.aclose()
        return drained

    async def _run(self) -> None:
        delay = 0.0
        while not self._stopping:
            try:
                batch = await self.outbox.peek(self.config.batch_size)
            except Exception as exc:
                self._record_failure(exc)
                await asyncio.sleep(self._backoff())
                continue
            if not batch:
                self._depth_hint = 0
                self._idle.set()
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                continue
            if len(batch) < self.config.batch_size and delay == 0.0 and self.config.flush_interval > 0:
                # Let a burst accumulate: the cold tiers want large batches, not one row per insert.
                # Every write sets _wake, so waiting on it here would end the window at the next write and
                # archive one event at a time; only a full batch or a flush ends it early.
                if not self._full.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._full.wait(), timeout=self.config.flush_interval)
                self._full.clear()
                batch = await self.outbox.peek(self.config.batch_size)
            try:
                if not self._cold_open:
                    await self.cold.open()
                    self._cold_open = True
                await self.cold.write_events(batch)
            except asyncio.CancelledError:
                raise
            except SerializationError:
                # A batch the cold tier refuses as data (not as an outage) would block the queue forever:
                # find the events it refuses, set them aside (counted, logged, kept), and write the rest.
                written = await self._isolate_poison(batch)
                if written is None:
                    continue
                batch = written
            except Exception as exc:
                self._record_failure(exc)
                delay = self._backoff()
                await asyncio.sleep(delay)
                continue
            await self.outbox.ack([e.event_id for e in batch])
            delay = 0.0
            self.batches += 1
            self.rows += len(batch)
            self._depth_hint = max(0, self._depth_hint - len(batch))
            self.consecutive_failures = 0
            self.last_success_at = utcnow()

    async def _isolate_poison(self, batch: list[ArchiveEvent]) -> list[ArchiveEvent] | None:
        """Write ``batch`` one event at a time; move refused events to :attr:`dead_letters` and ack them.

        Returns the events written (to be acked by the caller), or None when an outage interrupted the pass.
        """
        written: list[ArchiveEvent] = []
        for event in batch:
            try:
                await self.cold.write_events([event])
            except SerializationError as exc:
                self.dead_letters.append((event, f"{type(exc).__name__}: {exc}"))
                logger.error("archive event %s (%s) refused by the cold tier and set aside: %s",
                             event.event_id, event.table, exc)
                await self.outbox.ack([event.event_id])
            except Exception as exc:
                self._record_failure(exc)
                if written:
                    await self.outbox.ack([e.event_id for e in written])
                await asyncio.sleep(self._backoff())
                return None
            else:
                written.append(event)
        return written

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
        depth = await self.outbox.depth()
        oldest = await self.outbox.oldest()
        return {
            "queue_depth": depth,
            "oldest_pending_age": (utcnow() - oldest).total_seconds() if oldest else 0.0,
            "batches": self.batches,
            "rows": self.rows,
            "failures": self.failures,
            "dead_letters": len(self.dead_letters),
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "last_success_at": self.last_success_at.isoformat() if self.last_success_at else None,
            "outbox": type(self.outbox).__name__,
            "outbox_durable": self.outbox.durable,
            "cold_connected": self._cold_open,
            "running": self._task is not None and not self._task.done(),
        }
