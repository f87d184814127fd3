"""The stored codes of type tags and task paths (contextkit_sqlite.codes): every value reads back as written, and
the tables are part of the file format."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing

import pytest

from contextkit.errors import SerializationError
from contextkit_sqlite.codes import (
    PATH_PREFIXES,
    TYPES,
    id_bytes_sql,
    id_of,
    path_bytes_sql,
    path_case_sql,
    path_of,
    stored_id,
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
    "\x1f",
    "\x1fx\x1f",
    " \x01",
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
    assert stored_path("~__pregel_push, x") == "\x02x"
    assert stored_path("\x05x") == "\x1f\x05x"  # the escape is fixed, whatever prefixes come


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
    with pytest.raises(SerializationError, match="task path code 3"):
        path_of(chr(len(PATH_PREFIXES) + 1) + "x")


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


_IDS = (
    "1ef4f2a6-1b2c-6d3e-8f40-0123456789ab",
    "12345678-1234-1234-1234-123456789012",  # no letter at all: still LangGraph's form
    "1EF4F2A6-1B2C-6D3E-8F40-0123456789AB",
    "1ef4f2a6 1b2c-6d3e-8f40-0123456789ab",
    "1ef4f2a6-1b2c-6d3e-8f40-0123456789a ",
    "1ef4f2a6-1b2c-6d3e-8f40-0123456789ag",
    "1ef4f2a6-1b2c-6d3e-8f40-0123456789abc",
    "1",
    "",
    "checkpoint-✓",
)


@pytest.mark.parametrize("value", _IDS)
def test_an_id_reads_back_as_written(value: str) -> None:
    stored = stored_id(value)
    assert id_of(stored) == value
    assert isinstance(stored, bytes) == (value in _IDS[:2])


def test_packed_ids_sort_in_sql_as_their_texts() -> None:
    """The newest checkpoint is the greatest id: SQLite orders the 16-byte forms as it ordered the texts."""
    ids = [str(uuid.uuid4()) for _ in range(500)] + [str(uuid.UUID(int=i)) for i in range(20)]
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY) WITHOUT ROWID")
        conn.executemany("INSERT INTO t VALUES (?)", [(stored_id(i),) for i in ids])
        assert [id_of(v) for (v,) in conn.execute("SELECT id FROM t ORDER BY id")] == sorted(ids)
        assert conn.execute("SELECT COUNT(*) FROM t WHERE typeof(id) = 'blob'").fetchone()[0] == len(ids)
        probe = sorted(ids)[250]
        below = conn.execute("SELECT COUNT(*) FROM t WHERE id < ?", (stored_id(probe),)).fetchone()[0]
        assert below == 250
        assert conn.execute(f"SELECT {id_bytes_sql('id')} FROM t LIMIT 1").fetchone()[0] == 36
