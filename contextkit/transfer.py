"""Export, import and migration of a whole hot tier: the engine behind ``contextkit export / import / migrate``.

The unit of exchange is a *record*: one JSON object with a ``kind``. An export is a stream of records, one per line
(JSONL), in a deterministic order, so two exports of equal data are byte-identical whatever the backend:

* ``header`` (format and version), then for every session, by id: its ``session`` (counters and timestamps as
  stored), its ``task_context``, its history as ``message`` records (id and seq kept), and each
  ``conversation_session`` registered under it (by key) followed by that conversation's ``message`` records;
* every seed checkpoint thread, by id: ``seed_checkpoint`` documents in their order of first insertion, then
  ``seed_writes`` by checkpoint id (each list in put order);
* every LangGraph thread, by id: ``checkpoint`` records (newest first, ties by namespace) holding the row, the
  blobs of its channel versions and its pending writes; typed bytes are base64;
* data of ids that are not sessions, by id (messages may be appended, and task contexts and conversation sessions
  stored, under any id): a ``conversation_session`` whose session does not list it, with its ``message``
  records, a ``task_context``, a history's ``message`` records;
* ``end`` with the count of each kind, so an import can tell a complete file from a truncated one.

Reading is streamed: only the sorted ids of the sessions and threads are held in memory, plus one stream or one
seed checkpoint thread at a time (both bounded by the tier: a stream holds at most ``history_cap`` messages).
Records of one session are written through :class:`RecordSink`, which is idempotent: sessions, documents and
streams are replaced (``replace_history`` keeps every message's id and seq, nothing is re-numbered), LangGraph
checkpoints and their writes are upserted, and seed writes are only appended when the target lacks them. When the
target kit has a cold tier, every record also goes to its archiver as :class:`~contextkit.records.ArchiveEvent`
objects whose ids are derived from their content, so a rerun adds no row to the archive (LangGraph checkpoints in
the format of :mod:`contextkit.checkpoint_archive`, as the saver archives them).

:func:`migrate` copies one tier into another session by session and thread by thread, records its progress in a
small JSON state file after every few units (once the target's archiver has taken their events), and resumes
after the last recorded unit when it is run again after an interruption; the state file is removed at the end.

Data of ids that are not sessions is found through :meth:`~contextkit.stores.HotStore.iter_data_owners` (a walk of
the tier's keys or rows); a third-party tier without it exports sessions only, with a warning in the log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from contextkit.backend.tables import ArchiveTables
from contextkit.checkpoint_archive import archive_payloads
from contextkit.checkpoint_lists import ListSharing, holds_records
from contextkit.errors import (
    BackendUnavailable,
    CapabilityNotSupported,
    ConfigError,
    ContextKitError,
    InvalidInput,
    NotFound,
    SerializationError,
)
from contextkit.records import ArchiveEvent, Message, Session, from_iso, utcnow
from contextkit.stores import (
    Capability,
    CheckpointBundle,
    CheckpointRow,
    CheckpointStore,
    EventHead,
    HotStore,
    SharedBlobStore,
    Typed,
    WriteRow,
)
from contextkit.validation import (
    DEFAULT_LIMITS,
    Limits,
    check_content,
    check_id,
    check_json_document,
    check_metadata,
    check_role,
    parse_input,
)

if TYPE_CHECKING:
    from contextkit.archiver import Archiver
    from contextkit.kit import ContextKit
    from contextkit.tiered import Tiered

T = TypeVar("T")

__all__ = [
    "FORMAT",
    "RECORD_KINDS",
    "VERSION",
    "MigrationInterrupted",
    "MigrationProgress",
    "RecordSink",
    "TransferSummary",
    "dumps_record",
    "export_jsonl",
    "import_jsonl",
    "import_records",
    "iter_records",
    "migrate",
]

logger = logging.getLogger("contextkit.transfer")

#: The ``format`` of the header record.
FORMAT = "contextkit-export"
#: The version of the record layout this module writes and reads.
VERSION = 1
#: Every record kind, in the order they appear for one unit.
RECORD_KINDS: tuple[str, ...] = (
    "header",
    "session",
    "task_context",
    "message",
    "conversation_session",
    "seed_checkpoint",
    "seed_writes",
    "checkpoint",
    "end",
)
_COUNTED = ("session", "task_context", "message", "conversation_session", "seed_checkpoint", "seed_writes", "checkpoint")
# Orphans last: a progress file of a run that stopped in an earlier phase still reaches them when resumed.
_PHASES = ("sessions", "seed_threads", "checkpoint_threads", "orphans")
_PAGE = 500
_ALL = 1 << 30  # "every document" for list-style reads that need a number
# Event ids of migrated records are uuid5 names in this namespace (so equal records give equal ids).
_EVENT_NAMESPACE = uuid.UUID("4f9b7a52-6c1e-4d0b-9a43-2f0c8e5d7b61")
_STATE_VERSION = 1

Record = dict[str, Any]
ProgressCallback = Callable[["MigrationProgress"], None]


class MigrationInterrupted(ContextKitError):
    """A migration stopped before its end (``stop_after_records``); run it again to resume."""


def dumps_record(record: Mapping[str, Any]) -> str:
    """One record as canonical JSON text: ``kind`` first, then every key sorted (at every depth), no spaces,
    UTF-8 kept, NaN refused."""
    kind = record.get("kind")
    rest = {key: value for key, value in record.items() if key != "kind"}
    try:
        body = json.dumps(rest, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        head = json.dumps(kind, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"a {kind!r} record cannot be written as JSON: {exc}") from exc
    return '{"kind":' + head + ("}" if body == "{}" else "," + body[1:])


def _typed(value: Typed) -> dict[str, str]:
    kind, data = value
    return {"type": kind, "data": base64.b64encode(bytes(data)).decode("ascii")}


def _untyped(value: Any, what: str) -> Typed:
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str) or not isinstance(value.get("data"), str):
        raise InvalidInput(f"{what} must be {{'type': str, 'data': base64 str}}")
    try:
        return value["type"], base64.b64decode(value["data"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} holds invalid base64: {exc}") from None


# -- reading a tier -------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Plan:
    """The sorted ids of every unit to transfer."""

    sessions: list[str]
    seed_threads: list[str]
    checkpoint_threads: list[str]
    orphans: list[str] = field(default_factory=list)

    def phase(self, name: str) -> list[str]:
        return {
            "sessions": self.sessions,
            "seed_threads": self.seed_threads,
            "checkpoint_threads": self.checkpoint_threads,
            "orphans": self.orphans,
        }[name]

    @property
    def total(self) -> int:
        return len(self.sessions) + len(self.seed_threads) + len(self.checkpoint_threads) + len(self.orphans)


def _checkpoints(hot: HotStore) -> CheckpointStore | None:
    """The hot tier as a LangGraph checkpoint store, or None when it does not declare and implement one."""
    if Capability.CHECKPOINTS.value in hot.capabilities and isinstance(hot, CheckpointStore):
        return hot
    return None


async def _scan_ids(
    scan: Callable[[str | None, int], Awaitable[tuple[list[Any], str | None]]], key: Callable[[Any], str]
) -> list[str]:
    found: set[str] = set()
    cursor: str | None = None
    while True:
        page, cursor = await scan(cursor, _PAGE)
        found.update(key(item) for item in page)
        if cursor is None:
            return sorted(found)


async def _plan(hot: HotStore, session_ids: Sequence[str] | None) -> _Plan:
    if session_ids is not None:
        wanted = sorted(set(session_ids))
        for sid in wanted:
            if await hot.get_session(sid) is None:
                raise NotFound(f"session {sid!r} does not exist")
        seed = [sid for sid in wanted if any(await hot.read_checkpoint_thread(sid))]
        lg: list[str] = []
        store = _checkpoints(hot)
        if store is not None:
            for sid in wanted:
                async for _ in store.cp_list(sid, None, limit=1):
                    lg.append(sid)
        return _Plan(wanted, seed, lg)
    sessions = await _scan_ids(hot.scan_sessions, lambda s: s.session_id)
    seed = await _scan_ids(hot.scan_checkpoint_threads, str)
    threads: set[str] = set()
    every = _checkpoints(hot)
    if every is not None:
        # The protocol lists every thread only through cp_list(None, None); keep the ids, drop the bundles.
        async for bundle in every.cp_list(None, None):
            threads.add(bundle.row.thread_id)
    return _Plan(sessions, seed, sorted(threads), await _orphan_candidates(hot, set(sessions)))


async def _orphan_candidates(hot: HotStore, sessions: set[str]) -> list[str]:
    """Ids holding a history, task context or conversation session without a session record of their own (each
    unit reader then skips what a session's records already carry)."""
    return sorted({owner async for owner in hot.iter_data_owners()} - sessions)


async def _session_records(hot: HotStore, session_id: str) -> AsyncIterator[Record]:
    session = await hot.get_session(session_id)
    if session is None:  # removed since the plan was made
        return
    yield {"kind": "session", "session": session.to_dict()}
    task = await hot.get_task_context(session_id)
    if task is not None:
        yield {"kind": "task_context", "session_id": session_id, "document": task}
    for message in await hot.read_history(session_id, None):
        yield {"kind": "message", "stream": session_id, "message": message.to_dict()}
    for key, document in await hot.list_conversation_sessions(session_id):
        yield {"kind": "conversation_session", "key": key, "document": document}
        if key != session_id:  # a user_to_mc conversation shares the session's own stream
            for message in await hot.read_history(key, None):
                yield {"kind": "message", "stream": key, "message": message.to_dict()}


async def _seed_thread_records(hot: HotStore, thread_id: str) -> AsyncIterator[Record]:
    documents, writes = await hot.read_checkpoint_thread(thread_id)
    for checkpoint_id, document in documents:
        yield {"kind": "seed_checkpoint", "thread_id": thread_id, "checkpoint_id": checkpoint_id, "document": document}
    for checkpoint_id, pairs in writes:
        yield {
            "kind": "seed_writes",
            "thread_id": thread_id,
            "checkpoint_id": checkpoint_id,
            "writes": [[task, write] for task, write in pairs],
        }


def _checkpoint_record(bundle: CheckpointBundle) -> Record:
    row = bundle.row
    writes = sorted(bundle.writes, key=lambda w: (w.task_id, w.idx))
    return {
        "kind": "checkpoint",
        "thread_id": row.thread_id,
        "checkpoint_ns": row.checkpoint_ns,
        "checkpoint_id": row.checkpoint_id,
        "parent_checkpoint_id": row.parent_checkpoint_id,
        "checkpoint": _typed(row.checkpoint),
        "metadata": dict(row.metadata),
        "channel_versions": dict(row.channel_versions),
        "blobs": {channel: _typed(value) for channel, value in bundle.blobs.items()},
        "writes": [
            {"task_id": w.task_id, "idx": w.idx, "channel": w.channel, "value": _typed(w.value), "task_path": w.task_path}
            for w in writes
        ],
    }


async def _checkpoint_thread_records(hot: HotStore, thread_id: str) -> AsyncIterator[Record]:
    store = _checkpoints(hot)
    if store is None:
        return
    # Newest first by checkpoint id; rows sharing an id (in several namespaces) are ordered by namespace.
    group: list[CheckpointBundle] = []
    # Shared list records are exported as the whole values they stand for (contextkit.checkpoint_lists).
    lists = ListSharing(None)
    async for bundle in store.cp_list(thread_id, None):
        if isinstance(store, SharedBlobStore) and holds_records(bundle.blobs):
            row = bundle.row
            bundle = replace(bundle, blobs=await lists.resolve(store, row.thread_id, row.checkpoint_ns, bundle.blobs))
        if group and group[0].row.checkpoint_id != bundle.row.checkpoint_id:
            for item in sorted(group, key=lambda b: b.row.checkpoint_ns):
                yield _checkpoint_record(item)
            group = []
        group.append(bundle)
    for item in sorted(group, key=lambda b: b.row.checkpoint_ns):
        yield _checkpoint_record(item)


async def _orphan_records(hot: HotStore, owner: str) -> AsyncIterator[Record]:
    """What ``owner`` holds without a session record: a conversation session (unless the session it names lists
    it, which exported it already) with its history, and a task context. A history under an id that is neither a
    session nor a conversation key is exported too (messages may be appended to any id)."""
    document = await hot.get_conversation_session(owner)
    listed = False
    if document is not None:
        parent = document.get("session_id")
        if isinstance(parent, str) and await hot.get_session(parent) is not None:
            listed = any(key == owner for key, _ in await hot.list_conversation_sessions(parent))
        if not listed:
            yield {"kind": "conversation_session", "key": owner, "document": document}
    task = await hot.get_task_context(owner)
    if task is not None:
        yield {"kind": "task_context", "session_id": owner, "document": task}
    if not listed:
        for message in await hot.read_history(owner, None):
            yield {"kind": "message", "stream": owner, "message": message.to_dict()}


_UNIT_READERS: dict[str, Callable[[HotStore, str], AsyncIterator[Record]]] = {
    "sessions": _session_records,
    "seed_threads": _seed_thread_records,
    "checkpoint_threads": _checkpoint_thread_records,
    "orphans": _orphan_records,
}


def _header() -> Record:
    return {"kind": "header", "format": FORMAT, "version": VERSION}


async def iter_records(hot: HotStore, *, session_ids: Sequence[str] | None = None) -> AsyncIterator[Record]:
    """Every record of the hot tier ``hot`` in export order (see the module docstring), header and end included.

    :param session_ids: export only these sessions (with their conversations) and the checkpoint threads whose
        id is one of them; :class:`~contextkit.errors.NotFound` when one of them does not exist.
    """
    plan = await _plan(hot, session_ids)
    yield _header()
    counts = dict.fromkeys(_COUNTED, 0)
    for phase in _PHASES:
        reader = _UNIT_READERS[phase]
        for unit in plan.phase(phase):
            async for record in reader(hot, unit):
                counts[record["kind"]] += 1
                yield record
    yield {"kind": "end", "counts": counts}


@dataclass(slots=True)
class TransferSummary:
    """What an export, import or migration did: records per kind, units, and for a migration where it resumed."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTED, 0))
    units: int = 0
    skipped_units: int = 0
    resumed_after: tuple[str, str] | None = None
    archived_events: int = 0
    conflicts: list[str] = field(default_factory=list)
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "counts": dict(self.counts),
            "units": self.units,
            "skipped_units": self.skipped_units,
            "resumed_after": None
            if self.resumed_after is None
            else {"phase": self.resumed_after[0], "id": self.resumed_after[1]},
            "archived_events": self.archived_events,
            "conflicts": list(self.conflicts),
            "complete": self.complete,
        }

    def describe(self) -> str:
        """One line for people: ``100 sessions, 10000 messages, ...``."""
        names = {
            "session": "sessions",
            "message": "messages",
            "task_context": "task contexts",
            "conversation_session": "conversation sessions",
            "seed_checkpoint": "seed checkpoints",
            "seed_writes": "seed write lists",
            "checkpoint": "LangGraph checkpoints",
        }
        text = ", ".join(f"{self.counts[kind]} {names[kind]}" for kind in _COUNTED)
        if self.archived_events:
            text += f"; {self.archived_events} archive events"
        return text


async def export_jsonl(
    hot: HotStore, output: IO[str], *, session_ids: Sequence[str] | None = None
) -> TransferSummary:
    """Write the export of ``hot`` to ``output`` as JSONL, one record per line, streamed; returns the counts."""
    summary = TransferSummary()
    async for record in iter_records(hot, session_ids=session_ids):
        kind = record["kind"]
        if kind in summary.counts:
            summary.counts[kind] += 1
        output.write(dumps_record(record))
        output.write("\n")
    return summary


# -- writing a tier -------------------------------------------------------------------------------------------------
def _field(record: Mapping[str, Any], name: str, kinds: type | tuple[type, ...], what: str) -> Any:
    value = record.get(name)
    if not isinstance(value, kinds):
        raise InvalidInput(f"{what} record needs {name!r} ({getattr(kinds, '__name__', 'value')})")
    return value


def _event_id(table: str, key: str, payload: Mapping[str, Any], salt: str = "") -> str:
    text = dumps_record({"table": table, "key": key, "payload": payload, "salt": salt})
    return uuid.uuid5(_EVENT_NAMESPACE, text).hex


def _document_time(document: Mapping[str, Any], fallback: datetime) -> datetime:
    for name in ("created_at", "last_activity"):
        value = document.get(name)
        if isinstance(value, str):
            try:
                return from_iso(value)
            except SerializationError:
                continue
    return fallback


class RecordSink:
    """Applies records to a hot tier (and to an archiver when given), idempotently; see the module docstring.

    Messages are buffered per stream and written with one ``replace_history`` when the stream ends (the next
    record belongs to something else) or at :meth:`flush`.

    :param hot: the tier to write.
    :param archiver: the target kit's archiver (its cold tier receives every record as archive events), or None.
    :param limits: the id limits records are checked against.
    """

    def __init__(
        self,
        hot: HotStore,
        archiver: Archiver | None = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
        tiered: Tiered | None = None,
    ) -> None:
        self.hot = hot
        self.archiver = archiver
        self.limits = limits
        self.summary = TransferSummary()
        # Through a kit, every write goes through its tiered layer: an owner the target's hot tier does not know is
        # learned from its archive first, and each record's event is written in the write's atomic step.
        self._tiered = tiered
        self._stream: str | None = None
        self._messages: list[Message] = []
        self._events: list[ArchiveEvent] = []
        self._started = utcnow()
        self._tick = 0

    @classmethod
    def for_kit(cls, kit: ContextKit) -> RecordSink:
        """A sink writing into ``kit``'s hot tier through its tiered layer (and archive, with a cold tier)."""
        return cls(kit.hot, kit.archiver, limits=kit.config.limits, tiered=kit.tiered)

    async def _write(self, op: Callable[[], Awaitable[T]]) -> T:
        return await (op() if self._tiered is None else self._tiered.call(op))

    def _head(
        self, table: str, key: str, payload: Mapping[str, Any], created_at: datetime, event_type: str = "", salt: str = ""
    ) -> EventHead | None:
        """The event head of a record written in one atomic step with its event (an id derived from its content, so
        a rerun adds no row to the archive), or None without a cold tier."""
        if self.archiver is None:
            return None
        self.summary.archived_events += 1
        return EventHead(event_type, _event_id(table, key, payload, salt), created_at)

    def _id(self, value: object, what: str) -> str:
        return check_id(value, what, self.limits)

    def _document(self, record: Mapping[str, Any], what: str) -> dict[str, Any]:
        # The checks of the kit's own API, so an import never stores what the kit would refuse (NUL, NaN, size).
        document = _field(record, "document", dict, what)
        return check_json_document(document, f"{what} document", max_bytes=self.limits.max_document_bytes, max_depth=64)

    def _later(self) -> datetime:
        # Distinct, increasing times for archived documents that carry none, so "newest" keeps the file's order.
        self._tick += 1
        return self._started + timedelta(microseconds=self._tick)

    def _archive(self, table: str, key: str, payload: Mapping[str, Any], created_at: datetime, salt: str = "") -> None:
        if self.archiver is not None:
            self._events.append(ArchiveEvent(table, key, payload, created_at, _event_id(table, key, payload, salt)))

    async def apply(self, record: Mapping[str, Any]) -> None:
        """Write one record (buffering messages); raises InvalidInput for a malformed record."""
        if not isinstance(record, Mapping):
            raise InvalidInput("a record must be a JSON object")
        kind = record.get("kind")
        if kind == "message":
            await self._message(record)
            return
        await self._flush_stream()
        if kind == "session":
            await self._session(record)
        elif kind == "task_context":
            sid = self._id(record.get("session_id"), "session_id")
            document = self._document(record, "a task_context")
            head = self._head(ArchiveTables.TASK_CONTEXTS, sid, {"context": document}, self._later())
            await self._write(lambda: self.hot.put_task_context(sid, document, archive=head))
        elif kind == "conversation_session":
            key = self._id(record.get("key"), "conversation session key")
            document = self._document(record, "a conversation_session")
            self._id(document.get("session_id"), "conversation session's session_id")
            at = _document_time(document, self._later())
            head = self._head(ArchiveTables.CONVERSATION_SESSIONS, key, {"session": document}, at)
            await self._write(lambda: self.hot.put_conversation_session(key, document, archive=head))
        elif kind == "seed_checkpoint":
            tid = self._id(record.get("thread_id"), "thread_id")
            cid = self._id(record.get("checkpoint_id"), "checkpoint_id")
            document = self._document(record, "a seed_checkpoint")
            payload = {"checkpoint_id": cid, "document": document}
            head = self._head(ArchiveTables.CHECKPOINTS, tid, payload, _document_time(document, self._later()))
            await self._write(lambda: self.hot.put_checkpoint_document(tid, cid, document, archive=head))
        elif kind == "seed_writes":
            await self._seed_writes(record)
        elif kind == "checkpoint":
            await self._checkpoint(record)
        elif kind in ("header", "end"):
            return
        else:
            raise InvalidInput(f"unknown record kind {kind!r}; known: {', '.join(RECORD_KINDS)}")
        self.summary.counts[str(kind)] += 1
        await self._submit(force=False)

    async def _session(self, record: Mapping[str, Any]) -> None:
        raw = _field(record, "session", dict, "a session")
        session = parse_input(Session.from_dict, raw, "a session record")
        self._id(session.session_id, "session_id")
        self._id(session.user_id, "user_id")
        check_metadata(session.metadata, self.limits, "session metadata")
        payload = {"event_type": "migrate", "session": session.to_dict()}
        head = self._head(ArchiveTables.SESSIONS, session.session_id, payload, session.last_activity, "migrate")
        await self._write(lambda: self.hot.put_session(session, archive=head))

    async def _message(self, record: Mapping[str, Any]) -> None:
        stream = self._id(record.get("stream"), "stream")
        message = parse_input(Message.from_dict, _field(record, "message", dict, "a message"), "a message record")
        check_role(message.role, "message role", self.limits)
        check_content(message.content, self.limits)
        check_metadata(message.metadata, self.limits, "message metadata")
        if message.seq < 1:
            raise InvalidInput(f"message {message.id!r} of stream {stream!r} has no seq")
        if stream != self._stream:
            await self._flush_stream()
            self._stream = stream
        elif self._messages and message.seq <= self._messages[-1].seq:
            raise InvalidInput(f"messages of stream {stream!r} are not in increasing seq order (seq {message.seq})")
        self._messages.append(message)

    async def _flush_stream(self) -> None:
        if self._stream is None:
            return
        stream, messages = self._stream, self._messages
        self._stream, self._messages = None, []
        await self._write(lambda: self.hot.replace_history(stream, messages))
        self.summary.counts["message"] += len(messages)
        for message in messages:
            self._archive(ArchiveTables.CONVERSATIONS, stream, {"message": message.to_dict()}, message.timestamp)
        await self._submit(force=False)

    async def _seed_writes(self, record: Mapping[str, Any]) -> None:
        tid = self._id(record.get("thread_id"), "thread_id")
        cid = self._id(record.get("checkpoint_id"), "checkpoint_id")
        items = _field(record, "writes", list, "a seed_writes")
        wanted: list[tuple[str, Any]] = []
        for item in items:
            if not isinstance(item, list) or len(item) != 2:
                raise InvalidInput("each seed write must be a [task_id, write] pair")
            wanted.append((self._id(item[0], "task_id"), item[1]))
        # Writes only append: add what the target lacks, so a rerun (or a resume) never duplicates them.
        existing = [(task, write) for task, write in await self._write(lambda: self.hot.get_writes_documents(tid, cid))]
        if existing == wanted:
            missing: list[tuple[str, Any]] = []
        elif wanted[: len(existing)] == existing:
            missing = wanted[len(existing) :]
        else:
            self.summary.conflicts.append(f"seed writes of thread {tid!r} checkpoint {cid!r} differ in the target; kept")
            logger.warning("seed writes of thread %r checkpoint %r differ in the target; left as they are", tid, cid)
            missing = []
        start = 0
        for index in range(1, len(missing) + 1):
            if index == len(missing) or missing[index][0] != missing[start][0]:
                task, batch = missing[start][0], [w for _, w in missing[start:index]]
                # (their events follow below, one per task group of the whole list, with ids a rerun repeats)
                await self._write(lambda task=task, batch=batch: self.hot.put_writes_document(tid, cid, task, batch))  # type: ignore[misc]
                start = index
        group = 0
        start = 0
        for index in range(1, len(wanted) + 1):
            if index == len(wanted) or wanted[index][0] != wanted[start][0]:
                task = wanted[start][0]
                payload = {"checkpoint_id": cid, "task_id": task, "writes": [w for _, w in wanted[start:index]]}
                self._archive(ArchiveTables.CHECKPOINT_WRITES, tid, payload, self._later(), salt=str(group))
                group += 1
                start = index

    async def _checkpoint(self, record: Mapping[str, Any]) -> None:
        store = _checkpoints(self.hot)
        if store is None:
            raise CapabilityNotSupported(f"the {self.hot.name} hot tier does not store LangGraph checkpoints")
        tid = self._id(record.get("thread_id"), "thread_id")
        cid = self._id(record.get("checkpoint_id"), "checkpoint_id")
        ns = _field(record, "checkpoint_ns", str, "a checkpoint")
        parent = record.get("parent_checkpoint_id")
        if parent is not None:
            parent = self._id(parent, "parent_checkpoint_id")
        versions = _field(record, "channel_versions", dict, "a checkpoint")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
            raise InvalidInput("channel_versions must map channel names to version strings")
        row = CheckpointRow(
            thread_id=tid,
            checkpoint_ns=ns,
            checkpoint_id=cid,
            parent_checkpoint_id=parent,
            checkpoint=_untyped(record.get("checkpoint"), "checkpoint"),
            metadata=_field(record, "metadata", dict, "a checkpoint"),
            channel_versions=versions,
        )
        blobs: dict[tuple[str, str], Typed] = {}
        for channel, value in _field(record, "blobs", dict, "a checkpoint").items():
            if channel not in versions:
                raise InvalidInput(f"checkpoint {cid!r} has a blob for channel {channel!r} without a version")
            blobs[(channel, versions[channel])] = _untyped(value, f"blob {channel!r}")
        writes = []
        for item in _field(record, "writes", list, "a checkpoint"):
            if not isinstance(item, Mapping):
                raise InvalidInput("each checkpoint write must be an object")
            idx = item.get("idx")
            if isinstance(idx, bool) or not isinstance(idx, int):
                raise InvalidInput("a checkpoint write needs an integer idx")
            writes.append(
                WriteRow(
                    task_id=self._id(item.get("task_id"), "task_id"),
                    idx=idx,
                    channel=_field(item, "channel", str, "a checkpoint write"),
                    value=_untyped(item.get("value"), "write value"),
                    task_path=str(item.get("task_path") or ""),
                )
            )
        await store.cp_put(row, blobs)
        if writes:
            await store.cp_put_writes(tid, ns, cid, writes, upsert=True)
        if self.archiver is not None:
            # The saver's archive format, so the target's cold tier reads these back like checkpoints it archived.
            by_channel = {channel: value for (channel, _), value in blobs.items()}
            for table, payload in archive_payloads(row, by_channel, writes):
                self._archive(table, tid, payload, self._later())

    async def _submit(self, *, force: bool) -> None:
        if self.archiver is None or not self._events or (not force and len(self._events) < _PAGE):
            return
        events, self._events = self._events, []
        if not self.archiver.has_room(len(events)):
            await self.archiver.flush(timeout=60.0)
            if not self.archiver.has_room(len(events)):
                raise BackendUnavailable("the target's archive outbox is full and the cold tier does not drain it")
        await self.archiver.submit(events)
        self.summary.archived_events += len(events)

    async def flush(self, archive_timeout: float | None = 120.0) -> None:
        """Write the buffered stream and hand every pending event to the archiver; with ``archive_timeout``, wait
        until the cold tier holds them (``BackendUnavailable`` if it does not within that time)."""
        await self._flush_stream()
        await self._submit(force=True)
        if self.archiver is not None and archive_timeout is not None and not await self.archiver.flush(archive_timeout):
            raise BackendUnavailable(
                f"the target's cold tier did not take the migrated records within {archive_timeout:g} s "
                f"(archiver: {self.archiver.last_error or 'not draining'}); run again to resume"
            )


async def import_records(
    records: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
    target: ContextKit | HotStore,
    *,
    archive_timeout: float | None = 120.0,
) -> TransferSummary:
    """Apply an export's records (header first, end last) to ``target``; idempotent. Returns the counts.

    A ``ContextKit`` target with a cold tier also archives every record. Raises InvalidInput for a malformed
    record, a header of another format or a newer version, or counts that disagree with the ``end`` record.
    """
    sink = _sink_for(target)
    seen_header = False
    ended: Mapping[str, Any] | None = None

    async def each() -> AsyncIterator[Mapping[str, Any]]:
        if isinstance(records, AsyncIterable):
            async for item in records:
                yield item
        else:
            for item in records:
                yield item

    async for record in each():
        if ended is not None:
            raise InvalidInput("records follow the end record")
        kind = record.get("kind") if isinstance(record, Mapping) else None
        if not seen_header:
            _check_header(record)
            seen_header = True
            continue
        if kind == "end":
            ended = record
            continue
        await sink.apply(record)
    if not seen_header:
        raise InvalidInput("the input is empty (no header record)")
    await sink.flush(archive_timeout)
    summary = sink.summary
    if ended is None:
        summary.complete = False
        raise InvalidInput(
            f"the input ended before its end record (truncated?); imported {summary.describe()}"
        )
    counts = ended.get("counts")
    if isinstance(counts, Mapping):
        differ = {k: (v, summary.counts.get(k)) for k, v in counts.items() if summary.counts.get(k) != v}
        if differ:
            raise InvalidInput(f"the end record counts {dict(counts)} but the input held {summary.counts}")
    return summary


def _check_header(record: Any) -> None:
    if not isinstance(record, Mapping) or record.get("kind") != "header" or record.get("format") != FORMAT:
        raise InvalidInput(f"the input does not start with a {FORMAT} header record")
    version = record.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1 or version > VERSION:
        raise InvalidInput(f"export version {version!r} is not supported (this contextkit reads 1..{VERSION})")


def _sink_for(target: ContextKit | HotStore) -> RecordSink:
    from contextkit.kit import ContextKit

    if isinstance(target, ContextKit):
        return RecordSink.for_kit(target)
    return RecordSink(target)


async def import_jsonl(
    source: IO[str], target: ContextKit | HotStore, *, archive_timeout: float | None = 120.0
) -> TransferSummary:
    """Read JSONL from ``source`` (streamed, line by line) into ``target``; see :func:`import_records`."""

    def lines() -> Iterable[Mapping[str, Any]]:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise InvalidInput(f"line {number} is not valid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise InvalidInput(f"line {number} is not a JSON object")
            yield record

    return await import_records(lines(), target, archive_timeout=archive_timeout)


# -- migration ------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class MigrationProgress:
    """What :func:`migrate` reports after each unit (a session, a seed thread, a LangGraph thread)."""

    total: int
    done: int
    phase: str
    unit: str | None
    counts: Mapping[str, int]


def _fingerprint(source: HotStore, target: HotStore, target_kit: ContextKit | None) -> str:
    cold = None if target_kit is None or target_kit.cold is None else target_kit.cold.describe()
    text = json.dumps({"source": source.describe(), "target": target.describe(), "cold": cold}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _describe_text(store: HotStore) -> str:
    return json.dumps(store.describe(), sort_keys=True, default=str)


def _read_state(path: Path, fingerprint: str) -> tuple[str, str] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the migration state file {path} cannot be read ({exc}); remove it to start over") from None
    if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
        raise ConfigError(f"the migration state file {path} is not one this contextkit wrote; remove it to start over")
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"the migration state file {path} belongs to a migration between other tiers; remove it or pass --restart"
        )
    phase, last = state.get("phase"), state.get("last")
    if phase not in _PHASES or not isinstance(last, str):
        raise ConfigError(f"the migration state file {path} is malformed; remove it to start over")
    return phase, last


def _write_state(path: Path, fingerprint: str, phase: str, last: str, counts: Mapping[str, int]) -> None:
    state = {"version": _STATE_VERSION, "fingerprint": fingerprint, "phase": phase, "last": last, "counts": dict(counts)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a crash leaves the old state or the new one, never half a file


def _unpack(target: ContextKit | HotStore) -> tuple[HotStore, ContextKit | None]:
    from contextkit.kit import ContextKit

    if isinstance(target, ContextKit):
        return target.hot, target
    return target, None


async def migrate(
    source: ContextKit | HotStore,
    target: ContextKit | HotStore,
    *,
    state_path: str | os.PathLike[str] | None = None,
    restart: bool = False,
    on_progress: ProgressCallback | None = None,
    commit_every: int | None = None,
    commit_seconds: float = 2.0,
    archive_timeout: float = 120.0,
    stop_after_records: int | None = None,
) -> TransferSummary:
    """Copy every session (with history, task context and conversation sessions), seed checkpoint thread and
    LangGraph thread of ``source`` into ``target``; idempotent, resumable.

    :param state_path: where progress is recorded; a rerun after an interruption skips what it records (it
        assumes the source did not change in between: pass ``restart`` otherwise). Removed when the migration
        finishes. None: no state (a rerun copies everything again, still idempotent).
    :param commit_every: units between two records of progress (default: every unit; with an archiver, every 20
        units or ``commit_seconds``, because each record first waits until the cold tier holds the events).
    :param restart: ignore (and replace) an existing state file.
    :param on_progress: called after each unit with a :class:`MigrationProgress`.
    :param archive_timeout: seconds to wait for the target's cold tier at each commit and at the end.
    :param stop_after_records: stop with :class:`MigrationInterrupted` after this many records, without recording
        the unit in progress (to exercise resuming; a crash at that point leaves the same state).
    """
    source_hot, _ = _unpack(source)
    target_hot, target_kit = _unpack(target)
    if source_hot is target_hot:
        raise ConfigError("the source and the target of a migration are the same store")
    shared = Capability.SHARED.value
    both_shared = shared in source_hot.capabilities and shared in target_hot.capabilities
    if both_shared and _describe_text(source_hot) == _describe_text(target_hot):
        raise ConfigError("the source and the target of a migration are the same store")
    sink = RecordSink.for_kit(target_kit) if target_kit is not None else RecordSink(target_hot)
    summary = sink.summary
    path = Path(state_path) if state_path is not None else None
    fingerprint = _fingerprint(source_hot, target_hot, target_kit)
    resume = None if path is None or restart else _read_state(path, fingerprint)
    summary.resumed_after = resume

    if commit_every is None:
        commit_every = 1 if sink.archiver is None else 20
    plan = await _plan(source_hot, None)
    if plan.checkpoint_threads and _checkpoints(target_hot) is None:
        raise CapabilityNotSupported(
            f"the source holds {len(plan.checkpoint_threads)} LangGraph thread(s) but the {target_hot.name} target "
            "tier does not store LangGraph checkpoints"
        )
    done = 0
    applied = 0
    pending_units = 0
    last_commit = time.monotonic()

    async def commit(phase: str, unit: str) -> None:
        nonlocal pending_units, last_commit
        await sink.flush(archive_timeout)
        if path is not None:
            _write_state(path, fingerprint, phase, unit, summary.counts)
        pending_units = 0
        last_commit = time.monotonic()

    for phase_index, phase in enumerate(_PHASES):
        reader = _UNIT_READERS[phase]
        for unit in plan.phase(phase):
            done += 1
            if resume is not None and (phase_index, unit) <= (_PHASES.index(resume[0]), resume[1]):
                summary.skipped_units += 1
                continue
            async for record in reader(source_hot, unit):
                if stop_after_records is not None and applied >= stop_after_records:
                    raise MigrationInterrupted(
                        f"migration stopped after {applied} records, in {phase} at {unit!r}; run it again to resume"
                    )
                await sink.apply(record)
                applied += 1
            summary.units += 1
            pending_units += 1
            if pending_units >= commit_every or time.monotonic() - last_commit >= commit_seconds:
                await commit(phase, unit)
            if on_progress is not None:
                on_progress(MigrationProgress(plan.total, done, phase, unit, dict(summary.counts)))
    await sink.flush(archive_timeout)
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    if on_progress is not None:
        on_progress(MigrationProgress(plan.total, done, "done", None, dict(summary.counts)))
    return summary


def default_state_path(target_config: str | os.PathLike[str]) -> Path:
    """The state file ``contextkit migrate`` uses by default: next to the target's configuration file."""
    target = Path(target_config)
    return target.with_name(target.name + ".migrate-state.json")
