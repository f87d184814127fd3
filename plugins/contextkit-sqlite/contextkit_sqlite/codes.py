"""How the LangGraph tables store the values every row repeats: type tags as small integers, task paths with
LangGraph's prefixes as one character (hot schema version 5), checkpoint and task ids of LangGraph's form (a UUID in
its canonical text) as their 16 bytes (version 6).

The tables are part of the file format: codes are appended, never renumbered or reused.
A type tag outside :data:`TYPES` is stored as its text, so a serializer's own tags keep working; an integer the
table does not know (a file written by a later version) is refused with a clear error instead of misread.
"""

from __future__ import annotations

from typing import Any

from contextkit.errors import SerializationError
from contextkit.stores import packed_id, unpacked_id

__all__ = [
    "PATH_PREFIXES",
    "TYPES",
    "id_bytes_sql",
    "id_of",
    "path_bytes_sql",
    "path_case_sql",
    "path_of",
    "stored_id",
    "stored_path",
    "stored_type",
    "type_bytes_sql",
    "type_case_sql",
    "type_of",
]

# The serializer's tags (contextkit's and LangGraph's), the shared lists' record and block types (contextkit's
# checkpoint_lists): a chat thread's rows carry one of these ~900 times per 100 turns, as 1 byte instead of 4-17.
TYPES = (
    "msgpack",
    "msgpack+zsd1",
    "msgpack+zstd",
    "msgpack+zlib",
    "json",
    "null",
    "bytes",
    "bytearray",
    "empty",
    "pickle",
    "msgpack+list",
    "msgpack+zsd1+list",
    "ck-block",
)
_TYPE_CODES = {kind: code for code, kind in enumerate(TYPES, 1)}

# LangGraph's task paths start with one of these (16 characters); stored as the character chr(index + 1). The
# characters U+0001-U+001F are reserved for codes (up to 30 prefixes) and _ESCAPE: a path that itself starts with
# one of them is stored behind _ESCAPE, so every path reads back as written, and a prefix added later leaves every
# stored path's meaning as it was.
PATH_PREFIXES = ("~__pregel_pull, ", "~__pregel_push, ")
_ESCAPE = chr(0x1F)
_CODE_CHARS = frozenset(chr(i) for i in range(1, 0x20))


def stored_type(kind: str) -> int | str:
    """The value the ``type`` column holds for the tag ``kind``."""
    return _TYPE_CODES.get(kind, kind)


def type_of(stored: Any) -> str:
    """The tag a ``type`` column's value stands for."""
    if type(stored) is str:
        return stored
    if type(stored) is int and 1 <= stored <= len(TYPES):
        return TYPES[stored - 1]
    raise SerializationError(
        f"a checkpoint row holds type code {stored!r}, which this contextkit-sqlite does not know: the file was "
        "written by a later version; upgrade contextkit-sqlite to read it"
    )


def stored_path(path: str) -> str:
    """The value the ``task_path`` column holds for ``path``."""
    for i, prefix in enumerate(PATH_PREFIXES):
        if path.startswith(prefix):
            return chr(i + 1) + path[len(prefix) :]
    if path[:1] in _CODE_CHARS:
        return _ESCAPE + path
    return path


def path_of(stored: str) -> str:
    """The task path a ``task_path`` column's value stands for."""
    first = stored[:1]
    if first not in _CODE_CHARS:
        return stored
    if first == _ESCAPE:
        return stored[1:]
    code = ord(first)
    if code > len(PATH_PREFIXES):
        raise SerializationError(
            f"a pending write holds task path code {code}, which this contextkit-sqlite does not know: the file was "
            "written by a later version; upgrade contextkit-sqlite to read it"
        )
    return PATH_PREFIXES[code - 1] + stored[1:]


def type_case_sql(column: str) -> str:
    """SQL turning a ``type`` column of tags (a file before version 5) into stored values."""
    whens = " ".join(f"WHEN '{kind}' THEN {code}" for kind, code in _TYPE_CODES.items())
    return f"CASE {column} {whens} ELSE {column} END"


def path_case_sql(column: str) -> str:
    """SQL turning a ``task_path`` column of paths (a file before version 5) into stored values."""
    whens = " ".join(
        f"WHEN substr({column}, 1, {len(prefix)}) = '{prefix}' THEN char({i + 1}) || substr({column}, {len(prefix) + 1})"
        for i, prefix in enumerate(PATH_PREFIXES)
    )
    reserved = f"unicode(substr({column}, 1, 1)) BETWEEN 1 AND {ord(max(_CODE_CHARS))}"
    return f"CASE {whens} WHEN {reserved} THEN char({ord(_ESCAPE)}) || {column} ELSE {column} END"


def type_bytes_sql(column: str) -> str:
    """SQL for the UTF-8 length of the tag a ``type`` column's value stands for."""
    whens = " ".join(f"WHEN {code} THEN {len(kind.encode())}" for kind, code in _TYPE_CODES.items())
    return f"(CASE WHEN typeof({column}) = 'integer' THEN CASE {column} {whens} END ELSE length(CAST({column} AS BLOB)) END)"


def path_bytes_sql(column: str) -> str:
    """SQL for the UTF-8 length of the path a ``task_path`` column's value stands for."""
    whens = " ".join(f"WHEN char({i + 1}) THEN {len(prefix.encode()) - 1}" for i, prefix in enumerate(PATH_PREFIXES))
    return f"(length(CAST({column} AS BLOB)) + CASE substr({column}, 1, 1) {whens} WHEN char({ord(_ESCAPE)}) THEN -1 ELSE 0 END)"


def stored_id(value: str) -> bytes | str:
    """The value an id column holds for a checkpoint or task id: an id of LangGraph's form (a canonical lower-case
    UUID) as its 16 bytes (:func:`contextkit.stores.packed_id`), any other id as its text.

    The two forms never compare equal in SQL (SQLite orders every text before every blob), and the bytes of two
    canonical UUIDs order as their texts do: ids of one form sort as on every other tier. A thread that mixes the
    forms (ids LangGraph made and ids written by hand, e.g. ``"1"``) sorts its text ids before its UUIDs."""
    packed = packed_id(value)
    return value if packed is None else packed


def id_of(stored: bytes | str) -> str:
    """The id an id column's value stands for."""
    return unpacked_id(stored) if type(stored) is bytes else str(stored)


def id_bytes_sql(column: str) -> str:
    """SQL for the UTF-8 length of the id an id column's value stands for."""
    return f"(CASE WHEN typeof({column}) = 'blob' THEN 36 ELSE length(CAST({column} AS BLOB)) END)"
