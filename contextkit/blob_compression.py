"""Compression of large LangGraph checkpoint values (channel blobs and pending writes), with a format marker.

:class:`~contextkit.langgraph.ContextKitSaver` stores each value as its serde wrote it, ``(type tag, bytes)``. With
compression on (``[checkpoints] compress_above``), a value of at least that many bytes is stored as
``(f"{type}+zstd", zstd frame of the bytes)`` (or ``+zlib`` where the ``zstandard`` package is missing or
``compression = "zlib"`` is set), unless compressing saves under 10% of it (an encrypted or already compressed
value is stored as is). The suffix is the format marker: a value without one is read as it always was, so data
written before compression was turned on (or with it off) stays readable, and turning it off later leaves the
compressed values readable. Every tier stores the pair verbatim, the archive included.

Small values (from 96 bytes up to the threshold: a message, a pending write, a serialized checkpoint) are
compressed too when the codec is zstd, with a built-in dictionary of the boilerplate LangChain messages and
LangGraph checkpoints repeat in every value (their msgpack keys and class paths), under the marker ``+zsd1``
("zstd, dictionary 1"): on a chat thread's messages it stores 46% of their bytes where zstd alone stores 66%. The
dictionary's bytes are part of the format: a later one gets another number, and ``+zsd1`` stays readable.

zstd is used through the ``zstandard`` package, which LangGraph's ``langsmith`` dependency installs; zlib is the
standard library's. Reading a damaged compressed value, or a ``+zstd`` value without ``zstandard`` installed,
raises :class:`~contextkit.errors.CorruptData` (stored data that cannot be decoded; nothing else is misread).
"""

from __future__ import annotations

import base64
import threading
import zlib
from typing import Any

from contextkit.errors import ConfigError, CorruptData

__all__ = ["CODECS", "ZLIB", "ZSTD", "BlobCompressor", "default_codec", "unpack"]

ZSTD = "zstd"
ZLIB = "zlib"
CODECS = (ZSTD, ZLIB)
_SUFFIXES = {ZSTD: "+zstd", ZLIB: "+zlib"}

_zstd: Any
try:  # optional: installed with langgraph (langsmith depends on it)
    import zstandard as _zstd
except ImportError:  # pragma: no cover - zlib is then the default
    _zstd = None

#: zstd level 3 (its default): most of the ratio of higher levels at several hundred MB/s.
ZSTD_LEVEL = 3
#: zlib level 6 (its default).
ZLIB_LEVEL = 6
#: A compressed value must be at most this fraction of the original to be stored compressed.
_WORTH = 0.9
#: The smallest value compressed with the dictionary (below it, zstd's frame header eats the gain).
SMALL_MIN = 96
_SMALL_SUFFIX = "+zsd1"
# Dictionary 1 (raw content, never to change: stored values name it): the msgpack LangGraph's JsonPlusSerializer
# wrote, with langchain-core 1.x, for an empty SystemMessage, ToolMessage, HumanMessage and AIMessage, then for a
# checkpoint skeleton (its keys and usual channel names).
_DICT_1 = base64.b64decode(
    "x4gFlL5sYW5nY2hhaW5fY29yZS5tZXNzYWdlcy5zeXN0ZW2tU3lzdGVtTWVzc2FnZYanY29udGVudKCxYWRkaXRpb25hbF9rd2Fy"
    "Z3OAsXJlc3BvbnNlX21ldGFkYXRhgKR0eXBlpnN5c3RlbaRuYW1lwKJpZKCzbW9kZWxfdmFsaWRhdGVfanNvbsepBZS8bGFuZ2No"
    "YWluX2NvcmUubWVzc2FnZXMudG9vbKtUb29sTWVzc2FnZYmnY29udGVudKCxYWRkaXRpb25hbF9rd2FyZ3OAsXJlc3BvbnNlX21l"
    "dGFkYXRhgKR0eXBlpHRvb2ykbmFtZcCiaWSgrHRvb2xfY2FsbF9pZKCoYXJ0aWZhY3TApnN0YXR1c6dzdWNjZXNzs21vZGVsX3Zh"
    "bGlkYXRlX2pzb27HhQWUvWxhbmdjaGFpbl9jb3JlLm1lc3NhZ2VzLmh1bWFurEh1bWFuTWVzc2FnZYanY29udGVudKCxYWRkaXRp"
    "b25hbF9rd2FyZ3OAsXJlc3BvbnNlX21ldGFkYXRhgKR0eXBlpWh1bWFupG5hbWXAomlkoLNtb2RlbF92YWxpZGF0ZV9qc29ux6wF"
    "lLpsYW5nY2hhaW5fY29yZS5tZXNzYWdlcy5haalBSU1lc3NhZ2WJp2NvbnRlbnSgsWFkZGl0aW9uYWxfa3dhcmdzgLFyZXNwb25z"
    "ZV9tZXRhZGF0YYCkdHlwZaJhaaRuYW1lwKJpZKCqdG9vbF9jYWxsc5CyaW52YWxpZF90b29sX2NhbGxzkK51c2FnZV9tZXRhZGF0"
    "YcCzbW9kZWxfdmFsaWRhdGVfanNvboahdgSidHPZIDIwMjYtMDEtMDFUMDA6MDA6MDAuMDAwMDAwKzAwOjAwomlk2SQwMDAwMDAw"
    "MC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDCwY2hhbm5lbF92ZXJzaW9uc4OpX19zdGFydF9foKhtZXNzYWdlc6CqYnJhbmNo"
    "OnRvOqCtdmVyc2lvbnNfc2VlboKpX19pbnB1dF9fgKlfX3N0YXJ0X1+BqV9fc3RhcnRfX6CwdXBkYXRlZF9jaGFubmVsc5GobWVz"
    "c2FnZXM="
)
_local = threading.local()


def _small_compressor() -> Any:
    # zstandard's (de)compressors are not safe to share between threads.
    found = getattr(_local, "compressor", None)
    if found is None:
        found = _local.compressor = _zstd.ZstdCompressor(
            level=ZSTD_LEVEL, dict_data=_zstd.ZstdCompressionDict(_DICT_1, dict_type=_zstd.DICT_TYPE_RAWCONTENT),
            write_dict_id=False,
        )
    return found


def _small_decompressor() -> Any:
    found = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = _zstd.ZstdDecompressor(
            dict_data=_zstd.ZstdCompressionDict(_DICT_1, dict_type=_zstd.DICT_TYPE_RAWCONTENT)
        )
    return found


def default_codec() -> str:
    """``"zstd"`` when the ``zstandard`` package is importable, else ``"zlib"``."""
    return ZSTD if _zstd is not None else ZLIB


class BlobCompressor:
    """Compresses ``(type, bytes)`` values of at least ``threshold`` bytes with ``codec`` (see the module
    docstring). Raises :class:`~contextkit.errors.ConfigError` for a threshold below 1 or a codec that is unknown
    or not installed."""

    __slots__ = ("codec", "suffix", "threshold")

    def __init__(self, threshold: int, codec: str | None = None) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ConfigError(f"the compression threshold must be an integer >= 1 (bytes), not {threshold!r}")
        codec = default_codec() if codec is None else codec
        if codec not in CODECS:
            raise ConfigError(f"unknown compression {codec!r}; use one of {', '.join(CODECS)}")
        if codec == ZSTD and _zstd is None:
            raise ConfigError("compression 'zstd' needs the zstandard package (pip install zstandard), or use 'zlib'")
        self.threshold = threshold
        self.codec = codec
        self.suffix = _SUFFIXES[codec]

    def pack(self, typed: tuple[str, bytes]) -> tuple[str, bytes]:
        """The value to store for ``typed``: compressed and marked when large and compressible (or small, at least
        :data:`SMALL_MIN` bytes, and compressible with the dictionary under zstd), else ``typed``."""
        kind, data = typed
        size = len(data)
        if size < self.threshold:
            if size < SMALL_MIN or self.codec != ZSTD:
                return typed
            packed = _small_compressor().compress(data)
            if len(packed) > size * _WORTH:
                return typed
            return (kind + _SMALL_SUFFIX, packed)
        packed = _zstd.compress(data, ZSTD_LEVEL) if self.codec == ZSTD else zlib.compress(data, ZLIB_LEVEL)
        if len(packed) > len(data) * _WORTH:
            return typed
        return (kind + self.suffix, packed)

    def __repr__(self) -> str:
        return f"BlobCompressor(threshold={self.threshold}, codec={self.codec!r})"


def unpack(typed: tuple[str, bytes]) -> tuple[str, bytes]:
    """The serde's ``(type, bytes)`` of a stored value: decompressed when its type carries a marker, else as is."""
    kind = typed[0]
    if kind.endswith(_SMALL_SUFFIX):
        if _zstd is None:
            raise CorruptData(
                "a checkpoint value is zstd-compressed and the zstandard package is not installed (pip install zstandard)"
            )
        try:
            return (kind[:-5], _small_decompressor().decompress(typed[1]))
        except _zstd.ZstdError as exc:
            raise CorruptData(f"a zstd-compressed checkpoint value cannot be read: {exc}") from exc
    if kind.endswith("+zstd"):
        if _zstd is None:
            raise CorruptData(
                "a checkpoint value is zstd-compressed and the zstandard package is not installed (pip install zstandard)"
            )
        try:
            return (kind[:-5], _zstd.decompress(typed[1]))
        except _zstd.ZstdError as exc:
            raise CorruptData(f"a zstd-compressed checkpoint value cannot be read: {exc}") from exc
    if kind.endswith("+zlib"):
        try:
            return (kind[:-5], zlib.decompress(typed[1]))
        except zlib.error as exc:
            raise CorruptData(f"a zlib-compressed checkpoint value cannot be read: {exc}") from exc
    return typed
