"""The in-process cold tier: :class:`MemoryColdStore`, a :class:`~contextkit.stores.ColdStore` on Python dicts.

It exists so the archiver, read-through and the engine scenarios can be tested (and demonstrated) without a
database server. It is **not durable**: the archive lives as long as the object. :meth:`MemoryColdStore.set_available`
simulates an outage: while unavailable every call raises :class:`~contextkit.errors.BackendUnavailable`, as a
real cold tier would, so tests can check that the archiver keeps and retries its batches.

Rows are kept per table and keyed by ``event_id``, so writing an event twice keeps one row (idempotent
retries). "Newest" follows :mod:`contextkit.tiered.cold_rules`: the highest ``(version, created_at, order of first
write)``; an owner's delete hides the rows of its key below it and the messages of its stream up to its
``last_seq``.
LangGraph checkpoints archived by the saver share the checkpoint tables with seed documents (told apart by
``payload["kind"]``, see :mod:`contextkit.checkpoint_archive`); their reads scan the thread's rows, which is fine
for a tier that exists for tests and demos.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from contextkit.backend.archive_reads import ArchiveCheckpointReads
from contextkit.backend.tables import ArchiveTables
from contextkit.checkpoint_archive import (
    DELETE_KIND,
    LANGGRAPH_KIND,
    bundles_from_payloads,
    delete_floor,
    deleted_runs,
    linked_span,
    newest_distinct,
    payload_kind,
)
from contextkit.errors import BackendUnavailable, InvalidInput
from contextkit.records import ARCHIVE_TABLES, ArchiveEvent, Message, Session
from contextkit.stores import Capability, CheckpointBundle, OwnerState, StoreSettings
from contextkit.tiered.cold_rules import DeleteMark, RowOrder, build_owner_state, delete_mark, hides, hides_message
from contextkit_memory.hot import _copy_document, _copy_json
from contextkit_memory.options import MemoryOptions

__all__ = ["MemoryColdStore"]



@dataclass(frozen=True, slots=True)
class _Row:
    """One archived event: its order of first write, creation time, key, version and a private copy of its
    payload."""

    order: int
    created_at: datetime
    key: str
    payload: dict[str, Any]
    version: int = 0

    @property
    def newness(self) -> RowOrder:
        return (self.version, self.created_at, self.order)

    @property
    def is_delete(self) -> bool:
        return self.payload.get("event_type") == "delete"


class MemoryColdStore(ArchiveCheckpointReads):
    """An in-process archive of :class:`~contextkit.records.ArchiveEvent` rows (tests and demos, not durable).

    :param settings: the namespace is reported by :meth:`describe`; other settings are unused.
    :param available: False starts the store in a simulated outage (see :meth:`set_available`).
    """

    name = "memory"
    # A batch is stored without awaiting anything: concurrent batches cannot interleave.
    capabilities: frozenset[str] = frozenset({Capability.CONCURRENT_WRITES.value})

    @classmethod
    def from_options(cls, settings: StoreSettings, options: Mapping[str, Any]) -> MemoryColdStore:
        """The factory registered as the cold tier ``memory``: option ``fail`` (bool, default False) starts the
        store in a simulated outage (:class:`MemoryOptions`); no I/O."""
        return cls(settings, available=not MemoryOptions.parse(options, "cold").fail)

    def __init__(self, settings: StoreSettings, *, available: bool = True) -> None:
        self.settings = settings
        self._available = available
        self._closed = False
        self._order = 0
        self._rows: dict[str, dict[str, _Row]] = {table: {} for table in ARCHIVE_TABLES}
        # (table, key) -> rows in write order: reads never scan a whole table.
        self._by_key: dict[tuple[str, str], list[_Row]] = {}

    def __repr__(self) -> str:
        rows = sum(len(t) for t in self._rows.values())
        return f"MemoryColdStore(namespace={self.settings.namespace!r}, rows={rows}, available={self._available})"

    def set_available(self, flag: bool) -> None:
        """Simulate the archive going down (False) or coming back (True)."""
        self._available = flag

    def _ensure_available(self) -> None:
        if not self._available:
            raise BackendUnavailable("memory cold tier is unavailable (simulated outage)")

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """No schema to migrate; raises :class:`BackendUnavailable` during a simulated outage."""
        self._ensure_available()
        self._closed = False

    async def aclose(self) -> None:
        """Mark the store closed; idempotent. The archive stays in memory."""
        self._closed = True

    async def health(self) -> dict[str, Any]:
        """``{"status": "healthy"|"unhealthy", "latency_ms", "backend": "memory", "rows"}``; never raises."""
        started = time.perf_counter()
        rows = sum(len(t) for t in self._rows.values())
        return {
            "status": "healthy" if self._available else "unhealthy",
            "latency_ms": (time.perf_counter() - started) * 1000.0,
            "backend": "memory",
            "rows": rows,
        }

    def describe(self) -> dict[str, Any]:
        """Backend name and namespace; no I/O."""
        return {"backend": "memory", "namespace": self.settings.namespace, "durable": False}

    # -- writes ---------------------------------------------------------------------------------------------------
    async def write_events(self, events: Sequence[ArchiveEvent]) -> None:
        """Store the batch, keeping one row per ``event_id``; all or nothing.

        Raises :class:`BackendUnavailable` during a simulated outage (nothing is stored) and
        :class:`InvalidInput` for an unknown table (nothing is stored).
        """
        self._ensure_available()
        for event in events:
            if event.table not in self._rows:
                raise InvalidInput(f"unknown archive table {event.table!r}; known: {', '.join(ARCHIVE_TABLES)}")
        for event in events:
            table = self._rows[event.table]
            if event.event_id in table:
                continue
            self._order += 1
            row = _Row(self._order, event.created_at, event.key, _copy_json(event.payload), event.version)
            table[event.event_id] = row
            self._by_key.setdefault((event.table, event.key), []).append(row)

    # -- reads ----------------------------------------------------------------------------------------------------
    def _rows_of(self, table: str, key: str) -> list[_Row]:
        self._ensure_available()
        return self._by_key.get((table, key), [])

    def _newest(self, table: str, key: str) -> _Row | None:
        rows = self._rows_of(table, key)
        return max(rows, key=lambda r: r.newness) if rows else None

    def _delete_mark(self, key: str) -> DeleteMark | None:
        deletes = [r for r in self._rows_of(ArchiveTables.SESSIONS, key) if r.is_delete]
        if not deletes:
            return None
        row = max(deletes, key=lambda r: r.newness)
        return delete_mark(row.version, row.created_at, row.order, row.payload)

    def _visible(self, table: str, key: str) -> _Row | None:
        """The newest row of a record, unless the owner's newest delete hides it."""
        row = self._newest(table, key)
        if row is None or (table != ArchiveTables.SESSIONS and hides(self._delete_mark(key), row.newness)):
            return None
        return row

    async def read_owner(self, owner: str) -> OwnerState:
        """See :meth:`contextkit.stores.ColdStore.read_owner`."""
        self._ensure_available()
        version = 0
        for table in ARCHIVE_TABLES:
            for row in self._by_key.get((table, owner), ()):
                if payload_kind(row.payload) is None:
                    version = max(version, row.version)
        last_seq = max(
            (int(r.payload["message"].get("seq", 0)) for r in self._by_key.get((ArchiveTables.CONVERSATIONS, owner), ())),
            default=0,
        )
        session_row = self._newest(ArchiveTables.SESSIONS, owner)
        task_row = self._newest(ArchiveTables.TASK_CONTEXTS, owner)
        conversation_row = self._newest(ArchiveTables.CONVERSATION_SESSIONS, owner)
        return build_owner_state(
            owner,
            version=version,
            last_seq=last_seq,
            mark=self._delete_mark(owner),
            session=None
            if session_row is None or session_row.is_delete
            else (session_row.newness, Session.from_dict(session_row.payload["session"])),
            task_context=None if task_row is None else (task_row.newness, task_row.payload["context"]),
            conversation=None if conversation_row is None else (conversation_row.newness, conversation_row.payload["session"]),
        )

    async def read_session(self, session_id: str) -> Session | None:
        """The session from its newest ``context_sessions`` row (with its version); None if none, or if that row
        is a delete."""
        row = self._newest(ArchiveTables.SESSIONS, session_id)
        if row is None or row.is_delete:
            return None
        return replace(Session.from_dict(row.payload["session"]), version=row.version)

    async def read_history(self, key: str, limit: int | None, before_seq: int | None = None) -> list[Message]:
        """The newest ``limit`` archived messages with ``seq < before_seq``, in seq order, each message id once,
        without those the key's newest delete hides."""
        if limit is not None and limit <= 0:
            self._ensure_available()
            return []
        mark = self._delete_mark(key)
        seen: set[str] = set()
        messages: list[Message] = []
        for row in self._rows_of(ArchiveTables.CONVERSATIONS, key):
            message = Message.from_dict(row.payload["message"])
            if message.id in seen or hides_message(mark, message.seq):
                continue
            seen.add(message.id)
            if before_seq is None or message.seq < before_seq:
                messages.append(message)
        messages.sort(key=lambda m: m.seq)  # stable: equal seqs keep their archive order
        return messages if limit is None else messages[-limit:]

    async def read_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The newest archived task context document (a copy), or None."""
        row = self._visible(ArchiveTables.TASK_CONTEXTS, session_id)
        return None if row is None else _copy_document(row.payload["context"])

    async def read_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The newest archived conversation session document (a copy), or None."""
        row = self._visible(ArchiveTables.CONVERSATION_SESSIONS, session_key)
        return None if row is None else _copy_document(row.payload["session"])

    async def conversation_keys_of(self, session_id: str) -> list[str]:
        """See :meth:`contextkit.stores.ColdStore.conversation_keys_of` (a scan: this tier is for tests)."""
        self._ensure_available()
        keys = {row.key for row in self._rows[ArchiveTables.CONVERSATION_SESSIONS].values()}
        found = []
        for key in sorted(keys):
            row = self._visible(ArchiveTables.CONVERSATION_SESSIONS, key)
            if row is not None and row.payload["session"].get("session_id") == session_id:
                found.append(key)
        return found

    async def read_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That archived checkpoint document (its newest version), or the thread's newest; None if absent or
        hidden by a later delete of the thread's owner."""
        rows = [r for r in self._rows_of(ArchiveTables.CHECKPOINTS, thread_id) if payload_kind(r.payload) is None]
        if checkpoint_id is not None:
            rows = [r for r in rows if r.payload.get("checkpoint_id") == checkpoint_id]
        if not rows:
            return None
        newest = max(rows, key=lambda r: r.newness)
        if hides(self._delete_mark(thread_id), newest.newness):
            return None
        return _copy_document(newest.payload["document"])

    async def _langgraph_bundles(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None, before: str | None, limit: int | None
    ) -> list[CheckpointBundle]:
        """See :meth:`contextkit.backend.archive_reads.ArchiveCheckpointReads._langgraph_bundles`."""
        return self._langgraph(thread_id, checkpoint_ns, checkpoint_id, before, limit)

    def _langgraph(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None, before: str | None, limit: int | None
    ) -> list[CheckpointBundle]:
        rows = self._rows_of(ArchiveTables.CHECKPOINTS, thread_id)
        tombstones = [r.payload for r in rows if payload_kind(r.payload) == DELETE_KIND]
        floor, runs = delete_floor(tombstones), deleted_runs(tombstones)
        candidates = [
            r for r in rows
            if payload_kind(r.payload) == LANGGRAPH_KIND
            and (checkpoint_id is None or r.payload.get("checkpoint_id") == checkpoint_id)
        ]
        # checkpoint id descending, and for one id the newest event first (it wins)
        candidates.sort(key=lambda r: (str(r.payload.get("checkpoint_id")), r.newness), reverse=True)
        chosen = newest_distinct(
            (r.payload for r in candidates), checkpoint_ns=checkpoint_ns, before=before, floor=floor, limit=limit, runs=runs
        )
        if not chosen:
            return []
        ids = {str(p.get("checkpoint_id")) for p in chosen}
        writes = sorted(
            (r for r in self._rows_of(ArchiveTables.CHECKPOINT_WRITES, thread_id) if r.payload.get("checkpoint_id") in ids),
            key=lambda r: r.newness,
        )
        span = linked_span(chosen)
        linked = [] if span is None else [
            r.payload
            for r in rows
            if payload_kind(r.payload) == LANGGRAPH_KIND and span[0] <= str(r.payload.get("checkpoint_id")) <= span[1]
        ]
        return bundles_from_payloads(thread_id, chosen, [r.payload for r in writes], linked)

    async def langgraph_threads_of_runs(self, run_ids: Sequence[str]) -> list[str]:
        """See :meth:`contextkit.stores.ColdStore.langgraph_threads_of_runs`."""
        self._ensure_available()
        wanted = {str(r) for r in run_ids}
        if not wanted:
            return []
        threads = set()
        for row in self._rows[ArchiveTables.CHECKPOINTS].values():
            metadata = row.payload.get("metadata")
            if (
                payload_kind(row.payload) == LANGGRAPH_KIND
                and isinstance(metadata, dict)
                and metadata.get("run_id") in wanted
            ):
                threads.add(row.key)
        return sorted(threads)

    async def count_events(self, table: str, key: str | None = None) -> int:
        """Rows in ``table`` (for ``key`` when given); each event once."""
        self._ensure_available()
        if table not in self._rows:
            raise InvalidInput(f"unknown archive table {table!r}; known: {', '.join(ARCHIVE_TABLES)}")
        if key is None:
            return len(self._rows[table])
        return len(self._by_key.get((table, key), ()))
