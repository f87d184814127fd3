"""Structural sharing of list-valued LangGraph channel values: O(turns) bytes for chat graphs.

LangGraph stores a channel's whole value at every version. A ``MessagesState`` thread of ``n`` turns stores its
message list ``2n`` times, so its bytes grow as ``n^2`` (183x the message text at 100 turns, before compression).
:class:`~contextkit.langgraph.ContextKitSaver` stores a list instead as a small *record* over content-addressed
*nodes* that every version of the channel in the thread shares:

* a **leaf** is one element as the serde wrote it (``("msgpack", bytes)``), stored once per
  ``(thread, namespace, channel)`` however many versions hold it;
* a list of ``n`` elements is cut into aligned blocks by the binary digits of ``n`` (``13 = 8 + 4 + 1``: elements
  0-7, 8-11 and 12), so appending keeps every earlier block but the small ones at the end; a **block** of two or
  more elements is stored as the ids of its leaves (16 bytes each), a block of one is the leaf itself;
* the **record** (the channel's blob at that version) holds ``n`` and the ids of its blocks: at most
  ``log2(n) + 1`` ids.

Node ids are 128-bit BLAKE2b digests (leaves and blocks hashed under different personalizations); a node is a blob
of the same channel whose version is ``"#"`` + the id in URL-safe base64, so every tier stores, copies and deletes
it with the thread without knowing what it is. An append of one message writes the record, one leaf and at most
one block; the blocks of a thread's versions add up to ``O(n log n)`` ids, the leaves to the text once.

Reading a record fetches its blocks, then the leaves they name (two round trips, through
:meth:`~contextkit.stores.SharedBlobStore.cp_get_blobs`; none when this saver holds them in its cache, as it does
for what it wrote) and rebuilds the bytes the serde would have written for the whole list: LangGraph's msgpack
encodes a list as an array header followed by its elements, each as they encode alone, and a ``DeltaChannel``
snapshot (``_DeltaSnapshot``) as an extension wrapping its list. Only values the serde writes as ``msgpack``, with
every element ``msgpack`` too, are shared; anything else (an encrypting serde, a pickled element) is stored whole.

Format: the record's type is the serde's type plus ``+list`` (``msgpack+list``); its bytes start with a format
version (1), so a later contextkit reads it, and a value stored whole (older data, or sharing off) reads as it
always did. What is read back for a record is the whole value (``("msgpack", bytes)``), so exports and copies
hold ordinary values. The archive stores records and nodes too, in rows that name the rows holding their older
nodes (:mod:`contextkit.checkpoint_archive`; :meth:`ListSharing.archive_nodes` writes them,
:func:`rebuild_record` reads them).

Garbage: a prune (or ``cp_delete_for_runs``) drops, with the records no remaining checkpoint points at, the
nodes no remaining record of the channel reaches (:func:`reachable_nodes`), in the same atomic step, so a message
removed from the list (``RemoveMessage``, a summary) leaves with the last checkpoint that held it; a deleted
thread or namespace takes every node along. A put that reuses nodes without sending them (see
:class:`_ThreadCache`) names the top-level ones it relies on (``SplitList.relies``), and a store declaring
``checked_puts`` refuses it when they went (another process pruned the checkpoint it builds on): the saver then
sends every node.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from contextkit.blob_compression import unpack
from contextkit.errors import CorruptData

__all__ = [
    "BLOCK_TYPE",
    "LIST_MARK",
    "ListSharing",
    "SharedBlobReader",
    "SplitList",
    "collected_node_bytes",
    "holds_records",
    "is_node_version",
    "node_version",
    "reachable_nodes",
    "rebuild_record",
    "shared_node_bytes",
]

Typed = tuple[str, bytes]

#: The suffix of a record's type: the serde's type of the whole value plus this.
LIST_MARK = "+list"
#: The type of a block node: the concatenated 16-byte ids of its leaves.
BLOCK_TYPE = "ck-block"
_FORMAT = 1
_ID_BYTES = 16
_NODE_PREFIX = "#"
_FLAG_EXT = 1


class SharedBlobReader(Protocol):
    """What reading a record needs of a store (:class:`contextkit.stores.SharedBlobStore`)."""

    async def cp_get_blobs(
        self, thread_id: str, checkpoint_ns: str, keys: Sequence[tuple[str, str]]
    ) -> Mapping[tuple[str, str], Typed]:
        """The stored blobs of ``keys`` (``(channel, version)``); missing ones are left out."""
        ...


def holds_records(blobs: Mapping[str, Typed]) -> bool:
    """True when a checkpoint's blobs (``{channel: typed}``) hold a shared list record to resolve."""
    return any(blob[0].endswith(LIST_MARK) for blob in blobs.values())


def node_version(node_id: bytes) -> str:
    """The blob version a node is stored under: ``"#"`` + its id in URL-safe base64 (22 characters)."""
    return _NODE_PREFIX + base64.urlsafe_b64encode(node_id).rstrip(b"=").decode("ascii")


def is_node_version(version: str) -> bool:
    """True for a node's blob version (checkpoint versions never start with ``#``)."""
    return version[:1] == _NODE_PREFIX


def _leaf_id(part: bytes) -> bytes:
    return hashlib.blake2b(part, digest_size=_ID_BYTES, person=b"ck-leaf").digest()


def _block_id(ids: bytes) -> bytes:
    return hashlib.blake2b(ids, digest_size=_ID_BYTES, person=b"ck-block").digest()


def _ids(data: bytes) -> list[bytes]:
    """The 16-byte ids a block node holds, in order."""
    return [bytes(data[i : i + _ID_BYTES]) for i in range(0, len(data), _ID_BYTES)]


def _blocks(n: int) -> list[tuple[int, int]]:
    """``(start, size)`` of the aligned blocks of a list of ``n`` elements, largest first."""
    out: list[tuple[int, int]] = []
    start = 0
    for bit in range(n.bit_length() - 1, -1, -1):
        size = 1 << bit
        if n & size:
            out.append((start, size))
            start += size
    return out


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def _ext_header(code: int, size: int) -> bytes:
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if size in fixed:
        return bytes((fixed[size], code))
    if size < 0x100:
        return bytes((0xC7, size, code))
    if size < 0x10000:
        return b"\xc8" + struct.pack(">H", size) + bytes((code,))
    return b"\xc9" + struct.pack(">I", size) + bytes((code,))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise CorruptData("a shared list record is truncated")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, pos
        shift += 7


@dataclass(frozen=True, slots=True)
class _Record:
    kind: str  # the whole value's type ("msgpack")
    ext: int | None  # the msgpack extension code wrapping the list (a DeltaChannel snapshot), if any
    n: int
    block_ids: tuple[bytes, ...]


def _encode_record(kind: str, ext: int | None, n: int, block_ids: Sequence[bytes]) -> Typed:
    head = bytes((_FORMAT, _FLAG_EXT if ext is not None else 0)) + (bytes((ext,)) if ext is not None else b"")
    return (kind + LIST_MARK, head + _varint(n) + b"".join(block_ids))


def _decode_record(typed: Typed) -> _Record:
    kind, data = typed
    if not data or data[0] != _FORMAT:
        raise CorruptData(
            f"a shared list record has format {data[0] if data else None!r}; this contextkit reads format {_FORMAT} "
            "(written by a later version?)"
        )
    if len(data) < 2:
        raise CorruptData("a shared list record is truncated")
    pos = 2
    ext: int | None = None
    if data[1] & _FLAG_EXT:
        if len(data) < 3:
            raise CorruptData("a shared list record is truncated")
        ext = data[2]
        pos = 3
    n, pos = _read_varint(data, pos)
    count = n.bit_count()
    ids = data[pos:]
    if len(ids) != count * _ID_BYTES:
        raise CorruptData(f"a shared list record of {n} elements names {len(ids)} id bytes, not {count * _ID_BYTES}")
    return _Record(kind[: -len(LIST_MARK)], ext, n, tuple(ids[i : i + _ID_BYTES] for i in range(0, len(ids), _ID_BYTES)))


def _assemble(ext: int | None, parts: Sequence[bytes]) -> bytes:
    body = _array_header(len(parts)) + b"".join(parts)
    return _ext_header(ext, len(body)) + body if ext is not None else body


@dataclass(slots=True)
class _Tree:
    """A channel's list as last written or read by this saver: its element bytes, their leaf ids and the ids of
    its blocks (``(start, size) -> id``, blocks of two or more)."""

    parts: list[bytes]
    leaf_ids: list[bytes]
    blocks: dict[tuple[int, int], bytes] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(map(len, self.parts)) + (len(self.leaf_ids) + len(self.blocks)) * _ID_BYTES


@dataclass(frozen=True, slots=True)
class SplitList:
    """What :meth:`ListSharing.split` makes of a list value: the channel's ``record`` blob, the ``nodes`` to store
    beside it (``{version: typed}``; only those not known to be stored), and the ``tree`` to remember once the put
    is stored. :attr:`whole` is the value as the serde would have written it, built only when asked."""

    record: Typed
    nodes: dict[str, Typed]
    tree: _Tree
    ext: int | None
    #: The node versions the record reaches without sending them (a put trusting what is stored): the top-level
    #: nodes of the tree it builds on, which hold every older leaf (a stored block's leaves are stored with it).
    relies: tuple[str, ...] = ()

    @property
    def whole(self) -> Typed:
        """The whole value's ``("msgpack", bytes)``, built on each access."""
        return ("msgpack", _assemble(self.ext, self.tree.parts))


@dataclass(slots=True)
class _ThreadCache:
    """What a saver remembers of one thread. ``heads``: per namespace, the checkpoint whose lists it last wrote
    or read; a put on top of it trusts that the nodes of the cached trees are stored (they stay while a record
    reaches them, and a put on top of a checkpoint of a deleted thread is dropped), so it sends only new nodes and
    names the top-level nodes it relies on, which a store declaring ``checked_puts`` checks; any other put sends
    every node of its lists (put-if-absent). ``trees``: per ``(namespace, channel)``."""

    heads: dict[str, str] = field(default_factory=dict)
    trees: dict[tuple[str, str], _Tree] = field(default_factory=dict)
    size: int = 0


#: Threads a saver remembers at most (their trees are bounded by bytes too).
_THREADS_CACHED = 10_000


class ListSharing:
    """Splits list values into records and nodes on write and rebuilds them on read, with a cache of the trees
    this saver wrote or read (bounded by ``cache_bytes``). ``serde`` must write lists as LangGraph's msgpack does
    (the saver checks: :meth:`supports`); ``min_bytes`` is the smallest list (in element bytes) worth sharing."""

    def __init__(
        self,
        serde: Any,
        *,
        min_bytes: int = 1024,
        cache_bytes: int = 64 * 1024 * 1024,
        pack: Callable[[Typed], Typed] | None = None,
    ) -> None:
        self.serde = serde
        #: Applied to each leaf stored (the saver's compression: leaves are read back through ``unpack``).
        self.pack: Callable[[Typed], Typed] = pack if pack is not None else _as_is
        self.min_bytes = min_bytes
        self.cache_bytes = cache_bytes
        # Per thread, least recently used first: the trees of its channels and its heads.
        self._threads: OrderedDict[str, _ThreadCache] = OrderedDict()
        self._tree_bytes = 0
        self._nodes: OrderedDict[bytes, bytes] = OrderedDict()
        self._node_bytes = 0
        # A saver's async methods may run in callers' loops on several threads (contextkit.langgraph forwards
        # only the store calls), so cache updates are serialized; nothing awaits while holding it.
        self._lock = threading.Lock()

    @staticmethod
    def supports(serde: Any) -> bool:
        """True when ``serde`` is LangGraph's ``JsonPlusSerializer`` with its own ``dumps_typed`` (whose msgpack
        lists are an array header plus their elements); any other serde gets whole values."""
        try:
            from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
        except ImportError:  # pragma: no cover - langgraph is what calls the saver
            return False
        return isinstance(serde, JsonPlusSerializer) and type(serde).dumps_typed is JsonPlusSerializer.dumps_typed

    # -- writing ---------------------------------------------------------------------------------------------
    def split(
        self, thread_id: str, checkpoint_ns: str, parent_id: str | None, channel: str, value: Any
    ) -> SplitList | Typed | None:
        """The record and new nodes of ``value`` when it is a list worth sharing (or a ``DeltaChannel`` snapshot
        of one); the whole value as the serde writes it when it is such a list below ``min_bytes`` (its elements
        are serialized already); None for any other value (store it whole). Nothing is cached until
        :meth:`written` confirms the put."""
        items, ext = _list_of(value)
        if items is None or len(items) < 2:
            return None
        dumps = self.serde.dumps_typed
        parts: list[bytes] = []
        total = 0
        for item in items:
            kind, data = dumps(item)
            if kind != "msgpack":
                return None
            parts.append(data)
            total += len(data)
        if total < self.min_bytes:
            return ("msgpack", _assemble(ext, parts))  # serialized already: the whole value, not worth sharing
        cached = self._threads.get(thread_id)
        prev = cached.trees.get((checkpoint_ns, channel)) if cached is not None else None
        trusted = prev is not None and parent_id is not None and cached is not None and (
            cached.heads.get(checkpoint_ns) == parent_id
        )
        same = 0
        leaf_ids: list[bytes] = []
        if prev is not None:
            limit = min(len(prev.parts), len(parts))
            old_parts, old_ids = prev.parts, prev.leaf_ids
            while same < limit and old_parts[same] == parts[same]:
                same += 1
            leaf_ids = old_ids[:same]
        leaf_ids.extend(_leaf_id(part) for part in parts[same:])
        blocks: dict[tuple[int, int], bytes] = {}
        block_ids: list[bytes] = []
        nodes: dict[str, Typed] = {}
        for start, size in _blocks(len(parts)):
            if size == 1:
                block_ids.append(leaf_ids[start])
                continue
            key = (start, size)
            reused = prev.blocks.get(key) if prev is not None and start + size <= same else None
            block = reused if reused is not None else _block_id(b"".join(leaf_ids[start : start + size]))
            blocks[key] = block
            block_ids.append(block)
            if not (trusted and reused is not None):
                nodes[node_version(block)] = (BLOCK_TYPE, b"".join(leaf_ids[start : start + size]))
        first_new = same if trusted else 0
        pack = self.pack
        for i in range(first_new, len(parts)):
            version = node_version(leaf_ids[i])
            if version not in nodes:
                nodes[version] = pack(("msgpack", parts[i]))
        relies: tuple[str, ...] = ()
        if trusted and prev is not None:
            # Every node this put reuses without sending is one of the previous tree's top-level nodes or lies
            # under one of them, so the store checking those (CheckedPutStore) catches a hot tier that lost them.
            top = [prev.leaf_ids[s] if z == 1 else prev.blocks.get((s, z)) for s, z in _blocks(len(prev.parts))]
            relies = tuple(v for v in dict.fromkeys(node_version(n) for n in top if n is not None) if v not in nodes)
        return SplitList(
            record=_encode_record("msgpack", ext, len(parts), block_ids),
            nodes=nodes,
            tree=_Tree(parts, leaf_ids, blocks),
            ext=ext,
            relies=relies,
        )

    def written(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, trees: Mapping[str, _Tree], *, only: bool = False
    ) -> None:
        """Remember the trees of a put that the store accepted (``{channel: SplitList.tree}``), and its checkpoint
        as the namespace's head. ``only``: these are all the namespace's trees a put on top of it may trust (a
        checkpoint read back: what this saver cached before may be gone, e.g. a hot tier restored from an older
        snapshot)."""
        with self._lock:
            threads = self._threads
            cached = threads.get(thread_id)
            if cached is None:
                if not trees:
                    return  # a head matters only for the trees cached with it
                cached = threads[thread_id] = _ThreadCache()
            else:
                threads.move_to_end(thread_id)
            if only:
                for key in [k for k in cached.trees if k[0] == checkpoint_ns]:
                    dropped = cached.trees.pop(key).size
                    cached.size -= dropped
                    self._tree_bytes -= dropped
            for channel, tree in trees.items():
                old = cached.trees.pop((checkpoint_ns, channel), None)
                if old is not None:
                    cached.size -= old.size
                    self._tree_bytes -= old.size
                size = tree.size
                if size <= self.cache_bytes // 4:
                    cached.trees[(checkpoint_ns, channel)] = tree
                    cached.size += size
                    self._tree_bytes += size
            cached.heads[checkpoint_ns] = checkpoint_id
            while threads and (len(threads) > _THREADS_CACHED or self._tree_bytes > self.cache_bytes // 2):
                self._tree_bytes -= threads.popitem(last=False)[1].size

    def archive_nodes(self, split: SplitList, archived: tuple[Sequence[bytes], frozenset[bytes]] | None) -> dict[str, Typed]:
        """The nodes an archive row stores beside ``split``'s record: every node of its tree (its top-level blocks
        and its leaves) but those of ``archived``, the tree (leaf ids, block ids) the rows since the chain's last
        full row hold already (None: every node, a full row). Leaves after the prefix the two trees share are
        sent; one that an archived row held further back may be sent again (harmless: nodes are
        content-addressed)."""
        tree, sent = split.tree, split.nodes
        leaf_ids, blocks = tree.leaf_ids, tree.blocks
        same = 0
        old_blocks: frozenset[bytes] = frozenset()
        if archived is not None:
            old_ids, old_blocks = archived
            same = min(len(old_ids), len(leaf_ids))
            if leaf_ids[:same] != old_ids[:same]:
                same = 0
                while same < len(old_ids) and same < len(leaf_ids) and old_ids[same] == leaf_ids[same]:
                    same += 1
        out: dict[str, Typed] = {}
        for (start, size), block in blocks.items():
            if block not in old_blocks:
                version = node_version(block)
                out[version] = sent.get(version) or (BLOCK_TYPE, b"".join(leaf_ids[start : start + size]))
        pack = self.pack
        for i in range(same, len(leaf_ids)):
            version = node_version(leaf_ids[i])
            if version not in out:
                out[version] = sent.get(version) or pack(("msgpack", tree.parts[i]))
        return out

    def forget_thread(self, thread_id: str) -> None:
        """Drop what is cached of a thread (deleted, copied over, or missed in the hot tier)."""
        with self._lock:
            cached = self._threads.pop(thread_id, None)
            if cached is not None:
                self._tree_bytes -= cached.size

    def _cache_node(self, node_id: bytes, data: bytes) -> None:
        with self._lock:
            self._cache_node_locked(node_id, data)

    def _cache_node_locked(self, node_id: bytes, data: bytes) -> None:
        if node_id in self._nodes:
            self._nodes.move_to_end(node_id)
            return
        self._nodes[node_id] = data
        self._node_bytes += len(data) + _ID_BYTES
        while self._node_bytes > self.cache_bytes // 2 and self._nodes:
            _, dropped = self._nodes.popitem(last=False)
            self._node_bytes -= len(dropped) + _ID_BYTES

    # -- reading ---------------------------------------------------------------------------------------------
    async def resolve(
        self,
        store: SharedBlobReader,
        thread_id: str,
        checkpoint_ns: str,
        blobs: Mapping[str, Typed],
        *,
        head: str | None = None,
    ) -> Mapping[str, Typed]:
        """``blobs`` (``{channel: typed}`` of one checkpoint) with every record replaced by the whole value it
        stands for; the same mapping when it holds none. ``head``: the checkpoint these blobs belong to, when it
        is the newest of its namespace (a put on top of it can then reuse the trees read here). Raises
        :class:`~contextkit.errors.CorruptData` when a node is missing or does not match its id."""
        records = {ch: _decode_record(blob) for ch, blob in blobs.items() if blob[0].endswith(LIST_MARK)}
        if not records:
            return blobs
        trees: dict[str, _Tree] = {}
        out = dict(blobs)
        for channel, record in records.items():
            tree = self._cached_tree(thread_id, checkpoint_ns, channel, record)
            if tree is None:
                tree = await self._fetch_tree(store, thread_id, checkpoint_ns, channel, record)
            trees[channel] = tree
            out[channel] = (record.kind, _assemble(record.ext, tree.parts))
        if head is not None:
            self.written(thread_id, checkpoint_ns, head, trees, only=True)
        return out

    def _cached_tree(self, thread_id: str, checkpoint_ns: str, channel: str, record: _Record) -> _Tree | None:
        """The tree of ``record`` from the cache: the channel's last tree when its blocks match (the newest
        version, read again), else built from cached nodes; None when a node is not cached."""
        cached = self._threads.get(thread_id)
        prev = cached.trees.get((checkpoint_ns, channel)) if cached is not None else None
        if prev is not None and len(prev.parts) == record.n:
            ids = [prev.leaf_ids[s] if z == 1 else prev.blocks.get((s, z)) for s, z in _blocks(record.n)]
            if tuple(ids) == record.block_ids:
                return prev
        leaf_ids: list[bytes] = []
        blocks: dict[tuple[int, int], bytes] = {}
        nodes = self._nodes
        for (start, size), block in zip(_blocks(record.n), record.block_ids, strict=True):
            if size == 1:
                leaf_ids.append(block)
                continue
            data = nodes.get(block)
            if data is None:
                return None
            blocks[(start, size)] = block
            leaf_ids.extend(_ids(data))
        parts: list[bytes] = []
        for leaf in leaf_ids:
            part = nodes.get(leaf)
            if part is None:
                return None
            parts.append(part)
        return _Tree(parts, leaf_ids, blocks)

    async def _fetch_tree(
        self, store: SharedBlobReader, thread_id: str, checkpoint_ns: str, channel: str, record: _Record
    ) -> _Tree:
        layout = _blocks(record.n)
        wanted = [(channel, node_version(b)) for (_, size), b in zip(layout, record.block_ids, strict=True) if size > 1]
        found = await store.cp_get_blobs(thread_id, checkpoint_ns, wanted) if wanted else {}
        leaf_ids: list[bytes] = []
        blocks: dict[tuple[int, int], bytes] = {}
        for (start, size), block in zip(layout, record.block_ids, strict=True):
            if size == 1:
                leaf_ids.append(block)
                continue
            typed = found.get((channel, node_version(block)))
            if typed is None or typed[0] != BLOCK_TYPE or len(typed[1]) != size * _ID_BYTES:
                raise CorruptData(_missing(thread_id, checkpoint_ns, channel, "block", typed))
            data = bytes(typed[1])
            if _block_id(data) != block:
                raise CorruptData(_missing(thread_id, checkpoint_ns, channel, "block (its bytes do not match its id)", typed))
            blocks[(start, size)] = block
            self._cache_node(block, data)
            leaf_ids.extend(_ids(data))
        cached = self._nodes
        # Taken before anything is added to the cache, which may evict.
        leaves: dict[bytes, bytes] = {leaf: part for leaf in leaf_ids if (part := cached.get(leaf)) is not None}
        missing = sorted({leaf for leaf in leaf_ids if leaf not in leaves})
        wanted = [(channel, node_version(b)) for b in missing]
        found = await store.cp_get_blobs(thread_id, checkpoint_ns, wanted) if wanted else {}
        for leaf in missing:
            typed = found.get((channel, node_version(leaf)))
            if typed is not None:
                typed = unpack(typed)
            if typed is None or typed[0] != "msgpack":
                raise CorruptData(_missing(thread_id, checkpoint_ns, channel, "element", typed))
            part = bytes(typed[1])
            if _leaf_id(part) != leaf:
                raise CorruptData(_missing(thread_id, checkpoint_ns, channel, "element (its bytes do not match its id)", typed))
            leaves[leaf] = part
            self._cache_node(leaf, part)
        return _Tree([leaves[leaf] for leaf in leaf_ids], leaf_ids, blocks)


def _as_is(typed: Typed) -> Typed:
    return typed


def _missing(thread_id: str, checkpoint_ns: str, channel: str, what: str, typed: Typed | None) -> str:
    state = "missing" if typed is None else f"unreadable (type {typed[0]!r})"
    return (
        f"a shared list {what} of channel {channel!r} in thread {thread_id!r} (namespace {checkpoint_ns!r}) is "
        f"{state}: the checkpoint's value cannot be rebuilt"
    )


_SNAPSHOT: list[tuple[type, int] | None] = []  # looked up once: (LangGraph's _DeltaSnapshot, its msgpack code)


def _snapshot_type() -> tuple[type, int] | None:
    # Imported on first use, not with this module: `import contextkit` never imports langgraph.
    if not _SNAPSHOT:
        try:
            from langgraph.checkpoint.serde.jsonplus import EXT_DELTA_SNAPSHOT
            from langgraph.checkpoint.serde.types import _DeltaSnapshot
        except ImportError:  # pragma: no cover - older langgraph: no snapshots to share
            _SNAPSHOT.append(None)
        else:
            _SNAPSHOT.append((_DeltaSnapshot, EXT_DELTA_SNAPSHOT))
    return _SNAPSHOT[0]


def _list_of(value: Any) -> tuple[list[Any] | None, int | None]:
    """The list inside ``value`` and the msgpack extension code wrapping it (a ``DeltaChannel`` snapshot)."""
    if type(value) is list:
        return value, None
    snapshot = _snapshot_type()
    if snapshot is not None and isinstance(value, snapshot[0]):
        inner = getattr(value, "value", None)
        if type(inner) is list:
            return inner, snapshot[1]
    return None, None


def rebuild_record(record: Typed, nodes: Callable[[str], Typed | None], where: str) -> Typed:
    """The whole value (``("msgpack", bytes)``) a shared list ``record`` stands for, its nodes looked up with
    ``nodes(version)`` (an archive's rows, where the hot tier reads them from a store). ``where`` names the
    checkpoint and channel in the :class:`~contextkit.errors.CorruptData` raised for a node that is missing or
    does not match its id."""
    rec = _decode_record(record)
    leaf_ids: list[bytes] = []
    for (_, size), block in zip(_blocks(rec.n), rec.block_ids, strict=True):
        if size == 1:
            leaf_ids.append(block)
            continue
        typed = nodes(node_version(block))
        if typed is None or typed[0] != BLOCK_TYPE or len(typed[1]) != size * _ID_BYTES or _block_id(bytes(typed[1])) != block:
            raise CorruptData(f"a shared list block of {where} is {'missing' if typed is None else 'unreadable'}")
        leaf_ids.extend(_ids(bytes(typed[1])))
    parts: list[bytes] = []
    for leaf in leaf_ids:
        typed = nodes(node_version(leaf))
        if typed is not None:
            typed = unpack(typed)
        if typed is None or typed[0] != "msgpack" or _leaf_id(bytes(typed[1])) != leaf:
            raise CorruptData(f"a shared list element of {where} is {'missing' if typed is None else 'unreadable'}")
        parts.append(bytes(typed[1]))
    return (rec.kind, _assemble(rec.ext, parts))


def reachable_nodes(records: Iterable[Typed], get_block: Callable[[str], Typed | None]) -> set[str] | None:
    """The node versions that ``records`` (the shared list records of one channel of a ``(thread, ns)``) reach:
    their blocks, the leaves those blocks hold and their single leaves; what a store keeps of the channel's nodes
    when it drops the blobs no checkpoint points at (a prune), the rest is garbage. ``get_block(version)`` returns
    a stored block node (a missing block's leaves are not counted: its record was unreadable already). None when a
    record has a format this version cannot read (a later contextkit wrote it): nothing of the channel may go."""
    out: set[str] = set()
    for blob in records:
        try:
            record = _decode_record(blob)
        except CorruptData:
            return None
        for (_, size), node in zip(_blocks(record.n), record.block_ids, strict=True):
            version = node_version(node)
            if version in out:
                continue
            out.add(version)
            if size > 1:
                block = get_block(version)
                if block is not None and block[0] == BLOCK_TYPE:
                    out.update(node_version(leaf) for leaf in _ids(bytes(block[1])))
    return out


async def collected_node_bytes(
    store: SharedBlobReader,
    thread_id: str,
    checkpoint_ns: str,
    channel: str,
    every: Sequence[Typed],
    kept: Sequence[Typed],
) -> int:
    """The bytes of the nodes a prune collects from one channel of a ``(thread, ns)``: those the records of
    ``every`` checkpoint reach and the records of the ``kept`` ones do not (type tag and bytes, as blobs are
    counted). 0 when a record has a format this version cannot read (nothing of the channel is collected)."""
    layouts = []
    for blob in every:
        try:
            layouts.append(_decode_record(blob))
        except CorruptData:
            return 0
    wanted = sorted(
        {(channel, node_version(b)) for r in layouts for (_, size), b in zip(_blocks(r.n), r.block_ids, strict=True) if size > 1}
    )
    found = dict(await store.cp_get_blobs(thread_id, checkpoint_ns, wanted)) if wanted else {}

    def get_block(version: str) -> Typed | None:
        return found.get((channel, version))

    reached, staying = reachable_nodes(every, get_block), reachable_nodes(kept, get_block)
    if reached is None or staying is None:
        return 0
    gone = reached - staying
    leaves = sorted((channel, v) for v in gone if (channel, v) not in found)
    if leaves:
        found.update(await store.cp_get_blobs(thread_id, checkpoint_ns, leaves))
    return sum(len(typed[0]) + len(typed[1]) for v in gone if (typed := found.get((channel, v))) is not None)


async def shared_node_bytes(
    store: SharedBlobReader, thread_id: str, records: Mapping[tuple[str, str], Sequence[Typed]]
) -> dict[tuple[str, str], int]:
    """The bytes of the nodes that ``records`` (``{(ns, channel): record blobs}`` of one thread) reach, each node
    counted once per ``(ns, channel)`` (type tag and bytes, as blobs are counted): what a usage report adds for
    a store that does not count its blobs itself. Nodes no record reaches (left by a prune) are not counted."""
    out: dict[tuple[str, str], int] = {}
    for (checkpoint_ns, channel), blobs in records.items():
        blocks: set[bytes] = set()
        leaves: set[bytes] = set()
        for blob in blobs:
            record = _decode_record(blob)
            for (_, size), block in zip(_blocks(record.n), record.block_ids, strict=True):
                (leaves if size == 1 else blocks).add(block)
        total = 0
        if blocks:
            found = await store.cp_get_blobs(thread_id, checkpoint_ns, [(channel, node_version(b)) for b in sorted(blocks)])
            for typed in found.values():
                total += len(typed[0]) + len(typed[1])
                data = typed[1]
                leaves.update(_ids(data))
        if leaves:
            found = await store.cp_get_blobs(thread_id, checkpoint_ns, [(channel, node_version(b)) for b in sorted(leaves)])
            total += sum(len(typed[0]) + len(typed[1]) for typed in found.values())
        out[(checkpoint_ns, channel)] = total
    return out
