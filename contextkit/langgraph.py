"""The LangGraph adapter: :class:`ContextKitSaver`, a ``BaseCheckpointSaver`` over any hot tier that implements
:class:`contextkit.stores.CheckpointStore`, and :class:`BackgroundLoop` for sync code.

This module needs the ``contextkit[langgraph]`` extra; ``import contextkit`` never imports it.

Storage layout (the store keeps what the saver hands it, verbatim):

* the checkpoint without ``channel_values``, serialized with the saver's ``serde`` (``(type, bytes)``), and
  without its ``channel_versions`` and ``id`` either: the row carries them (``CheckpointRow.channel_versions``,
  ``checkpoint_id``) and reads put them back (rows written whole by older versions read the same);
* its metadata as a JSON dict (``get_checkpoint_metadata`` semantics), so stores can filter on it;
* one blob per ``(thread, ns, channel, version)``, written only for the channels in ``new_versions``
  (a channel with a version but no value gets ``("empty", b"")``), except a node trigger (``branch:to:...``)
  holding None: the serialized checkpoint keeps those as its ``channel_values``; a list value is stored as a small record over
  nodes every version of the channel shares, blobs of versions ``#...`` (:mod:`contextkit.checkpoint_lists`,
  where the store implements :class:`~contextkit.stores.SharedBlobStore`), and read back whole;
* pending writes keyed ``(task_id, idx)``, special channels at their fixed negative idx and upserted when a call
  writes only special channels, insert-if-absent otherwise.

Cold tier (``archive=``, passed by ``kit.checkpointer()`` when a cold tier is configured): every put, every
pending write and every thread delete also writes its archive event into the hot tier's outbox, in the same atomic
step as the write (``CheckpointStore.cp_put(..., archive=event)``: one script on Redis, one transaction on SQLite,
one critical section in memory; a late put the thread's tombstone drops writes no event either), and wakes the
kit's archiver; the hot path never waits for the cold tier. The events have the format of
:mod:`contextkit.checkpoint_archive`. An archived checkpoint carries the blobs of *all*
the channels it references, not only the changed ones, with no walk over older rows, except for the lists shared
in the hot tier: a *linked* row stores a list as its record and the nodes the rows of its chain do not hold yet,
so that the archive of a growing list grows linearly; the saver writes a *full*
row (every node) when it does not know the chain, when the linked rows hold more node bytes than the full row did,
after 1,000 rows or an hour, so a retention by age (ClickHouse ``ttl_days``) leaves a linked row without its full row for
at most an hour.

Read-through: ``aget_tuple`` answers a hot miss from the cold tier (``ColdStore.read_langgraph_checkpoint``) and
refills the hot tier with that checkpoint (its blobs and writes), so the graph can continue or fork from it; when
the hot tier holds nothing of the namespace, the newest archived checkpoint is refilled too, so the hot tier's
"newest" stays right. ``alist`` with a thread id adds archived checkpoints when the hot tier returns fewer than
``limit`` (hot wins on duplicates). Events not archived yet are still in the hot tier, so there is no gap. A
missing subgraph namespace of a thread whose root namespace is in the hot tier is taken as new (no cold read), so
new subgraph runs cost no cold round trip. A cold tier that is down is logged and read as "nothing archived"
(as the kit's other read-through does); raising would make every new thread fail while the cold tier is down.
``adelete_thread`` (and ``aprune(strategy="delete")``) archives a ``langgraph-delete`` tombstone that the cold
reads honor, and the saver hides from its cold reads what the hot tier's own tombstone of the thread covers
(``CheckpointStore.cp_deleted_floor``), so the thread does not come back while the tombstone waits in the outbox,
whichever process deleted it. ``adelete_for_runs`` archives a tombstone naming the runs for each
thread the hot tier removed checkpoints from (``CheckpointStore.cp_delete_for_runs`` returns them), and the saver
hides those runs from its own cold reads too; checkpoints of a run that only the archive still holds (their hot
copies expired) in a thread the hot tier no longer knows are not found this way, except by this saver. Not
mirrored in the archive: ``aprune(keep_latest)`` acts on the hot tier only (pruned checkpoints stay readable from
the archive: time travel beyond the hot tier). Retention (``retention=``, the ``[checkpoints]`` section, applied by
:meth:`ContextKitSaver.aretain` and every ``prune_every`` puts) also prunes the hot tier only, but what it removed
does not come back: read-through (``aget_tuple`` by id, ``alist``) skips an archived checkpoint the policy drops
given the newer checkpoints the hot tier holds (:class:`_RetiredView`); the ``DeltaChannel`` walk still reads the
archived ancestors it needs, and a thread whose hot copy expired whole reads back as before.
``acopy_thread`` copies the hot tier's checkpoints there and archives
under the target both those and the source's archived checkpoints the hot tier no longer holds, so the copy reads
back the whole history (a cold tier that cannot be read fails the copy before anything is written).

Opening one from a URL: ``ContextKitSaver.from_conn_string(url, cold=None)`` returns a :class:`SaverConnection`,
used as ``async with`` in async code (the kit opens on the running loop) or as ``with`` in sync code (the kit opens
on a private loop thread that the saver's sync methods use); either way leaving the block closes the kit, after
draining its archiver.

Event loops: a store's client belongs to the loop it was opened on. The saver remembers that loop (``loop=``,
by default the loop running when it is built). Async methods called from another loop are forwarded to it; sync
methods (``graph.invoke``) block on it from any other thread, and raise :class:`~contextkit.errors.ContextKitError`
from the loop's own thread (blocking there would deadlock: use ``ainvoke``/``astream``). Code with no loop at all
uses :meth:`ContextKitSaver.in_background`, which opens the store on a private loop thread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from contextkit.backend.tables import ArchiveTables
from contextkit.blob_compression import BlobCompressor, unpack
from contextkit.checkpoint_archive import archive_payloads, checkpoint_payload, delete_payload, writes_payload
from contextkit.checkpoint_lists import LIST_MARK, ListSharing, SplitList, holds_records
from contextkit.codec import int_fits_json
from contextkit.errors import (
    BackendUnavailable,
    ContextKitError,
    CorruptData,
    InvalidInput,
    MissingBlobs,
    SerializationError,
)
from contextkit.records import ArchiveEvent
from contextkit.stores import (
    Capability,
    CheckpointBundle,
    CheckpointRow,
    CheckpointStore,
    ColdStore,
    DeltaHistoryStore,
    DeltaReadStore,
    DeltaStep,
    DeltaWalk,
    EventHead,
    RetentionPolicy,
    SharedBlobStore,
    Tombstone,
    Typed,
    WriteRow,
    checkpoint_id_time,
    delta_seed,
)
from contextkit.validation import check_key_bytes

if TYPE_CHECKING:
    from contextkit.kit import ContextKit

__all__ = [
    "EMPTY_BLOB",
    "BackgroundLoop",
    "ContextKitSaver",
    "SaverArchive",
    "SaverConnection",
    "next_version",
    "version_counter",
]

T = TypeVar("T")
V = TypeVar("V")

logger = logging.getLogger("contextkit.langgraph")

#: Runs deleted through one saver that it remembers, to hide them from its reads of the archive.
_REMEMBERED_DELETES = 10_000

#: The prefix LangGraph gives the channel that triggers a node (``branch:to:<node>``, langgraph.graph.state).
_TRIGGER = "branch:to:"


#: Threads a saver remembers per-thread state of (checked-put heads, archive chains, DeltaChannel walks): those it
#: wrote or read last; an older thread's next put or walk just does not use what was remembered.
_HEADS_REMEMBERED = 256


class _PerThread(Generic[V]):
    """What a saver remembers per thread: the :meth:`_threads_cap` threads used last (by default
    :data:`_HEADS_REMEMBERED`), and at most :meth:`_weight_cap` in all of a weight each value declares (the thread
    used longest ago goes first; the one just stored always stays). The saver's methods may run in callers' loops
    on several threads, hence the lock."""

    __slots__ = ("_lock", "_threads", "_weight")

    def __init__(self) -> None:
        self._threads: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def _threads_cap(self) -> int:
        return _HEADS_REMEMBERED

    def _weight_cap(self) -> int | None:
        return None

    def _get(self, thread_id: str) -> V | None:
        with self._lock:
            found = self._threads.get(thread_id)
            if found is None:
                return None
            self._threads.move_to_end(thread_id)
            return found[0]

    def _put(self, thread_id: str, value: V, weight: int = 0) -> None:
        most, cap = self._threads_cap(), self._weight_cap()
        with self._lock:
            threads = self._threads
            old = threads.pop(thread_id, None)
            if old is not None:
                self._weight -= old[1]
            threads[thread_id] = (value, weight)
            self._weight += weight
            while len(threads) > 1 and (len(threads) > most or (cap is not None and self._weight > cap)):
                self._weight -= threads.popitem(last=False)[1][1]

    def forget(self, thread_id: str | None = None) -> None:
        """Drop what is remembered of ``thread_id`` (of every thread for None)."""
        with self._lock:
            if thread_id is None:
                self._threads.clear()
                self._weight = 0
            else:
                old = self._threads.pop(thread_id, None)
                if old is not None:
                    self._weight -= old[1]


class _StoredHeads(_PerThread[dict[str, tuple[str, frozenset[tuple[str, str]]]]]):
    """Per ``(thread, ns)``: the checkpoint this saver last wrote or read there and the ``(channel, version)``
    blobs it knows the hot tier held for it (written by its puts or read back). A put on top of that checkpoint
    names, among its unchanged channels, the blobs known stored (``requires``, for a ``checked_puts`` store): a
    hot tier that lost them since refuses the put. A blob never known stored (a checkpoint put by hand with
    ``new_versions={}``, another process's put) is not required, as no saver would have stored it. A put of a
    thread no longer remembered is simply not checked; ``forget`` drops a thread (deleted, copied over, missed in
    the hot tier)."""

    __slots__ = ()

    def known(self, thread_id: str, checkpoint_ns: str, parent_id: str | None) -> frozenset[tuple[str, str]]:
        """The blobs known stored for ``parent_id`` when it is the namespace's head, else none."""
        found = (self._get(thread_id) or {}).get(checkpoint_ns)
        return found[1] if found is not None and parent_id is not None and found[0] == parent_id else frozenset()

    def set(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, keys: Iterable[tuple[str, str]]) -> None:
        """``checkpoint_id`` is the namespace's head, with ``keys`` known stored."""
        heads = dict(self._get(thread_id) or {})
        heads[checkpoint_ns] = (checkpoint_id, frozenset(keys))
        self._put(thread_id, heads)


@dataclass(frozen=True, slots=True)
class _ArchiveRow:
    """The archive payload parts of one put: ``blobs`` per channel, shared list ``nodes`` per channel, the
    ``base`` of a linked row (None: a full row), and the chain to remember once the put is stored."""

    blobs: dict[str, Typed]
    nodes: dict[str, dict[str, Typed]] = field(default_factory=dict)
    base: str | None = None
    chain: _Chain | None = None


@dataclass(slots=True)
class _ArchivedList:
    """A shared list as the archive chain holds it at its head: its version, record, leaf ids and block ids."""

    version: str
    record: Typed
    leaf_ids: Sequence[bytes]
    block_ids: frozenset[bytes]


@dataclass(slots=True)
class _Chain:
    """The archive rows this saver wrote for one ``(thread, ns)`` since its last full row (``base``): the newest
    (``head``), the node bytes of the full row and of the linked rows since, and the lists the rows hold."""

    head: str
    base: str
    started: float
    base_bytes: int
    linked_bytes: int
    lists: dict[str, _ArchivedList]
    rows: int = 1

    def extends(self, parent_id: str | None, checkpoint_id: str) -> bool:
        """Whether a put of ``checkpoint_id`` on top of ``parent_id`` may be archived as a linked row of this
        chain: on its head, ids rising (a reader fetches the rows whose ids lie from ``base`` to the row's), not
        grown past the full row's bytes (so the archive grows linearly), :data:`_CHAIN_ROWS` rows (what one
        archive read fetches) nor older than :data:`_CHAIN_SECONDS`."""
        return (
            parent_id == self.head
            and self.base <= self.head < checkpoint_id
            and self.linked_bytes <= max(self.base_bytes, _CHAIN_MIN_BYTES)
            and self.rows < _CHAIN_ROWS
            and time.monotonic() - self.started < _CHAIN_SECONDS
        )


#: A linked archive row is at most this old a chain's full row (a retention by age, such as ClickHouse's
#: ``ttl_days``, may leave a linked row without its full row for at most this long).
_CHAIN_SECONDS = 3600.0
#: Linked rows may add up to this many node bytes even when the full row held fewer.
_CHAIN_MIN_BYTES = 64 * 1024
#: Rows a chain holds at most, its full row included: reading an archived checkpoint fetches the rows of its chain
#: up to it (~1 KB each for a chat turn).
_CHAIN_ROWS = 1000


#: Leaf ids the archive chains of a saver hold at most (~60 bytes each), over all threads.
_CHAIN_IDS_HELD = 1_000_000


class _ArchiveChains(_PerThread[dict[str, "_Chain"]]):
    """Per ``(thread, ns)``, the :class:`_Chain` of the archive rows this saver wrote last, holding at most
    :data:`_CHAIN_IDS_HELD` leaf ids in all (a thread no longer remembered writes a full row next)."""

    __slots__ = ()

    def _weight_cap(self) -> int | None:
        return _CHAIN_IDS_HELD

    def get(self, thread_id: str, checkpoint_ns: str) -> _Chain | None:
        """The chain of ``(thread_id, checkpoint_ns)``, if this saver remembers one."""
        return (self._get(thread_id) or {}).get(checkpoint_ns)

    def set(self, thread_id: str, checkpoint_ns: str, chain: _Chain) -> None:
        """Remember ``chain`` as the namespace's."""
        chains = dict(self._get(thread_id) or {})
        chains[checkpoint_ns] = chain
        self._put(thread_id, chains, sum(len(held.leaf_ids) for c in chains.values() for held in c.lists.values()))


#: Threads whose DeltaChannel walks a saver remembers (:class:`_DeltaWalks`), and the pending writes those hold in
#: all (~500 bytes each with their values; one walk holds at most a tenth).
_WALKS_REMEMBERED = 256
_WALK_WRITES_HELD = 50_000
#: Walks read ahead with their checkpoint (DeltaReadStore) and not yet taken by a history read that a saver keeps.
_PREFETCHED_HELD = 256

_WalkKey = tuple[str, str, tuple[str, ...]]


class _DeltaWalks(_PerThread[dict[tuple[str, tuple[str, ...]], tuple[str, tuple[DeltaStep, ...], int]]]):
    """Per ``(thread, ns, channels)``: the last complete ``DeltaChannel`` walk this saver read from its hot tier,
    as ``(start id, steps)``. The next walk of the thread asks the store to stop at that start
    (``cp_delta_history(..., stop_at=)``) and takes the rest from here: a turn then reads the few checkpoints
    made since, not the ~100 back to the snapshot. What a walk holds does not change while its start is an
    ancestor: the writes of a checkpoint with a child are final, and a prune keeps the ancestors a kept
    checkpoint's channels need (those it drops are still its true history). ``forget`` drops a thread (deleted,
    copied over) or every thread (runs deleted)."""

    __slots__ = ()

    def _threads_cap(self) -> int:
        return _WALKS_REMEMBERED

    def _weight_cap(self) -> int | None:
        return _WALK_WRITES_HELD

    @property
    def _writes(self) -> int:
        return self._weight

    def get(self, key: _WalkKey) -> tuple[str, tuple[DeltaStep, ...]] | None:
        """The start and steps of the walk remembered for ``key``."""
        found = (self._get(key[0]) or {}).get(key[1:])
        return None if found is None else (found[0], found[1])

    def of(self, thread_id: str, checkpoint_ns: str) -> tuple[tuple[str, ...], str] | None:
        """The channels and the start of a walk remembered for ``(thread_id, checkpoint_ns)`` (the one used last)."""
        found = None
        for (ns, channels), walk in (self._get(thread_id) or {}).items():
            if ns == checkpoint_ns:
                found = (channels, walk[0])
        return found

    def set(self, key: _WalkKey, start: str, steps: Sequence[DeltaStep]) -> None:
        """Remember a complete walk (one holding more than a tenth of what all may hold is not kept)."""
        writes = sum(len(step.writes) for step in steps)
        walks = dict(self._get(key[0]) or {})
        walks.pop(key[1:], None)
        if writes <= _WALK_WRITES_HELD // 10:
            walks[key[1:]] = (start, tuple(steps), writes)
        if walks:
            self._put(key[0], walks, sum(walk[2] for walk in walks.values()))
        else:
            self.forget(key[0])


@runtime_checkable
class SaverArchive(Protocol):
    """Where a :class:`ContextKitSaver` archives to and reads back from: the kit's
    :class:`~contextkit.archiver.Archiver` is one (``kit.checkpointer()`` passes it)."""

    @property
    def cold(self) -> ColdStore:
        """The cold tier the events end up in (read-through reads it)."""
        ...

    def has_room(self, count: int) -> bool:
        """Whether ``count`` more events fit in the outbox (a full outbox refuses the write, nothing is lost)."""
        ...

    async def submit(self, events: Sequence[ArchiveEvent]) -> None:
        """Queue events for the cold tier without waiting for it."""
        ...

    def notify(self, count: int) -> None:
        """Wake the archiver for ``count`` events the hot store wrote into the outbox itself (in a write's step)."""
        ...

#: The blob stored for a channel that has a version but no value (LangGraph's own savers use the same marker).
EMPTY_BLOB: Typed = ("empty", b"")

_PRUNE_STRATEGIES = ("keep_latest", "delete")


class BackgroundLoop:
    """An event loop running in a daemon thread, for sync code that has none.

    ``run(coro)`` blocks the calling thread until the coroutine finishes on the loop; ``close()`` cancels what is
    left, stops the loop and joins the thread (idempotent).
    """

    def __init__(self, name: str = "contextkit-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._closed = False
        self._thread.start()
        self._started.wait()

    def _serve(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._started.set)
        try:
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coro`` on the loop; a concurrent future of its result."""
        if self._closed:
            coro.close()
            raise ContextKitError("the background event loop is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (from any thread but the loop's own)."""
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        """Stop the loop and join its thread."""
        if self._closed:
            return
        self._closed = True
        if threading.current_thread() is self._thread:
            self.loop.stop()
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()

    def __repr__(self) -> str:
        return f"BackgroundLoop(thread={self._thread.name!r}, closed={self._closed})"


#: Digits of a version's counter and random suffix, in ASCII order so that strings compare like the numbers.
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
#: Random suffix length: 36**8 (41 bits) tells apart the versions two concurrent forks give the same channel.
_SUFFIX = 8
#: 26 length letters: a counter of up to 26 base-36 digits (a 32-digit decimal counter of the old format fits in 21).
_MAX_COUNTER = 36**26 - 1


def version_counter(version: str | int | float | None) -> int:
    """The counter a channel version carries (0 for None), in any format a thread may hold: the compact one
    (:func:`next_version`), the older ``f"{n:032}.{random:016}"`` of contextkit and LangGraph's own savers, a
    plain number or its string. Raises :class:`~contextkit.errors.InvalidInput` for anything else."""
    if version is None:
        return 0
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        return int(version)
    if isinstance(version, str) and version:
        head = version.split(".", 1)[0]
        first = head[0]
        try:
            if "a" <= first <= "z" and len(head) == ord(first) - ord("a") + 2 and head[1:].isalnum():
                return int(head[1:], 36)
            if head.isdigit():
                return int(head)
        except ValueError:
            pass
    raise InvalidInput(f"not a channel version of this saver: {version!r}")


def next_version(current: str | int | float | None) -> str:
    """The version after ``current``: a letter giving the counter's length in base-36 digits (``a`` = 1), the
    counter, ``.`` and 8 random base-36 characters, e.g. ``"b8c.k3j9x0qa"`` for 300 (12 characters; the older
    format took 52).

    Versions compare as strings like their counters: within one length by the digits (ASCII order), across
    lengths by the letter; and every compact version sorts after every version of the older all-digit format,
    so a thread written by an older contextkit continues in order. The suffix keeps apart the values two
    concurrent forks of one checkpoint give the same channel (a blob is keyed by channel and version)."""
    number = version_counter(current) + 1
    if number > _MAX_COUNTER:
        raise InvalidInput(f"channel version counter {number} is beyond this saver's format")
    digits = ""
    while number:
        number, rest = divmod(number, 36)
        digits = _DIGITS[rest] + digits
    # From the OS, not the random module: forked workers share that module's state and would draw alike.
    bits = secrets.randbelow(36**_SUFFIX)
    suffix = ""
    for _ in range(_SUFFIX):
        bits, rest = divmod(bits, 36)
        suffix += _DIGITS[rest]
    return f"{chr(ord('a') + len(digits) - 1)}{digits}.{suffix}"


def _as_is(typed: Typed) -> Typed:
    return typed


#: The last five characters of a compressed value's type (its format marker).
_COMPRESSED = frozenset({"+zstd", "+zlib", "+zsd1"})


class _NotJson(Exception):
    pass


_PLAIN = frozenset({str, bool, type(None)})


def _json_fast(value: Any) -> Any:
    # The common case (flat dicts of str/int keys and scalars) without building a path per item: this runs on
    # every put. Anything unusual falls back to _json_checked, which names the offending path.
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is int:
        # an int over Python's int-string digit limit would fail the tier's JSON encoder untyped
        if value.bit_length() > 64 and not int_fits_json(value):
            raise _NotJson
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotJson
            out[key] = item if type(item) in _PLAIN else _json_fast(item)
        return out
    if kind is float:
        if not math.isfinite(value):
            raise _NotJson
        return value
    if kind is list or kind is tuple:
        return [item if type(item) in _PLAIN else _json_fast(item) for item in value]
    raise _NotJson


def _json_metadata(value: Any, path: str = "metadata") -> Any:
    """A JSON-shaped copy of checkpoint metadata (tuples become lists), so every tier stores and filters alike."""
    try:
        return _json_fast(value)
    except _NotJson:
        return _json_checked(value, path)


def _json_checked(value: Any, path: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not int_fits_json(value):
        raise SerializationError(f"checkpoint {path} is an integer over Python's int-string digit limit")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(f"checkpoint {path} is not finite: {value!r}")
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(f"checkpoint {path} has a key that is not a string: {key!r}")
            out[key] = _json_checked(item, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_json_checked(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise SerializationError(f"checkpoint {path} is not JSON-compatible: {type(value).__name__}")


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    # Rows of the memory tier are shared; callers get their own metadata to mutate. Scalars are not recursed into:
    # this runs for every listed checkpoint.
    if type(value) is dict:
        return {k: v if type(v) in _SCALARS else _copy_json(v) for k, v in value.items()}
    if type(value) is list:
        return [v if type(v) in _SCALARS else _copy_json(v) for v in value]
    if isinstance(value, Mapping):
        return _copy_json(dict(value))
    return value


def _copy_events(target: str, bundle: CheckpointBundle) -> list[ArchiveEvent]:
    """The archive events of one checkpoint (with all its blobs and writes) under thread ``target``."""
    return [
        ArchiveEvent(table, target, payload) for table, payload in archive_payloads(bundle.row, bundle.blobs, bundle.writes)
    ]


def _write_order(write: WriteRow) -> tuple[str, str, int]:
    # LangGraph's writes_sort_key: the order live execution applies a super-step's writes in.
    return (write.task_path, write.task_id, write.idx)


class _RetiredView:
    """Which archived checkpoints a saver's retention removed from the hot tier, so read-through does not bring
    them back: the hot tier holds newer checkpoints of the namespace, and given those the policy drops the
    archived one (``keep_latest`` or more are newer, or it is older than ``max_age``), unless it is the
    namespace's first (no parent) and ``keep_first``. A thread whose hot copy expired whole has no newer hot
    checkpoint: it reads back as before, newest first (which every policy keeps)."""

    __slots__ = ("horizon", "newest", "policy")

    def __init__(self, policy: RetentionPolicy, newest: Mapping[str, Sequence[str]], now: float) -> None:
        self.policy = policy
        self.newest = newest
        self.horizon = None if policy.max_age is None else now - policy.max_age

    def retired(self, row: CheckpointRow) -> bool:
        newer = [cid for cid in self.newest.get(row.checkpoint_ns, ()) if cid > row.checkpoint_id]
        if not newer or (self.policy.keep_first and row.parent_checkpoint_id is None):
            return False
        if self.policy.keep_latest is not None and len(newer) >= self.policy.keep_latest:
            return True
        made = checkpoint_id_time(row.checkpoint_id)
        return self.horizon is not None and made is not None and made < self.horizon


class ContextKitSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer over a contextkit hot tier (any :class:`~contextkit.stores.CheckpointStore`).

    :param store: an opened store declaring the ``checkpoints`` capability (``kit.hot``).
    :param serde: the serializer of checkpoints, channel values and writes (``JsonPlusSerializer`` by default;
        an ``EncryptedSerializer`` encrypts them at rest).
    :param loop: the event loop the store's client belongs to; by default the loop running now, if any.
    :param archive: where puts, writes and deletes are archived and hot misses are read back from (the kit's
        archiver); None keeps checkpoints in the hot tier only. See the module docstring.
    :param retention: what :meth:`aretain` (and ``prune_every``) keeps per thread and namespace
        (:class:`~contextkit.stores.RetentionPolicy`, the ``[checkpoints]`` config section); with a cold tier, a
        checkpoint it removed is not read back from the archive (see the module docstring).
    :param prune_every: apply ``retention`` to a thread after every this many root-namespace puts made to it
        through this saver (0: never on write).
    :param compression: compresses channel values and writes of at least its threshold (zstd, or zlib), marked
        so any saver reads them back (:mod:`contextkit.blob_compression`); None stores them as the serde wrote
        them. Values are read back either way.
    :param share_lists: store list-valued channel values (a ``MessagesState`` list, a ``DeltaChannel``
        snapshot) with structural sharing between versions (:mod:`contextkit.checkpoint_lists`): O(turns) bytes
        instead of O(turns^2). Takes effect when the store reads blobs by key
        (:class:`~contextkit.stores.SharedBlobStore`) and the serde is LangGraph's ``JsonPlusSerializer``;
        otherwise values are stored whole. Values are read back either way.

    Every method of ``BaseCheckpointSaver`` is implemented, async and sync: ``get_tuple``, ``list``, ``put``,
    ``put_writes``, ``delete_thread``, ``delete_for_runs``, ``copy_thread``, ``prune`` and
    ``get_delta_channel_history``. Versions are compact strings (:func:`next_version`), monotonic per channel and
    after the older ``f"{n:032}.{random:016}"`` ones a thread may already hold.
    """

    #: Serialized checkpoints leave out what the row carries (channel versions, id). False writes them whole, as
    #: older contextkit versions did; reads take either (tests of that compatibility write old rows with it).
    _compact_rows = True

    def __init__(
        self,
        store: CheckpointStore,
        *,
        serde: SerializerProtocol | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        archive: SaverArchive | None = None,
        key_limit: tuple[int, str] | None = None,
        retention: RetentionPolicy | None = None,
        prune_every: int = 0,
        compression: BlobCompressor | None = None,
        share_lists: bool = True,
    ) -> None:
        super().__init__(serde=serde)
        if isinstance(prune_every, bool) or not isinstance(prune_every, int) or prune_every < 0:
            raise InvalidInput(f"prune_every must be an integer >= 0, not {prune_every!r}")
        self.store = store
        self.archive = archive
        #: Compresses large channel values and writes (``[checkpoints] compress_above``); values are read back
        #: whatever it is (:func:`contextkit.blob_compression.unpack` reads the format marker).
        self.compression = compression
        self._pack: Callable[[Typed], Typed] = compression.pack if compression is not None else _as_is
        # Structural sharing of list values (contextkit.checkpoint_lists): written only where the store can read
        # the nodes back and the serde writes msgpack lists; records already stored are read back regardless.
        self._lists = ListSharing(self.serde, pack=self._pack)
        self._share = share_lists and isinstance(store, SharedBlobStore) and ListSharing.supports(self.serde)
        # A store that checks the blobs a put relies on (CheckedPutStore) gets them named with each put.
        self._checked = Capability.CHECKED_PUTS.value in getattr(store, "capabilities", ())
        self._stored = _StoredHeads()
        self._chains = _ArchiveChains()
        self._walks = _DeltaWalks()
        # Per (thread, ns): a walk read with its checkpoint (DeltaReadStore), kept for the history read LangGraph
        # makes next: (checkpoint id, channels, stop_at, walk). At most _PREFETCHED_HELD; a read takes it.
        self._prefetched: OrderedDict[tuple[str, str], tuple[str, tuple[str, ...], str, DeltaWalk]] = OrderedDict()
        self._prefetched_lock = threading.Lock()  # the saver's methods may run in several threads' loops
        # A DeltaHistoryStore of an earlier contract walks without stop_at: every walk then goes to the seeds.
        self._stop_at = isinstance(store, DeltaHistoryStore) and "stop_at" in inspect.signature(store.cp_delta_history).parameters
        self._prefetch = self._stop_at and isinstance(store, DeltaReadStore)
        #: What a prune keeps (``[checkpoints]``); with a limit set, what it removed is not read back from the
        #: archive either (see the module docstring).
        self.retention = retention if retention is not None and retention.limits else None
        self.prune_every = prune_every if self.retention is not None else 0
        # Puts per thread since its last prune (only counted with prune_every), bounded like _deleted_runs.
        self._puts_since_prune: OrderedDict[str, int] = OrderedDict()
        # The tightest max_key_bytes of the kit's tiers (contextkit.validation.check_key_bytes): a thread id the
        # archive cannot index is refused before anything is written.
        self._key_limit = key_limit
        # Runs deleted through this saver (with a cold tier), hidden from its cold reads while their tombstones
        # wait in the outbox.
        self._deleted_runs: OrderedDict[str, None] = OrderedDict()
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        self.loop = loop
        self._background: BackgroundLoop | None = None
        self._owned_store: CheckpointStore | None = None
        self._lock = threading.Lock()

    # -- construction for sync code ---------------------------------------------------------------------------
    @classmethod
    def in_background(
        cls,
        store_factory: Callable[[], Awaitable[CheckpointStore]],
        *,
        serde: SerializerProtocol | None = None,
    ) -> ContextKitSaver:
        """A saver for sync code: ``store_factory()`` builds and opens the store on a private loop thread.

        The saver owns that store and loop: :meth:`close` closes the store (``aclose()``) and stops the thread.
        """
        background = BackgroundLoop("contextkit-saver")

        async def open_store() -> CheckpointStore:
            return await store_factory()

        try:
            store = background.run(open_store())
        except BaseException:
            background.close()
            raise
        saver = cls(store, serde=serde, loop=background.loop)
        saver._background = background
        saver._owned_store = store
        return saver

    @classmethod
    def from_conn_string(
        cls,
        url: str,
        *,
        cold: str | None = None,
        serde: SerializerProtocol | None = None,
        **settings: Any,
    ) -> SaverConnection:
        """Open a saver on the tiers the URLs name: ``async with`` in async code, ``with`` in sync code.

        ``url`` names the hot tier (``memory://``, ``sqlite:///app.db``, ``redis://host:6379/0``) and ``cold`` an
        optional archive (``postgresql://...``, ``clickhouse://...``, ``sqlite:///archive.db``); ``settings``
        are kit settings such as ``namespace`` or ``checkpoint_ttl``. See
        :meth:`contextkit.kit.ContextKit.from_url`, which builds the kit behind the saver (and raises
        :class:`~contextkit.errors.ConfigError` here, before anything is opened, for a bad URL)::

            async with ContextKitSaver.from_conn_string("redis://localhost:6379/0") as saver:
                graph = builder.compile(checkpointer=saver)
                await graph.ainvoke(inputs, {"configurable": {"thread_id": "t1"}})

            with ContextKitSaver.from_conn_string("sqlite:///app.db") as saver:
                graph = builder.compile(checkpointer=saver)
                graph.invoke(inputs, {"configurable": {"thread_id": "t1"}})
        """
        from contextkit.kit import ContextKit

        return SaverConnection(ContextKit.from_url(url, cold=cold, **settings), serde=serde)

    def close(self) -> None:
        """Close the store and the loop thread this saver owns (see :meth:`in_background`); idempotent."""
        background, self._background = self._background, None
        store, self._owned_store = self._owned_store, None
        if background is None:
            return
        try:
            aclose = getattr(store, "aclose", None)
            if aclose is not None and not background.closed:
                background.run(aclose())
        finally:
            background.close()

    def __enter__(self) -> ContextKitSaver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cold = None if self.archive is None else type(self.archive.cold).__name__
        return (
            f"ContextKitSaver(store={type(self.store).__name__}, serde={type(self.serde).__name__}, cold={cold}, "
            f"retention={self.retention!r})"
        )

    # -- loop bridging ----------------------------------------------------------------------------------------
    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the store's loop (here when this is that loop)."""
        loop = self.loop
        if loop is None or loop is asyncio.get_running_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def _run_sync(self, coro: Coroutine[Any, Any, T], method: str) -> T:
        """Run ``coro`` to completion for a sync method, on the store's loop."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self.loop
        if running is not None and running is loop:
            coro.close()
            raise ContextKitError(
                f"ContextKitSaver.{method}() was called on the thread of the event loop the store runs on, where "
                "blocking would deadlock; use the async API (graph.ainvoke / astream / aget_state), or call the "
                "sync API from another thread (asyncio.to_thread), or build the saver with "
                "ContextKitSaver.in_background() for sync code"
            )
        if loop is None or loop.is_closed():
            loop = self._adopt_background_loop()
        if loop.is_running():
            return asyncio.run_coroutine_threadsafe(coro, loop).result()
        # A loop that exists but is idle (a script between run_until_complete calls): drive it here, one caller
        # at a time.
        with self._lock:
            if loop.is_running():
                return asyncio.run_coroutine_threadsafe(coro, loop).result()
            return loop.run_until_complete(coro)

    def _adopt_background_loop(self) -> asyncio.AbstractEventLoop:
        # Built with no loop (sync code): serve this saver from a private loop thread, and send later async
        # calls there too, so the store is only ever touched from one loop.
        with self._lock:
            if self._background is None:
                self._background = BackgroundLoop("contextkit-saver")
            self.loop = self._background.loop
            return self.loop

    # -- reading ----------------------------------------------------------------------------------------------
    def _loads(self, typed: Typed) -> Any:
        """``serde.loads_typed`` of a stored value, decompressed first when its type carries a compression marker."""
        kind = typed[0]
        if kind[-5:] in _COMPRESSED:
            typed = unpack(typed)
        elif kind[-5:] == LIST_MARK:
            raise CorruptData("a shared list record reached the serde unresolved (contextkit.checkpoint_lists)")
        return self.serde.loads_typed(typed)

    def _tuple(self, bundle: CheckpointBundle) -> CheckpointTuple:
        row = bundle.row
        loads = self._loads
        checkpoint: Checkpoint = loads(row.checkpoint)
        # Left out of the serialized checkpoint since the row carries them (see aput); older rows still hold them.
        if "channel_versions" not in checkpoint:
            checkpoint["channel_versions"] = dict(row.channel_versions)
        if "id" not in checkpoint:
            checkpoint["id"] = row.checkpoint_id
        empty = EMPTY_BLOB[0]
        values = {channel: loads(blob) for channel, blob in bundle.blobs.items() if blob[0] != empty}
        # Triggers holding None are kept in the serialized checkpoint (see aput); a stored blob wins.
        inline = checkpoint.get("channel_values")
        checkpoint["channel_values"] = {**inline, **values} if inline else values
        writes = bundle.writes
        if len(writes) > 1:
            writes = sorted(writes, key=_write_order)
        thread_id, checkpoint_ns = row.thread_id, row.checkpoint_ns
        parent = row.parent_checkpoint_id
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": row.checkpoint_id,
                }
            },
            checkpoint=checkpoint,
            metadata=_copy_json(row.metadata),
            parent_config=(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "checkpoint_id": parent}}
                if parent
                else None
            ),
            pending_writes=[(w.task_id, w.channel, loads(w.value)) for w in writes],
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint of ``config`` (its ``checkpoint_id``, or the newest of the thread and namespace)."""
        configurable = config["configurable"]
        thread_id, checkpoint_ns = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        bundle = await self._call(self._read(thread_id, checkpoint_ns, checkpoint_id))
        return self._tuple(bundle) if bundle is not None else None

    async def _read(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> CheckpointBundle | None:
        if self.archive is None:
            bundle = await self._hot_get(thread_id, checkpoint_ns, checkpoint_id)
        else:
            bundle = await self._get_or_archived(thread_id, checkpoint_ns, checkpoint_id, rehydrate=True, prefetch=True)
        if bundle is None:
            return None
        if self._checked:
            row = bundle.row
            versions = row.channel_versions
            self._stored.set(
                thread_id, checkpoint_ns, row.checkpoint_id, ((ch, versions[ch]) for ch in bundle.blobs if ch in versions)
            )
        return await self._resolved(bundle, head=True)

    async def _hot_get(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> CheckpointBundle | None:
        """``cp_get``; for a thread this saver walked a DeltaChannel history of, with the walk from that checkpoint
        in the same round trip (:class:`~contextkit.stores.DeltaReadStore`), kept for the history read that
        follows (:meth:`_delta_history`)."""
        store: Any = self.store
        found = self._walks.of(thread_id, checkpoint_ns) if self._prefetch else None
        if found is None:
            return await store.cp_get(thread_id, checkpoint_ns, checkpoint_id)  # type: ignore[no-any-return]
        channels, start = found
        both = await store.cp_get_with_delta_history(thread_id, checkpoint_ns, checkpoint_id, list(channels), stop_at=start)
        if both is None:
            return None
        bundle, walk = both
        prefetched = self._prefetched
        with self._prefetched_lock:
            prefetched.pop((thread_id, checkpoint_ns), None)
            prefetched[(thread_id, checkpoint_ns)] = (bundle.row.checkpoint_id, channels, start, walk)
            while len(prefetched) > _PREFETCHED_HELD:
                prefetched.popitem(last=False)
        return bundle  # type: ignore[no-any-return]

    def _forget(self, thread_id: str) -> None:
        """Drop what this saver trusts of a thread's stored data (deleted, copied over, missed in the hot tier)."""
        self._lists.forget_thread(thread_id)
        self._stored.forget(thread_id)
        self._chains.forget(thread_id)
        self._walks.forget(thread_id)

    async def _resolved(self, bundle: CheckpointBundle, *, head: bool = False) -> CheckpointBundle:
        """``bundle`` with its shared list records replaced by the whole values (:mod:`contextkit.checkpoint_lists`);
        ``head``: a put on top of this checkpoint may reuse what was read."""
        blobs = bundle.blobs
        if not holds_records(blobs):
            return bundle
        store = self.store
        if not isinstance(store, SharedBlobStore):
            raise CorruptData(f"checkpoint {bundle.row.checkpoint_id!r} holds shared list records this store cannot read")
        row = bundle.row
        resolved = await self._lists.resolve(
            store, row.thread_id, row.checkpoint_ns, blobs, head=row.checkpoint_id if head else None
        )
        return replace(bundle, blobs=resolved)

    # -- the cold tier ----------------------------------------------------------------------------------------
    def _hidden(self, bundle: CheckpointBundle, floor: str | None) -> bool:
        """True when the hot tier's tombstone of the thread (``floor``, from any process's delete) covers
        ``bundle``, or this saver deleted its run: the archive may not know yet (the delete waits in the outbox)."""
        row = bundle.row
        if floor is not None and Tombstone(floor, math.inf).stale_put(row.checkpoint_id, row.parent_checkpoint_id):
            return True
        return bool(self._deleted_runs) and row.metadata.get("run_id") in self._deleted_runs

    async def _archived(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> CheckpointBundle | None:
        assert self.archive is not None
        try:
            bundle = await self.archive.cold.read_langgraph_checkpoint(thread_id, checkpoint_ns, checkpoint_id)
        except BackendUnavailable as exc:
            logger.warning("cold tier read of a LangGraph checkpoint failed: %s", exc)
            return None
        if bundle is None or self._hidden(bundle, await self.store.cp_deleted_floor(thread_id)):
            return None
        return bundle

    async def _get_or_archived(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None, *, rehydrate: bool, prefetch: bool = False
    ) -> CheckpointBundle | None:
        """The hot tier's checkpoint, else the archived one (refilled into the hot tier when ``rehydrate``);
        ``prefetch``: read as :meth:`_hot_get` does."""
        store = self.store
        if prefetch:
            bundle = await self._hot_get(thread_id, checkpoint_ns, checkpoint_id)
        else:
            bundle = await store.cp_get(thread_id, checkpoint_ns, checkpoint_id)
        if bundle is not None:
            return bundle
        if checkpoint_id is None and checkpoint_ns and await store.cp_get(thread_id, "", None) is not None:
            return None  # a new subgraph namespace of a live thread: nothing to read back
        # A hot miss: what this saver remembers of the thread's stored lists may be gone with the hot copy.
        self._forget(thread_id)
        bundle = await self._archived(thread_id, checkpoint_ns, checkpoint_id)
        if bundle is None or not rehydrate:
            return bundle  # (a DeltaChannel walk reads ancestors retention kept for it: rehydrate=False)
        if checkpoint_id is not None and self.retention is not None:
            view = await self._retired_view(thread_id, [checkpoint_ns])
            if view is not None and view.retired(bundle.row):
                return None  # pruned by retention: gone, not read back
        if checkpoint_id is not None:
            newest = await store.cp_get(thread_id, checkpoint_ns, None)
            if newest is None:
                # Refill the namespace's newest first: the hot tier's "newest" must stay the real newest.
                latest = await self._archived(thread_id, checkpoint_ns, None)
                if latest is not None and latest.row.checkpoint_id != checkpoint_id:
                    await self._rehydrate(latest)
            elif newest.row.checkpoint_id < checkpoint_id:
                return bundle  # the hot tier has only older checkpoints: refilling would change its newest
        await self._rehydrate(bundle)
        return bundle

    async def _rehydrate(self, bundle: CheckpointBundle) -> None:
        """Put an archived checkpoint back in the hot tier with all its blobs and writes; a graph that continues
        or forks from it then finds the values of the channels it does not change."""
        row = bundle.row
        blobs = {(ch, row.channel_versions[ch]): blob for ch, blob in bundle.blobs.items() if ch in row.channel_versions}
        try:
            await self.store.cp_put(row, blobs)
            if bundle.writes:
                await self.store.cp_put_writes(
                    row.thread_id, row.checkpoint_ns, row.checkpoint_id, list(bundle.writes), False
                )
        except BackendUnavailable as exc:
            logger.warning("refilling the hot tier with an archived checkpoint failed: %s", exc)

    async def _collect(self, args: dict[str, Any]) -> list[CheckpointBundle]:
        """``cp_list`` of the hot tier, completed from the cold tier when it returns fewer than ``limit``."""
        found = [await self._resolved(bundle) async for bundle in self.store.cp_list(**args)]
        thread_id, limit = args["thread_id"], args["limit"]
        if self.archive is None or thread_id is None or (limit is not None and len(found) >= limit):
            return found
        checkpoint_ns, checkpoint_id = args["checkpoint_ns"], args["checkpoint_id"]
        metadata_filter = args["metadata_filter"]
        cold = self.archive.cold
        try:
            if checkpoint_id is not None:
                if found:
                    return found
                if checkpoint_ns is not None:
                    one = await cold.read_langgraph_checkpoint(thread_id, checkpoint_ns, checkpoint_id)
                    archived = [one] if one is not None else []
                else:
                    archived = [
                        b for b in await cold.list_langgraph_checkpoints(thread_id, None)
                        if b.row.checkpoint_id == checkpoint_id
                    ]
                if args["before"] is not None:
                    archived = [b for b in archived if b.row.checkpoint_id < args["before"]]
            else:
                archived = await cold.list_langgraph_checkpoints(
                    thread_id, checkpoint_ns, before=args["before"], limit=None if metadata_filter else limit
                )
        except BackendUnavailable as exc:
            logger.warning("cold tier listing of LangGraph checkpoints failed: %s", exc)
            return found
        seen = {(b.row.checkpoint_ns, b.row.checkpoint_id) for b in found}
        merged = list(found)
        floor = await self.store.cp_deleted_floor(thread_id) if archived else None
        view = await self._retired_view(thread_id, {b.row.checkpoint_ns for b in archived}) if archived else None
        for bundle in archived:
            row = bundle.row
            if (row.checkpoint_ns, row.checkpoint_id) in seen or self._hidden(bundle, floor):
                continue
            if view is not None and view.retired(row):
                continue
            if metadata_filter and any(row.metadata.get(k) != v for k, v in metadata_filter.items()):
                continue
            merged.append(bundle)
        if len(merged) == len(found):
            return found
        merged.sort(key=lambda b: b.row.checkpoint_id, reverse=True)
        return merged if limit is None else merged[:limit]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, and id, when given), or of every
        thread when ``config`` is None; ``filter`` matches metadata keys, ``before`` keeps older ids. With a
        cold tier, a thread's archived checkpoints complete a short hot answer (see the module docstring)."""
        args = self._list_args(config, filter, before, limit)
        if self.archive is not None and args["thread_id"] is not None:
            for bundle in await self._call(self._collect(args)):
                yield self._tuple(bundle)
            return
        iterator = self.store.cp_list(**args)
        if self.loop is None or self.loop is asyncio.get_running_loop():
            async for bundle in iterator:
                yield self._tuple(await self._resolved(bundle))
            return
        done = object()

        async def step() -> Any:
            try:
                return await self._resolved(await iterator.__anext__())
            except StopAsyncIteration:
                return done

        try:
            while (bundle := await self._call(step())) is not done:
                yield self._tuple(bundle)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await self._call(aclose())

    @staticmethod
    def _list_args(
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> dict[str, Any]:
        configurable = config["configurable"] if config else {}
        thread_id = configurable.get("thread_id")
        return {
            "thread_id": str(thread_id) if thread_id is not None else None,
            "checkpoint_ns": configurable.get("checkpoint_ns"),
            "checkpoint_id": configurable.get("checkpoint_id"),
            "before": get_checkpoint_id(before) if before else None,
            "limit": limit,
            "metadata_filter": _json_metadata(filter, "filter") if filter else None,
        }

    # -- writing ----------------------------------------------------------------------------------------------
    def _dumps(self, value: Any) -> Typed:
        """``serde.dumps_typed(value)``; a value the serde cannot write (LangGraph's msgpack refuses an int beyond
        64 bits with a TypeError, the JSON fallback one over the digit limit with a ValueError) raises
        SerializationError before anything is written."""
        try:
            return self.serde.dumps_typed(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"a checkpoint value of type {type(value).__name__} cannot be serialized by "
                f"{type(self.serde).__name__}: {str(exc)[:200]}"
            ) from exc

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store ``checkpoint``; only the channels in ``new_versions`` get new blobs."""
        configurable = config["configurable"]
        thread_id = check_key_bytes(str(configurable["thread_id"]), "thread_id", self._key_limit)
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        copy = checkpoint.copy()
        values: dict[str, Any] = copy.pop("channel_values")  # type: ignore[misc]
        versions = copy["channel_versions"]
        if self._compact_rows:
            # The row carries the channel versions (as strings) and the id: the serialized checkpoint does not
            # repeat them, and _tuple puts them back. Versions that are not strings stay in it, typed as given.
            if all(type(version) is str for version in versions.values()):
                del copy["channel_versions"]  # type: ignore[misc]
            del copy["id"]  # type: ignore[misc]
            # A node's trigger holds None at most steps: kept in the row, not as a blob of its own (a row or hash
            # entry per node per step). Only triggers: a DeltaChannel walk looks for values among the blobs, and a
            # trigger is never a DeltaChannel.
            triggers = {channel: None for channel, value in values.items() if value is None and channel.startswith(_TRIGGER)}
            if triggers:
                copy["channel_values"] = triggers
                values = {channel: value for channel, value in values.items() if channel not in triggers}
        dumps, pack = self._dumps, self._pack
        parent_id = configurable.get("checkpoint_id")
        blobs, shared, trees, requires = self._blobs(thread_id, checkpoint_ns, parent_id, new_versions, values)
        row = CheckpointRow(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint["id"],
            parent_checkpoint_id=parent_id,
            checkpoint=pack(dumps(copy)),
            metadata=_json_metadata(get_serializable_checkpoint_metadata(config, metadata)),
            channel_versions={channel: str(version) for channel, version in versions.items()},
        )
        known: frozenset[tuple[str, str]] = frozenset()
        if self._checked:
            # The older versions of the channels this put did not change, known stored at its parent, must still
            # be stored (a put names them without sending them): a hot tier that lost the thread since refuses the
            # put (CheckedPutStore).
            known = self._stored.known(thread_id, checkpoint_ns, parent_id)
            for channel, version in row.channel_versions.items():
                if channel in values and channel not in new_versions and (channel, version) in known:
                    requires.append((channel, version))
        archived: _ArchiveRow | None = None
        if self.archive is not None:
            archived = self._archive_row(row, parent_id, new_versions, values, blobs, shared)
        try:
            await self._call(self._put(row, blobs, archived, requires))
        except MissingBlobs as exc:
            # The hot tier lost the thread under this run (restart without persistence, eviction, expiry): write
            # the checkpoint again with the value of every channel, so it reads back whole.
            logger.warning("%s; writing the checkpoint again with every value", exc)
            self._forget(thread_id)
            everything = {channel: row.channel_versions[channel] for channel in row.channel_versions if channel in values}
            blobs, shared, trees, _ = self._blobs(thread_id, checkpoint_ns, None, everything, values)
            await self._call(self._put(row, blobs, archived, []))
            known = frozenset()
        if self._share:
            self._lists.written(thread_id, checkpoint_ns, row.checkpoint_id, trees)
        if archived is not None and archived.chain is not None:
            self._chains.set(thread_id, checkpoint_ns, archived.chain)
        if self._checked:
            self._stored.set(
                thread_id,
                checkpoint_ns,
                row.checkpoint_id,
                (key for key in row.channel_versions.items() if key in known or key in blobs),
            )
        if self.prune_every and not checkpoint_ns:
            await self._count_put(thread_id)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "checkpoint_id": row.checkpoint_id}}

    def _archive_row(
        self,
        row: CheckpointRow,
        parent_id: str | None,
        new_versions: Mapping[str, Any],
        values: Mapping[str, Any],
        blobs: Mapping[tuple[str, str], Typed],
        shared: Mapping[str, SplitList],
    ) -> _ArchiveRow:
        """What the archive gets of a put: every channel's value, not only the new ones (a channel without a
        value has no blob, here as in the hot tier). A list shared in the hot tier goes as its record and the
        nodes the rows of its chain do not hold yet (a linked row), or every node (a full row: the chain is not
        this saver's head, or it grew past its bounds); see :mod:`contextkit.checkpoint_archive`."""
        dumps, pack = self._dumps, self._pack
        if not self._share:
            whole = {ch: blobs.get((ch, v)) or pack(dumps(values[ch])) for ch, v in row.channel_versions.items() if ch in values}
            return _ArchiveRow(whole)
        thread_id, checkpoint_ns = row.thread_id, row.checkpoint_ns
        chain = self._chains.get(thread_id, checkpoint_ns)
        if chain is not None and not chain.extends(parent_id, row.checkpoint_id):
            chain = None
        out: dict[str, Typed] = {}
        nodes: dict[str, dict[str, Typed]] = {}
        lists: dict[str, _ArchivedList | None] = {}
        added = 0
        for channel, version in row.channel_versions.items():
            if channel not in values:
                continue
            held = chain.lists.get(channel) if chain is not None else None
            if held is not None and held.version == version:
                out[channel] = held.record  # unchanged since the chain's head: its nodes are archived
                lists[channel] = held
                continue
            split: Any = shared.get(channel)
            if split is None and channel not in new_versions:
                split = self._split(thread_id, checkpoint_ns, parent_id, channel, values[channel])
            if not isinstance(split, SplitList):
                out[channel] = blobs.get((channel, version)) or pack(dumps(values[channel]))
                lists[channel] = None  # stored whole here: the chain holds no list of it any more
                continue
            tree = split.tree
            out[channel] = split.record
            found = self._lists.archive_nodes(split, None if held is None else (held.leaf_ids, held.block_ids))
            if found:
                nodes[channel] = found
                added += sum(len(node[0]) + len(node[1]) for node in found.values())
            lists[channel] = _ArchivedList(version, split.record, tree.leaf_ids, frozenset(tree.blocks.values()))
        # A channel without a value in this checkpoint (a DeltaChannel between its snapshots) keeps what the chain
        # holds of it: a later version is diffed against it.
        held_lists: dict[str, _ArchivedList | None] = {} if chain is None else dict(chain.lists)
        held_lists.update(lists)
        kept = {channel: held for channel, held in held_lists.items() if held is not None}
        if chain is None:
            if not kept:
                return _ArchiveRow(out)
            return _ArchiveRow(out, nodes, None, _Chain(row.checkpoint_id, row.checkpoint_id, time.monotonic(), added, 0, kept))
        records = any(typed[0].endswith(LIST_MARK) for typed in out.values())
        grown = _Chain(
            row.checkpoint_id, chain.base, chain.started, chain.base_bytes, chain.linked_bytes + added, kept, chain.rows + 1
        )
        return _ArchiveRow(out, nodes, chain.base if records else None, grown)

    def _blobs(
        self,
        thread_id: str,
        checkpoint_ns: str,
        parent_id: str | None,
        new_versions: Mapping[str, Any],
        values: Mapping[str, Any],
    ) -> tuple[dict[tuple[str, str], Typed], dict[str, SplitList], dict[str, Any], list[tuple[str, str]]]:
        """The blobs of a put's ``new_versions`` (``{(channel, version): typed}``, shared list nodes included), the
        lists stored shared and their trees, and the stored nodes those lists rely on without sending them."""
        dumps, pack = self._dumps, self._pack
        blobs: dict[tuple[str, str], Typed] = {}
        shared: dict[str, SplitList] = {}
        trees: dict[str, Any] = {}
        requires: list[tuple[str, str]] = []
        for channel, version in new_versions.items():
            if channel not in values:
                # No blob at all for a version without a value: every read takes a missing blob as the empty
                # marker (not a value, not a DeltaChannel seed), and half of a chat graph's versions are these.
                continue
            value = values[channel]
            split = self._split(thread_id, checkpoint_ns, parent_id, channel, value) if self._share else None
            if split is None:
                blobs[(channel, str(version))] = pack(dumps(value))
                continue
            if isinstance(split, tuple):
                blobs[(channel, str(version))] = pack(split)  # a short list, serialized by the split already
                continue
            blobs[(channel, str(version))] = split.record
            for node_version, node in split.nodes.items():
                blobs[(channel, node_version)] = node
            requires.extend((channel, node) for node in split.relies)
            shared[channel] = split
            trees[channel] = split.tree
        return blobs, shared, trees, requires

    async def _put(
        self,
        row: CheckpointRow,
        blobs: Mapping[tuple[str, str], Typed],
        archived: _ArchiveRow | None,
        requires: Sequence[tuple[str, str]],
    ) -> None:
        """One ``cp_put`` (with its archive event when ``archived`` holds what to archive); ``requires`` goes to
        a store declaring ``checked_puts`` only."""
        store: Any = self.store
        if archived is None:
            if self._checked:
                await store.cp_put(row, blobs, requires=requires)
            else:
                await store.cp_put(row, blobs)
        else:
            await self._put_archived(row, blobs, archived, requires)

    def _split(
        self, thread_id: str, checkpoint_ns: str, parent_id: str | None, channel: str, value: Any
    ) -> SplitList | Typed | None:
        try:
            return self._lists.split(thread_id, checkpoint_ns, parent_id, channel, value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"a checkpoint value of type {type(value).__name__} cannot be serialized by "
                f"{type(self.serde).__name__}: {str(exc)[:200]}"
            ) from exc

    def _check_room(self, count: int) -> None:
        assert self.archive is not None
        if not self.archive.has_room(count):
            raise BackendUnavailable(
                "the archive outbox is full (the cold tier has been down too long); refusing the checkpoint write "
                "so no event is lost"
            )

    async def _put_archived(
        self,
        row: CheckpointRow,
        blobs: Mapping[tuple[str, str], Typed],
        archived: _ArchiveRow,
        requires: Sequence[tuple[str, str]] = (),
    ) -> None:
        assert self.archive is not None
        self._check_room(1)
        # The store writes the event in the put's own atomic step, and writes neither for a late put of a deleted
        # thread (nor for a put refused with MissingBlobs).
        payload = checkpoint_payload(row, archived.blobs, nodes=archived.nodes, base=archived.base)
        event = ArchiveEvent(ArchiveTables.CHECKPOINTS, row.thread_id, payload)
        store: Any = self.store
        if self._checked:
            await store.cp_put(row, blobs, archive=event, requires=requires)
        else:
            await store.cp_put(row, blobs, archive=event)
        self.archive.notify(1)

    async def _put_writes_archived(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, rows: Sequence[WriteRow], upsert: bool
    ) -> None:
        assert self.archive is not None
        self._check_room(1)
        payload = writes_payload(checkpoint_ns, checkpoint_id, rows[0].task_id, rows, upsert)
        event = ArchiveEvent(ArchiveTables.CHECKPOINT_WRITES, thread_id, payload)
        await self.store.cp_put_writes(thread_id, checkpoint_ns, checkpoint_id, rows, upsert, archive=event)
        self.archive.notify(1)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the pending writes of a task for the checkpoint of ``config``."""
        if not writes:
            return
        configurable = config["configurable"]
        dumps, pack = self._dumps, self._pack
        rows = [
            WriteRow(task_id, WRITES_IDX_MAP.get(channel, idx), channel, pack(dumps(value)), task_path)
            for idx, (channel, value) in enumerate(writes)
        ]
        upsert = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        put = self.store.cp_put_writes if self.archive is None else self._put_writes_archived
        thread_id = check_key_bytes(str(configurable["thread_id"]), "thread_id", self._key_limit)
        await self._call(
            put(
                thread_id,
                configurable.get("checkpoint_ns", ""),
                configurable["checkpoint_id"],
                rows,
                upsert,
            )
        )

    def get_next_version(self, current: str | int | float | None, channel: None = None) -> str:
        """The next version of a channel: its counter plus one, in the compact format of :func:`next_version`."""
        return next_version(current)

    # -- deleting and copying ---------------------------------------------------------------------------------
    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of the thread in every namespace; late writes of a run that
        was going are dropped, so they cannot bring it back."""
        self._forget(str(thread_id))
        if self.archive is None:
            await self._call(self.store.cp_delete_thread(str(thread_id)))
        else:
            await self._call(self._delete_archived([str(thread_id)]))

    async def _delete_archived(self, thread_ids: Sequence[str]) -> None:
        """Delete threads in the hot tier, each with its tombstone's archive event in the same step, so the
        archive hides them too (and the hot tombstone hides them from read-through until it does)."""
        assert self.archive is not None
        self._check_room(len(thread_ids))
        for thread_id in thread_ids:
            await self.store.cp_delete_thread(thread_id, archive=EventHead("delete"))
        self.archive.notify(len(thread_ids))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints and writes made by the given runs (``metadata["run_id"]``); with a cold tier,
        a tombstone per thread that lost checkpoints, or whose archive holds checkpoints of those runs, keeps the
        archived copies hidden too. Raises ``BackendUnavailable`` before deleting anything when the archive
        cannot be searched (a delete that left archived copies readable would be silently partial)."""
        if isinstance(run_ids, str):
            raise InvalidInput("run_ids must be a sequence of run ids, not a string")
        if not run_ids:
            return
        runs = [str(r) for r in run_ids]
        self._walks.forget()  # the threads are not known here, and the walks may hold checkpoints of those runs
        if self.archive is None:
            await self._call(self.store.cp_delete_for_runs(runs))
        else:
            await self._call(self._delete_runs_archived(runs))

    async def _delete_runs_archived(self, runs: list[str]) -> None:
        assert self.archive is not None
        self._check_room(1)
        # Threads only the archive still holds (the hot copy expired or was pruned) have no hot checkpoints to
        # lose, so the hot tier cannot name them: the archive is asked, before anything is deleted.
        try:
            archived = await self.archive.cold.langgraph_threads_of_runs(runs)
        except BackendUnavailable as exc:
            raise BackendUnavailable(
                f"deleting runs {runs!r}: the archive cannot be searched for their checkpoints: {exc}"
            ) from exc
        touched = await self.store.cp_delete_for_runs(runs)
        for run_id in runs:
            self._deleted_runs.pop(run_id, None)
            self._deleted_runs[run_id] = None
            while len(self._deleted_runs) > _REMEMBERED_DELETES:
                self._deleted_runs.popitem(last=False)
        threads = sorted({*(touched or ()), *archived})
        if threads:
            payload = delete_payload(runs=runs)
            await self.archive.submit([ArchiveEvent(ArchiveTables.CHECKPOINTS, thread_id, payload) for thread_id in threads])

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of a thread (all namespaces, the whole parent chain)."""
        self._forget(str(target_thread_id))
        if self.archive is None:
            await self._call(self.store.cp_copy_thread(str(source_thread_id), str(target_thread_id)))
        else:
            await self._call(self._copy_archived(str(source_thread_id), str(target_thread_id)))

    async def _copy_archived(self, source: str, target: str) -> None:
        """Copy in the hot tier, then archive under the target what it now holds there, and the source's archived
        checkpoints the hot tier no longer had (expired or pruned), so the copy has the whole history too."""
        assert self.archive is not None
        try:
            archived = await self.archive.cold.list_langgraph_checkpoints(source, None)
        except BackendUnavailable as exc:
            # Read before anything is written: a copy without the archived history would be silently partial.
            raise BackendUnavailable(f"copying thread {source!r}: its archived checkpoints cannot be read: {exc}") from exc
        await self.store.cp_copy_thread(source, target)
        events: list[ArchiveEvent] = []
        copied: set[tuple[str, str]] = set()
        async for bundle in self.store.cp_list(target, None):
            copied.add((bundle.row.checkpoint_ns, bundle.row.checkpoint_id))
            events.extend(_copy_events(target, await self._resolved(bundle)))
        floor = await self.store.cp_deleted_floor(source) if archived else None
        for bundle in archived:
            if (bundle.row.checkpoint_ns, bundle.row.checkpoint_id) not in copied and not self._hidden(bundle, floor):
                events.extend(_copy_events(target, bundle))
        self._check_room(len(events))
        await self.archive.submit(events)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep the newest checkpoint of each namespace with its writes, plus the ancestors its
        ``DeltaChannel`` values are rebuilt from; ``delete``: delete the threads."""
        if isinstance(thread_ids, str):
            raise InvalidInput("thread_ids must be a sequence of thread ids, not a string")
        if strategy not in _PRUNE_STRATEGIES:
            raise InvalidInput(f"unknown prune strategy {strategy!r}; use one of {', '.join(_PRUNE_STRATEGIES)}")
        if not thread_ids:
            return
        if strategy == "delete":
            for thread_id in thread_ids:
                self._forget(str(thread_id))
        if self.archive is not None and strategy == "delete":
            await self._call(self._delete_archived([str(t) for t in thread_ids]))
            return
        await self._call(self.store.cp_prune([str(t) for t in thread_ids], strategy == "keep_latest"))

    async def _count_put(self, thread_id: str) -> None:
        """Retention on write: every ``prune_every``-th root put of a thread prunes it, so the work per put stays
        bounded by about what the policy keeps (plus ``prune_every``). Subgraph puts are not counted: the root
        put that follows a subgraph call prunes its namespace with the rest of the thread."""
        counts = self._puts_since_prune
        count = counts.pop(thread_id, 0) + 1
        if count < self.prune_every:
            counts[thread_id] = count
            while len(counts) > _REMEMBERED_DELETES:
                counts.popitem(last=False)
            return
        assert self.retention is not None
        try:
            await self._call(self.store.cp_prune([thread_id], True, policy=self.retention))
        except BackendUnavailable as exc:
            # The put itself is stored; the next put of the thread tries again.
            counts[thread_id] = count
            logger.warning("retention of thread %r after a put failed: %s", thread_id, exc)

    async def aretain(self, thread_ids: Sequence[str], policy: RetentionPolicy | None = None) -> None:
        """Apply a retention policy (``policy``, else the saver's :attr:`retention`) to each thread: per namespace,
        what :meth:`RetentionPolicy.retained` keeps stays, with its writes and blobs; the rest goes from the hot
        tier. The archive keeps its copies, but a saver with that retention does not read them back."""
        if isinstance(thread_ids, str):
            raise InvalidInput("thread_ids must be a sequence of thread ids, not a string")
        policy = policy if policy is not None else self.retention
        if policy is None or not policy.limits or not thread_ids:
            return
        await self._call(self.store.cp_prune([str(t) for t in thread_ids], True, policy=policy))

    async def _retired_view(self, thread_id: str, namespaces: Collection[str]) -> _RetiredView | None:
        """What the saver's retention removed from the hot tier in those namespaces of the thread (None without
        a retention policy): one hot listing of at most ``keep_latest`` ids per namespace."""
        policy = self.retention
        if policy is None:
            return None
        newest: dict[str, list[str]] = {}
        for checkpoint_ns in set(namespaces):
            newest[checkpoint_ns] = [
                b.row.checkpoint_id
                async for b in self.store.cp_list(thread_id, checkpoint_ns, limit=policy.keep_latest or 1)
            ]
        return _RetiredView(policy, newest, time.time())

    # -- DeltaChannel history ---------------------------------------------------------------------------------
    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """For each channel, the writes along the parent chain of ``config``'s checkpoint (oldest first) back to
        the nearest ancestor holding a value (the ``seed``); only the requested channels are decoded. The hot
        store walks the chain itself when it can (one round trip); with a cold tier, ancestors only the archive
        holds are read from it."""
        if isinstance(channels, str):
            raise InvalidInput("channels must be a sequence of channel names, not a string")
        if not channels:
            return {}
        return await self._call(self._delta_history(config, channels))

    async def _delta_history(self, config: RunnableConfig, channels: Sequence[str]) -> Mapping[str, DeltaChannelHistory]:
        """The walk: in the hot store itself when it can (:class:`~contextkit.stores.DeltaHistoryStore`, one round
        trip), resumed there while it stops early on its own bound, and read through from the cold tier (one read
        per ancestor) once the chain reaches checkpoints only the archive holds."""
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        wanted = list(dict.fromkeys(channels))
        remaining = set(wanted)
        steps: list[DeltaStep] = []  # nearest first
        seen: set[str] = set()
        cursor: str | None = get_checkpoint_id(config)
        inclusive = False
        store = self.store
        # The generic walk goes on from `cursor` unless the hot walk settled everything.
        walk_on = True
        if isinstance(store, DeltaHistoryStore):
            key = (thread_id, checkpoint_ns, tuple(wanted))
            known = self._walks.get(key) if self._stop_at else None
            with self._prefetched_lock:
                ahead = self._prefetched.pop((thread_id, checkpoint_ns), None)
            if ahead is not None and known is not None and ahead[:3] == (cursor, key[2], known[0]):
                # read with the checkpoint (_hot_get): the same walk, the writes of its ancestors being final
                walk: DeltaWalk | None = ahead[3]
            elif known is not None and known[0] != cursor:
                walk = await store.cp_delta_history(thread_id, checkpoint_ns, cursor, wanted, stop_at=known[0])
            else:
                walk = await store.cp_delta_history(thread_id, checkpoint_ns, cursor, wanted)
            if walk is not None and walk.stopped and known is not None:
                steps = self._joined(walk.steps, known[1], remaining)
                self._walks.set(key, walk.checkpoint_id, steps)
                return self._delta_result(wanted, await self._resolved_seeds(thread_id, checkpoint_ns, steps))
            start = walk.checkpoint_id if walk is not None else None
            while walk is not None:
                seen.add(walk.checkpoint_id)
                for step in walk.steps:
                    seen.add(step.checkpoint_id)
                    steps.append(step)
                    remaining.difference_update(step.seeds)
                cursor, inclusive = walk.resume, True
                if cursor is None or not remaining or cursor in seen:
                    walk_on = False
                    break
                if not walk.bounded:
                    break  # this tier does not hold the next ancestor
                walk = await store.cp_delta_history(thread_id, checkpoint_ns, cursor, sorted(remaining), inclusive=True)
            if start is not None and not walk_on and self._stop_at:
                self._walks.set(key, start, steps)  # complete in the hot tier: the next walk stops at its start
            # A start or an ancestor this tier does not hold is only worth a look elsewhere with an archive.
            walk_on = walk_on and self.archive is not None
        if walk_on:
            await self._delta_walk_bundles(thread_id, checkpoint_ns, cursor, inclusive, remaining, seen, steps)
        return self._delta_result(wanted, await self._resolved_seeds(thread_id, checkpoint_ns, steps))

    @staticmethod
    def _joined(new: Sequence[DeltaStep], known: Sequence[DeltaStep], remaining: set[str]) -> list[DeltaStep]:
        """The steps of a walk that stopped at the start of a remembered one (``new``, that start included), then
        the remembered steps for the channels ``new`` left unseeded (a remembered step holds the writes of every
        channel still walking in its own walk, a superset)."""
        steps = list(new)
        for step in new:
            remaining.difference_update(step.seeds)
        for step in known:
            if not remaining:
                break
            writes = [w for w in step.writes if w.channel in remaining]
            seeds = {channel: blob for channel, blob in step.seeds.items() if channel in remaining}
            steps.append(DeltaStep(step.checkpoint_id, writes, seeds))
            remaining.difference_update(seeds)
        return steps

    async def _resolved_seeds(self, thread_id: str, checkpoint_ns: str, steps: list[DeltaStep]) -> list[DeltaStep]:
        """The walk's steps with shared list records among their seeds (a ``DeltaChannel`` snapshot) read back
        whole."""
        out = steps
        for i, step in enumerate(steps):
            if holds_records(step.seeds):
                store = self.store
                if not isinstance(store, SharedBlobStore):
                    raise CorruptData("a DeltaChannel seed is a shared list record this store cannot read")
                seeds = await self._lists.resolve(store, thread_id, checkpoint_ns, step.seeds)
                if out is steps:
                    out = list(steps)
                out[i] = replace(step, seeds=seeds)
        return out

    async def _delta_walk_bundles(
        self,
        thread_id: str,
        checkpoint_ns: str,
        cursor: str | None,
        inclusive: bool,
        remaining: set[str],
        seen: set[str],
        steps: list[DeltaStep],
    ) -> None:
        """The generic walk, one read per ancestor: for stores without ``cp_delta_history`` and for the part of a
        chain only the cold tier holds (read through without refilling the hot tier)."""
        if self.archive is None:
            get = self.store.cp_get
        else:

            async def get(thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> CheckpointBundle | None:
                return await self._get_or_archived(thread_id, checkpoint_ns, checkpoint_id, rehydrate=False)

        if not inclusive:
            target = await get(thread_id, checkpoint_ns, cursor)
            if target is None:
                return
            seen.add(target.row.checkpoint_id)
            cursor = target.row.parent_checkpoint_id
        while cursor is not None and remaining and cursor not in seen:
            seen.add(cursor)
            bundle = await get(thread_id, checkpoint_ns, cursor)
            if bundle is None:
                return
            blobs = bundle.blobs
            seeds = {channel: blob for channel in remaining if delta_seed(blob := blobs.get(channel)) and blob is not None}
            steps.append(DeltaStep(cursor, [w for w in bundle.writes if w.channel in remaining], seeds))
            remaining.difference_update(seeds)
            cursor = bundle.row.parent_checkpoint_id

    def _delta_result(self, channels: Sequence[str], steps: Sequence[DeltaStep]) -> dict[str, DeltaChannelHistory]:
        """Decode the walk into LangGraph's shape: per channel, its writes oldest first (each checkpoint's in
        ``writes_sort_key`` order) and its seed when one was found."""
        loads = self._loads
        collected: dict[str, list[PendingWrite]] = {channel: [] for channel in channels}
        seeds: dict[str, Any] = {}
        for step in reversed(steps):
            writes = step.writes
            if len(writes) > 1:
                writes = sorted(writes, key=_write_order)
            for write in writes:
                bucket = collected.get(write.channel)
                if bucket is not None:
                    bucket.append((write.task_id, write.channel, loads(write.value)))
            for channel, blob in step.seeds.items():
                if channel in collected:
                    seeds[channel] = loads(blob)
        result: dict[str, DeltaChannelHistory] = {}
        for channel in channels:
            entry: DeltaChannelHistory = {"writes": collected[channel]}
            if channel in seeds:
                entry["seed"] = seeds[channel]
            result[channel] = entry
        return result

    # -- sync API ---------------------------------------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Sync :meth:`aget_tuple`."""
        return self._run_sync(self.aget_tuple(config), "get_tuple")

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Sync :meth:`alist` (the matching checkpoints are read in one call)."""
        args = self._list_args(config, filter, before, limit)

        async def collect() -> list[CheckpointBundle]:
            return await self._collect(args)

        return iter([self._tuple(b) for b in self._run_sync(collect(), "list")])

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Sync :meth:`aput`."""
        return self._run_sync(self.aput(config, checkpoint, metadata, new_versions), "put")

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Sync :meth:`aput_writes`."""
        self._run_sync(self.aput_writes(config, writes, task_id, task_path), "put_writes")

    def delete_thread(self, thread_id: str) -> None:
        """Sync :meth:`adelete_thread`."""
        self._run_sync(self.adelete_thread(thread_id), "delete_thread")

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Sync :meth:`adelete_for_runs`."""
        self._run_sync(self.adelete_for_runs(run_ids), "delete_for_runs")

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync :meth:`acopy_thread`."""
        self._run_sync(self.acopy_thread(source_thread_id, target_thread_id), "copy_thread")

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Sync :meth:`aprune`."""
        self._run_sync(self.aprune(thread_ids, strategy=strategy), "prune")

    def retain(self, thread_ids: Sequence[str], policy: RetentionPolicy | None = None) -> None:
        """Sync :meth:`aretain`."""
        self._run_sync(self.aretain(thread_ids, policy), "retain")

    def get_delta_channel_history(self, *, config: RunnableConfig, channels: Sequence[str]) -> Mapping[str, DeltaChannelHistory]:
        """Sync :meth:`aget_delta_channel_history`."""
        if isinstance(channels, str):
            raise InvalidInput("channels must be a sequence of channel names, not a string")
        if not channels:
            return {}
        return self._run_sync(self._delta_history(config, channels), "get_delta_channel_history")


class SaverConnection:
    """A kit and the :class:`ContextKitSaver` over it, opened by ``async with`` or ``with`` and closed at the
    block's end (what :meth:`ContextKitSaver.from_conn_string` returns; use it once).

    ``async with`` opens the kit on the running loop. ``with`` opens it on a private loop thread: the saver's sync
    methods (``graph.invoke``, ``graph.get_state``) block on that loop, and its async methods are forwarded there,
    so sync code needs no event loop of its own. Leaving the block drains the kit's archiver (when a cold tier is
    configured) and closes the tiers.
    """

    def __init__(self, kit: ContextKit, *, serde: SerializerProtocol | None = None) -> None:
        self.kit = kit
        self._serde = serde
        self._used = False
        self._background: BackgroundLoop | None = None

    def _claim(self) -> None:
        if self._used:
            raise ContextKitError("a SaverConnection opens once; call ContextKitSaver.from_conn_string() again")
        self._used = True

    async def _open(self) -> ContextKitSaver:
        try:
            await self.kit.open()
            # Built on the loop the kit opened on, so the saver's loop is the stores' loop.
            return self.kit.checkpointer(serde=self._serde)
        except BaseException:
            await self.kit.aclose()
            raise

    async def __aenter__(self) -> ContextKitSaver:
        self._claim()
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.kit.aclose()

    def __enter__(self) -> ContextKitSaver:
        self._claim()
        background = BackgroundLoop("contextkit-saver")
        try:
            saver = background.run(self._open())
        except BaseException:
            background.close()
            raise
        self._background = background
        return saver

    def __exit__(self, *exc_info: object) -> None:
        background, self._background = self._background, None
        if background is None:
            return
        try:
            background.run(self.kit.aclose())
        finally:
            background.close()

    def __repr__(self) -> str:
        return f"SaverConnection({self.kit!r})"
