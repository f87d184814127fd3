"""The in-process hot tier: :class:`MemoryHotStore`, every :class:`~contextkit.stores.HotStore` method on Python dicts.

It is the default tier (``pip install contextkit`` alone) and the reference the conformance suite runs on. State
lives in one process and dies with it (no ``durable`` or ``shared`` capability).

Why there are no locks: every method runs from start to end without an ``await`` in the middle, and asyncio
switches tasks only at an ``await``. So each call is atomic with respect to every other task of the event loop:
counters are exact, seq numbers unique, a multi-family delete is all-or-nothing. Keep it so: a future ``await``
inside a mutating method would break that guarantee. (The store is not thread-safe; use it from one event loop.)

Tiering (see :mod:`contextkit.stores`): every owner has a :class:`_Meta` (version counter, highest stream seq)
that lives as long as any of its data, or its tombstone (``tombstone_ttl`` after a delete); with
``settings.archived`` a call on an owner without one raises ``OwnerUnknown``. The store owns the archiver's outbox
(:meth:`MemoryHotStore.outbox`) and each write puts its archive events there in its own critical section, before
it changes anything (so a file outbox that fails to write leaves the write undone).

Expiry (the ``ttl`` capability) is lazy plus a bounded sweep, so memory stays bounded without a background task:

* Every key family of a session (record, history, task context, the conversation sessions registered under
  it and their streams) shares one deadline, the *group* deadline, pushed to ``now + session_ttl`` by every
  write to any of them. A seed checkpoint thread has its own deadline (``checkpoint_ttl``).
* Deadlines sit in insertion-ordered dicts; a refresh moves the owner to the end, so with a non-decreasing
  clock and a fixed TTL the dict is ordered by deadline and the expired owners are at its head.
* A read checks its owner's deadline and purges it if it passed. Every write also expires at most
  ``sweep_batch`` owners from the head. ``stats()``, ``scan_sessions`` and ``put_session`` (for
  ``max_sessions``) sweep everything that is due first.
"""

from __future__ import annotations

import bisect
import copy
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice
from typing import Any

from contextkit.archiver import FileOutbox, MemoryOutbox
from contextkit.errors import ContextKitError, InvalidInput, LimitExceeded, OwnerUnknown
from contextkit.records import ArchiveEvent, Message, Session, new_event_id
from contextkit.stores import (
    DEFERRED_MESSAGE_EVENTS,
    ArchiveSpec,
    Capability,
    EventHead,
    OwnerState,
    SessionUpdate,
    StoreSettings,
    StoreStats,
)
from contextkit.tiered.events import (
    checkpoint_document_event,
    conversation_session_event,
    delete_event,
    message_event,
    session_event,
    task_context_event,
    writes_document_event,
)
from contextkit_memory.checkpoints import MemoryCheckpoints
from contextkit_memory.options import MemoryOptions

__all__ = ["MemoryHotStore"]

Clock = Callable[[], float]

_SESSION_FIELDS = frozenset({"status", "user_id", "metadata"})

# Rough per-object costs (CPython 3.11, 64-bit) used by the memory_bytes estimate: a Message dataclass with its
# datetime, id string and deque slot is about 400 bytes before its content; a session record with its index
# entries about 900; a JSON document is estimated from its JSON-ish length.
_MESSAGE_OVERHEAD = 400
_SESSION_OVERHEAD = 900
_DOCUMENT_OVERHEAD = 300


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    """A deep copy of a JSON-like value; cheap for the common empty/scalar cases."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k: v if type(v) in _SCALARS else _copy_json(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {k: _copy_json(v) for k, v in value.items()} if value else {}
    if isinstance(value, (list, tuple)):
        return [_copy_json(v) for v in value]
    return copy.deepcopy(value)


def _copy_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON document as a plain dict."""
    return {key: _copy_json(value) for key, value in document.items()}


def _estimate(value: Any) -> int:
    """Approximate bytes a JSON-like value occupies (a rough figure for stats, not an exact measure)."""
    if isinstance(value, str):
        return 50 + len(value)
    if isinstance(value, Mapping):
        return 64 + sum(_estimate(k) + _estimate(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return 56 + sum(8 + _estimate(v) for v in value)
    return 32


def _message_size(message: Message) -> int:
    size = _MESSAGE_OVERHEAD + len(message.content) + len(message.role)
    if message.metadata:
        size += _estimate(message.metadata)
    return size


_new = object.__new__
_set = object.__setattr__


def _copy_message(message: Message, **changes: Any) -> Message:
    # Always a new metadata dict, even an empty one: the caller could fill it in and change stored state.
    if changes:
        return replace(message, metadata=_copy_json(message.metadata), **changes)
    # Reads copy every message they return: build the frozen copy field by field, which costs a fraction of
    # dataclasses.replace (it re-runs __init__ and its checks).
    copied = _new(Message)
    _set(copied, "role", message.role)
    _set(copied, "content", message.content)
    _set(copied, "timestamp", message.timestamp)
    _set(copied, "metadata", _copy_json(message.metadata))
    _set(copied, "id", message.id)
    _set(copied, "seq", message.seq)
    return copied


def _copy_session(session: Session) -> Session:
    return replace(session, metadata=_copy_json(session.metadata))


@dataclass(slots=True)
class _Stream:
    """One history stream: the kept messages (oldest at the left) and their estimated bytes."""

    messages: deque[Message] = field(default_factory=deque)
    bytes: int = 0


@dataclass(slots=True)
class _Meta:
    """What the store knows of one owner (see "Tiering" in :mod:`contextkit.stores`): its version counter and its
    stream's highest seq (both survive a delete, in the tombstone)."""

    version: int = 0
    last_seq: int = 0
    deleted_version: int = 0
    deleted_seq: int = 0


@dataclass(slots=True)
class _Thread:
    """Seed checkpoint documents of one thread, in order of first insertion, with their writes."""

    documents: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    writes: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)


class MemoryHotStore(MemoryCheckpoints):
    """The hot tier in process memory. Built by :meth:`from_options`; see the module docstring.

    :param settings: namespace, TTLs and history cap.
    :param clock: callable returning epoch seconds, used for TTLs (tests pass a fake clock to move time).
    :param max_sessions: most live sessions; creating one more raises :class:`~contextkit.errors.LimitExceeded`
        (nothing is evicted silently). None means unbounded.
    :param sweep_batch: most expired owners a single write removes (bounds the latency of a write).
    """

    name = "memory"

    @classmethod
    def from_options(cls, settings: StoreSettings, options: Mapping[str, Any]) -> MemoryHotStore:
        """The factory registered as the hot tier ``memory``: validates ``options`` (:class:`MemoryOptions`:
        ``clock``, ``max_sessions``, ``sweep_batch``); no I/O."""
        parsed = MemoryOptions.parse(options, "hot")
        return cls(settings, clock=parsed.clock, max_sessions=parsed.max_sessions, sweep_batch=parsed.sweep_batch)

    def __init__(
        self,
        settings: StoreSettings,
        *,
        clock: Clock = time.time,
        max_sessions: int | None = None,
        sweep_batch: int = 16,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._max_sessions = max_sessions
        self._sweep_batch = sweep_batch
        caps = {Capability.TTL.value, Capability.OUTBOX.value, Capability.ATOMIC_OUTBOX.value, Capability.DEFERRED_EVENTS.value}
        # The MemoryCheckpoints mixin implements contextkit.stores.CheckpointStore, with checked puts (a thread
        # may expire under a run that outlives checkpoint_ttl).
        caps.update((Capability.CHECKPOINTS.value, Capability.CHECKED_PUTS.value))
        self.capabilities: frozenset[str] = frozenset(caps)
        self._closed = False
        self._archived = settings.archived
        self._outbox: MemoryOutbox | FileOutbox | None = None
        # The in-process outbox's queue_messages, looked up once (None: no outbox, or a file outbox).
        self._queue_messages: Callable[[str, Sequence[Message]], None] | None = None

        self._sessions: dict[str, Session] = {}
        self._session_ids: list[str] = []  # sorted: the scan order
        self._by_activity: list[tuple[float, str]] = []  # sorted by (last_activity, id): the idle index
        self._streams: dict[str, _Stream] = {}
        self._task_contexts: dict[str, dict[str, Any]] = {}
        self._conversations: dict[str, dict[str, Any]] = {}
        self._conversation_owner: dict[str, str] = {}  # conversation key -> session id it is registered under
        self._conversations_of: dict[str, set[str]] = {}  # session id -> conversation keys
        self._threads: dict[str, _Thread] = {}
        self._thread_ids: list[str] = []  # sorted: the seed checkpoint thread scan order
        self._meta: dict[str, _Meta] = {}
        # owner -> deadline (epoch seconds), ordered by last refresh (see the module docstring).
        self._deadlines: OrderedDict[str, float] = OrderedDict()
        self._thread_deadlines: OrderedDict[str, float] = OrderedDict()
        self._tomb_deadlines: OrderedDict[str, float] = OrderedDict()
        self._message_count = 0
        self._message_bytes = 0
        self._checkpoint_count = 0

    def __repr__(self) -> str:
        return f"MemoryHotStore(namespace={self.settings.namespace!r}, sessions={len(self._sessions)})"

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Nothing to connect to; marks the store open (reopening a closed store keeps its data)."""
        self._closed = False

    async def aclose(self) -> None:
        """Mark the store closed; idempotent. Data stays in memory until the object is dropped."""
        self._closed = True

    def outbox(
        self, max_pending: int = 1_000_000, *, path: str | None = None, max_pending_bytes: int | None = None
    ) -> MemoryOutbox | FileOutbox:
        """The archiver's outbox, which this store's writes fill in the critical section of each write: in process
        (as durable as this tier; bounded by ``max_pending`` events and ``max_pending_bytes`` bytes), or a
        :class:`~contextkit.archiver.FileOutbox` at ``path`` that outlives the process (its events then may belong
        to owners this tier forgot in a restart; the kit says so to the tiered layer). Built once; later calls
        return the same outbox."""
        if self._outbox is None:
            self._outbox = (
                MemoryOutbox(max_pending, max_pending_bytes) if path is None else FileOutbox(path, max_pending)
            )
            if isinstance(self._outbox, MemoryOutbox):
                self._queue_messages = self._outbox.queue_messages
        return self._outbox

    async def health(self) -> dict[str, Any]:
        """``{"status": "healthy", "latency_ms", "backend": "memory", "items"}``; never raises."""
        started = time.perf_counter()
        try:
            items = self._item_count()
            status = "healthy"
        except Exception:  # health must never raise
            items, status = -1, "unhealthy"
        return {
            "status": status,
            "latency_ms": (time.perf_counter() - started) * 1000.0,
            "backend": "memory",
            "items": items,
            "closed": self._closed,
        }

    def describe(self) -> dict[str, Any]:
        """Backend name, namespace and the settings that shape storage; no I/O."""
        return {
            "backend": "memory",
            "namespace": self.settings.namespace,
            "history_cap": self.settings.history_cap,
            "session_ttl": self.settings.session_ttl,
            "checkpoint_ttl": self.settings.checkpoint_ttl,
            "max_sessions": self._max_sessions,
            "durable": False,
            "capabilities": sorted(self.capabilities),
        }

    async def stats(self) -> StoreStats:
        """Exact counts after expiring everything due; ``checkpoints`` adds seed documents and LangGraph checkpoints;
        ``memory_bytes`` is a rough estimate (see the constants), not a measurement."""
        self._sweep(None)
        active = sum(1 for s in self._sessions.values() if s.status == "active")
        documents = sum(_estimate(d) for d in self._task_contexts.values())
        documents += sum(_estimate(d) for d in self._conversations.values())
        estimate = (
            self._message_bytes
            + _SESSION_OVERHEAD * len(self._sessions)
            + _DOCUMENT_OVERHEAD * (len(self._task_contexts) + len(self._conversations) + self._checkpoint_count)
            + documents
        )
        checkpoints = self._checkpoint_count
        checkpoints += self.cp_count()  # LangGraph checkpoints of the MemoryCheckpoints mixin count too
        return StoreStats(
            sessions=len(self._sessions),
            active_sessions=active,
            messages=self._message_count,
            checkpoints=checkpoints,
            memory_bytes=estimate,
        )

    # -- owners (see "Tiering" in contextkit.stores) ------------------------------------------------------------
    def _live(self, owner: str) -> None:
        """Expire whatever of ``owner`` is due (its session family, its seed checkpoint thread, its tombstone)."""
        self._check(self._owner(owner))
        self._check_thread(owner)
        deadline = self._tomb_deadlines.get(owner)
        if deadline is not None and deadline <= self._clock():
            self._tomb_deadlines.pop(owner, None)
            self._forget_if_idle(owner)

    def _read_meta(self, owner: str) -> _Meta | None:
        """The owner's meta for a read: None for an unknown owner, or OwnerUnknown when archived."""
        self._live(owner)
        meta = self._meta.get(owner)
        if meta is None and self._archived:
            raise OwnerUnknown(owner)
        return meta

    def _write_meta(self, owner: str) -> _Meta:
        """The owner's meta for a write (a new owner starts at 0 unless archived: then OwnerUnknown)."""
        self._live(owner)
        meta = self._meta.get(owner)
        if meta is None:
            if self._archived:
                raise OwnerUnknown(owner)
            meta = _Meta()
        return meta

    def _keep_meta(self, owner: str, meta: _Meta) -> None:
        """Record the meta of an owner that now holds data (its lifetime follows its data and its tombstone)."""
        self._meta[owner] = meta

    def _forget_if_idle(self, owner: str) -> None:
        """Drop the owner's meta once nothing of it lives: no session family, no seed thread, no tombstone."""
        if (
            self._owner(owner) not in self._deadlines
            and owner not in self._thread_deadlines
            and owner not in self._tomb_deadlines
        ):
            self._meta.pop(owner, None)

    def _push(self, events: Sequence[ArchiveEvent]) -> None:
        """Put a write's events into the outbox, before the write is applied (a failed push writes nothing)."""
        if self._outbox is None:
            raise ContextKitError("archive= was given but the memory tier has no outbox (call outbox() first)")
        self._outbox.push_nowait(events)

    async def restore_owner(self, state: OwnerState) -> None:
        """See :meth:`contextkit.stores.HotStore.restore_owner` (nothing here is ever stale: a restart loses all)."""
        owner = state.owner
        self._live(owner)
        if owner in self._meta:
            return
        self._meta[owner] = _Meta(version=state.version, last_seq=state.last_seq)
        if state.session is not None:
            self._store_session(_copy_session(state.session))
        if state.task_context is not None:
            self._task_contexts[owner] = _copy_document(state.task_context.document)
        if state.conversation is not None:
            self._register_conversation(owner, _copy_document(state.conversation.document))
        if state.history:
            stream = self._streams[owner] = _Stream()
            for message in state.history[-max(self.settings.history_cap, 0) or len(state.history) :]:
                self._stream_add(stream, _copy_message(message))
            self._trim(stream)
        if state.deleted:
            self._tomb_deadlines[owner] = self._clock() + self.settings.tombstone_ttl
            self._tomb_deadlines.move_to_end(owner)
        if not state.deleted or state.session or state.task_context or state.conversation or state.history:
            self._touch(self._owner(owner))
        self._after_write()

    # -- expiry ---------------------------------------------------------------------------------------------------
    def _cp_now(self) -> float:
        """The clock of LangGraph checkpoint TTLs (used by :class:`MemoryCheckpoints`): the store's own clock, so an
        injected test clock moves every TTL of the store together."""
        return self._clock()

    def _owner(self, key: str) -> str:
        """The session id a stream or conversation key belongs to (itself when not registered)."""
        return self._conversation_owner.get(key, key)

    def _touch(self, owner: str) -> None:
        self._deadlines[owner] = self._clock() + self.settings.session_ttl
        self._deadlines.move_to_end(owner)

    def _touch_thread(self, thread_id: str) -> None:
        self._thread_deadlines[thread_id] = self._clock() + self.settings.checkpoint_ttl
        self._thread_deadlines.move_to_end(thread_id)

    def _check(self, owner: str) -> None:
        """Purge ``owner``'s group if its deadline passed (lazy expiry on access)."""
        deadline = self._deadlines.get(owner)
        if deadline is not None and deadline <= self._clock():
            self._purge_group(owner)

    def _check_thread(self, thread_id: str) -> None:
        deadline = self._thread_deadlines.get(thread_id)
        if deadline is not None and deadline <= self._clock():
            self._purge_thread(thread_id)

    def _sweep(self, budget: int | None) -> int:
        """Expire owners from the head of the deadline dicts; at most ``budget`` of each (None: all due)."""
        now = self._clock()
        removed = 0
        for deadlines, purge in (
            (self._deadlines, self._purge_group),
            (self._thread_deadlines, self._purge_thread),
            (self._tomb_deadlines, self._purge_tombstone),
        ):
            done = 0
            while deadlines and (budget is None or done < budget):
                owner, deadline = next(iter(deadlines.items()))
                if deadline > now:
                    break
                purge(owner)
                done += 1
            removed += done
        return removed

    def _after_write(self) -> None:
        self._sweep(self._sweep_batch)

    # -- removal --------------------------------------------------------------------------------------------------
    def _remove_session_record(self, session_id: str) -> Session | None:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return None
        index = bisect.bisect_left(self._session_ids, session_id)
        if index < len(self._session_ids) and self._session_ids[index] == session_id:
            del self._session_ids[index]
        self._unindex_activity(session)
        return session

    def _remove_stream(self, key: str) -> None:
        stream = self._streams.pop(key, None)
        if stream is not None:
            self._message_count -= len(stream.messages)
            self._message_bytes -= stream.bytes

    def _remove_conversation(self, key: str) -> None:
        self._conversations.pop(key, None)
        owner = self._conversation_owner.pop(key, None)
        if owner is not None:
            keys = self._conversations_of.get(owner)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._conversations_of[owner]

    def _purge_group(self, owner: str) -> bool:
        """Expire every session-scoped family of ``owner`` (and forget it unless something else of it lives);
        True if a session record existed."""
        self._deadlines.pop(owner, None)
        existed = self._remove_session_record(owner) is not None
        if self._conversation_owner.get(owner, owner) == owner:
            self._remove_stream(owner)
        self._task_contexts.pop(owner, None)
        for key in list(self._conversations_of.get(owner, ())):
            self._remove_conversation(key)
            self._remove_stream(key)
            self._forget_if_idle(key)
        if self._conversation_owner.get(owner, owner) == owner:
            self._remove_conversation(owner)
        self._forget_if_idle(owner)
        return existed

    def _purge_thread(self, thread_id: str) -> None:
        self._thread_deadlines.pop(thread_id, None)
        self._drop_thread(thread_id)
        self._forget_if_idle(thread_id)

    def _purge_tombstone(self, owner: str) -> None:
        self._tomb_deadlines.pop(owner, None)
        self._forget_if_idle(owner)

    def _drop_thread(self, thread_id: str) -> None:
        thread = self._threads.pop(thread_id, None)
        if thread is not None:
            self._checkpoint_count -= len(thread.documents)
            index = bisect.bisect_left(self._thread_ids, thread_id)
            if index < len(self._thread_ids) and self._thread_ids[index] == thread_id:
                del self._thread_ids[index]

    def _drop_owner(self, owner: str) -> Session | None:
        """Remove everything stored under ``owner`` itself (not the conversation sessions registered under it);
        the session record it held, if any."""
        session = self._remove_session_record(owner)
        self._remove_stream(owner)
        self._task_contexts.pop(owner, None)
        self._remove_conversation(owner)
        self._drop_thread(owner)
        self._deadlines.pop(owner, None)
        self._thread_deadlines.pop(owner, None)
        return session

    # -- indexes --------------------------------------------------------------------------------------------------
    def _index_activity(self, session: Session) -> None:
        bisect.insort(self._by_activity, (session.last_activity.timestamp(), session.session_id))

    def _unindex_activity(self, session: Session) -> None:
        entry = (session.last_activity.timestamp(), session.session_id)
        index = bisect.bisect_left(self._by_activity, entry)
        if index < len(self._by_activity) and self._by_activity[index] == entry:
            del self._by_activity[index]

    def _item_count(self) -> int:
        return (
            len(self._sessions)
            + len(self._streams)
            + len(self._task_contexts)
            + len(self._conversations)
            + len(self._threads)
        )

    # -- sessions -------------------------------------------------------------------------------------------------
    def _store_session(self, session: Session) -> None:
        """Put ``session`` (already a private copy) in place of the owner's record, indexes included."""
        sid = session.session_id
        existing = self._sessions.get(sid)
        if existing is None:
            bisect.insort(self._session_ids, sid)
        else:
            self._unindex_activity(existing)
        self._sessions[sid] = session
        self._index_activity(session)

    async def put_session(
        self, session: Session, *, task_context: Mapping[str, Any] | None = None, archive: EventHead | None = None
    ) -> Session:
        """Store ``session`` whole (and ``task_context``) and start (or refresh) its TTL, under the owner's next
        versions; :class:`LimitExceeded` beyond ``max_sessions``."""
        sid = session.session_id
        meta = self._write_meta(sid)
        if sid not in self._sessions and self._max_sessions is not None and len(self._sessions) >= self._max_sessions:
            self._sweep(None)
            if len(self._sessions) >= self._max_sessions:
                raise LimitExceeded(
                    f"the memory tier holds its maximum of {self._max_sessions} sessions (option max_sessions)"
                )
        stored = replace(session, metadata=_copy_json(session.metadata), version=meta.version + 1)
        document = None if task_context is None else _copy_document(task_context)
        if archive is not None:
            events = [session_event(stored, archive)]
            if document is not None:
                events.append(task_context_event(sid, document, stored.version + 1, replace(archive, event_id=new_event_id())))
            self._push(events)
        meta.version = stored.version + (0 if document is None else 1)
        self._keep_meta(sid, meta)
        self._tomb_deadlines.pop(sid, None)
        self._store_session(stored)
        if document is not None:
            self._task_contexts[sid] = document
        self._touch(sid)
        self._after_write()
        return _copy_session(stored)

    async def get_session(self, session_id: str) -> Session | None:
        """The session (a copy), or None when missing, expired or deleted."""
        self._read_meta(session_id)
        session = self._sessions.get(session_id)
        return None if session is None else _copy_session(session)

    async def update_session(
        self, session_id: str, update: SessionUpdate, *, archive: EventHead | None = None
    ) -> Session | None:
        """Add the counters, replace ``update.fields``, move last_activity forward under the owner's next version;
        None if the session is missing."""
        unknown = set(update.fields) - _SESSION_FIELDS
        if unknown:
            raise InvalidInput(f"update_session cannot set {sorted(unknown)}; allowed: {sorted(_SESSION_FIELDS)}")
        meta = self._read_meta(session_id)
        session = self._sessions.get(session_id)
        if session is None or meta is None:
            return None
        # checked before anything changes: a refused update leaves the session (and the outbox) as it was
        requests, errors, total = update.counters_after(
            session_id, session.request_count, session.error_count, session.total_processing_time
        )
        changes: dict[str, Any] = {
            "request_count": requests,
            "error_count": errors,
            "total_processing_time": total,
            "version": meta.version + 1,
        }
        if update.activity > session.last_activity:
            changes["last_activity"] = update.activity
        for name, value in update.fields.items():
            changes[name] = _copy_json(value) if name == "metadata" else value
        updated = replace(session, **changes)
        if archive is not None:
            self._push([session_event(updated, archive)])
        meta.version = updated.version
        self._unindex_activity(session)
        self._sessions[session_id] = updated
        self._index_activity(updated)
        self._touch(session_id)
        self._after_write()
        return _copy_session(updated)

    async def delete_session(
        self, session_id: str, *, archive: EventHead | None = None, evict: bool = False
    ) -> bool:
        """Remove the owner's record, history, task context, seed checkpoints and the conversation sessions
        registered under it (each of them an owner too); tombstones when archived, see
        :meth:`contextkit.stores.HotStore.delete_session`."""
        owners = [session_id, *sorted(self._conversations_of.get(session_id, ()))]
        metas: list[_Meta | None] = []
        for owner in owners:
            if evict:
                self._live(owner)
                metas.append(self._meta.get(owner))
            else:
                metas.append(self._read_meta(owner))
        existed = session_id in self._sessions
        if evict:
            for owner in owners:
                self._drop_owner(owner)
                self._tomb_deadlines.pop(owner, None)
                self._meta.pop(owner, None)
            self._after_write()
            return existed
        events: list[ArchiveEvent] = []
        plans: list[tuple[str, _Meta | None, bool]] = []
        for owner, meta in zip(owners, metas, strict=True):
            # An owner that holds nothing is left alone when it is a tombstone already (a second delete adds no
            # event) or never had anything (an id the archive does not know either).
            had = meta is not None and (meta.version > 0 or meta.last_seq > 0) and owner not in self._tomb_deadlines
            write = self._archived and (self._holds(owner) or had)
            plans.append((owner, meta, write))
            if write and archive is not None:
                current = meta or _Meta()
                head = archive if owner == session_id else replace(archive, event_id=new_event_id())
                session = self._sessions.get(owner)
                events.append(delete_event(owner, current.version + 1, current.last_seq, session, head))
        if events:
            self._push(events)
        for owner, meta, write in plans:
            self._drop_owner(owner)
            if write:
                current = meta or _Meta()
                current.version += 1
                current.deleted_version, current.deleted_seq = current.version, current.last_seq
                self._meta[owner] = current
                self._tomb_deadlines[owner] = self._clock() + self.settings.tombstone_ttl
                self._tomb_deadlines.move_to_end(owner)
            self._forget_if_idle(owner)
        self._after_write()
        return existed

    def _holds(self, owner: str) -> bool:
        """True when anything is stored under ``owner`` itself."""
        return (
            owner in self._sessions
            or owner in self._streams
            or owner in self._task_contexts
            or owner in self._conversations
            or owner in self._threads
        )

    async def scan_sessions(self, cursor: str | None, count: int) -> tuple[list[Session], str | None]:
        """Up to ``count`` sessions in id order after ``cursor`` (the last id of the previous page)."""
        self._sweep(None)
        start = 0 if cursor is None else bisect.bisect_right(self._session_ids, cursor)
        ids = self._session_ids[start : start + max(count, 1)]
        page = [_copy_session(self._sessions[sid]) for sid in ids]
        next_cursor = ids[-1] if ids and start + len(ids) < len(self._session_ids) else None
        return page, next_cursor

    async def idle_sessions(self, before: datetime, limit: int) -> list[str]:
        """Ids of up to ``limit`` sessions with last_activity before ``before``, oldest first (from the index)."""
        threshold = before.timestamp()
        result: list[str] = []
        expired: list[str] = []
        now = self._clock()
        for stamp, sid in self._by_activity:
            if stamp >= threshold or len(result) >= limit:
                break
            deadline = self._deadlines.get(sid)
            if deadline is not None and deadline <= now:
                expired.append(sid)
                continue
            result.append(sid)
        for sid in expired:
            self._purge_group(sid)
        return result

    # -- history streams ------------------------------------------------------------------------------------------
    def _stream_add(self, stream: _Stream, item: Message) -> None:
        size = _message_size(item)
        stream.messages.append(item)
        stream.bytes += size
        self._message_bytes += size
        self._message_count += 1

    def _trim(self, stream: _Stream) -> None:
        cap = max(self.settings.history_cap, 0)
        removed = 0
        while len(stream.messages) > cap:
            old = stream.messages.popleft()
            stream.bytes -= (size := _message_size(old))
            self._message_bytes -= size
            removed += 1
        self._message_count -= removed

    async def append_messages(
        self, key: str, messages: Sequence[Message], *, archive: ArchiveSpec | None = None
    ) -> list[Message]:
        """Append at the tail with consecutive seqs, trim the oldest beyond the cap, refresh the TTL; move the
        session ``key``'s last_activity forward to the newest message when that session exists; with
        ``archive``, queue the messages' events in the same step."""
        if not messages:
            return []
        meta = self._write_meta(key)
        first = meta.last_seq + 1
        stored = [_copy_message(message, seq=first + i) for i, message in enumerate(messages)]
        if archive is not None:
            queue = self._queue_messages
            if archive is DEFERRED_MESSAGE_EVENTS and queue is not None:
                # The kit's own spec into the in-process queue: the common archived append, kept short.
                queue(key, stored)
            else:
                self._queue_events(key, stored, archive)
        meta.last_seq = stored[-1].seq
        self._keep_meta(key, meta)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        for item in stored:
            self._stream_add(stream, item)
        self._trim(stream)
        if self._owner(key) != key:
            self._check(key)  # an expired session must not be revived by a stream registered elsewhere
        session = self._sessions.get(key)
        newest = max(m.timestamp for m in stored)
        if session is not None and newest > session.last_activity:
            # The message is activity of the session whose history this is (same step, no update_session).
            self._unindex_activity(session)
            session = self._sessions[key] = replace(session, last_activity=newest)
            self._index_activity(session)
        if session is not None:
            self._touch(key)
        self._touch(self._owner(key))
        self._after_write()
        return [_copy_message(m) for m in stored]

    def _queue_events(self, key: str, stored: list[Message], archive: ArchiveSpec) -> None:
        """Queue the events ``archive`` names for the ``stored`` messages (before the append changes anything)."""
        event_ids: Sequence[str | None] = archive.event_ids
        times: Sequence[datetime | None] = archive.created_at
        if not event_ids and not times:
            # DEFERRED_MESSAGE_EVENTS, or a spec equal to it (capability deferred_events): ids drawn when built.
            event_ids = times = (None,) * len(stored)
        elif len(event_ids) != len(stored) or len(times) != len(stored):
            raise InvalidInput(f"the archive spec names {len(event_ids)} event(s) for {len(stored)} message(s)")
        outbox = self._outbox
        if isinstance(outbox, MemoryOutbox):
            # The in-process queue keeps the messages' fields and builds their events off the hot path.
            for item, event_id, at in zip(stored, event_ids, times, strict=True):
                outbox.queue_message(key, item, item.seq, event_id, at)
        else:
            triples = zip(stored, event_ids, times, strict=True)
            self._push([message_event(key, item, item.seq, event_id, None, at) for item, event_id, at in triples])

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        """The newest ``limit`` messages (all when None) oldest first, in O(limit) from the right of the deque."""
        self._read_meta(key)
        stream = self._streams.get(key)
        if stream is None:
            return []
        if limit is None:
            return [_copy_message(m) for m in stream.messages]
        if limit <= 0:
            return []
        newest = [_copy_message(m) for m in islice(reversed(stream.messages), limit)]
        newest.reverse()
        return newest

    async def history_length(self, key: str) -> int:
        """Messages kept in the stream."""
        self._read_meta(key)
        stream = self._streams.get(key)
        return 0 if stream is None else len(stream.messages)

    async def history_bounds(self, key: str) -> tuple[int, int]:
        """``(first kept seq or 0, highest seq assigned)``."""
        meta = self._read_meta(key)
        stream = self._streams.get(key)
        first = stream.messages[0].seq if stream is not None and stream.messages else 0
        return (first, 0 if meta is None else meta.last_seq)

    async def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Swap the stream for ``messages`` (seq kept); the seq counter never goes below what it was."""
        meta = self._write_meta(key)
        meta.last_seq = max([meta.last_seq, *(m.seq for m in messages)])
        self._keep_meta(key, meta)
        self._remove_stream(key)
        fresh = self._streams[key] = _Stream()
        for message in messages:
            self._stream_add(fresh, _copy_message(message))
        self._trim(fresh)
        self._touch(self._owner(key))
        self._after_write()

    async def delete_mark(self, owner: str) -> tuple[int, int]:
        """See :meth:`contextkit.stores.HotStore.delete_mark`."""
        meta = self._read_meta(owner)
        return (0, 0) if meta is None else (meta.deleted_version, meta.deleted_seq)

    async def backfill_history(self, key: str, older: Sequence[Message]) -> int:
        """Insert archived messages older than every kept one at the head of the stream, up to the cap."""
        meta = self._read_meta(key)
        if meta is None:
            return 0
        stream = self._streams.get(key)
        kept = stream.messages if stream is not None else deque()
        floor = kept[0].seq if kept else meta.last_seq + 1
        room = max(self.settings.history_cap, 0) - len(kept)
        candidates = [m for m in older if m.seq < floor][-room:] if room > 0 else []
        if not candidates:
            return 0
        if stream is None:
            stream = self._streams[key] = _Stream()
        for message in reversed(candidates):
            item = _copy_message(message)
            size = _message_size(item)
            stream.messages.appendleft(item)
            stream.bytes += size
            self._message_bytes += size
            self._message_count += 1
        meta.last_seq = max(meta.last_seq, candidates[-1].seq)
        self._touch(self._owner(key))
        self._after_write()
        return len(candidates)

    # -- task contexts and conversation sessions ------------------------------------------------------------------
    async def put_task_context(
        self, session_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store (replace) the session's task context document and refresh the session's TTL."""
        meta = self._write_meta(session_id)
        stored = _copy_document(document)
        if archive is not None:
            self._push([task_context_event(session_id, stored, meta.version + 1, archive)])
        meta.version += 1
        self._keep_meta(session_id, meta)
        self._task_contexts[session_id] = stored
        self._touch(self._owner(session_id))
        self._after_write()

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """A copy of the stored task context, or None."""
        self._read_meta(session_id)
        document = self._task_contexts.get(session_id)
        return None if document is None else _copy_document(document)

    def _register_conversation(self, session_key: str, document: dict[str, Any]) -> None:
        """Store a conversation document (a private copy) and register its key under its session."""
        owner = str(document.get("session_id") or session_key)
        previous = self._conversation_owner.get(session_key)
        self._check(owner)
        if previous is not None and previous != owner:
            self._remove_conversation(session_key)
        self._conversations[session_key] = document
        if owner != session_key:
            self._conversation_owner[session_key] = owner
            self._conversations_of.setdefault(owner, set()).add(session_key)
            # The key's own deadline (from appends before registration) now belongs to the owner's group.
            self._deadlines.pop(session_key, None)
        self._touch(owner)

    async def put_conversation_session(
        self, session_key: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store the document and register ``session_key`` under ``document["session_id"]`` (shared TTL)."""
        meta = self._write_meta(session_key)
        stored = _copy_document(document)
        if archive is not None:
            self._push([conversation_session_event(session_key, stored, meta.version + 1, archive)])
        meta.version += 1
        self._keep_meta(session_key, meta)
        self._register_conversation(session_key, stored)
        self._after_write()

    async def get_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """A copy of the stored conversation session document, or None."""
        self._read_meta(session_key)
        document = self._conversations.get(session_key)
        return None if document is None else _copy_document(document)

    # -- seed checkpoint documents --------------------------------------------------------------------------------
    def _new_thread(self, thread_id: str) -> _Thread:
        thread = self._threads[thread_id] = _Thread()
        bisect.insort(self._thread_ids, thread_id)
        return thread

    async def put_checkpoint_document(
        self, thread_id: str, checkpoint_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store (replace in place) a checkpoint document and refresh the thread's checkpoint TTL."""
        meta = self._write_meta(thread_id)
        stored = _copy_document(document)
        if archive is not None:
            self._push([checkpoint_document_event(thread_id, checkpoint_id, stored, meta.version + 1, archive)])
        meta.version += 1
        self._keep_meta(thread_id, meta)
        thread = self._threads.get(thread_id) or self._new_thread(thread_id)
        if checkpoint_id not in thread.documents:
            self._checkpoint_count += 1
        # Assigning an existing key keeps its position: listing order is the order of first insertion.
        thread.documents[checkpoint_id] = stored
        self._touch_thread(thread_id)
        self._after_write()

    async def get_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That document, or the most recently inserted one when ``checkpoint_id`` is None."""
        self._read_meta(thread_id)
        thread = self._threads.get(thread_id)
        if thread is None or not thread.documents:
            return None
        if checkpoint_id is None:
            checkpoint_id = next(reversed(thread.documents))
        document = thread.documents.get(checkpoint_id)
        return None if document is None else _copy_document(document)

    async def list_checkpoint_documents(self, thread_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` documents, newest inserted first, in O(limit)."""
        self._read_meta(thread_id)
        thread = self._threads.get(thread_id)
        if thread is None:
            return []
        newest = islice(reversed(thread.documents.values()), max(limit, 0))
        return [_copy_document(d) for d in newest]

    async def put_writes_document(
        self,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[Any],
        *,
        archive: EventHead | None = None,
    ) -> None:
        """Append ``(task_id, write)`` pairs to the checkpoint's writes (never replaces)."""
        meta = self._write_meta(thread_id)
        copies = [_copy_json(w) for w in writes]
        if archive is not None:
            self._push([writes_document_event(thread_id, checkpoint_id, task_id, copies, meta.version + 1, archive)])
        meta.version += 1
        self._keep_meta(thread_id, meta)
        thread = self._threads.get(thread_id) or self._new_thread(thread_id)
        thread.writes.setdefault(checkpoint_id, []).extend((task_id, _copy_json(w)) for w in copies)
        self._touch_thread(thread_id)
        self._after_write()

    async def get_writes_documents(self, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        """``(task_id, write)`` pairs in put order (copies)."""
        self._read_meta(thread_id)
        thread = self._threads.get(thread_id)
        if thread is None:
            return []
        return [(task, _copy_json(w)) for task, w in thread.writes.get(checkpoint_id, ())]

    # -- enumeration ----------------------------------------------------------------------------------------------
    async def iter_data_owners(self) -> AsyncIterator[str]:
        """See :meth:`contextkit.stores.HotStore.iter_data_owners`."""
        self._sweep(None)
        for owner in {*self._streams, *self._task_contexts, *self._conversations}:
            yield owner

    async def list_conversation_sessions(self, session_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Copies of the conversation sessions registered under ``session_id`` (and the one stored under the
        session id itself), sorted by key."""
        self._check(session_id)
        keys = set(self._conversations_of.get(session_id, ()))
        own = self._conversations.get(session_id)
        registered_elsewhere = self._conversation_owner.get(session_id, session_id) != session_id
        if own is not None and not registered_elsewhere and str(own.get("session_id") or session_id) == session_id:
            keys.add(session_id)
        return [(key, _copy_document(self._conversations[key])) for key in sorted(keys) if key in self._conversations]

    async def scan_checkpoint_threads(self, cursor: str | None, count: int) -> tuple[list[str], str | None]:
        """Up to ``count`` live seed checkpoint thread ids in id order after ``cursor`` (the last id returned)."""
        self._sweep(None)
        ids = self._thread_ids
        start = 0 if cursor is None else bisect.bisect_right(ids, cursor)
        page = ids[start : start + max(count, 1)]
        return page, (page[-1] if page and start + len(page) < len(ids) else None)

    async def read_checkpoint_thread(
        self, thread_id: str
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, list[tuple[str, Any]]]]]:
        """Copies of the thread's documents in insertion order and of its writes by checkpoint id."""
        self._live(thread_id)
        thread = self._threads.get(thread_id)
        if thread is None:
            return [], []
        documents = [(cid, _copy_document(doc)) for cid, doc in thread.documents.items()]
        writes = [
            (cid, [(task, _copy_json(w)) for task, w in thread.writes[cid]])
            for cid in sorted(thread.writes)
            if thread.writes[cid]
        ]
        return documents, writes
