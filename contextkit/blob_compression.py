"""Compression of large LangGraph checkpoint values (channel blobs and pending writes), with a format marker.

:class:`~contextkit.langgraph.ContextKitSaver` stores each value as its serde wrote it, ``(type tag, bytes)``. With
compression on (``[checkpoints] compress_above``), a value of at least that many bytes is stored as
``(f"{type}+zstd", zstd frame of the bytes)`` (or ``+zlib`` where the ``zstandard`` package is missing or
``compression = "zlib"`` is set), unless compressing saves under 10% of it (an encrypted or already compressed
value is stored as is). The suffix is the format marker: a value without one is read as it always was, so data
written before compression was turned on (or with it off) stays readable, and turning it off later leaves the
compressed values readable. Every tier stores the pair verbatim, the archive included.

zstd is used through the ``zstandard`` package, which LangGraph's ``langsmith`` dependency installs; zlib is the
standard library's. Reading a damaged compressed value, or a ``+zstd`` value without ``zstandard`` installed,
raises :class:`~contextkit.errors.CorruptData` (stored data that cannot be decoded; nothing else is misread).
"""

from __future__ import annotations

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
        """The value to store for ``typed``: compressed and marked when large and compressible, else ``typed``."""
        kind, data = typed
        if len(data) < self.threshold:
            return typed
        packed = _zstd.compress(data, ZSTD_LEVEL) if self.codec == ZSTD else zlib.compress(data, ZLIB_LEVEL)
        if len(packed) > len(data) * _WORTH:
            return typed
        return (kind + self.suffix, packed)

    def __repr__(self) -> str:
        return f"BlobCompressor(threshold={self.threshold}, codec={self.codec!r})"


def unpack(typed: tuple[str, bytes]) -> tuple[str, bytes]:
    """The serde's ``(type, bytes)`` of a stored value: decompressed when its type carries a marker, else as is."""
    kind = typed[0]
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
