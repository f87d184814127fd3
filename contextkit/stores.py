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
  trips): N concurrent calls with ``requests=1`` add exactly N. A call whose counters would leave what every tier
  stores (a ``total_processing_time`` that is not finite, a count beyond a signed 64-bit integer) raises
  :class:`~contextkit.errors.SerializationError` with nothing applied (:meth:`SessionUpdate.counters_after`), so a
  retry never counts twice. ``last_activity`` only moves forward. Each
  session has its own TTL (``settings.session_ttl``), refreshed on activity; nothing is stored in a global key
  whose TTL would make all sessions expire together.
* **Isolation.** Every key lives under ``settings.namespace``; any printable id (``:``, ``{``, ``*``, spaces,
  unicode) maps to its own keys, never collides with another id and never escapes the namespace.
* **Errors.** A backend raises :class:`~contextkit.errors.BackendUnavailable` for connection failures and
  timeouts (within its configured timeout) and :class:`~contextkit.errors.CorruptData` for stored data it
  cannot decode (:mod:`contextkit.backend.documents`). It never returns a partial write: a multi-key update is
  atomic or not applied.

* **Tiering** (only when ``settings.archived``: a cold tier archives this hot tier; the tiered layer,
  :mod:`contextkit.tiered`, relies on every point, and the hot suite checks each one).

  - *Owners and versions.* Every record belongs to an *owner*: the id it is stored under (a session id, a stream
    key, a conversation session key, a seed checkpoint thread id; a session's record, history, task context and
    the seed checkpoints of the thread with its id share one owner). The store keeps per owner a small *meta*
    record: the owner's version counter, its stream's highest seq, whether it is deleted (a tombstone), and
    whatever the store needs to tell an up-to-date copy from a possibly older one. Each write of a session, task
    context, conversation session, seed checkpoint document or writes, and each delete, takes the next version
    of its owner *inside its atomic step* and stores it with the record; its archive event (written in the same
    step, see ``atomic_outbox``) carries it, so the archive can keep the highest version per record.
  - *Unknown owners.* A call on an owner the store has no meta for (never written, expired, evicted, lost in a
    restart), or whose meta may be older than the archive (a server restored from an older snapshot, a file
    declared restored: :class:`RestoreAware`), raises :class:`~contextkit.errors.OwnerUnknown` before writing
    anything. The tiered layer then asks the archive and calls :meth:`HotStore.restore_owner`, and calls again.
    Without ``archived`` an unknown owner is simply new (versions and seqs start at 1) and nothing raises
    ``OwnerUnknown``.
  - *Deletes are writes.* ``delete_session`` leaves a tombstone: the meta stays (deleted, with its version and
    the stream's highest seq) for ``settings.tombstone_ttl``; reads of the owner answer "nothing" without
    raising, a new session may be created on it (its version continues above the delete) and a new message
    continues the stream's numbering.
  - *Put-if-absent.* :meth:`HotStore.restore_owner` writes only what the hot tier lacks, so writes racing a
    read-through apply on top of the restored state and are never overwritten by it.

Optional abilities are declared in ``capabilities`` (see :class:`Capability`) and implemented as the
runtime-checkable protocols of :data:`CAPABILITY_PROTOCOLS` (:class:`CheckpointStore`, :class:`OutboxProvider`);
the kit detects them with ``isinstance``, never by probing attributes, and a kit call that needs a missing one
raises :class:`~contextkit.errors.CapabilityNotSupported`. Abilities without a capability (:class:`RestoreAware`,
:class:`DeltaHistoryStore`) are detected with ``isinstance`` alone. A method a protocol declares is required: the
kit calls it without asking first. :func:`capability_mismatches` checks that what a store declares matches what it
implements (the hot and cold suites run it).
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from contextkit.backend.tables import ArchiveTables
from contextkit.errors import InvalidInput, SerializationError
from contextkit.records import ArchiveEvent, Message, Session, new_event_id, utcnow
from contextkit.validation import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:  # the archiver imports this module; the outbox protocol is only named in annotations here
    from contextkit.archiver import Outbox

__all__ = [
    "DEFERRED_MESSAGE_EVENTS",
    "EMPTY_BLOB_TYPE",
    "Capability",
    "ArchiveSpec",
    "CAPABILITY_PROTOCOLS",
    "CheckpointBundle",
    "CheckpointRow",
    "CheckpointThreadsStore",
    "CheckpointUsageStore",
    "CheckedPutStore",
    "CheckpointStore",
    "ColdStore",
    "DeltaHistoryStore",
    "DeltaReadStore",
    "DeltaStep",
    "DeltaWalk",
    "EventHead",
    "HotStore",
    "KEEP_NEWEST",
    "MAX_COUNTER",
    "MIN_COUNTER",
    "OutboxProvider",
    "OwnerState",
    "RestoreAware",
    "RetentionPolicy",
    "SessionUpdate",
    "SharedBlobStore",
    "StoreSettings",
    "StoreStats",
    "ThreadBytes",
    "Tombstone",
    "Typed",
    "Versioned",
    "WriteRow",
    "capability_mismatches",
    "checkpoint_id_floor",
    "checkpoint_id_time",
    "delta_ancestors",
    "delta_seed",
    "max_key_bytes",
    "missing_blobs_message",
    "packed_id",
    "unpacked_id",
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
    #: The store provides the archiver's outbox (:class:`OutboxProvider`: ``outbox(max_pending=n)`` returns one):
    #: its own, so its writes can put their archive events into it in the same atomic step (durable when the store
    #: is).
    OUTBOX = "outbox"
    #: The store runs on a sharded cluster (every operation stays within one slot).
    CLUSTER = "cluster"
    #: Every write method takes ``archive=`` (an :class:`EventHead`, or an :class:`ArchiveSpec` for appends) and
    #: then writes the write's archive event (with the version it assigned) into the outbox that ``outbox()``
    #: returns, in the same atomic step as the write (one script, one transaction, one critical section), so the
    #: kit only notifies the archiver. Implies :attr:`OUTBOX`. A cold tier needs a hot tier with it.
    ATOMIC_OUTBOX = "atomic_outbox"
    #: ``append_messages`` also takes :data:`DEFERRED_MESSAGE_EVENTS`, an :class:`ArchiveSpec` naming no ids or
    #: times: the store gives each message's event a new id (:func:`~contextkit.records.new_event_id`, drawn once)
    #: and the message's timestamp as its time, as late as it likes (an in-process outbox does it when the archiver
    #: reads the event), so the kit draws nothing on the hot path. Implies :attr:`ATOMIC_OUTBOX`.
    DEFERRED_EVENTS = "deferred_events"
    #: A cold tier whose ``write_events`` may run for several batches at once (each batch still atomic and
    #: idempotent): the archiver then keeps up to ``max_in_flight`` batches in flight, so this process builds the
    #: next batch while the server stores the previous one.
    CONCURRENT_WRITES = "concurrent_writes"
    #: ``cp_put`` also takes ``requires=``: the blobs the put relies on without sending them; when one is not
    #: stored, the store writes nothing and raises :class:`~contextkit.errors.MissingBlobs`
    #: (:class:`CheckedPutStore`). A hot tier that can lose data under a running graph (a restart without
    #: persistence, an eviction, an expiry) should declare it: without it, a checkpoint written after such a loss
    #: reads back without the values of the channels it did not change.
    CHECKED_PUTS = "checked_puts"


def max_key_bytes(store: object) -> int | None:
    """The longest id, in UTF-8 bytes, that ``store`` (a hot or cold tier) can store and index, as it declares it
    in its optional ``max_key_bytes`` attribute next to its capabilities; None when it has no limit of its own
    below ``Limits.max_id_length``.

    A declared limit is what the tier's indexes can hold (PostgreSQL's btree rows, for one), so the kit refuses
    a longer id at the edge (:class:`~contextkit.errors.LimitExceeded` naming the tier and the limit) instead of
    accepting a write the archive can never store.
    """
    value = getattr(store, "max_key_bytes", None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TypeError(f"{type(store).__name__}.max_key_bytes must be a positive int or None, got {value!r}")
    return value


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
    :param archived: a cold tier archives this hot tier: the store raises ``OwnerUnknown`` for owners it does not
        know and keeps tombstones (see the module docstring, "Tiering").
    :param tombstone_ttl: seconds a deleted owner's tombstone lives (``archived`` only): longer than the archive
        may lag behind, so a delete is archived before its tombstone goes.
    """

    namespace: str = "contextkit"
    session_ttl: float = 86_400.0
    checkpoint_ttl: float = 604_800.0
    history_cap: int = 1000
    limits: Limits = DEFAULT_LIMITS
    timeout: float = 5.0
    archived: bool = False
    tombstone_ttl: float = 604_800.0

    @property
    def owner_window(self) -> float:
        """Seconds after which an owner's meta may have expired: the shortest lifetime of a meta record (a session
        family, a checkpoint thread or a tombstone). An archive event older than this may belong to an owner the
        hot tier no longer knows, so the archive must hold it before the archive is asked about any owner."""
        return min(self.session_ttl, self.checkpoint_ttl, self.tombstone_ttl)


#: The range of a session's integer counters (``request_count``, ``error_count``): a signed 64-bit integer.
MAX_COUNTER = 2**63 - 1
MIN_COUNTER = -(2**63)


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

    def __post_init__(self) -> None:
        # NaN or infinity added to a total makes it NaN or infinite for good: refused before any store sees it.
        if not math.isfinite(self.processing_time):
            raise InvalidInput(f"processing_time must be a finite number, got {self.processing_time!r}")

    def counters_after(
        self, session_id: str, request_count: int, error_count: int, total_processing_time: float
    ) -> tuple[int, int, float]:
        """The session's counters once this update is added to the stored ones, or SerializationError when a result
        is not finite or leaves a signed 64-bit integer (what SQLite, Redis' HINCRBY and the cold tiers' BIGINT
        columns hold). A store calls it inside its atomic step, before it writes anything (the Redis scripts make
        the same check in Lua)."""
        requests = int(request_count) + self.requests
        errors = int(error_count) + self.errors
        total = float(total_processing_time) + self.processing_time
        # Only a counter this update changes is checked: one already out of range (written before this check
        # existed) does not block updates of the others.
        for name, value, added in (("request_count", requests, self.requests), ("error_count", errors, self.errors)):
            if added and not MIN_COUNTER <= value <= MAX_COUNTER:
                raise SerializationError(
                    f"session {session_id[:200]!r}: {name} would become {value}, beyond a signed 64-bit integer; "
                    "nothing was applied"
                )
        if self.processing_time and not math.isfinite(total):
            raise SerializationError(
                f"session {session_id[:200]!r}: total_processing_time would become {total!r} "
                f"({float(total_processing_time)!r} + {self.processing_time!r}); nothing was applied"
            )
        return requests, errors, total


@dataclass(frozen=True, slots=True)
class ArchiveSpec:
    """The archive events an append writes into the store's own outbox (capability ``atomic_outbox``).

    Message ``i`` of the append becomes ``ArchiveEvent(table, key, {"message": stored.to_dict()},
    created_at=created_at[i], event_id=event_ids[i])`` with the ``seq`` the store assigned
    (:func:`contextkit.tiered.events.message_event`), written in the same atomic step as the append.
    """

    table: str
    event_ids: tuple[str, ...]
    created_at: tuple[datetime, ...]


#: The :class:`ArchiveSpec` of an append whose events' ids and times the store draws itself (capability
#: ``deferred_events``): each message's event gets a new id and the message's timestamp. The kit passes it only to
#: a store with the capability; to the others it passes its own ids and times.
DEFERRED_MESSAGE_EVENTS = ArchiveSpec(ArchiveTables.CONVERSATIONS, (), ())


@dataclass(frozen=True, slots=True)
class EventHead:
    """What a write asks of a hot store with ``atomic_outbox``: write the archive event of this write into the
    outbox, in the same atomic step, under this id and time (and, for a session, this ``event_type``: ``create``,
    ``update``, ``end``, ``expire``). The store builds the payload from what it stored, with the version it
    assigned, through :mod:`contextkit.tiered.events` (one format for every store)."""

    event_type: str = ""
    event_id: str = field(default_factory=new_event_id)
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Versioned:
    """A document with the version its owner gave its last write."""

    version: int
    document: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OwnerState:
    """What the archive holds of one owner: what :meth:`HotStore.restore_owner` puts back into a hot tier that
    lost it, and what the tiered layer learns before it numbers, versions or deletes anything of the owner.

    :param owner: the owner id.
    :param version: the highest version archived for any record of the owner, a delete included (0: none).
    :param last_seq: the highest seq archived in the owner's stream, or the stream's highest seq at its last
        delete, whichever is higher (0: none).
    :param deleted: the owner's newest archived write is a delete: it is restored as a tombstone.
    :param session: the session as of its newest archived snapshot after the last delete (``version`` set), or None.
    :param task_context: likewise the task context document, or None.
    :param conversation: likewise the conversation session document stored under the owner id, or None.
    :param history: the newest archived messages of the owner's stream (at most the hot tier's cap, ascending
        seq), put back with it so a restored stream reads whole (the tiered layer fills it in).
    """

    owner: str
    version: int = 0
    last_seq: int = 0
    deleted: bool = False
    session: Session | None = None
    task_context: Versioned | None = None
    conversation: Versioned | None = None
    history: tuple[Message, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the archive holds nothing of the owner."""
        return (
            self.version == 0
            and self.last_seq == 0
            and not self.deleted
            and self.session is None
            and self.task_context is None
            and self.conversation is None
        )


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

    # -- tiering ----------------------------------------------------------------------------------------------
    async def restore_owner(self, state: OwnerState) -> None:
        """Put back what the archive holds of an owner, only where the hot tier lacks it, atomically.

        When the store has no meta for ``state.owner``: create it (version ``state.version``, stream seq
        ``state.last_seq``, a tombstone for ``settings.tombstone_ttl`` when ``state.deleted``) and store the
        session, task context, conversation session and history of ``state`` with their versions and seqs (the
        session family TTL, the cap applied; the session goes back into the idle index like any stored session,
        whatever its status, so a later cleanup can forget it again).
        When the meta exists and is up to date (another caller restored it, or wrote first): change nothing, so
        writes that raced this read-through are kept. When the meta exists but may be older than the archive (see
        :class:`~contextkit.errors.OwnerUnknown` ``stale``): raise its counters to at least ``state``'s, replace
        each record whose archived version is higher (a tombstone when the archive's newest write is a delete; the
        kept history when the archive's stream is ahead of it), and mark the meta up to date."""
        ...

    # -- sessions ---------------------------------------------------------------------------------------------
    async def put_session(
        self, session: Session, *, task_context: Mapping[str, Any] | None = None, archive: EventHead | None = None
    ) -> Session:
        """Store ``session`` whole (create, or replace an existing record; a tombstoned owner lives again) and start
        its TTL; with ``task_context``, store that document for it in the same atomic step. Returns the session
        as stored, with the version its owner gave the write (the task context takes the next one). With
        ``archive`` (``atomic_outbox``), the session's event (``archive.event_type``) and the task context's event
        go to the outbox in the same step. Raises ``OwnerUnknown`` (``archived`` only) before writing anything."""
        ...

    async def get_session(self, session_id: str) -> Session | None:
        """The session (with its version), or None when it does not exist, expired or was deleted. Raises
        ``OwnerUnknown`` (``archived`` only) when the owner is unknown or may be stale."""
        ...

    async def update_session(
        self, session_id: str, update: SessionUpdate, *, archive: EventHead | None = None
    ) -> Session | None:
        """Apply ``update`` atomically under the owner's next version and refresh the TTL; the updated session, or
        None if it does not exist (nothing written). With ``archive``, its event goes to the outbox in the same
        step. Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def delete_session(
        self, session_id: str, *, archive: EventHead | None = None, evict: bool = False
    ) -> bool:
        """Remove the owner and every key family of it: the session record, its history stream, its task context,
        its seed checkpoints and writes (thread id == session id), and the conversation sessions registered under
        it with their streams. True if the session record existed.

        With ``settings.archived`` each removed owner (the session's, and each registered conversation session's)
        keeps a tombstone (see the module docstring) under its next version, and with ``archive`` its delete event
        (:func:`contextkit.tiered.events.delete_event`) goes to the outbox in the same step as its removal; an
        owner that holds nothing and is already a tombstone is left as it is (no second event). Raises
        ``OwnerUnknown`` (``archived`` only) for an owner it does not know, before removing anything.

        ``evict=True`` forgets the owners instead, as if they had expired: no tombstone, no event, the meta goes
        too (cleanup of idle sessions, whose last state the archive already holds)."""
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
    async def append_messages(
        self, key: str, messages: Sequence[Message], *, archive: ArchiveSpec | None = None
    ) -> list[Message]:
        """Append at the tail, assigning consecutive ``seq`` numbers atomically (continuing above the highest seq
        the stream ever had, a deleted stream's included); trim the oldest beyond the cap; refresh the stream's
        TTL. Returns the messages as stored (with their ``seq``).

        When a session with id == ``key`` exists, appending also moves its ``last_activity`` forward (never
        backward) to the newest message's timestamp and refreshes its TTL, in the same atomic step, so a message
        needs no separate ``update_session``. With ``archive`` (``atomic_outbox``) the messages' events go to the
        outbox in the same step. Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        """The newest ``limit`` messages (all kept when None) in chronological order; ``[]`` for a missing stream.
        Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def history_length(self, key: str) -> int:
        """Number of messages kept in the stream. Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def history_bounds(self, key: str) -> tuple[int, int]:
        """``(first_seq, last_seq)``: the seq of the oldest kept message (0 when none is kept) and the highest seq
        ever assigned in the stream (0 for a new one), so ``first_seq > 1``, or ``first_seq == 0 < last_seq``,
        tells that older messages are only in the archive. Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Replace the whole stream atomically with ``messages`` (kept as given, seq included; the stream's
        highest seq never goes down); used by compaction and import. Nothing is archived. Raises ``OwnerUnknown``
        (``archived`` only)."""
        ...

    async def delete_mark(self, owner: str) -> tuple[int, int]:
        """``(version, last_seq)`` of the owner's last delete while the store still holds its meta, ``(0, 0)``
        when it knows of none: read-through asks the archive for no message at or below that seq and, while it is
        set, for no seed checkpoint document the hot tier lacks (the delete may still wait in the outbox). Raises
        ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def backfill_history(self, key: str, older: Sequence[Message]) -> int:
        """Read-through's refill: insert the archived messages ``older`` (ascending seq) that are older than every
        message the stream keeps (all of them into an empty stream) before them, atomically, keeping at most the
        cap (the newest). Never displaces or renumbers a kept message, so appends racing it are kept; returns how
        many were inserted. Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    # -- task contexts and conversation sessions --------------------------------------------------------------
    async def put_task_context(
        self, session_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store the task context document of a session (replacing any previous one) under the owner's next
        version. With ``archive``, its event goes to the outbox in the same step. Raises ``OwnerUnknown``."""
        ...

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The stored task context document, or None. Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def put_conversation_session(
        self, session_key: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store a conversation session document under its key (the owner) with the owner's next version,
        registered under ``document["session_id"]`` so that deleting that session deletes it too. With
        ``archive``, its event goes to the outbox in the same step. Raises ``OwnerUnknown`` (``archived`` only)
        for an unknown ``session_key``."""
        ...

    async def get_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The stored conversation session document, or None. Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    # -- seed checkpoints (JSON documents, the seed's store_checkpoint / put_writes) -----------------------------
    async def put_checkpoint_document(
        self, thread_id: str, checkpoint_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store (or replace) a checkpoint document under the owner's next version; the thread's TTL is
        ``settings.checkpoint_ttl``. Listing order is the order of first insertion. With ``archive``, its event
        goes to the outbox in the same step. Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def get_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That checkpoint, or the most recently inserted one of the thread when ``checkpoint_id`` is None. Raises
        ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def list_checkpoint_documents(self, thread_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` checkpoint documents of the thread, newest first, in O(limit). Raises ``OwnerUnknown``
        (``archived`` only)."""
        ...

    async def put_writes_document(
        self,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[Any],
        *,
        archive: EventHead | None = None,
    ) -> None:
        """Append ``(task_id, write)`` pairs to a checkpoint's writes (never replaces) under the owner's next
        version; the thread's TTL is ``settings.checkpoint_ttl``. With ``archive``, their event goes to the outbox
        in the same step. Raises ``OwnerUnknown`` (``archived`` only)."""
        ...

    async def get_writes_documents(self, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        """``(task_id, write)`` pairs of a checkpoint in the order they were put. Raises ``OwnerUnknown``
        (``archived`` only)."""
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
class RestoreAware(Protocol):
    """An optional ability of a hot tier that cannot notice by itself that it was put back to an older copy of
    itself (a SQLite file copied back from a backup), so the operator declares it (``contextkit hot-restored``,
    :meth:`contextkit.ContextKit.hot_restored`). Detected with ``isinstance``. A hot tier that notices a restore by
    itself (Redis: a new server run) needs no declaration."""

    async def mark_restored(self, backup: str | None = None) -> int:
        """Raise the hot tier's restore epoch: every owner written before is then treated as possibly older than
        the archive (``OwnerUnknown(stale=True)``, archived stores only) and reconciled with it at its next call
        (see :meth:`HotStore.restore_owner`). With ``backup`` (what a backup is depends on the backend: a file
        path for SQLite), first put the hot tier back to it, with the new epoch in the same step. Returns the new
        epoch. Raises :class:`~contextkit.errors.InvalidInput` for a backup it cannot use."""
        ...


@runtime_checkable
class OutboxProvider(Protocol):
    """Optional (capability ``outbox``): a hot tier that provides the archiver's outbox, so its writes can put
    their archive events into it in their own atomic step (capability ``atomic_outbox``). Detected with
    ``isinstance``. A store whose class has the method but that cannot provide one in this configuration (a SQLite
    database in memory) does not declare ``outbox`` and raises
    :class:`~contextkit.errors.CapabilityNotSupported` from it."""

    def outbox(self, max_pending: int = ..., **options: Any) -> Outbox:
        """The outbox (built once: later calls return the same one, or one over the same storage), bounded by
        ``max_pending`` events. ``options`` are the backend's own (the memory tier: ``path``,
        ``max_pending_bytes``); a backend without options declares none and Python refuses any."""
        ...


@runtime_checkable
class ColdStore(Protocol):
    """The permanent tier: an archive of :class:`~contextkit.records.ArchiveEvent` rows in six tables, with reads.

    Writes are idempotent on ``event_id`` (a retried batch never duplicates a row) and batched; reads return what
    was archived even after the hot tier lost it. The payload of each table:

    * ``context_sessions`` (key: session id): ``{"event_type": "create"|"update"|"end"|"expire"|"migrate",
      "session": Session.to_dict()}``, or an owner's delete: ``{"event_type": "delete", "session":
      Session.to_dict() | None, "last_seq": int}`` (the key may be any owner: a conversation session key too)
    * ``context_conversations`` (key: stream key): ``{"message": Message.to_dict()}``
    * ``context_task_contexts`` (key: session id): ``{"context": document}``
    * ``context_checkpoints`` (key: thread id): ``{"checkpoint_id": str, "document": dict}``
    * ``context_checkpoint_writes`` (key: thread id): ``{"checkpoint_id": str, "task_id": str, "writes": list}``
    * ``context_conversation_sessions`` (key: session key): ``{"session": ConversationSession.to_dict()}``

    ``context_checkpoints`` and ``context_checkpoint_writes`` also hold the LangGraph checkpoints
    :class:`contextkit.langgraph.ContextKitSaver` archives, told apart by ``payload["kind"]`` (``"langgraph"``,
    and ``"langgraph-delete"`` for a deleted thread's tombstone; seed payloads have no ``kind``). Their format is
    in :mod:`contextkit.checkpoint_archive`. :meth:`read_checkpoint_document` never returns them.

    **Versions and deletes** (the cold suite checks them). Every event carries the ``version`` its owner's hot
    tier gave it (:attr:`ArchiveEvent.version`; 0 for events archived before versions existed). Per record (a
    session, a task context, a conversation session document, a seed checkpoint document: the key, plus the
    checkpoint id for the latter) the archive answers with the row of the highest ``(version, created_at, write
    order)``: the order of the hot tier, never of clocks, except among version-0 rows. An owner's delete (a
    ``context_sessions`` row with ``event_type == "delete"``) hides every record of its key (in every table but
    the LangGraph rows) that is lower in that order, and every message of the key's stream with
    ``seq <= payload["last_seq"]``; a record written after it (higher version) is visible again. The helpers of
    :mod:`contextkit.tiered.cold_rules` state these rules once for every backend.
    """

    name: str
    capabilities: frozenset[str]
    # Optional: ``max_key_bytes: int | None``, the longest id (session id, thread id, key...) in UTF-8 bytes the
    # store can index, read through :func:`max_key_bytes`; the kit refuses longer ids before writing anything.

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
        """Write a batch, idempotently on ``event_id``, each row with its ``version``. Two failures, told apart:
        :class:`~contextkit.errors.EventRefused` (or another ``InvalidInput``) when the store refuses the data
        itself (a value or key it cannot hold or index: retrying never helps, the archiver isolates the events
        and keeps them as dead letters) and ``BackendUnavailable`` for an outage (connection, timeout: the
        archiver retries the whole batch). Either way nothing of the batch is left half-written that a retry
        would duplicate."""
        ...

    async def read_owner(self, owner: str) -> OwnerState:
        """Everything the tiered layer needs to know of an owner the hot tier lost, in as few round trips as the
        backend allows (see :class:`OwnerState`): its highest version in any table (LangGraph rows excluded), its
        stream's highest seq (a delete's ``last_seq`` included), whether its newest write is a delete, and its
        session, task context and conversation session document as of their newest versions not hidden by a
        delete. An owner the archive never saw reads ``OwnerState(owner)``."""
        ...

    async def read_session(self, session_id: str) -> Session | None:
        """The session as of its newest archived version (``version`` set), or None: none archived, or the newest
        is a delete (read-through must not bring back a session that was deleted on purpose)."""
        ...

    async def read_history(self, key: str, limit: int | None, before_seq: int | None = None) -> list[Message]:
        """The newest ``limit`` archived messages of the stream with ``seq < before_seq`` (when given), in
        chronological order, each message once, without those the key's newest delete hides."""
        ...

    async def read_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The newest archived task context document, or None (also when a later delete hides it)."""
        ...

    async def read_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The newest archived conversation session document, or None (also when a later delete hides it)."""
        ...

    async def conversation_keys_of(self, session_id: str) -> list[str]:
        """Keys of the archived conversation sessions whose newest document (not hidden by a delete of its key)
        names ``session_id`` as its session, sorted: a delete of that session tombstones them too, also those
        the hot tier no longer holds."""
        ...

    async def read_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """An archived seed checkpoint document (that checkpoint's newest version, or the thread's newest
        checkpoint when ``checkpoint_id`` is None), or None; a delete of the thread's owner hides those written
        before it."""
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


# The form of LangGraph's checkpoint and task ids (36 characters: lower-case hex digits in 8-4-4-4-12 groups).
_LANGGRAPH_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def packed_id(text: str) -> bytes | None:
    """The 16 bytes of an id of LangGraph's form (a canonical lower-case UUID), None for any other: what a store
    may keep instead of the 36 characters. The bytes of two such ids sort as their texts do."""
    if len(text) == 36 and _LANGGRAPH_ID.fullmatch(text):
        return bytes.fromhex(text.replace("-", ""))
    return None


def unpacked_id(raw: bytes) -> str:
    """The id whose :func:`packed_id` is ``raw``."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


def checkpoint_id_time(checkpoint_id: str) -> float | None:
    """The Unix time a LangGraph checkpoint id (a UUID v6) was made at, or None for an id of another kind (its
    age is then unknown, and retention's ``max_age`` keeps it)."""
    if len(checkpoint_id) != 36 or checkpoint_id[14] != "6":
        return None
    try:
        high = int(checkpoint_id[0:8] + checkpoint_id[9:13], 16)
        low = int(checkpoint_id[15:18], 16)
    except ValueError:
        return None
    return ((high << 12 | low) - _UUID_EPOCH_OFFSET) / 10_000_000


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which checkpoints of a ``(thread, namespace)`` a prune keeps (the ``[checkpoints]`` config section).

    A checkpoint stays when it is among the ``keep_latest`` newest *and* younger than ``max_age`` seconds (its
    age comes from its UUID v6 id; an id of another kind counts as young); a limit left None does not apply.
    Whatever the limits, the newest checkpoint always stays (an interrupted run resumes from it, with its pending
    writes), the first one too with ``keep_first``, and so do the ancestors a kept checkpoint's ``DeltaChannel``
    values are rebuilt from (:func:`delta_ancestors`). ``RetentionPolicy(keep_latest=1)`` is LangGraph's
    ``prune(strategy="keep_latest")``.
    """

    keep_latest: int | None = None
    max_age: float | None = None
    keep_first: bool = False

    def __post_init__(self) -> None:
        if self.keep_latest is not None and (
            isinstance(self.keep_latest, bool) or not isinstance(self.keep_latest, int) or self.keep_latest < 1
        ):
            raise InvalidInput(f"keep_latest must be an integer >= 1 or None, not {self.keep_latest!r}")
        if self.max_age is not None and (
            isinstance(self.max_age, bool)
            or not isinstance(self.max_age, (int, float))
            or not math.isfinite(self.max_age)
            or self.max_age <= 0
        ):
            raise InvalidInput(f"max_age must be a positive number of seconds or None, not {self.max_age!r}")

    @property
    def limits(self) -> bool:
        """True when the policy can remove anything (a count or an age limit is set)."""
        return self.keep_latest is not None or self.max_age is not None

    def retained(
        self,
        rows: Mapping[str, CheckpointRow],
        has_value: Callable[[CheckpointRow, str], bool],
        now: float,
    ) -> set[str]:
        """The ids of one namespace's ``rows`` (``{checkpoint_id: row}``) this policy keeps at Unix time ``now``
        (``has_value`` as for :func:`delta_ancestors`). Every tier's prune and the ``du``/dry-run reports use
        this one rule, so they agree."""
        if not rows:
            return set()
        ids = sorted(rows)
        keep = {ids[-1]}
        newest = ids if self.keep_latest is None else ids[-self.keep_latest :]
        if self.max_age is None:
            keep.update(newest)
        else:
            horizon = now - self.max_age
            for cid in newest:
                made = checkpoint_id_time(cid)
                if made is None or made >= horizon:
                    keep.add(cid)
        if self.keep_first:
            keep.add(ids[0])
        # A kept checkpoint whose DeltaChannel value is rebuilt from its ancestors needs them too.
        for cid in sorted(keep):
            keep.update(delta_ancestors(rows[cid], rows.get, has_value))
        return keep


#: LangGraph's ``prune(strategy="keep_latest")``: the newest checkpoint of each namespace (and its delta ancestors).
KEEP_NEWEST = RetentionPolicy(keep_latest=1)


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
    #: Bytes stored per channel where they differ from ``blobs``: an archive's row holding a shared list as its
    #: record and the nodes new in that row (:mod:`contextkit.checkpoint_archive`); None when ``blobs`` is what
    #: is stored.
    stored: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class DeltaStep:
    """One ancestor visited by a ``DeltaChannel`` history walk (:meth:`DeltaHistoryStore.cp_delta_history`).

    ``writes`` are its pending writes to the channels still walking when it was visited (in any order: the saver
    sorts them); ``seeds`` the stored values of the channels whose walk ends here (a blob that is not the empty
    marker). The seed's own writes count: they were applied after its value, on the way to the target.
    """

    checkpoint_id: str
    writes: Sequence[WriteRow]
    seeds: Mapping[str, Typed]


@dataclass(frozen=True, slots=True)
class DeltaWalk:
    """What one :meth:`DeltaHistoryStore.cp_delta_history` call found.

    ``checkpoint_id`` is where the walk started (the newest of the namespace when None was asked); ``steps`` the
    ancestors visited, nearest first. ``resume`` is the id of the next ancestor to visit when the walk stopped
    with channels left unseeded before the chain's root (None when every channel found its seed or the chain
    ended): ``bounded`` says the store stopped at its own bound on the steps of one call, so the caller asks it
    again from there (``inclusive=True``); otherwise this tier does not hold that ancestor (archived, expired,
    pruned) and the caller reads on from the cold tier, if any. ``stopped``: the walk ended at the ``stop_at``
    the caller gave, after visiting it, with channels still unseeded (``resume`` is then None).
    """

    checkpoint_id: str
    steps: Sequence[DeltaStep]
    resume: str | None = None
    bounded: bool = False
    stopped: bool = False


@runtime_checkable
class DeltaHistoryStore(Protocol):
    """Optional: a :class:`CheckpointStore` that walks a ``DeltaChannel`` history itself, next to its data (one
    script on Redis, one query on SQLite, a direct walk in memory). A store without it still works: the saver
    then walks the parent chain with one :meth:`CheckpointStore.cp_get` per ancestor."""

    async def cp_delta_history(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str | None,
        channels: Sequence[str],
        *,
        inclusive: bool = False,
        stop_at: str | None = None,
    ) -> DeltaWalk | None:
        """Walk ``parent_checkpoint_id`` from ``checkpoint_id`` (the newest of ``(thread, ns)`` when None) and
        return, per ancestor, the writes to the channels still walking and the seeds found there (see
        :func:`delta_seed`); each channel stops at its seed. The start itself is skipped (its writes are pending
        for the next step and its values are what the caller is rebuilding), unless ``inclusive`` (a walk resumed
        at ``resume``). A repeated id ends the walk. ``stop_at``: an ancestor whose own walk the caller holds; the
        walk ends once it visited it with channels still unseeded (``DeltaWalk.stopped``). None when the start is
        not stored."""
        ...


@runtime_checkable
class DeltaReadStore(Protocol):
    """Optional, beside :class:`DeltaHistoryStore`: a checkpoint and the ``DeltaChannel`` walk from it in one
    round trip (a turn of a ``DeltaChannel`` graph reads both, one after the other). The saver asks for it when it
    remembers which channels the thread's last walk was for; a store without it gets the two calls."""

    async def cp_get_with_delta_history(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str | None,
        channels: Sequence[str],
        *,
        stop_at: str | None = None,
    ) -> tuple[CheckpointBundle, DeltaWalk] | None:
        """What ``cp_get(thread_id, checkpoint_ns, checkpoint_id)`` returns and what
        ``cp_delta_history(thread_id, checkpoint_ns, <that checkpoint's id>, channels, stop_at=stop_at)`` returns,
        read in one atomic step; None when the checkpoint is not stored."""
        ...


@dataclass(frozen=True, slots=True)
class ThreadBytes:
    """The bytes one thread's checkpoints take in a tier (see :mod:`contextkit.checkpoint_usage` for what is
    counted): ``rows`` (serialized checkpoints, metadata, channel versions, ids), ``writes`` (pending writes) and
    ``channels`` (blob bytes per channel), over ``checkpoints`` checkpoints."""

    checkpoints: int
    rows: int
    writes: int
    channels: Mapping[str, int]

    @property
    def total(self) -> int:
        """Every byte counted."""
        return self.rows + self.writes + sum(self.channels.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, channels largest first."""
        return {
            "checkpoints": self.checkpoints,
            "bytes": self.total,
            "rows": self.rows,
            "writes": self.writes,
            "channels": dict(sorted(self.channels.items(), key=lambda item: (-item[1], item[0]))),
        }


@runtime_checkable
class SharedBlobStore(Protocol):
    """Optional: a :class:`CheckpointStore` that reads blobs by key, which lets the saver store list-valued
    channel values with structural sharing (:mod:`contextkit.checkpoint_lists`: a version is a small record over
    content-addressed nodes that every version shares). Nodes are ordinary blobs of their channel whose version
    starts with ``"#"``; no checkpoint's ``channel_versions`` names them. A store implementing this protocol
    keeps such a blob while a record of the same ``(thread, ns, channel)`` reaches it
    (:func:`contextkit.checkpoint_lists.reachable_nodes`); when it drops the blobs no checkpoint points at (a
    prune, ``cp_delete_for_runs``) it may drop, in the same atomic step, the nodes no remaining record reaches,
    but only if it also declares ``checked_puts`` (:class:`CheckedPutStore`): a saver's put may rely on nodes of a
    checkpoint another process just removed, and the check refuses it. Keeping nodes until the thread goes
    (deleted or expired) is correct too. Without this protocol, the saver stores every value whole."""

    async def cp_get_blobs(
        self, thread_id: str, checkpoint_ns: str, keys: Sequence[tuple[str, str]]
    ) -> Mapping[tuple[str, str], Typed]:
        """The stored blobs of ``keys`` (``(channel, version)`` pairs) in ``(thread, ns)``, in one read; keys not
        stored are left out."""
        ...


@runtime_checkable
class CheckedPutStore(Protocol):
    """A :class:`CheckpointStore` declaring ``checked_puts``: its ``cp_put`` checks, in the put's atomic step,
    that the blobs the put relies on are stored.

    :class:`~contextkit.langgraph.ContextKitSaver` sends a blob only for the channels a checkpoint changed (and
    only the new nodes of a shared list); the checkpoint also names the older versions of the others. When the
    hot tier lost the thread's data since (no read in between: two steps of one run), those blobs are gone and
    the checkpoint would read back without them, silently. ``requires`` lists them; when one is missing the
    store writes nothing (no row, no blob, no archive event) and raises
    :class:`~contextkit.errors.MissingBlobs`, and the saver writes the checkpoint again with every value."""

    async def cp_put(
        self,
        row: CheckpointRow,
        new_blobs: Mapping[tuple[str, str], Typed],
        *,
        archive: ArchiveEvent | None = None,
        requires: Collection[tuple[str, str]] = (),
    ) -> None:
        """:meth:`CheckpointStore.cp_put`, refused with ``MissingBlobs`` when a ``requires`` key
        (``(channel, version)`` in the row's thread and namespace) is not stored."""
        ...


def missing_blobs_message(row: CheckpointRow, missing: Sequence[tuple[str, str]]) -> str:
    """The text of the :class:`~contextkit.errors.MissingBlobs` a store raises for ``row``'s put."""
    shown = ", ".join(f"{channel}@{version}" for channel, version in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return (
        f"checkpoint {row.checkpoint_id!r} of thread {row.thread_id!r} (namespace {row.checkpoint_ns!r}) relies on "
        f"blobs this tier no longer holds: {shown}{more}; nothing was written"
    )


@runtime_checkable
class CheckpointUsageStore(Protocol):
    """Optional: a :class:`CheckpointStore` that counts a thread's bytes itself (SQLite sums its columns in one
    query). Without it, ``contextkit checkpoints du`` counts the checkpoints :meth:`CheckpointStore.cp_list`
    returns (:func:`contextkit.checkpoint_usage.thread_bytes`), with the same result."""

    async def cp_usage(self, thread_id: str) -> ThreadBytes:
        """The bytes of every checkpoint, pending write and blob the tier holds for the thread, in all namespaces."""
        ...


@runtime_checkable
class CheckpointThreadsStore(Protocol):
    """Optional: a :class:`CheckpointStore` that lists its LangGraph threads from an index, without reading their
    checkpoints. Without it, the maintenance commands (``contextkit checkpoints du`` and ``prune`` of every
    thread) find the threads in :meth:`CheckpointStore.cp_list` of every checkpoint, with every value read."""

    async def cp_thread_ids(self) -> list[str]:
        """The ids of the live threads (not deleted, not expired) holding at least one checkpoint, sorted."""
        ...


def delta_seed(blob: Typed | None) -> bool:
    """True when a channel's stored blob is a value a ``DeltaChannel`` walk stops at (not absent, not the empty
    marker a channel with a version but no value gets)."""
    return blob is not None and blob[0] != EMPTY_BLOB_TYPE


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

    async def cp_put(
        self, row: CheckpointRow, new_blobs: Mapping[tuple[str, str], Typed], *, archive: ArchiveEvent | None = None
    ) -> None:
        """Store a checkpoint and the blobs of its changed channels (``{(channel, version): typed}``). With
        ``archive`` (``atomic_outbox``), write that event (built by the saver) into the outbox in the same atomic
        step, unless the put is dropped as a late write of a deleted thread (then neither is written)."""
        ...

    async def cp_put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: Sequence[WriteRow],
        upsert: bool,
        *,
        archive: ArchiveEvent | None = None,
    ) -> None:
        """Store pending writes of a checkpoint (see the class docstring for the key rules); ``archive`` as for
        :meth:`cp_put`."""
        ...

    async def cp_deleted_floor(self, thread_id: str) -> str | None:
        """The floor of the thread's tombstone (:meth:`cp_delete_thread`) while it lives, else None: the saver
        hides archived checkpoints it covers, so a deleted thread does not come back through read-through while
        its delete still waits in the outbox (from any process)."""
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

    async def cp_delete_thread(self, thread_id: str, *, archive: EventHead | None = None) -> None:
        """Remove every checkpoint, blob and write of the thread in every namespace, and keep a
        :class:`Tombstone` for ``checkpoint_ttl``: a later put or write is dropped when its checkpoint id (or
        parent id) is ``<=`` the floor (the newest stored id, or :func:`checkpoint_id_floor` of the delete time)
        or chains onto a dropped id. Writes for a checkpoint not stored yet are otherwise kept. With ``archive``,
        the thread's ``langgraph-delete`` tombstone event (:func:`contextkit.checkpoint_archive.delete_payload` of
        that floor, under ``archive``'s id and time) goes to the outbox in the same atomic step."""
        ...

    async def cp_delete_for_runs(self, run_ids: Sequence[str]) -> Collection[str] | None:
        """Remove the checkpoints (and their writes) whose ``metadata["run_id"]`` is in ``run_ids``; return the ids
        of the threads that lost checkpoints (the saver archives a tombstone for each, so the cold tier hides
        them too), or None when the store cannot tell (then nothing is archived)."""
        ...

    async def cp_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of a thread, in every namespace, to another thread id."""
        ...

    async def cp_prune(
        self, thread_ids: Sequence[str], keep_latest: bool, *, policy: RetentionPolicy | None = None
    ) -> None:
        """``keep_latest``: keep, per namespace, what ``policy`` retains (:meth:`RetentionPolicy.retained`; None is
        :data:`KEEP_NEWEST`: the newest checkpoint plus :func:`delta_ancestors` of it), with their writes and
        referenced blobs, and the writes of checkpoints newer than the newest row (being saved); drop a subgraph
        namespace (one containing ``':'``) whose newest row's ``metadata["parents"][""]`` was a root checkpoint
        that is now pruned; set ``parent_checkpoint_id=None`` on kept rows whose parent was pruned.
        ``keep_latest=False`` is :meth:`cp_delete_thread`."""
        ...


#: The protocol each capability promises (a capability without an entry, such as ``ttl`` or ``durable``, is a
#: property of the storage, not a set of methods). ``atomic_outbox`` needs :class:`OutboxProvider` too, and every
#: write method's ``archive=`` argument, which the protocols declare already.
CAPABILITY_PROTOCOLS: Mapping[Capability, type] = {
    Capability.CHECKPOINTS: CheckpointStore,
    Capability.OUTBOX: OutboxProvider,
    Capability.ATOMIC_OUTBOX: OutboxProvider,
    Capability.CHECKED_PUTS: CheckedPutStore,
}


def capability_mismatches(store: HotStore | ColdStore) -> list[str]:
    """What ``store`` (a hot or cold tier) declares in ``capabilities`` without implementing it: each declared
    capability whose protocol (:data:`CAPABILITY_PROTOCOLS`) it does not implement, and ``atomic_outbox`` without
    ``outbox``. Empty when the declaration is honest. The other direction (a protocol implemented but not
    declared) is allowed only when the methods refuse with ``CapabilityNotSupported``; the suites check that
    behaviour, since it cannot be seen without calling them."""
    declared = set(store.capabilities)
    problems = [
        f"declares {capability.value!r} but does not implement {protocol.__name__}"
        for capability, protocol in CAPABILITY_PROTOCOLS.items()
        if capability.value in declared and not isinstance(store, protocol)
    ]
    if Capability.ATOMIC_OUTBOX.value in declared and Capability.OUTBOX.value not in declared:
        problems.append("declares 'atomic_outbox' without 'outbox'")
    if Capability.DEFERRED_EVENTS.value in declared and Capability.ATOMIC_OUTBOX.value not in declared:
        problems.append("declares 'deferred_events' without 'atomic_outbox'")
    return problems
