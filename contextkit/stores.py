"""The tier protocols every backend implements: :class:`HotStore`, :class:`ColdStore` and :class:`CheckpointStore`.

They are small and async-only. A backend implements them; the kit (:mod:`contextkit.kit`) adds validation,
archiving and the seed's API on top, so a backend never re-validates input and never talks to another tier.

Shared semantics (the conformance suites in :mod:`contextkit.testing` check every one of them):

* **History.** A stream (a session id, or a conversation session key) is an append-only list. ``append_messages``
  adds at the tail and assigns each message the next 1-based ``seq`` of its stream atomically, even under
  concurrent appends from several processes. When the stream is longer than ``settings.history_cap``, the
  *oldest* messages are trimmed. ``read_history(key, limit)`` returns the newest ``limit`` messages in
  chronological order (``limit=None``: all kept) and costs O(limit), not O(stream length). Appending to a stream
  whose key is a session id is activity of that session (see ``append_messages``).
* **Sessions.** ``update_session`` applies counter increments atomically (no read-modify-write across round
  trips): N concurrent calls with ``requests=1`` add exactly N. ``last_activity`` only moves forward. Each
  session has its own TTL (``settings.session_ttl``), refreshed on activity; nothing is stored in a global key
  whose TTL would make all sessions expire together.
* **Isolation.** Every key lives under ``settings.namespace``; any printable id (``:``, ``{``, ``*``, spaces,
  unicode) maps to its own keys, never collides with another id and never escapes the namespace.
* **Errors.** A backend raises :class:`~contextkit.errors.BackendUnavailable` for connection failures and
  timeouts (within its configured timeout) and :class:`~contextkit.errors.SerializationError` for stored data it
  cannot decode. It never returns a partial write: a multi-key update is atomic or not applied.

Optional abilities are declared in ``capabilities`` (see :class:`Capability`) and detected by the kit; a kit
call that needs a missing one raises :class:`~contextkit.errors.CapabilityNotSupported`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from contextkit.records import ArchiveEvent, Message, Session
from contextkit.validation import DEFAULT_LIMITS, Limits

__all__ = [
    "EMPTY_BLOB_TYPE",
    "Capability",
    "ArchiveSpec",
    "CheckpointBundle",
    "CheckpointRow",
    "CheckpointStore",
    "ColdStore",
    "HotStore",
    "SessionUpdate",
    "StoreSettings",
    "StoreStats",
    "Tombstone",
    "Typed",
    "WriteRow",
    "checkpoint_id_floor",
    "delta_ancestors",
]


class Capability(str, Enum):
    """Optional abilities a tier may declare in its ``capabilities`` set."""

    #: Keys expire by themselves after their TTL (otherwise the kit's cleanup removes idle sessions).
    TTL = "ttl"
    #: Data survives a restart of the application process.
    DURABLE = "durable"
    #: State is shared between processes that use the same server or file.
    SHARED = "shared"
    #: The store also implements :class:`CheckpointStore` (LangGraph checkpoints).
    CHECKPOINTS = "checkpoints"
    #: The store provides a durable outbox for the archiver (``outbox(max_pending=n)`` returns one).
    OUTBOX = "outbox"
    #: The store runs on a sharded cluster (every operation stays within one slot).
    CLUSTER = "cluster"
    #: ``append_messages(key, messages, archive=spec)`` also writes the messages' archive events (see
    #: :class:`ArchiveSpec`) into the outbox that ``outbox()`` returns, in the same step as the append (one atomic
    #: script where the server allows it), so the kit only notifies the archiver. Implies :attr:`OUTBOX`.
    ATOMIC_OUTBOX = "atomic_outbox"
    #: A cold tier whose ``write_events`` may run for several batches at once (each batch still atomic and
    #: idempotent): the archiver then keeps up to ``max_in_flight`` batches in flight, so this process builds the
    #: next batch while the server stores the previous one.
    CONCURRENT_WRITES = "concurrent_writes"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Settings every tier receives from the composer, whatever its backend.

    :param namespace: prefix that isolates one application's data (a key prefix, a table prefix or a schema).
    :param session_ttl: seconds a session (and its history, task context and conversation sessions) lives
        after its last activity.
    :param checkpoint_ttl: seconds a checkpoint thread lives after its last write.
    :param history_cap: most messages kept per stream in the hot tier; older ones are trimmed (and remain in
        the cold tier when one is configured).
    :param limits: validation limits (backends may use them to size buffers).
    :param timeout: seconds a single backend call may take before it raises ``BackendUnavailable``.
    """

    namespace: str = "contextkit"
    session_ttl: float = 86_400.0
    checkpoint_ttl: float = 604_800.0
    history_cap: int = 1000
    limits: Limits = DEFAULT_LIMITS
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """An atomic change to a session: counter increments, replaced fields and an activity time.

    ``fields`` may hold ``status``, ``user_id`` and ``metadata`` (replaced whole). Counters are added, never set.
    ``activity`` moves ``last_activity`` forward (never backward).
    """

    activity: datetime
    requests: int = 0
    errors: int = 0
    processing_time: float = 0.0
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ArchiveSpec:
    """The archive events an append writes into the store's own outbox (capability ``atomic_outbox``).

    Message ``i`` of the append becomes ``ArchiveEvent(table, key, {"message": stored.to_dict()},
    created_at=created_at[i], event_id=event_ids[i])`` with the ``seq`` the store assigned; the outbox entry is
    the JSON of that event's ``to_dict()``. The store writes the events only when the append continues a stream
    (its first seq is above 1): the first messages of a new stream are left to the caller, which may renumber
    them to continue an archived stream before archiving them (``stored[0].seq == 1`` tells it so).
    """

    table: str
    event_ids: tuple[str, ...]
    created_at: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts a tier reports for metrics. ``-1`` means the backend cannot count it cheaply."""

    sessions: int = 0
    active_sessions: int = 0
    messages: int = 0
    checkpoints: int = 0
    memory_bytes: int = -1


@runtime_checkable
class HotStore(Protocol):
    """The fast tier: sessions, history streams, task contexts, conversation sessions and seed checkpoints.

    Implementations are built by a factory registered through
    :func:`contextkit.hookspecs.contextkit_register_backends`; :meth:`open` does the I/O (connect, create schema).
    See the module docstring for the semantics every method must keep.
    """

    name: str
    capabilities: frozenset[str]

    async def open(self) -> None:
        """Connect and prepare storage; raise ``BackendUnavailable`` when the server cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release connections the store owns; idempotent. A client handed in by the caller stays open."""
        ...

    async def health(self) -> dict[str, Any]:
        """``{"status": "healthy"|"degraded"|"unhealthy", "latency_ms": float, ...}``; never raises, never leaks secrets."""
        ...

    def describe(self) -> dict[str, Any]:
        """What this store is (backend name, target without credentials, options); no I/O."""
        ...

    async def stats(self) -> StoreStats:
        """Counts of sessions, active sessions, messages and checkpoints, shared by every process of the namespace."""
        ...

    # -- sessions ---------------------------------------------------------------------------------------------
    async def put_session(self, session: Session) -> None:
        """Store ``session`` whole (create, or replace an existing record) and start its TTL."""
        ...

    async def get_session(self, session_id: str) -> Session | None:
        """The session, or None when it does not exist or expired."""
        ...

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session | None:
        """Apply ``update`` atomically and refresh the TTL; the updated session, or None if it does not exist."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and every key family of it: the record, its history stream, its task context, its
        seed checkpoints and writes (thread id == session id), and the conversation sessions registered under it
        with their streams. True if the session record existed."""
        ...

    async def scan_sessions(self, cursor: str | None, count: int) -> tuple[list[Session], str | None]:
        """About ``count`` sessions after ``cursor`` (None starts); returns the page and the next cursor (None at
        the end). Every session present for the whole scan is returned exactly once."""
        ...

    async def idle_sessions(self, before: datetime, limit: int) -> list[str]:
        """Ids of up to ``limit`` sessions whose ``last_activity`` is older than ``before``, oldest first; from an
        index, not a scan of every session."""
        ...

    # -- history streams --------------------------------------------------------------------------------------
    async def append_messages(self, key: str, messages: Sequence[Message]) -> list[Message]:
        """Append at the tail, assigning consecutive ``seq`` numbers atomically; trim the oldest beyond the cap;
        refresh the stream's TTL. Returns the messages as stored (with their ``seq``).

        When a session with id == ``key`` exists, appending also moves its ``last_activity`` forward (never
        backward) to the newest message's timestamp and refreshes its TTL, in the same atomic step, so a message
        needs no separate ``update_session``. A store declaring ``atomic_outbox`` also accepts
        ``archive: ArchiveSpec | None = None`` (keyword) and writes those events with the append."""
        ...

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        """The newest ``limit`` messages (all kept when None) in chronological order; ``[]`` for a missing stream."""
        ...

    async def history_length(self, key: str) -> int:
        """Number of messages kept in the stream."""
        ...

    async def history_bounds(self, key: str) -> tuple[int, int]:
        """``(first_seq, last_seq)`` of the kept messages, ``(0, 0)`` for an empty stream. ``last_seq`` is the
        highest seq ever assigned in the stream, so ``first_seq > 1`` tells that older messages were trimmed."""
        ...

    async def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Replace the whole stream atomically with ``messages`` (kept as given, seq included); used by
        compaction and by read-through rehydration."""
        ...

    # -- task contexts and conversation sessions --------------------------------------------------------------
    async def put_task_context(self, session_id: str, document: Mapping[str, Any]) -> None:
        """Store the task context document of a session (replacing any previous one)."""
        ...

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The stored task context document, or None."""
        ...

    async def put_conversation_session(self, session_key: str, document: Mapping[str, Any]) -> None:
        """Store a conversation session document under its key, registered under ``document["session_id"]`` so
        that deleting that session deletes it too."""
        ...

    async def get_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The stored conversation session document, or None."""
        ...

    # -- seed checkpoints (JSON documents, the seed's store_checkpoint / put_writes) -----------------------------
    async def put_checkpoint_document(self, thread_id: str, checkpoint_id: str, document: Mapping[str, Any]) -> None:
        """Store (or replace) a checkpoint document; the thread's TTL is ``settings.checkpoint_ttl``. Listing order
        is the order of first insertion."""
        ...

    async def get_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That checkpoint, or the most recently inserted one of the thread when ``checkpoint_id`` is None."""
        ...

    async def list_checkpoint_documents(self, thread_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` checkpoint documents of the thread, newest first, in O(limit)."""
        ...

    async def put_writes_document(
        self, thread_id: str, checkpoint_id: str, task_id: str, writes: Sequence[Any]
    ) -> None:
        """Append ``writes`` of one task to the checkpoint (a later call for the same task adds, never replaces)."""
        ...

    async def get_writes_documents(self, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        """``(task_id, write)`` pairs of the checkpoint in the order they were put."""
        ...

    # -- enumeration (export, import and migration walk the whole tier with these) -----------------------------
    async def list_conversation_sessions(self, session_id: str) -> list[tuple[str, dict[str, Any]]]:
        """``(session_key, document)`` of every live conversation session registered under ``session_id``
        (``document["session_id"] == session_id``, including one stored under the session id itself, as a
        ``user_to_mc`` session is), sorted by session key; ``[]`` when there is none. Costs O(number of
        conversation sessions of that session), never a scan of the tier."""
        ...

    def iter_data_owners(self) -> AsyncIterator[str]:
        """Every id that owns a live history stream, task context or conversation session document, whether or
        not a session record exists (messages may be appended to an id never created as a session), each at least
        once, in no particular order. Export and migration use it to find the data no session lists; it may walk
        every key of the namespace, so it is for bulk operations only."""
        ...

    async def scan_checkpoint_threads(self, cursor: str | None, count: int) -> tuple[list[str], str | None]:
        """About ``count`` ids of the live threads holding seed checkpoint documents or writes, after ``cursor``
        (None starts); returns the page and the next cursor (None at the end). Like :meth:`scan_sessions`: every
        thread present for the whole scan is returned exactly once, from an index (never a walk of every key of
        the tier), and a page may be empty before the end. LangGraph checkpoint threads are not included (list
        those with :meth:`CheckpointStore.cp_list`)."""
        ...

    async def read_checkpoint_thread(
        self, thread_id: str
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, list[tuple[str, Any]]]]]:
        """Every seed checkpoint of a thread: ``(documents, writes)`` where ``documents`` is ``[(checkpoint_id,
        document)]`` in order of first insertion (the order :meth:`list_checkpoint_documents` reverses) and
        ``writes`` is ``[(checkpoint_id, [(task_id, write), ...])]`` sorted by checkpoint id, each list in put
        order, for every checkpoint id that has writes (with or without a document). ``([], [])`` for a missing
        or expired thread."""
        ...


@runtime_checkable
class ColdStore(Protocol):
    """The permanent tier: an archive of :class:`~contextkit.records.ArchiveEvent` rows in six tables, with reads.

    Writes are idempotent on ``event_id`` (a retried batch never duplicates a row) and batched; reads return what
    was archived even after the hot tier lost it. The payload of each table:

    * ``context_sessions`` (key: session id): ``{"event_type": "create"|"update"|"end"|"delete", "session": Session.to_dict()}``
    * ``context_conversations`` (key: stream key): ``{"message": Message.to_dict()}``
    * ``context_task_contexts`` (key: session id): ``{"context": document}``
    * ``context_checkpoints`` (key: thread id): ``{"checkpoint_id": str, "document": dict}``
    * ``context_checkpoint_writes`` (key: thread id): ``{"checkpoint_id": str, "task_id": str, "writes": list}``
    * ``context_conversation_sessions`` (key: session key): ``{"session": ConversationSession.to_dict()}``

    ``context_checkpoints`` and ``context_checkpoint_writes`` also hold the LangGraph checkpoints
    :class:`contextkit.langgraph.ContextKitSaver` archives, told apart by ``payload["kind"]`` (``"langgraph"``,
    and ``"langgraph-delete"`` for a deleted thread's tombstone; seed payloads have no ``kind``). Their format is
    in :mod:`contextkit.checkpoint_archive`. :meth:`read_checkpoint_document` never returns them.
    """

    name: str
    capabilities: frozenset[str]

    async def open(self) -> None:
        """Connect and run pending schema migrations; raise ``BackendUnavailable`` when unreachable."""
        ...

    async def aclose(self) -> None:
        """Release connections the store owns; idempotent."""
        ...

    async def health(self) -> dict[str, Any]:
        """Like :meth:`HotStore.health`."""
        ...

    def describe(self) -> dict[str, Any]:
        """Like :meth:`HotStore.describe`."""
        ...

    async def write_events(self, events: Sequence[ArchiveEvent]) -> None:
        """Write a batch, idempotently on ``event_id``; raise ``BackendUnavailable`` if it was not (fully) stored,
        so the archiver retries the batch."""
        ...

    async def read_session(self, session_id: str) -> Session | None:
        """The session as of its newest archived event, or None (also when that newest event is a ``delete``:
        read-through must not bring back a session that was deleted on purpose)."""
        ...

    async def read_history(self, key: str, limit: int | None, before_seq: int | None = None) -> list[Message]:
        """The newest ``limit`` archived messages of the stream with ``seq < before_seq`` (when given), in
        chronological order, each message once."""
        ...

    async def read_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The newest archived task context document, or None."""
        ...

    async def read_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The newest archived conversation session document, or None."""
        ...

    async def read_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """An archived seed checkpoint document (the newest when ``checkpoint_id`` is None), or None."""
        ...

    async def read_langgraph_checkpoint(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointBundle | None:
        """An archived LangGraph checkpoint with all its blobs and its writes (the newest of ``(thread, ns)`` by
        id when ``checkpoint_id`` is None), or None; a checkpoint the thread's ``langgraph-delete`` tombstone
        hides reads None, so a deleted thread never comes back through read-through."""
        ...

    async def list_langgraph_checkpoints(
        self, thread_id: str, checkpoint_ns: str | None, *, before: str | None = None, limit: int | None = None
    ) -> list[CheckpointBundle]:
        """Archived LangGraph checkpoints of the thread (in ``checkpoint_ns``, or every namespace for None) with
        an id below ``before``, newest first (descending id), each checkpoint once, at most ``limit``, without the
        ones the thread's tombstone hides."""
        ...

    async def langgraph_threads_of_runs(self, run_ids: Sequence[str]) -> list[str]:
        """The threads holding archived LangGraph checkpoints whose ``metadata["run_id"]`` is one of ``run_ids``
        (sorted, each once; tombstones do not matter here). ``adelete_for_runs`` archives a runs tombstone for
        each, also for threads only the archive still holds."""
        ...

    async def count_events(self, table: str, key: str | None = None) -> int:
        """Rows in ``table`` (for ``key`` when given), each event counted once."""
        ...


# -- LangGraph checkpoint storage ------------------------------------------------------------------------------

Typed = tuple[str, bytes]
"""A value serialized by a LangGraph serde: ``(type tag, bytes)``, stored verbatim."""

#: Type tag of the blob a saver writes for a channel that has a version but no value.
EMPTY_BLOB_TYPE = "empty"

# 100-ns ticks between the Gregorian epoch (UUID v1/v6 time) and the Unix epoch.
_UUID_EPOCH_OFFSET = 0x01B21DD213814000


def checkpoint_id_floor(unix_time: float) -> str:
    """The greatest UUID v6 string of ``unix_time``: every checkpoint id LangGraph made before is lower.

    LangGraph's checkpoint ids are UUID v6, whose text sorts by creation time, so a deleted thread can tell a
    late write of a run that started before the delete (id below the floor) from a new run (id above it).
    """
    ticks = int(unix_time * 10_000_000) + _UUID_EPOCH_OFFSET
    high = ticks >> 12
    return f"{high >> 16:08x}-{high & 0xFFFF:04x}-6{ticks & 0xFFF:03x}-ffff-ffffffffffff"


@dataclass(slots=True)
class Tombstone:
    """What a deleted thread remembers until ``expires_at`` (the thread TTL after the delete).

    A put or a write is *stale*, and dropped, when it belongs to the run that was going when the thread was
    deleted: its checkpoint id (or its parent's) is at most ``floor`` (the newest id stored at the delete, and
    the delete's time), or is one of the ``dead`` ids already dropped (a run that keeps going after the delete
    chains new ids onto dropped ones).
    """

    floor: str
    expires_at: float
    dead: set[str] = field(default_factory=set)

    def stale_put(self, checkpoint_id: str, parent_id: str | None) -> bool:
        """True when a put of ``checkpoint_id`` (child of ``parent_id``) is a late write of the deleted thread."""
        if self.stale_id(checkpoint_id):
            return True
        return parent_id is not None and self.stale_id(parent_id)

    def stale_id(self, checkpoint_id: str) -> bool:
        """True when ``checkpoint_id`` was made before the delete or chains onto a dropped checkpoint."""
        return checkpoint_id <= self.floor or checkpoint_id in self.dead


def delta_ancestors(
    newest: CheckpointRow,
    load: Callable[[str], CheckpointRow | None],
    has_value: Callable[[CheckpointRow, str], bool],
) -> list[str]:
    """Ids of the ancestors of ``newest`` that a ``DeltaChannel`` rebuild reads, nearest first.

    LangGraph stores a ``DeltaChannel`` value only every ``snapshot_frequency`` steps; in between, the value is
    rebuilt from the writes of the ancestors back to the nearest one holding a value (a ``_DeltaSnapshot``).
    ``metadata["counters_since_delta_snapshot"]`` names the delta channels that have changed since their
    snapshot. The walk follows ``parent_checkpoint_id`` until each of those channels has a stored value
    (``has_value(row, channel)``: a blob that is not the empty marker) or the chain ends.
    """
    counters = newest.metadata.get("counters_since_delta_snapshot") or {}
    needed = {channel for channel in counters if not has_value(newest, channel)}
    kept: list[str] = []
    parent = newest.parent_checkpoint_id
    seen = {newest.checkpoint_id}
    while needed and parent is not None and parent not in seen:
        row = load(parent)
        if row is None:
            break
        seen.add(parent)
        kept.append(parent)
        needed = {channel for channel in needed if not has_value(row, channel)}
        parent = row.parent_checkpoint_id
    return kept



@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """One LangGraph checkpoint as stored: the serialized checkpoint without channel values, its JSON metadata,
    its parent, and the channel versions it points at (the blobs hold the values)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: Typed
    metadata: Mapping[str, Any]
    channel_versions: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class WriteRow:
    """One pending write of a task: keyed by ``(task_id, idx)`` within its checkpoint."""

    task_id: str
    idx: int
    channel: str
    value: Typed
    task_path: str = ""


@dataclass(frozen=True, slots=True)
class CheckpointBundle:
    """What a read returns: the row, the blobs of its channel versions (``{channel: typed}``) and its writes."""

    row: CheckpointRow
    blobs: Mapping[str, Typed]
    writes: Sequence[WriteRow]


@runtime_checkable
class CheckpointStore(Protocol):
    """Storage for :class:`contextkit.langgraph.ContextKitSaver`; a hot store declaring ``checkpoints`` implements it.

    Blobs are keyed ``(thread, ns, channel, version)`` (versions are ``str``; the saver converts int versions) and
    written only for ``new_blobs``; older versions are reused; a channel with a version but no value has the blob
    ``(EMPTY_BLOB_TYPE, b"")``. The order of ``CheckpointBundle.writes`` is unspecified (the saver sorts them).
    Returned rows may be shared with the store: callers must not mutate them. Writes are keyed ``(task_id, idx)``:
    ``upsert=True`` replaces, otherwise an existing key is kept.
    Listing is newest first (descending ``checkpoint_id``) and O(limit) per thread. A thread's TTL
    (``settings.checkpoint_ttl``) is refreshed on every write. A write to a thread that ``cp_delete_thread``
    removed must not bring back the checkpoints deleted before it.
    """

    async def cp_put(self, row: CheckpointRow, new_blobs: Mapping[tuple[str, str], Typed]) -> None:
        """Store a checkpoint and the blobs of its changed channels (``{(channel, version): typed}``)."""
        ...

    async def cp_put_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, writes: Sequence[WriteRow], upsert: bool
    ) -> None:
        """Store pending writes of a checkpoint (see the class docstring for the key rules)."""
        ...

    async def cp_get(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> CheckpointBundle | None:
        """That checkpoint, or the newest of ``(thread, ns)`` when ``checkpoint_id`` is None."""
        ...

    def cp_list(
        self,
        thread_id: str | None,
        checkpoint_ns: str | None,
        *,
        checkpoint_id: str | None = None,
        before: str | None = None,
        limit: int | None = None,
        metadata_filter: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[CheckpointBundle]:
        """Matching checkpoints, newest first (with ``thread_id=None``, newest first within each thread).
        ``thread_id=None`` lists every thread; ``checkpoint_ns=None`` every namespace; ``before`` keeps ids lower
        than it; ``metadata_filter`` needs each key to be equal."""
        ...

    async def cp_delete_thread(self, thread_id: str) -> None:
        """Remove every checkpoint, blob and write of the thread in every namespace, and keep a
        :class:`Tombstone` for ``checkpoint_ttl``: a later put or write is dropped when its checkpoint id (or
        parent id) is ``<=`` the floor (the newest stored id, or :func:`checkpoint_id_floor` of the delete time)
        or chains onto a dropped id. Writes for a checkpoint not stored yet are otherwise kept."""
        ...

    async def cp_delete_for_runs(self, run_ids: Sequence[str]) -> Collection[str] | None:
        """Remove the checkpoints (and their writes) whose ``metadata["run_id"]`` is in ``run_ids``; return the ids
        of the threads that lost checkpoints (the saver archives a tombstone for each, so the cold tier hides
        them too), or None when the store cannot tell (then nothing is archived)."""
        ...

    async def cp_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of a thread, in every namespace, to another thread id."""
        ...

    async def cp_prune(self, thread_ids: Sequence[str], keep_latest: bool) -> None:
        """``keep_latest``: keep the newest checkpoint per namespace plus :func:`delta_ancestors` of it, with their
        writes and referenced blobs; drop a subgraph namespace (one containing ``':'``) whose newest row's
        ``metadata["parents"][""]`` was a root checkpoint that is now pruned; set ``parent_checkpoint_id=None``
        on kept rows whose parent was pruned. ``keep_latest=False`` is :meth:`cp_delete_thread`."""
        ...
