"""The stored codes of type tags and task paths (contextkit_sqlite.codes): every value reads back as written, and
the tables are part of the file format."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from contextkit.errors import SerializationError
from contextkit_sqlite.codes import (
    PATH_PREFIXES,
    TYPES,
    path_bytes_sql,
    path_case_sql,
    path_of,
    stored_path,
    stored_type,
    type_bytes_sql,
    type_case_sql,
    type_of,
)

_PATHS = (
    "",
    "~__pregel_pull, respond",
    "~__pregel_push, ('~__pregel_pull, a', 2), 0, False",
    "~__pregel_pull, ",
    "~__pregel_pull",
    "~__PREGEL_PULL, x",
    "\x01x",
    "\x02",
    "\x03\x03",
    "\x04 other",
    "tâche ✓",
)
_TAGS = (*TYPES, "msgpack+custom", "7", "", "json+list")


def test_the_tables_are_the_file_format() -> None:
    # Append only: a stored code names its entry for good.
    assert TYPES[:13] == (
        "msgpack", "msgpack+zsd1", "msgpack+zstd", "msgpack+zlib", "json", "null", "bytes", "bytearray", "empty",
        "pickle", "msgpack+list", "msgpack+zsd1+list", "ck-block",
    )  # fmt: skip
    assert PATH_PREFIXES[:2] == ("~__pregel_pull, ", "~__pregel_push, ")


@pytest.mark.parametrize("path", _PATHS)
def test_a_task_path_reads_back_as_written(path: str) -> None:
    stored = stored_path(path)
    assert path_of(stored) == path
    if path.startswith(PATH_PREFIXES):
        assert len(stored) == len(path) - 15


@pytest.mark.parametrize("tag", _TAGS)
def test_a_type_tag_reads_back_as_written(tag: str) -> None:
    stored = stored_type(tag)
    assert type_of(stored) == tag
    assert isinstance(stored, int) == (tag in TYPES)


def test_a_code_from_a_later_version_is_refused() -> None:
    with pytest.raises(SerializationError, match="later version"):
        type_of(len(TYPES) + 1)
    with pytest.raises(SerializationError):
        type_of(0)


def test_the_sql_forms_agree_with_python() -> None:
    """The migration's CASE expressions store what stored_type / stored_path store, and the byte counts of
    checkpoints du count the values they stand for, in a column without a declared type (as the tables have)."""
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE old (type TEXT, task_path TEXT)")
        conn.executemany("INSERT INTO old VALUES (?, ?)", [(tag, path) for tag in _TAGS for path in _PATHS])
        conn.execute(f"CREATE TABLE new AS SELECT {type_case_sql('type')} AS t, {path_case_sql('task_path')} AS p FROM old")
        rows = conn.execute(
            f"SELECT o.type, o.task_path, n.t, n.p, {type_bytes_sql('n.t')}, {path_bytes_sql('n.p')} "
            "FROM old o JOIN new n ON n.rowid = o.rowid"
        ).fetchall()
    assert len(rows) == len(_TAGS) * len(_PATHS)
    for tag, path, stored_t, stored_p, tag_bytes, path_bytes in rows:
        assert (stored_t, stored_p) == (stored_type(tag), stored_path(path)), (tag, path)
        assert (tag_bytes, path_bytes) == (len(tag.encode()), len(path.encode())), (tag, path)
