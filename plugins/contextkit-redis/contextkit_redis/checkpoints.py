"""LangGraph checkpoint storage of the Redis tier: the :class:`RedisCheckpoints` mixin of ``RedisHotStore``.

It implements :class:`contextkit.stores.CheckpointStore` on plain Redis and on Redis Cluster with the same code.

Layout. Every key of one thread carries the thread's hash tag (:meth:`KeyLayout.owner_key`, kinds ``lg:*``, so
thread ``x`` never meets session ``x``), and a thread has a FIXED set of eight keys whatever its number of
namespaces and checkpoints, so each operation is one Lua script in one slot and the TTL refresh of a write is
seven PEXPIREs. Inside them a namespace ``ns`` is the prefix ``P(ns) = "<byte length>:" ns "\\0"`` (injective and
prefix-free, so a lexicographic range over ``P(ns)`` holds exactly that namespace):

* ``lg:ids``   ZSET (score 0) ``P(ns) cid``: per namespace, ZREVRANGEBYLEX gives the newest / ``before`` / ``limit``
  in O(log n + limit);
* ``lg:all``   ZSET (score 0) ``cid "\\0" ns``: the subgraph namespaces in id order (``checkpoint_ns=None`` listing
  merges it with the root namespace's range of ``lg:ids``, and the newest id of the thread for a tombstone is the
  higher of the two; threads written before this layout also hold their root ids here, merged once);
* ``lg:cp``    HASH ``P(ns) cid`` -> the record: ``\\x01``, then varint-length parts holding the channel
  versions (``_encode_versions``, LangGraph's usual channel names as two bytes; first, so Lua reads them without
  parsing the rest), the checkpoint type (a known one as one byte: ``_type_part``; a small zstd frame without its
  magic number: ``_squeezed``) and bytes, the metadata JSON (``\\x01`` and a zstd frame of it with a dictionary of
  LangGraph's metadata keys when that is smaller: ``_pack_meta``) and the parent id as the bytes it does not share
  with the checkpoint's id, as 16-byte ids when both are of LangGraph's form (``_parent_part``). Records written
  before have 8-hex-digit lengths, no marker, the versions as a JSON array ``[channel, version, ...]``, the
  metadata as JSON, the type as text and the parent as ``"=" id``; both are read (``_decode_record``;
  ``versions``, ``rpart`` and ``parent_of`` in Lua). A record of a chat turn is ~178 bytes (jemalloc's 192-byte
  class with the sds header; ~211 bytes and the 224-byte class before, 360 and 384 before that);
* ``lg:blobs`` HASH ``P(ns) channel "\\0" version`` -> a known type's one-byte code and the bytes, or
  ``"<type length>:" type bytes`` (other types; every value written before the codes), written only for new
  versions (``_pack_typed``); a small zstd value (``msgpack+zsd1``) has a code of its own and is stored without
  the frame's 4-byte magic number (as in records and writes: ``_squeezed``);
* ``lg:wv``    HASH ``P(ns) cid`` -> every pending write of the checkpoint, packed (``_encode_writes``: ``\\x02``,
  then per task a group holding its task id and task path once and its writes' idx, channel, type and bytes, lengths
  as varints; a task id of LangGraph's 36-character form as 16 bytes, LangGraph's pull and push task path prefixes as
  one byte: ``_task_part``, ``_prefixed``). ``cp_put_writes`` merges its writes in (``merge_writes`` in the Lua
  library): a stored ``(task_id, idx)`` is kept unless the call upserts, as HSETNX / HSET per write did. Once the
  value holds 4 KB, a task new to the checkpoint spills into a field of its own, ``P(ns) cid "\\0\\1" task_id`` (a
  packed value, indexed in ``lg:wk``), so a fan-out of many tasks on one checkpoint costs O(1) a write instead of
  rewriting an ever longer value;
* ``lg:wk``    ZSET (score 0) naming ``lg:wv`` fields beside the packed values, per checkpoint the range
  ``P(ns) cid "\\0"``: the spilled tasks above, and the writes of threads written before writes were packed
  (members ``P(ns) cid "\\0" task_id "\\0" idx``, values one write in 8-hex-digit length-prefixed parts). Reads
  return both; the first write to a checkpoint holding old writes (or a copy onto it) moves them into its packed
  value, and deletes drop both. A thread without spills or old writes has no ``lg:wk`` (asked once a script);
* ``lg:nss``   SET of the thread's namespaces (prune, copy);
* ``lg:tomb``  HASH left by ``cp_delete_thread`` for ``checkpoint_ttl``: ``floor`` and ``d<cid>`` for every
  checkpoint dropped since (:class:`contextkit.stores.Tombstone` rules, checked inside the write scripts).

Values are binary: the store's own client never decodes replies, so ``(type, bytes)`` round-trip exactly; a
caller's client built with ``decode_responses=True`` is refused with a ConfigError.

Round trips: ``cp_put``, ``cp_put_writes`` and ``cp_get`` are one script each; ``cp_list`` returns a page of up to
``limit`` checkpoints (rows, blobs and writes) per script call. The read scripts answer with one flat array of
values (:func:`_read_bundles`), which hiredis (a dependency) parses in C. (An earlier version concatenated them into
one length-prefixed string for redis-py's pure-Python parser; ``table.concat`` in Lua was a third of the list
script's time.) Id comparisons in Lua are byte-wise (Lua's ``<`` on strings follows the server's collation locale).

Indexes outside the thread's slot: ``thread_id=None`` listing walks ``index_shards`` sorted sets of thread ids
(``#lgthreads:{#n}``); ``cp_delete_for_runs`` reads a SET of thread ids per run id (``#lgrun:{<run>}``, TTL
``checkpoint_ttl`` refreshed by each put of the run, so a run is found for that long after its last checkpoint).
On plain Redis both are updated inside the put script (atomic); on a cluster they live in other slots, so the
store adds them in a separate command the first time this process writes a thread (or a run of it) and again
once a minute: a put stays one round trip. Index entries of expired threads are dropped when a listing meets them.
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from contextkit.backend.tables import ArchiveTables
from contextkit.checkpoint_archive import delete_payload
from contextkit.codec import archive_json, archive_loads
from contextkit.errors import ConfigError, CorruptData, MissingBlobs, SerializationError
from contextkit.records import ArchiveEvent
from contextkit.stores import (
    EMPTY_BLOB_TYPE,
    KEEP_NEWEST,
    CheckpointBundle,
    CheckpointRow,
    DeltaStep,
    DeltaWalk,
    EventHead,
    RetentionPolicy,
    StoreSettings,
    Typed,
    WriteRow,
    checkpoint_id_floor,
    missing_blobs_message,
    packed_id,
    unpacked_id,
)
from contextkit_redis import lua
from contextkit_redis.connection import Gate
from contextkit_redis.keys import KeyLayout
from contextkit_redis.scripts import ScriptSet

if TYPE_CHECKING:  # the outbox module imports the store, which imports this mixin
    from contextkit_redis.outbox import RedisStreamOutbox

_zstd: Any
try:  # installed with langgraph (langsmith depends on it); without it metadata is stored as plain JSON
    import zstandard as _zstd
except ImportError:  # pragma: no cover
    _zstd = None

__all__ = ["LG_SCRIPTS", "RedisCheckpoints"]

# Rows per script call when a listing has no (small) limit or filters in Python.
_PAGE = 64
# A cluster process re-adds a thread / run to its index at most this often (seconds).
_INDEX_REFRESH = 60.0
_INDEX_CACHE_MAX = 10_000
# Threads (and runs) whose key names a store keeps built.
_KEY_CACHE_MAX = 4096
# Ancestors one DeltaChannel history script visits at most (the saver resumes at the next one in another call), so
# one script never blocks the server long (1,000 ancestors with a 600-byte write each took ~20 ms here, reply
# included; 500 keeps a call near Redis's 10 ms slowlog threshold). LangGraph snapshots a delta channel at least
# every 5,000 supersteps, so the longest chain is about ten calls.
_DELTA_MAX_STEPS = 500
_HIGH = b"\xff"  # above every byte of UTF-8 text: the top of a lexicographic prefix range

LG_SCRIPTS: dict[str, str] = lua.group("checkpoint")
"""The checkpointer's Lua scripts (``lua/checkpoint/*.lua``), by name."""


# -- encoding -------------------------------------------------------------------------------------------------------
def _pack(*parts: bytes) -> bytes:
    return b"".join([b"%08x%b" % (len(part), part) for part in parts])


def _unpack(data: bytes, count: int) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    try:
        for _ in range(count):
            start = pos + 8
            pos = start + int(data[pos:start], 16)
            out.append(data[start:pos])
    except (ValueError, TypeError) as exc:
        raise CorruptData(f"stored checkpoint data is malformed: {exc}") from exc
    if pos > len(data):
        raise CorruptData("stored checkpoint data is truncated")
    return out


_VARINTS = [bytes((n,)) for n in range(128)]


def _varint(n: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, low first, the high bit set on every byte but the last."""
    if n < 128:
        return _VARINTS[n]
    out = bytearray()
    while n >= 128:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it (IndexError when the data ends inside it)."""
    n = data[pos]
    if n < 128:
        return n, pos + 1
    n &= 0x7F
    shift = 7
    while True:
        pos += 1
        byte = data[pos]
        n |= (byte & 0x7F) << shift
        if byte < 128:
            return n, pos + 1
        shift += 7


def _vpart(part: bytes) -> bytes:
    return _varint(len(part)) + part


# A record of lg:cp starts with this byte, then varint-length parts; one written before starts with a hex digit.
_RECORD_MARK = b"\x01"


def _read_bundles(data: Any) -> list[tuple[bytes, bytes, list[bytes | None], list[bytes | None]]]:
    """Split the flat array a read script returns (``bundle`` in the Lua library) into ``(head, record, blob values,
    write values)`` per checkpoint: ``head, record, n, n blob values, m, m write values, ...``."""
    out: list[tuple[bytes, bytes, list[bytes | None], list[bytes | None]]] = []
    if not isinstance(data, list):
        raise CorruptData(f"a checkpoint read reply is not an array: {type(data).__name__}")
    pos = 0
    end = len(data)
    try:
        while pos < end:
            head, rec, count = data[pos], data[pos + 1], data[pos + 2]
            pos += 3
            blobs = data[pos : pos + count]
            pos += count
            count = data[pos]
            writes = data[pos + 1 : pos + 1 + count]
            pos += 1 + count
            if not isinstance(head, bytes) or not isinstance(rec, bytes):
                raise TypeError("a checkpoint's id or record is missing")
            out.append((head, rec, blobs, writes))
    except (IndexError, TypeError) as exc:
        raise CorruptData(f"a checkpoint read reply is malformed: {exc}") from exc
    if pos != end:
        raise CorruptData("a checkpoint read reply is truncated")
    return out


def _b(text: str) -> bytes:
    return text.encode("utf-8")


def _s(raw: bytes) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def _prefix(ns: str) -> bytes:
    data = _b(ns)
    return b"%d:%b\0" % (len(data), data)


def _json(value: Any) -> bytes:
    # The archive's codec: orjson when installed, with the stdlib's meaning (NaN and infinity refused).
    try:
        return archive_json(value).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"checkpoint metadata cannot be stored as JSON: {exc}") from exc


# Type tags a record or a packed write stores as one byte (its index + 1; append only: stored values name them).
# Any other tag is stored as its text, after a NUL when it is empty or starts with a byte below 0x20. Never a shared
# list's record or block type ("...+list", "ck-block"): lib/nodes.lua finds those by their text.
_TYPES = ("msgpack", "msgpack+zsd1", "msgpack+zstd", "msgpack+zlib", "json", "null", "bytes", "bytearray", "empty", "pickle")
_TYPE_CODES = {kind: bytes((i,)) for i, kind in enumerate(_TYPES, 1)}


# A "msgpack+zsd1" value (contextkit.blob_compression: a small value, zstd with the built-in dictionary) is stored
# under this code without the zstd frame's magic number, the same 4 bytes in every frame (most values of a chat
# thread are such frames: 4 bytes of ~150); reads put the magic back. Values stored with the magic keep code 2.
_SQUEEZED_KIND = "msgpack+zsd1"
_SQUEEZED = bytes((len(_TYPES) + 1,))
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _type_part(kind: str) -> bytes:
    code = _TYPE_CODES.get(kind)
    if code is not None:
        return code
    raw = kind.encode("utf-8")
    return b"\0" + raw if not raw or raw[0] < 0x20 else raw


def _squeezed(kind: str, data: bytes) -> tuple[bytes, bytes]:
    """The type part and the bytes to store for a value: a ``msgpack+zsd1`` frame under :data:`_SQUEEZED`
    without its magic number, anything else under :func:`_type_part` as it is."""
    if kind == _SQUEEZED_KIND and data[:4] == _ZSTD_MAGIC:
        return _SQUEEZED, data[4:]
    return _type_part(kind), data


def _typed_part(part: bytes, data: bytes) -> Typed:
    """The value of a stored type part and bytes (:func:`_squeezed`, or :func:`_type_part` and the bytes)."""
    if part == _SQUEEZED:
        return (_SQUEEZED_KIND, _ZSTD_MAGIC + data)
    return (_type_of(part), data)


def _type_of(part: bytes) -> str:
    if len(part) == 1 and 0 < part[0] < 0x20:
        try:
            return _TYPES[part[0] - 1]
        except IndexError:
            raise CorruptData(f"a stored checkpoint value names unknown type code {part[0]}") from None
    return (part[1:] if part[:1] == b"\0" else part).decode("utf-8")


# A name starting with one of a table's prefixes (LangGraph's usual channel names in a record's versions, its task
# path prefixes in a write value) is stored as 0xFF, the prefix's index and the rest: 0xFF never starts UTF-8 text,
# so any other name, and every value written before, is text. The tables are append-only (the Lua library's
# `versions` holds the channel one).
_PREFIXED = b"\xff"
_CHANNEL_PREFIXES = (b"branch:to:", b"__start__", b"messages")
_PATH_PREFIXES = (b"~__pregel_pull, ", b"~__pregel_push, ")


def _prefixed(text: str, prefixes: Sequence[bytes]) -> bytes:
    raw = text.encode("utf-8")
    for i, prefix in enumerate(prefixes):
        if raw.startswith(prefix):
            return _PREFIXED + bytes((i,)) + raw[len(prefix) :]
    return raw


def _unprefixed(part: bytes, prefixes: Sequence[bytes]) -> str:
    if part[:1] == _PREFIXED:
        return (prefixes[part[1]] + part[2:]).decode("utf-8")
    return part.decode("utf-8")


def _parent_part(cid: str, parent: str | None) -> bytes:
    """A record's parent: empty (none); ``"*"``, the byte count the parent's 16 bytes share with the checkpoint's
    own and the rest of them, when both ids are of LangGraph's form (``contextkit.stores.packed_id``; ids sort by time: a parent
    shares ~5 of 16); else ``"="`` and the id, or (when they share 3+ bytes) ``"+"``, the byte count the id shares
    with the checkpoint's own id, and the rest."""
    if parent is None:
        return b""
    packed, packed_own = packed_id(parent), packed_id(cid)
    if packed is not None and packed_own is not None:
        # both of LangGraph's form: "*", the byte count shared as 16-byte ids, the rest of the parent's 16 bytes
        raw, own, marker = packed, packed_own, b"*"
    else:
        raw, own, marker = parent.encode("utf-8"), cid.encode("utf-8"), b"+"
    shared = 0
    for a, b in zip(raw, own[:255], strict=False):
        if a != b:
            break
        shared += 1
    if marker == b"*":
        return b"*%c%b" % (shared, raw[shared:])
    return b"+%c%b" % (shared, raw[shared:]) if shared > 2 else b"=" + raw


def _parent_of(cid: str, part: bytes) -> str | None:
    if not part:
        return None
    if part[:1] == b"+":
        return (cid.encode("utf-8")[: part[1]] + part[2:]).decode("utf-8")
    if part[:1] == b"*":
        whole = (packed_id(cid) or b"")[: part[1]] + part[2:]
        if len(whole) != 16:
            raise ValueError("a packed parent id is not 16 bytes")
        return unpacked_id(whole)
    return part[1:].decode("utf-8")


# Metadata dictionary 1 (zstd raw content; never to change: stored records name it): compact JSON of the metadata
# LangGraph writes (its keys, "source" values and the configurable keys it copies), the most common shape last.
_META_DICT_1 = (
    b'{"source":"fork","step":0,"parents":{"":""},"writes":null,"run_id":"","thread_id":"","user_id":"",'
    b'"graph_id":"","assistant_id":"","checkpoint_ns":"","langgraph_step":1,"langgraph_node":"",'
    b'"langgraph_triggers":["branch:to:"],"langgraph_path":["__pregel_pull",""],"langgraph_checkpoint_ns":""}'
    b'{"source":"update","step":1,"parents":{}}{"source":"input","step":-1,"parents":{},'
    b'"counters_since_delta_snapshot":{"messages":[0,0]}}{"source":"loop","step":1,"parents":{},'
    b'"counters_since_delta_snapshot":{"messages":['
)
# A record's metadata part is its JSON (it starts with "{") or this byte and a magicless zstd frame of the JSON
# compressed with _META_DICT_1: ~94 bytes of a chat turn's metadata become ~26, for ~2 us a put and ~0.5 us a read.
_META_ZSTD_1 = b"\x01"
_meta_local = threading.local()


def _meta_codec() -> tuple[Any, Any]:
    # zstandard's (de)compressors are not safe to share between threads
    found = getattr(_meta_local, "codec", None)
    if found is None:
        data = _zstd.ZstdCompressionDict(_META_DICT_1, dict_type=_zstd.DICT_TYPE_RAWCONTENT)
        params = _zstd.ZstdCompressionParameters.from_level(
            3, format=_zstd.FORMAT_ZSTD1_MAGICLESS, write_checksum=False, write_dict_id=False, write_content_size=True
        )
        found = _meta_local.codec = (
            _zstd.ZstdCompressor(dict_data=data, compression_params=params),
            _zstd.ZstdDecompressor(dict_data=data, format=_zstd.FORMAT_ZSTD1_MAGICLESS),
        )
    return found


def _pack_meta(meta: bytes) -> bytes:
    if _zstd is None or len(meta) < 24:
        return meta
    packed = _meta_codec()[0].compress(meta)
    return _META_ZSTD_1 + packed if len(packed) + 1 < len(meta) else meta


def _unpack_meta(part: bytes) -> bytes:
    if part[:1] != _META_ZSTD_1:
        return part
    if _zstd is None:
        raise CorruptData("a checkpoint's metadata is zstd-compressed and the zstandard package is not installed")
    try:
        return bytes(_meta_codec()[1].decompress(part[1:]))
    except _zstd.ZstdError as exc:
        raise CorruptData(f"a checkpoint's compressed metadata cannot be read: {exc}") from exc


def _encode_versions(versions: Mapping[str, Any]) -> bytes:
    """The versions part of a record: per channel ``V(channel)`` (a common name's prefix as two bytes:
    ``_prefixed``), then ``varint(len + 1)`` and the version, or ``0`` for the previous channel's version (a
    turn's channels mostly share one: 52 bytes instead of 88 of JSON)."""
    varint = _varint
    out: list[bytes] = []
    append = out.append
    prev: str | None = None
    for channel, version in versions.items():
        raw = _prefixed(channel, _CHANNEL_PREFIXES)
        append(varint(len(raw)))
        append(raw)
        text = version if type(version) is str else str(version)
        if text == prev:
            append(b"\0")
        else:
            raw = text.encode("utf-8")
            append(varint(len(raw) + 1))
            append(raw)
            prev = text
    return b"".join(out)


def _decode_versions(part: bytes) -> list[str]:
    """``[channel, version, ...]`` of a versions part (``_encode_versions``)."""
    flat: list[str] = []
    pos, end = 0, len(part)
    prev: str | None = None
    while pos < end:
        size, pos = _varint_at(part, pos)
        flat.append(_unprefixed(part[pos : pos + size], _CHANNEL_PREFIXES))
        size, pos = _varint_at(part, pos + size)
        if size:
            prev = part[pos : pos + size - 1].decode("utf-8")
            pos += size - 1
        elif prev is None:
            raise ValueError("a version refers to a previous one that is not there")
        flat.append(prev)
    if pos != end:
        raise ValueError("the versions part is truncated")
    return flat


def _encode_record(row: CheckpointRow) -> bytes:
    parent = _parent_part(row.checkpoint_id, row.parent_checkpoint_id)
    ctype, cbytes = row.checkpoint
    metadata = row.metadata
    vjson = _encode_versions(row.channel_versions)
    kind, data = _squeezed(ctype, bytes(cbytes))
    meta = _pack_meta(_json(metadata if type(metadata) is dict else dict(metadata)))
    varint = _varint
    return b"".join(
        [
            _RECORD_MARK,
            varint(len(vjson)),
            vjson,
            varint(len(kind)),
            kind,
            varint(len(data)),
            data,
            varint(len(meta)),
            meta,
            varint(len(parent)),
            parent,
        ]
    )


def _record_parts(raw: bytes) -> list[bytes]:
    """The five parts of a record: ``\\x01`` and varint lengths, or (written before) 8-hex-digit lengths."""
    if raw[:1] != _RECORD_MARK:
        return _unpack(raw, 5)
    out: list[bytes] = []
    pos = 1
    try:
        for _ in range(5):
            size, pos = _varint_at(raw, pos)
            out.append(raw[pos : pos + size])
            pos += size
    except IndexError as exc:
        raise CorruptData(f"stored checkpoint data is malformed: {exc}") from exc
    if pos != len(raw):
        raise CorruptData("stored checkpoint data is truncated")
    return out


def _decode_record(thread_id: str, ns: str, cid: str, raw: bytes) -> tuple[CheckpointRow, list[str]]:
    """The row and the channels in the order of the stored versions array (the order blob values come in)."""
    vjson, ctype, cbytes, meta, parent = _record_parts(raw)
    try:
        if raw[:1] == _RECORD_MARK:
            flat = _decode_versions(vjson)
            metadata = archive_loads(_unpack_meta(meta))
            checkpoint, parent_id = _typed_part(ctype, bytes(cbytes)), _parent_of(cid, parent)
        else:  # the 8-hex-digit format: JSON versions and metadata, the type as text, the parent as "=" id
            flat = archive_loads(vjson)
            metadata = archive_loads(meta)
            checkpoint = (ctype.decode("utf-8"), bytes(cbytes))
            parent_id = parent[1:].decode("utf-8") if parent else None
    except (ValueError, IndexError) as exc:
        raise CorruptData(f"stored checkpoint {cid!r} is malformed: {exc}") from exc
    channels = flat[0::2]
    row = CheckpointRow(
        thread_id,
        ns,
        cid,
        parent_id,
        checkpoint,
        metadata,
        dict(zip(channels, flat[1::2], strict=True)),
    )
    return row, channels


def _pack_typed(kind: str, data: bytes) -> bytes:
    """A lg:blobs value: a known type's one-byte code (``_TYPES``) and the bytes, or ``"<type length>:" type``
    and the bytes (other types, and every value written before the codes)."""
    part, rest = _squeezed(kind, data)
    if part == _SQUEEZED:
        return part + rest
    code = _TYPE_CODES.get(kind)
    if code is not None:
        return code + data
    tag = _b(kind)
    return b"%d:%b%b" % (len(tag), tag, data)


def _typed(raw: bytes) -> Typed:
    if raw[:1] == _SQUEEZED:
        return (_SQUEEZED_KIND, _ZSTD_MAGIC + raw[1:])
    if raw[:1] and 0 < raw[0] < 0x20:
        try:
            return (_TYPES[raw[0] - 1], raw[1:])
        except IndexError:
            raise CorruptData(f"a stored checkpoint value names unknown type code {raw[0]}") from None
    try:
        colon = raw.index(b":")
        end = colon + 1 + int(raw[:colon])
    except ValueError as exc:
        raise CorruptData(f"a stored checkpoint value is malformed: {exc}") from exc
    return (raw[colon + 1 : end].decode("utf-8"), raw[end:])


# A packed write value (the lg:wv field ``P(ns) cid``: every write of a checkpoint) starts with this byte; a value
# of the layout before it (one write, 8-hex-digit length prefixes) starts with a hex digit.
_WRITES_MARK = 2


# In a packed write value, a task id of LangGraph's form (:func:`contextkit.stores.packed_id`) is stored as 0xFF and its 16 bytes
# (any other id, and every value written before, as text), and the task path as :func:`_prefixed` with
# _PATH_PREFIXES. The Lua scripts compare task ids as bytes: one process's writes of a task always use one form.
def _task_part(task_id: str) -> bytes:
    packed = packed_id(task_id)
    return _b(task_id) if packed is None else _PREFIXED + packed


def _task_of(part: bytes) -> str:
    if part[:1] == _PREFIXED:
        if len(part) != 17:
            raise ValueError("a packed task id is not 16 bytes")
        return unpacked_id(part[1:])
    return part.decode("utf-8")


def _encode_writes(writes: Sequence[WriteRow], upsert: bool) -> bytes:
    """One packed write value: ``\\x02``, then per (task_id, task_path) a group ``V(task_id) V(body)``, ``body =
    V(task_path)`` and per write ``varint(zigzag(idx)) V(channel) V(type) V(bytes)`` (``V(x) = varint(len(x)) x``;
    the task id as :func:`_task_part`, the path as :func:`_prefixed`, the type and bytes as
    :func:`_squeezed`).
    A (task_id, idx) repeated in ``writes`` keeps its first value, or its last when ``upsert`` (as one HSETNX / HSET
    per write did)."""
    unique: dict[tuple[str, int], WriteRow] = {}
    for write in writes:
        key = (write.task_id, write.idx)
        if upsert:
            unique.pop(key, None)
            unique[key] = write
        elif key not in unique:
            unique[key] = write
    groups: dict[tuple[str, str], list[bytes]] = {}
    for write in unique.values():
        kind, data = write.value
        idx = write.idx
        group = groups.get((write.task_id, write.task_path))
        if group is None:
            group = groups[(write.task_id, write.task_path)] = [_vpart(_prefixed(write.task_path, _PATH_PREFIXES))]
        group.append(_varint(idx << 1 if idx >= 0 else (-idx << 1) - 1))
        group.append(_vpart(_b(write.channel)))
        code, stored = _squeezed(kind, bytes(data))
        group.append(_vpart(code))
        group.append(_vpart(stored))
    out = [bytes((_WRITES_MARK,))]
    for (task_id, _), parts in groups.items():
        body = b"".join(parts)
        out.append(_vpart(_task_part(task_id)) + _varint(len(body)) + body)
    return b"".join(out)


def _decode_writes(raw: bytes) -> list[WriteRow]:
    """The writes of a packed write value, or the one write of a value of the layout before it."""
    if not raw or raw[0] != _WRITES_MARK:
        parts = _unpack(raw, 6)
        return [
            WriteRow(
                parts[0].decode("utf-8"),
                int(parts[1]),
                parts[2].decode("utf-8"),
                (parts[3].decode("utf-8"), parts[4]),
                parts[5].decode("utf-8"),
            )
        ]
    out: list[WriteRow] = []
    pos, end = 1, len(raw)
    try:
        while pos < end:
            size, pos = _varint_at(raw, pos)
            task_id = _task_of(raw[pos : pos + size])
            size, pos = _varint_at(raw, pos + size)
            group_end = pos + size
            size, pos = _varint_at(raw, pos)
            task_path = _unprefixed(raw[pos : pos + size], _PATH_PREFIXES)
            pos += size
            while pos < group_end:
                zigzag, pos = _varint_at(raw, pos)
                size, pos = _varint_at(raw, pos)
                channel = raw[pos : pos + size].decode("utf-8")
                size, pos = _varint_at(raw, pos + size)
                code = raw[pos : pos + size]
                size, pos = _varint_at(raw, pos + size)
                value = _typed_part(code, raw[pos : pos + size])
                pos += size
                idx = zigzag >> 1 if not zigzag & 1 else -(zigzag >> 1) - 1
                out.append(WriteRow(task_id, idx, channel, value, task_path))
            if pos != group_end:
                raise ValueError("a write group's length does not match its writes")
    except (IndexError, ValueError) as exc:
        raise CorruptData(f"a stored pending-write value is malformed: {exc}") from exc
    if pos != end:
        raise CorruptData("a stored pending-write value is truncated")
    return out


def _bundle(
    thread_id: str, ns: str, cid: str, rec: bytes, blob_values: Sequence[Any], write_values: Sequence[Any]
) -> CheckpointBundle:
    row, channels = _decode_record(thread_id, ns, cid, rec)
    blobs = {channel: _typed(value) for channel, value in zip(channels, blob_values, strict=True) if value is not None}
    writes = [write for value in write_values if value is not None for write in _decode_writes(value)]
    return CheckpointBundle(row, blobs, writes)


def _delta_args(
    checkpoint_ns: str, checkpoint_id: str | None, channels: Sequence[str], *, inclusive: bool, stop_at: str | None, bundle: bool
) -> list[Any]:
    """The arguments of the ``delta_history`` script (see its header); ``bundle``: the start's bundle too."""
    return [
        _prefix(checkpoint_ns),
        _b(checkpoint_id or ""),
        b"1" if inclusive else b"0",
        _DELTA_MAX_STEPS,
        _b(EMPTY_BLOB_TYPE),
        _TYPE_CODES[EMPTY_BLOB_TYPE],
        _b(stop_at or ""),
        b"1" if bundle else b"0",
        *map(_b, channels),
    ]


def _read_delta_walk(data: Any, channels: Sequence[str]) -> DeltaWalk:
    """Decode the flat array of the ``delta_history`` script: start, resume, bounded, then per ancestor its id,
    ``n`` write values, ``m`` (channel, blob value) seed pairs. A step keeps the writes to the ``channels`` still
    walking when it was visited (the script returns a packed write value whole)."""
    remaining = set(channels)
    if not isinstance(data, list) or len(data) < 3:
        raise CorruptData(f"a DeltaChannel history reply is malformed: {type(data).__name__}")
    steps: list[DeltaStep] = []
    pos, end = 3, len(data)
    try:
        while pos < end:
            cid, count = _s(data[pos]), int(data[pos + 1])
            pos += 2
            writes = [
                write for value in data[pos : pos + count] for write in _decode_writes(value) if write.channel in remaining
            ]
            pos += count
            count = int(data[pos])
            pos += 1
            seeds = {_s(data[pos + 2 * i]): _typed(data[pos + 2 * i + 1]) for i in range(count)}
            remaining.difference_update(seeds)
            pos += 2 * count
            steps.append(DeltaStep(cid, writes, seeds))
    except (IndexError, TypeError, ValueError) as exc:
        raise CorruptData(f"a DeltaChannel history reply is malformed: {exc}") from exc
    if pos != end:
        raise CorruptData("a DeltaChannel history reply is truncated")
    resume = data[1]
    if data[2] == b"2":
        return DeltaWalk(_s(data[0]), steps, stopped=True)
    return DeltaWalk(_s(data[0]), steps, None if resume is None else _s(resume), data[2] == b"1")


def _repack_writes(fields: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """The lg:wv fields of a dump (packed values, spilled tasks and writes of the layout before them) as one packed
    value per checkpoint field ``P(ns) cid``; a packed value's write wins over an old one of the same (task_id,
    idx)."""
    rows: dict[bytes, list[WriteRow]] = {}
    # the old layout's values first, so the packed values' writes come last and win
    for field in sorted(fields, key=lambda field: fields[field][:1] == b"\x02"):
        _, pfx, cid = _split_ns_field(field, checkpoint=True)
        rows.setdefault(pfx + _b(cid), []).extend(_decode_writes(fields[field]))
    return {field: _encode_writes(writes, True) for field, writes in rows.items()}


def _split_ns_field(field: bytes, *, checkpoint: bool = False) -> tuple[str, bytes, str]:
    """``P(ns) rest`` -> ``(ns, P(ns), rest)``; with ``checkpoint``, ``rest`` up to its first NUL (the checkpoint
    id of a ``lg:wv`` field: a spilled task's field goes on with ``\\0\\1`` and its task id, binary when packed, see
    ``_task_part``)."""
    colon = field.index(b":")
    size = int(field[:colon])
    start = colon + 1
    ns = field[start : start + size]
    pfx = field[: start + size + 1]
    rest = field[start + size + 1 :]
    if checkpoint:
        rest = rest.split(b"\0", 1)[0]
    return _s(ns), pfx, _s(rest)


def _run_id(metadata: Mapping[str, Any]) -> str | None:
    value = metadata.get("run_id")
    return value if isinstance(value, str) else None


def _matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    missing = object()
    return all(metadata.get(key, missing) == value for key, value in wanted.items())


def _pairs(raw: Any) -> list[tuple[bytes, bytes]]:
    if isinstance(raw, Mapping):
        return list(raw.items())
    items = list(raw)
    return [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]


class RedisCheckpoints:
    """Mixin implementing :class:`contextkit.stores.CheckpointStore` on Redis (see the module docstring).

    The host (``RedisHotStore``) provides ``settings``, ``keys``, ``gate``, ``client``, ``cluster`` and
    ``_outbox_key``.
    """

    settings: StoreSettings
    keys: KeyLayout
    gate: Gate
    #: (client, scripts registered on it), rebuilt when the host reopens with a new client.
    _lg_state: tuple[Any, ScriptSet] | None = None
    #: The host's outbox once built (``RedisHotStore.outbox``), told of every stream a script wrote to.
    _outbox: RedisStreamOutbox | None = None

    if TYPE_CHECKING:

        @property
        def client(self) -> Any:
            """The host's live client."""

        @property
        def cluster(self) -> bool:
            """True on a Redis Cluster."""

        def _outbox_key(self, owner_id: str) -> str:
            """The outbox stream a script of ``owner_id`` XADDs its archive event to."""

    # -- plumbing ---------------------------------------------------------------------------------------------
    @property
    def _lg(self) -> ScriptSet:
        """The checkpointer's scripts, registered on the current client (re-registered after a reopen)."""
        client = self.client
        state = self._lg_state
        if state is None or state[0] is not client:
            encoder = getattr(client, "get_encoder", None)
            if encoder is not None and getattr(encoder(), "decode_responses", False):
                raise ConfigError(
                    "LangGraph checkpoints store binary values: hand in a Redis client built with decode_responses=False"
                )
            state = (client, ScriptSet(client, LG_SCRIPTS))
            self._lg_state = state
        return state[1]

    def _lg_thread_keys(self, thread_id: str) -> tuple[str, ...]:
        """The eight keys of the thread and its thread index shard, cached: building them percent-encodes the id
        nine times, which was the largest Python cost of a put or a get."""
        cached: tuple[KeyLayout, dict[str, tuple[str, ...]]] | None = getattr(self, "_lg_key_cache", None)
        if cached is None or cached[0] is not self.keys:
            cached = (self.keys, {})
            self._lg_key_cache = cached
        cache = cached[1]
        found = cache.get(thread_id)
        if found is None:
            key = self.keys.owner_key
            found = (
                key(thread_id, "lg:ids"),
                key(thread_id, "lg:all"),
                key(thread_id, "lg:cp"),
                key(thread_id, "lg:blobs"),
                key(thread_id, "lg:wk"),
                key(thread_id, "lg:wv"),
                key(thread_id, "lg:nss"),
                key(thread_id, "lg:tomb"),
                self._lg_thread_shard(self.keys.shard_of(thread_id)),
            )
            if len(cache) >= _KEY_CACHE_MAX:
                del cache[next(iter(cache))]  # the oldest entry
            cache[thread_id] = found
        return found

    def _lg_keys(self, thread_id: str) -> list[str]:
        return list(self._lg_thread_keys(thread_id)[:8])

    def _lg_thread_index(self, thread_id: str) -> str:
        return self._lg_thread_keys(thread_id)[8]

    def _lg_thread_shard(self, shard: int) -> str:
        return f"{self.keys.prefix}#lgthreads:{{#{shard}}}"

    def _lg_run_index(self, run_id: str) -> str:
        cached: tuple[KeyLayout, dict[str, str]] | None = getattr(self, "_lg_run_cache", None)
        if cached is None or cached[0] is not self.keys:
            cached = (self.keys, {})
            self._lg_run_cache = cached
        cache = cached[1]
        found = cache.get(run_id)
        if found is None:
            # the run's own tag ("#" never appears in an encoded id, so it is no thread's or session's slot)
            found = f"{self.keys.prefix}#lgrun:{{#r{zlib.crc32(_b(run_id)):08x}}}:{self.keys.owner_tag(run_id)}"
            if len(cache) >= _KEY_CACHE_MAX:
                del cache[next(iter(cache))]
            cache[run_id] = found
        return found

    def _lg_ttl_ms(self) -> int:
        return max(1, int(self.settings.checkpoint_ttl * 1000))

    async def _lg_preindex(self, thread_id: str, run_id: str | None) -> None:
        """Cluster mode: add the thread (and run) to their indexes unless this process did so recently."""
        cache: dict[tuple[str, str], float] = getattr(self, "_lg_indexed", None) or {}
        self._lg_indexed = cache
        now = time.monotonic()
        wanted = [("t", thread_id)] + ([("r", run_id + "\0" + thread_id)] if run_id is not None else [])
        todo = [item for item in wanted if now - cache.get(item, -_INDEX_REFRESH) >= _INDEX_REFRESH]
        if not todo:
            return
        pipe = self.client.pipeline(transaction=False)
        for kind, _ in todo:
            if kind == "t":
                pipe.zadd(self._lg_thread_index(thread_id), {thread_id: 0})
            else:
                assert run_id is not None
                run_key = self._lg_run_index(run_id)
                pipe.sadd(run_key, thread_id)
                pipe.pexpire(run_key, self._lg_ttl_ms())
        await self.gate("checkpoint index", pipe.execute())
        if len(cache) >= _INDEX_CACHE_MAX:
            cache.clear()
        for item in todo:
            cache[item] = now

    def _lg_forget_cached(self, thread_id: str) -> None:
        cache = getattr(self, "_lg_indexed", None)
        if cache:
            cache.pop(("t", thread_id), None)

    # -- writes -----------------------------------------------------------------------------------------------
    async def cp_put(
        self,
        row: CheckpointRow,
        new_blobs: Mapping[tuple[str, str], Typed],
        *,
        archive: ArchiveEvent | None = None,
        requires: Collection[tuple[str, str]] = (),
    ) -> None:
        """One script: the record, the new blobs, both id indexes, the namespace, the thread TTL and (``archive``)
        the checkpoint's archive event; a late put of a deleted thread is dropped inside the same script, and a
        put whose ``requires`` blobs are gone (a restart without persistence, an eviction, an expiry under the
        run) raises ``MissingBlobs`` with nothing written."""
        thread_id = row.thread_id
        pfx = _prefix(row.checkpoint_ns)
        run_id = _run_id(row.metadata)
        all_keys = self._lg_thread_keys(thread_id)
        keys = list(all_keys[:8])
        stream = None if archive is None else self._outbox_key(thread_id)
        if stream is not None:
            keys.append(stream)
        if self.cluster:
            await self._lg_preindex(thread_id, run_id)
        else:
            keys.append(all_keys[8])
            if run_id is not None:
                keys.append(self._lg_run_index(run_id))
        args: list[Any] = [
            self._lg_ttl_ms(),
            pfx,
            _b(row.checkpoint_ns),
            _b(row.checkpoint_id),
            _b(row.parent_checkpoint_id or ""),
            _encode_record(row),
            _b(thread_id),
            "" if archive is None else archive_json(archive.to_dict()),
            len(new_blobs),
        ]
        for (channel, version), (kind, data) in new_blobs.items():
            args.append(pfx + _b(channel) + b"\0" + _b(str(version)))
            args.append(_pack_typed(kind, bytes(data)))
        fields = {pfx + _b(channel) + b"\0" + _b(version): (channel, version) for channel, version in requires}
        args.append(len(fields))
        args.extend(fields)
        done = await self.gate("cp_put", self._lg.run("put", keys, args))
        if isinstance(done, list):
            missing = [fields[field] for field in done if field in fields]
            raise MissingBlobs(missing_blobs_message(row, missing), missing)
        self._lg_wrote(stream)

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
        """One script: the writes merged into the checkpoint's packed write value, each under ``(task_id, idx)``
        (replacing a stored one when ``upsert``, else kept only if new), the TTL and (``archive``) their archive
        event."""
        if not writes:
            return
        pfx = _prefix(checkpoint_ns)
        event = "" if archive is None else archive_json(archive.to_dict())
        args: list[Any] = [
            self._lg_ttl_ms(), pfx, _b(checkpoint_id), "1" if upsert else "0", event, _encode_writes(writes, upsert)
        ]
        keys = self._lg_keys(thread_id)
        stream = None if archive is None else self._outbox_key(thread_id)
        if stream is not None:
            keys = [*keys, stream]
        await self.gate("cp_put_writes", self._lg.run("put_writes", keys, args))
        self._lg_wrote(stream)

    # -- reads ------------------------------------------------------------------------------------------------
    async def cp_get(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> CheckpointBundle | None:
        """One script: the record, the blobs of its channel versions and its writes."""
        args = [_prefix(checkpoint_ns), _b(checkpoint_id or "")]
        raw = await self.gate("cp_get", self._lg.run("get", self._lg_thread_keys(thread_id)[:6], args))
        if not raw:
            return None
        ((cid, rec, blob_values, write_values),) = _read_bundles(raw)
        return _bundle(thread_id, checkpoint_ns, cid.decode("utf-8"), rec, blob_values, write_values)

    async def cp_get_blobs(
        self, thread_id: str, checkpoint_ns: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Typed]:
        """See :meth:`contextkit.stores.SharedBlobStore.cp_get_blobs`: one HMGET of the thread's blob hash."""
        if not keys:
            return {}
        pfx = _prefix(checkpoint_ns)
        fields = [pfx + _b(channel) + b"\0" + _b(version) for channel, version in keys]
        raw = await self.gate("cp_get_blobs", self.client.hmget(self._lg_thread_keys(thread_id)[3], fields))
        return {key: _typed(value) for key, value in zip(keys, raw, strict=True) if value is not None}

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
        """See :meth:`contextkit.stores.DeltaHistoryStore.cp_delta_history`: one script walks the parent chain
        in the thread's slot (up to 500 ancestors a call, ending at ``stop_at``) and returns only the writes and
        seeds of the channels asked for."""
        args = _delta_args(checkpoint_ns, checkpoint_id, channels, inclusive=inclusive, stop_at=stop_at, bundle=False)
        raw = await self.gate("cp_delta_history", self._lg.run("delta_history", self._lg_thread_keys(thread_id)[:6], args))
        if not raw:
            return None
        return _read_delta_walk(raw, channels)

    async def cp_get_with_delta_history(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str | None,
        channels: Sequence[str],
        *,
        stop_at: str | None = None,
    ) -> tuple[CheckpointBundle, DeltaWalk] | None:
        """See :meth:`contextkit.stores.DeltaReadStore.cp_get_with_delta_history`: :meth:`cp_get` and the walk
        from that checkpoint (:meth:`cp_delta_history`) in one script."""
        args = _delta_args(checkpoint_ns, checkpoint_id, channels, inclusive=False, stop_at=stop_at, bundle=True)
        raw = await self.gate("cp_get", self._lg.run("delta_history", self._lg_thread_keys(thread_id)[:6], args))
        if not raw:
            return None
        ((cid, rec, blob_values, write_values),) = _read_bundles(raw[1])
        bundle = _bundle(thread_id, checkpoint_ns, cid.decode("utf-8"), rec, blob_values, write_values)
        return bundle, _read_delta_walk(raw[0], channels)

    async def cp_list(
        self,
        thread_id: str | None,
        checkpoint_ns: str | None,
        *,
        checkpoint_id: str | None = None,
        before: str | None = None,
        limit: int | None = None,
        metadata_filter: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[CheckpointBundle]:
        """Newest first, a page of whole checkpoints per script call (``limit`` rows when no filter)."""
        if limit is not None and limit <= 0:
            return
        if checkpoint_id is not None and before is not None and not checkpoint_id < before:
            return
        remaining = limit
        if thread_id is not None:
            threads: AsyncGenerator[str, None] = _one(thread_id)
        else:
            threads = self._lg_all_threads()
        # The generators left behind at the limit are closed here: left to the garbage collector, each costs the
        # loop a thread-safe wake-up and a task (asyncio's async generator finalizer), a third of a short listing.
        try:
            async for tid in threads:
                found_any = False
                pages = self._lg_list_thread(tid, checkpoint_ns, checkpoint_id, before, remaining, metadata_filter)
                try:
                    async for bundle in pages:
                        found_any = True
                        yield bundle
                        if remaining is not None:
                            remaining -= 1
                            if remaining <= 0:
                                return
                finally:
                    await pages.aclose()
                if thread_id is None and not found_any:
                    await self._lg_forget_if_gone(tid)
        finally:
            await threads.aclose()

    async def _lg_list_thread(
        self,
        thread_id: str,
        ns: str | None,
        checkpoint_id: str | None,
        before: str | None,
        limit: int | None,
        metadata_filter: Mapping[str, Any] | None,
    ) -> AsyncGenerator[CheckpointBundle, None]:
        keys = self._lg_thread_keys(thread_id)[:6]
        if ns is not None:
            pfx = _prefix(ns)
            mode = "ns"
            if checkpoint_id is not None:
                low, high = b"[" + pfx + _b(checkpoint_id), b"[" + pfx + _b(checkpoint_id)
            else:
                low, high = b"[" + pfx, (b"(" + pfx + _b(before)) if before is not None else b"[" + pfx + _HIGH
        else:
            pfx = b""
            mode = "all"
            if checkpoint_id is not None:
                low, high = b"[" + _b(checkpoint_id) + b"\0", b"[" + _b(checkpoint_id) + b"\0" + _HIGH
            else:
                low, high = b"-", (b"(" + _b(before)) if before is not None else b"+"
        page = _PAGE if metadata_filter or limit is None else min(limit, 1000)
        while True:
            raw = _read_bundles(await self.gate("cp_list", self._lg.run("list", keys, [mode, pfx, high, low, page])))
            for member, rec, blob_values, write_values in raw:
                if ns is not None:
                    item_ns, cid = ns, _s(member[len(pfx) :])
                else:
                    cid_raw, _, ns_raw = member.partition(b"\0")
                    item_ns, cid = _s(ns_raw), _s(cid_raw)
                bundle = _bundle(thread_id, item_ns, cid, rec, blob_values, write_values)
                if metadata_filter and not _matches(bundle.row.metadata, metadata_filter):
                    continue
                yield bundle
            if len(raw) < page:
                return
            high = b"(" + raw[-1][0]

    async def _lg_all_threads(self) -> AsyncGenerator[str, None]:
        for shard in range(self.keys.shards):
            key = self._lg_thread_shard(shard)
            low = b"-"
            while True:
                raw = await self.gate("cp_list", self.client.zrangebylex(key, low, b"+", 0, 500))
                for member in raw:
                    yield _s(member)
                if len(raw) < 500:
                    break
                low = b"(" + raw[-1]

    async def cp_thread_ids(self) -> list[str]:
        """See :class:`contextkit.stores.CheckpointThreadsStore`: the members of the thread index (a sorted set per
        shard) whose checkpoint indexes exist, checked 500 threads a pipeline: a thread that expired keeps its
        member until a listing forgets it."""
        threads = sorted({thread_id async for thread_id in self._lg_all_threads()})
        live: list[str] = []
        for start in range(0, len(threads), 500):
            chunk = threads[start : start + 500]
            pipe = self.client.pipeline(transaction=False)
            for thread_id in chunk:
                pipe.exists(*self._lg_keys(thread_id)[:2])
            counts = await self.gate("cp_thread_ids", pipe.execute())
            live.extend(thread_id for thread_id, count in zip(chunk, counts, strict=True) if int(count))
        return live

    async def _lg_forget_if_gone(self, thread_id: str) -> None:
        ids_key, all_key = self._lg_keys(thread_id)[:2]
        index = self._lg_thread_index(thread_id)
        if self.cluster:
            if int(await self.gate("cp_list", self.client.exists(all_key, ids_key))) == 0:
                await self.gate("cp_list", self._lg.run("forget_thread", [index], [_b(thread_id)]))
        else:
            await self.gate("cp_list", self._lg.run("forget_thread", [index, all_key, ids_key], [_b(thread_id)]))

    # -- deletes, copies, prune -------------------------------------------------------------------------------
    def _lg_wrote(self, stream: str | None) -> None:
        """Tell the outbox a script XADDed to ``stream`` (see RedisHotStore._run)."""
        if stream is not None and self._outbox is not None:
            self._outbox.written(stream)

    async def cp_deleted_floor(self, thread_id: str) -> str | None:
        """See :meth:`contextkit.stores.CheckpointStore.cp_deleted_floor`: the tombstone's ``floor``."""
        raw = await self.gate("cp_deleted_floor", self.client.hget(self._lg_keys(thread_id)[7], "floor"))
        return None if raw is None else (raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))

    async def cp_delete_thread(self, thread_id: str, *, archive: EventHead | None = None) -> None:
        """One script: every key of the thread goes, the tombstone (floor = the newest id stored, or the delete
        time) is written for ``checkpoint_ttl``, and (``archive``) its archive event."""
        keys = self._lg_keys(thread_id)
        stream = None if archive is None else self._outbox_key(thread_id)
        if stream is not None:
            keys.append(stream)
        if not self.cluster:
            keys.append(self._lg_thread_index(thread_id))
        head = tail = ""
        if archive is not None:
            marker = f"floor-{uuid.uuid4().hex}"
            event = ArchiveEvent(
                ArchiveTables.CHECKPOINTS, thread_id, delete_payload(marker), archive.created_at, archive.event_id
            )
            head, _, tail = archive_json(event.to_dict()).partition(archive_json(marker))
        args = [self._lg_ttl_ms(), _b(checkpoint_id_floor(time.time())), _b(thread_id), head, tail]
        await self.gate("cp_delete_thread", self._lg.run("delete_thread", keys, args))
        self._lg_wrote(stream)
        self._lg_forget_cached(thread_id)
        if self.cluster:
            await self.gate("cp_delete_thread", self.client.zrem(self._lg_thread_index(thread_id), thread_id))

    async def _lg_dump(self, thread_id: str) -> tuple[dict[bytes, bytes], dict[bytes, bytes], dict[bytes, bytes], list[bytes]]:
        keys = self._lg_keys(thread_id)
        raw = await self.gate("checkpoint read", self._lg.run("dump", [keys[2], keys[3], keys[5], keys[6]], []))
        cp, blobs, writes, nss = raw
        return dict(_pairs(cp)), dict(_pairs(blobs)), dict(_pairs(writes)), list(nss)

    def _lg_rows(self, thread_id: str, cp: Mapping[bytes, bytes]) -> dict[str, dict[str, CheckpointRow]]:
        """Records of a dump, by namespace then id."""
        by_ns: dict[str, dict[str, CheckpointRow]] = {}
        for field, rec in cp.items():
            ns, _, cid = _split_ns_field(field)
            by_ns.setdefault(ns, {})[cid] = _decode_record(thread_id, ns, cid, rec)[0]
        return by_ns

    async def cp_delete_for_runs(self, run_ids: Sequence[str]) -> list[str]:
        """The run index names the threads; each thread's matching checkpoints go in one script (with their
        writes and the blobs nothing else points at). Returns the threads that lost checkpoints."""
        if not run_ids:
            return []
        touched: list[str] = []
        wanted = set(run_ids)
        pipe = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.smembers(self._lg_run_index(run_id))
        threads = sorted({_s(t) for members in await self.gate("cp_delete_for_runs", pipe.execute()) for t in members})
        for thread_id in threads:
            cp, _, _, _ = await self._lg_dump(thread_id)
            groups: list[tuple[str, Sequence[str], Sequence[str], Mapping[str, CheckpointRow]]] = []
            for ns, rows in self._lg_rows(thread_id, cp).items():
                doomed = [cid for cid, row in rows.items() if _run_id(row.metadata) in wanted]
                if doomed:
                    groups.append((ns, doomed, [], {}))
            if groups:
                await self._lg_delete(thread_id, groups)
                touched.append(thread_id)
        pipe = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.delete(self._lg_run_index(run_id))
        await self.gate("cp_delete_for_runs", pipe.execute())
        return touched

    async def _lg_delete(
        self, thread_id: str, groups: Sequence[tuple[str, Sequence[str], Sequence[str], Mapping[str, CheckpointRow]]]
    ) -> None:
        """Run the delete script: per namespace, ids to remove, ids whose writes to purge, rows to rewrite."""
        if not groups:
            return
        args: list[Any] = [len(groups)]
        for ns, doomed, purge, fixes in groups:
            args += [_prefix(ns), _b(ns), len(doomed), *map(_b, doomed), len(purge), *map(_b, purge), len(fixes)]
            for cid, row in fixes.items():
                args += [_b(cid), _encode_record(row)]
        await self.gate("checkpoint delete", self._lg.run("delete_checkpoints", self._lg_keys(thread_id)[:7], args))

    async def cp_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Read the source in one script and merge it into the target in one script (its tombstone goes)."""
        if source_thread_id == target_thread_id:
            return
        cp, blobs, writes, _ = await self._lg_dump(source_thread_id)
        if not cp and not writes:
            return
        runs: set[str] = set()
        args: list[Any] = [self._lg_ttl_ms(), _b(target_thread_id), len(cp)]
        for field, rec in cp.items():
            ns, pfx, cid = _split_ns_field(field)
            row = _decode_record(source_thread_id, ns, cid, rec)[0]
            run_id = _run_id(row.metadata)
            if run_id is not None:
                runs.add(run_id)
            args += [pfx, _b(ns), _b(cid), rec]
        args.append(len(blobs))
        for item in blobs.items():
            args += item
        packed = _repack_writes(writes)
        args.append(len(packed))
        for item in packed.items():
            args += item
        keys = self._lg_keys(target_thread_id)
        if self.cluster:
            self._lg_forget_cached(target_thread_id)
            await self._lg_preindex(target_thread_id, None)
        else:
            keys.append(self._lg_thread_index(target_thread_id))
        await self.gate("cp_copy_thread", self._lg.run("copy_into", keys, args))
        if runs:
            pipe = self.client.pipeline(transaction=False)
            for run_id in sorted(runs):
                pipe.sadd(self._lg_run_index(run_id), target_thread_id)
                pipe.pexpire(self._lg_run_index(run_id), self._lg_ttl_ms())
            await self.gate("cp_copy_thread", pipe.execute())

    async def cp_prune(
        self, thread_ids: Sequence[str], keep_latest: bool, *, policy: RetentionPolicy | None = None
    ) -> None:
        """Per thread: read it in one script, decide in Python what stays (``policy``'s rule, the newest
        checkpoint by default, as on every tier), remove the rest in one script. Checkpoints put while the prune
        runs are not touched."""
        policy = policy or KEEP_NEWEST
        for thread_id in thread_ids:
            if not keep_latest:
                await self.cp_delete_thread(thread_id)
                continue
            cp, blobs, writes, _ = await self._lg_dump(thread_id)
            if not cp:
                continue
            by_ns = self._lg_rows(thread_id, cp)
            pending: dict[str, set[str]] = {}
            for member in writes:
                ns, _, cid = _split_ns_field(member, checkpoint=True)
                pending.setdefault(ns, set()).add(cid)
            groups: list[tuple[str, Sequence[str], Sequence[str], Mapping[str, CheckpointRow]]] = []
            root = by_ns.get("", {})
            saved_root = set(root)
            now = time.time()
            kept_root = self._lg_keep(root, blobs, policy, now) if root else set()
            if root:
                groups.append(self._lg_prune_group("", root, kept_root, pending.get("", set())))
            for ns, rows in by_ns.items():
                if ns == "" or not rows:
                    continue
                newest = rows[max(rows)]
                started_from = (newest.metadata.get("parents") or {}).get("")
                if ":" in ns and started_from is not None and started_from in saved_root and started_from not in kept_root:
                    groups.append((ns, sorted(rows), sorted(pending.get(ns, set())), {}))
                    continue
                groups.append(
                    self._lg_prune_group(ns, rows, self._lg_keep(rows, blobs, policy, now), pending.get(ns, set()))
                )
            await self._lg_delete(thread_id, groups)

    @staticmethod
    def _lg_keep(
        rows: Mapping[str, CheckpointRow], blobs: Mapping[bytes, bytes], policy: RetentionPolicy, now: float
    ) -> set[str]:

        def has_value(row: CheckpointRow, channel: str) -> bool:
            version = row.channel_versions.get(channel)
            if version is None:
                return False
            raw = blobs.get(_prefix(row.checkpoint_ns) + _b(channel) + b"\0" + _b(version))
            return raw is not None and _typed(raw)[0] != EMPTY_BLOB_TYPE

        return policy.retained(rows, has_value, now)

    @staticmethod
    def _lg_prune_group(
        ns: str, rows: Mapping[str, CheckpointRow], keep: set[str], pending: set[str]
    ) -> tuple[str, list[str], list[str], dict[str, CheckpointRow]]:
        newest_id = max(rows)
        doomed = sorted(cid for cid in rows if cid not in keep)
        # writes of pruned checkpoints go; writes ahead of the newest wait for a checkpoint still being saved
        purge = sorted(cid for cid in pending if cid not in keep and cid not in rows and cid < newest_id)
        fixes = {
            cid: replace(rows[cid], parent_checkpoint_id=None)
            for cid in keep
            if rows[cid].parent_checkpoint_id is not None and rows[cid].parent_checkpoint_id not in keep
        }
        return ns, doomed, purge, fixes


async def _one(value: str) -> AsyncGenerator[str, None]:
    yield value
