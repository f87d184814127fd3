"""The in-process hot tier: :class:`MemoryHotStore`, every :class:`~contextkit.stores.HotStore` method on Python dicts.

It is the default tier (``pip install contextkit`` alone) and the reference the conformance suite runs on. State
lives in one process and dies with it (no ``durable`` or ``shared`` capability).

Why there are no locks: every method runs from start to end without an ``await`` in the middle, and asyncio
switches tasks only at an ``await``. So each call is atomic with respect to every other task of the event loop:
counters are exact, seq numbers unique, a multi-family delete is all-or-nothing. Keep it so: a future ``await``
inside a mutating method would break that guarantee. (The store is not thread-safe; use it from one event loop.)

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

from contextkit.errors import ConfigError, InvalidInput, LimitExceeded
from contextkit.records import Message, Session
from contextkit.stores import Capability, SessionUpdate, StoreSettings, StoreStats
from contextkit_memory.checkpoints import MemoryCheckpoints

__all__ = ["MemoryHotStore", "create_memory_hot_store"]

Clock = Callable[[], float]

_OPTIONS = frozenset({"clock", "max_sessions", "sweep_batch"})
# A config's [memory] table feeds both memory tiers, so each factory accepts the other's options and ignores them.
_COLD_OPTIONS = frozenset({"fail"})
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
    """One history stream: the kept messages (oldest at the left) and the highest seq ever assigned."""

    messages: deque[Message] = field(default_factory=deque)
    last_seq: int = 0
    bytes: int = 0


@dataclass(slots=True)
class _Thread:
    """Seed checkpoint documents of one thread, in order of first insertion, with their writes."""

    documents: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    writes: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)


class MemoryHotStore(MemoryCheckpoints):
    """The hot tier in process memory. Built by :func:`create_memory_hot_store`; see the module docstring.

    :param settings: namespace, TTLs and history cap.
    :param clock: callable returning epoch seconds, used for TTLs (tests pass a fake clock to move time).
    :param max_sessions: most live sessions; creating one more raises :class:`~contextkit.errors.LimitExceeded`
        (nothing is evicted silently). None means unbounded.
    :param sweep_batch: most expired owners a single write removes (bounds the latency of a write).
    """

    name = "memory"

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
        caps = {Capability.TTL.value}
        if hasattr(MemoryCheckpoints, "cp_put"):
            caps.add(Capability.CHECKPOINTS.value)
        self.capabilities: frozenset[str] = frozenset(caps)
        self._closed = False

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
        # owner -> deadline (epoch seconds), ordered by last refresh (see the module docstring).
        self._deadlines: OrderedDict[str, float] = OrderedDict()
        self._thread_deadlines: OrderedDict[str, float] = OrderedDict()
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
        cp_count = getattr(self, "cp_count", None)
        if callable(cp_count):  # LangGraph checkpoints of the MemoryCheckpoints mixin count too
            checkpoints += int(cp_count())
        return StoreStats(
            sessions=len(self._sessions),
            active_sessions=active,
            messages=self._message_count,
            checkpoints=checkpoints,
            memory_bytes=estimate,
        )

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
        for deadlines, purge in ((self._deadlines, self._purge_group), (self._thread_deadlines, self._purge_thread)):
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
    def _remove_session_record(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        index = bisect.bisect_left(self._session_ids, session_id)
        if index < len(self._session_ids) and self._session_ids[index] == session_id:
            del self._session_ids[index]
        self._unindex_activity(session)
        return True

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
        """Remove every session-scoped family of ``owner``; True if a session record existed."""
        self._deadlines.pop(owner, None)
        existed = self._remove_session_record(owner)
        if self._conversation_owner.get(owner, owner) == owner:
            self._remove_stream(owner)
        self._task_contexts.pop(owner, None)
        for key in list(self._conversations_of.get(owner, ())):
            self._remove_conversation(key)
            self._remove_stream(key)
        if self._conversation_owner.get(owner, owner) == owner:
            self._remove_conversation(owner)
        return existed

    def _purge_thread(self, thread_id: str) -> None:
        self._thread_deadlines.pop(thread_id, None)
        thread = self._threads.pop(thread_id, None)
        if thread is not None:
            self._checkpoint_count -= len(thread.documents)
            index = bisect.bisect_left(self._thread_ids, thread_id)
            if index < len(self._thread_ids) and self._thread_ids[index] == thread_id:
                del self._thread_ids[index]

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
    async def put_session(self, session: Session) -> None:
        """Store ``session`` whole and start (or refresh) its TTL; :class:`LimitExceeded` beyond ``max_sessions``."""
        sid = session.session_id
        self._check(sid)
        existing = self._sessions.get(sid)
        if existing is None and self._max_sessions is not None and len(self._sessions) >= self._max_sessions:
            self._sweep(None)
            if len(self._sessions) >= self._max_sessions:
                raise LimitExceeded(
                    f"the memory tier holds its maximum of {self._max_sessions} sessions (option max_sessions)"
                )
        stored = _copy_session(session)
        if existing is None:
            bisect.insort(self._session_ids, sid)
        else:
            self._unindex_activity(existing)
        self._sessions[sid] = stored
        self._index_activity(stored)
        self._touch(sid)
        self._after_write()

    async def get_session(self, session_id: str) -> Session | None:
        """The session (a copy), or None when missing or expired."""
        self._check(session_id)
        session = self._sessions.get(session_id)
        return None if session is None else _copy_session(session)

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session | None:
        """Add the counters, replace ``update.fields``, move last_activity forward; None if the session is missing."""
        unknown = set(update.fields) - _SESSION_FIELDS
        if unknown:
            raise InvalidInput(f"update_session cannot set {sorted(unknown)}; allowed: {sorted(_SESSION_FIELDS)}")
        self._check(session_id)
        session = self._sessions.get(session_id)
        if session is None:
            return None
        changes: dict[str, Any] = {
            "request_count": session.request_count + update.requests,
            "error_count": session.error_count + update.errors,
            "total_processing_time": session.total_processing_time + update.processing_time,
        }
        if update.activity > session.last_activity:
            changes["last_activity"] = update.activity
        for name, value in update.fields.items():
            changes[name] = _copy_json(value) if name == "metadata" else value
        updated = replace(session, **changes)
        self._unindex_activity(session)
        self._sessions[session_id] = updated
        self._index_activity(updated)
        self._touch(session_id)
        self._after_write()
        return _copy_session(updated)

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session's record, history, task context, conversation sessions and seed checkpoints."""
        self._check(session_id)
        existed = self._purge_group(session_id)
        self._purge_thread(session_id)
        return existed

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
    def _live_stream(self, key: str) -> _Stream | None:
        self._check(self._owner(key))
        return self._streams.get(key)

    def _trim(self, stream: _Stream) -> None:
        cap = max(self.settings.history_cap, 0)
        removed = 0
        while len(stream.messages) > cap:
            old = stream.messages.popleft()
            stream.bytes -= (size := _message_size(old))
            self._message_bytes -= size
            removed += 1
        self._message_count -= removed

    async def append_messages(self, key: str, messages: Sequence[Message]) -> list[Message]:
        """Append at the tail with consecutive seqs, trim the oldest beyond the cap, refresh the TTL; move the
        session ``key``'s last_activity forward to the newest message when that session exists."""
        if not messages:
            return []
        stream = self._live_stream(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        stored: list[Message] = []
        for message in messages:
            stream.last_seq += 1
            item = _copy_message(message, seq=stream.last_seq)
            size = _message_size(item)
            stream.messages.append(item)
            stream.bytes += size
            self._message_bytes += size
            stored.append(item)
        self._message_count += len(stored)
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

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        """The newest ``limit`` messages (all when None) oldest first, in O(limit) from the right of the deque."""
        stream = self._live_stream(key)
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
        stream = self._live_stream(key)
        return 0 if stream is None else len(stream.messages)

    async def history_bounds(self, key: str) -> tuple[int, int]:
        """``(first kept seq, highest seq assigned)``, ``(0, 0)`` when the stream is empty."""
        stream = self._live_stream(key)
        if stream is None or not stream.messages:
            return (0, 0)
        return (stream.messages[0].seq, stream.last_seq)

    async def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Swap the stream for ``messages`` (seq kept); the seq counter never goes below what it was."""
        stream = self._live_stream(key)
        last_seq = stream.last_seq if stream is not None else 0
        self._remove_stream(key)
        fresh = _Stream(last_seq=max([last_seq, *(m.seq for m in messages)]))
        for message in messages:
            item = _copy_message(message)
            size = _message_size(item)
            fresh.messages.append(item)
            fresh.bytes += size
        self._streams[key] = fresh
        self._message_count += len(fresh.messages)
        self._message_bytes += fresh.bytes
        self._trim(fresh)
        self._touch(self._owner(key))
        self._after_write()

    # -- task contexts and conversation sessions ------------------------------------------------------------------
    async def put_task_context(self, session_id: str, document: Mapping[str, Any]) -> None:
        """Store (replace) the session's task context document and refresh the session's TTL."""
        self._check(session_id)
        self._task_contexts[session_id] = _copy_document(document)
        self._touch(session_id)
        self._after_write()

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """A copy of the stored task context, or None."""
        self._check(session_id)
        document = self._task_contexts.get(session_id)
        return None if document is None else _copy_document(document)

    async def put_conversation_session(self, session_key: str, document: Mapping[str, Any]) -> None:
        """Store the document and register ``session_key`` under ``document["session_id"]`` (shared TTL)."""
        owner = str(document.get("session_id") or session_key)
        previous = self._conversation_owner.get(session_key)
        self._check(previous or session_key)
        self._check(owner)
        if previous is not None and previous != owner:
            self._remove_conversation(session_key)
        self._conversations[session_key] = _copy_document(document)
        if owner != session_key:
            self._conversation_owner[session_key] = owner
            self._conversations_of.setdefault(owner, set()).add(session_key)
            # The key's own deadline (from appends before registration) now belongs to the owner's group.
            self._deadlines.pop(session_key, None)
        self._touch(owner)
        self._after_write()

    async def get_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """A copy of the stored conversation session document, or None."""
        self._check(self._owner(session_key))
        document = self._conversations.get(session_key)
        return None if document is None else _copy_document(document)

    # -- seed checkpoint documents --------------------------------------------------------------------------------
    def _new_thread(self, thread_id: str) -> _Thread:
        thread = self._threads[thread_id] = _Thread()
        bisect.insort(self._thread_ids, thread_id)
        return thread

    def _live_thread(self, thread_id: str) -> _Thread | None:
        self._check_thread(thread_id)
        return self._threads.get(thread_id)

    async def put_checkpoint_document(self, thread_id: str, checkpoint_id: str, document: Mapping[str, Any]) -> None:
        """Store (replace in place) a checkpoint document and refresh the thread's checkpoint TTL."""
        thread = self._live_thread(thread_id)
        if thread is None:
            thread = self._new_thread(thread_id)
        if checkpoint_id not in thread.documents:
            self._checkpoint_count += 1
        # Assigning an existing key keeps its position: listing order is the order of first insertion.
        thread.documents[checkpoint_id] = _copy_document(document)
        self._touch_thread(thread_id)
        self._after_write()

    async def get_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That document, or the most recently inserted one when ``checkpoint_id`` is None."""
        thread = self._live_thread(thread_id)
        if thread is None or not thread.documents:
            return None
        if checkpoint_id is None:
            checkpoint_id = next(reversed(thread.documents))
        document = thread.documents.get(checkpoint_id)
        return None if document is None else _copy_document(document)

    async def list_checkpoint_documents(self, thread_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` documents, newest inserted first, in O(limit)."""
        thread = self._live_thread(thread_id)
        if thread is None:
            return []
        newest = islice(reversed(thread.documents.values()), max(limit, 0))
        return [_copy_document(d) for d in newest]

    async def put_writes_document(
        self, thread_id: str, checkpoint_id: str, task_id: str, writes: Sequence[Any]
    ) -> None:
        """Append ``(task_id, write)`` pairs to the checkpoint's writes (never replaces)."""
        thread = self._live_thread(thread_id)
        if thread is None:
            thread = self._new_thread(thread_id)
        thread.writes.setdefault(checkpoint_id, []).extend((task_id, _copy_json(w)) for w in writes)
        self._touch_thread(thread_id)
        self._after_write()

    async def get_writes_documents(self, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        """``(task_id, write)`` pairs in put order (copies)."""
        thread = self._live_thread(thread_id)
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
        thread = self._live_thread(thread_id)
        if thread is None:
            return [], []
        documents = [(cid, _copy_document(doc)) for cid, doc in thread.documents.items()]
        writes = [
            (cid, [(task, _copy_json(w)) for task, w in thread.writes[cid]])
            for cid in sorted(thread.writes)
            if thread.writes[cid]
        ]
        return documents, writes


def _positive_int(options: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"memory tier option {name!r} must be a positive integer, got {value!r}")
    return value


def create_memory_hot_store(settings: StoreSettings, options: Mapping[str, Any]) -> MemoryHotStore:
    """Factory registered as the hot tier ``memory``; no I/O.

    Options: ``clock`` (callable returning epoch seconds; default :func:`time.time`), ``max_sessions`` (positive
    int, default unbounded) and ``sweep_batch`` (positive int, default 16).
    """
    unknown = set(options) - _OPTIONS - _COLD_OPTIONS
    if unknown:
        raise ConfigError(f"unknown memory tier options {sorted(unknown)}; known: {sorted(_OPTIONS)}")
    clock = options.get("clock", time.time)
    if not callable(clock):
        raise ConfigError("memory tier option 'clock' must be a callable returning epoch seconds")
    return MemoryHotStore(
        settings,
        clock=clock,
        max_sessions=_positive_int(options, "max_sessions", None),
        sweep_batch=_positive_int(options, "sweep_batch", 16) or 16,
    )

