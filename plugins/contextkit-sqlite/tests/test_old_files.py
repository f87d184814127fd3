"""Files written by earlier versions open, migrate and read back what they held.

``data/hot-v3.sqlite3.gz`` and ``data/hot-v4.sqlite3.gz`` were written by contextkit-sqlite at schema versions 3
and 4 (``data/make_old_files.py``, with what their threads read back then in ``data/hot-old.json.gz``): the same
LangGraph thread ``t`` in two namespaces, a shared list channel, pending writes, a fork, and a ``DeltaChannel`` chat
thread ``d``.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from contextkit.errors import ConfigError
from contextkit.langgraph import ContextKitSaver
from contextkit.stores import StoreSettings
from contextkit_sqlite import SqliteHotStore
from contextkit_sqlite.codes import PATH_PREFIXES, TYPES
from contextkit_sqlite.schema import HOT_MIGRATIONS

DATA = Path(__file__).parent / "data"
OLD_FILES = ("hot-v3.sqlite3", "hot-v4.sqlite3")
_LANGGRAPH_TABLES = ("ck_checkpoints", "ck_checkpoint_blobs", "ck_checkpoint_writes")


def _generator() -> ModuleType:
    # The graph and the history read are the generator's own, so the files are read back as they were written.
    spec = importlib.util.spec_from_file_location("make_old_files", DATA / "make_old_files.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # LangGraph resolves the state's annotations in the module's globals
    spec.loader.exec_module(module)
    return module


_GENERATOR = _generator()
NAMESPACES: tuple[str, ...] = _GENERATOR.NAMESPACES


def _graph(saver: ContextKitSaver) -> Any:
    return _GENERATOR.graph(saver)


async def _history(store: SqliteHotStore) -> list[list[Any]]:
    history: list[list[Any]] = await _GENERATOR.history(_graph(ContextKitSaver(store)))
    return history


async def _delta_history(store: SqliteHotStore) -> list[list[Any]]:
    history: list[list[Any]] = await _GENERATOR.history(_GENERATOR.delta_graph(ContextKitSaver(store)), "d")
    return history


def _unpacked(name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.decompress((DATA / f"{name}.gz").read_bytes()))
    return path


@pytest.mark.parametrize("name", OLD_FILES)
async def test_an_old_file_migrates_and_reads_back_every_namespace_s_thread(name: str, tmp_path: Path) -> None:
    """Opening the file migrates it to the current version: each namespace's thread reads back the history it
    had (checkpoint ids, values, next nodes, the fork), the rows name their thread by its key and store codes and
    packed ids, and each thread goes on."""
    expected = json.loads(gzip.decompress((DATA / "hot-old.json.gz").read_bytes()))[name]
    path = _unpacked(name, tmp_path)
    old_version = int(name.split("-v")[1].split(".")[0])
    with closing(sqlite3.connect(path)) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM ck_migrations WHERE component = 'hot' ORDER BY 1")]
        assert versions == list(range(1, old_version + 1))
        old_rows = {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in _LANGGRAPH_TABLES}
    stores = [SqliteHotStore(StoreSettings(namespace=ns), {"path": str(path)}) for ns in NAMESPACES]
    for store in stores:
        await store.open()
    try:
        for ns, store in zip(NAMESPACES, stores, strict=True):
            history = await _history(store)
            assert history == expected[ns]
            assert len(history) == 3 * 8 + 3 and history[0][1]["log"][-2] == f"{ns} fork"
            # the DeltaChannel thread: every checkpoint's messages rebuilt by walking the migrated rows
            chat = await _delta_history(store)
            assert chat == expected[f"{ns}/d"] and len(chat[0][1]["messages"]) == 12
        with closing(sqlite3.connect(path)) as conn:
            versions = [v for (v,) in conn.execute("SELECT version FROM ck_migrations WHERE component = 'hot' ORDER BY 1")]
            assert versions == [m.version for m in HOT_MIGRATIONS]
            for table in _LANGGRAPH_TABLES:
                columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
                assert columns[0] == "tkey" and "namespace" not in columns and "thread_id" not in columns, columns
                assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == old_rows[table], table
                # every tag these files hold has a code: none is left as text
                assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE typeof(type) != 'integer'").fetchone()[0] == 0
            assert sorted(conn.execute("SELECT namespace, thread_id FROM ck_checkpoint_threads")) == [
                (ns, thread) for ns in NAMESPACES for thread in ("d", "t")
            ]
            # LangGraph's ids as their 16 bytes (every id of these files is LangGraph's)
            for table, column in (
                ("ck_checkpoints", "checkpoint_id"),
                ("ck_checkpoints", "parent_checkpoint_id"),
                ("ck_checkpoint_writes", "checkpoint_id"),
                ("ck_checkpoint_writes", "task_id"),
            ):
                forms = {form for (form,) in conn.execute(f"SELECT DISTINCT typeof({column}) FROM {table}")}
                assert forms <= {"blob", "null"} and "blob" in forms, (table, column, forms)
            paths = [p for (p,) in conn.execute("SELECT DISTINCT task_path FROM ck_checkpoint_writes")]
            assert paths and not any(p.startswith(PATH_PREFIXES) for p in paths), paths
            assert {t for (t,) in conn.execute("SELECT DISTINCT type FROM ck_checkpoint_blobs")} >= {
                TYPES.index(kind) + 1 for kind in ("msgpack", "msgpack+list", "ck-block")
            }
        for ns, store in zip(NAMESPACES, stores, strict=True):
            compiled = _graph(ContextKitSaver(store))
            result = await compiled.ainvoke({"log": [f"{ns} after"]}, {"configurable": {"thread_id": "t"}})
            assert result["log"][-2] == f"{ns} after" and len(result["log"]) == len(expected[ns][0][1]["log"]) + 2
            chat = _GENERATOR.delta_graph(ContextKitSaver(store))
            later = {"messages": [HumanMessage(f"{ns} later", id="later")]}
            reply = await chat.ainvoke(later, {"configurable": {"thread_id": "d"}})
            assert [m.content for m in reply["messages"][-2:]] == [f"{ns} later", "reply 13"]
            assert len(reply["messages"]) == 14
        # A namespace dropped takes its thread's rows and key, not the other namespace's.
        await stores[0].drop_namespace()
        assert await _history(stores[0]) == []
        kept = await _history(stores[1])
        assert kept[3:] == expected["app-b"] and len(kept) == len(expected["app-b"]) + 3
        assert (await _delta_history(stores[1]))[3:] == expected["app-b/d"]
        with closing(sqlite3.connect(path)) as conn:
            assert {ns for (ns,) in conn.execute("SELECT namespace FROM ck_checkpoint_threads")} == {"app-b"}
    finally:
        for store in stores:
            await store.aclose()


async def test_a_file_migrated_by_a_later_version_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    """A file whose schema is newer than this code knows is not opened: its tables have a layout this code would
    misread or fail on at every call. Nothing of the file is changed."""
    path = tmp_path / "later.sqlite3"
    store = SqliteHotStore(StoreSettings(namespace="app"), {"path": str(path)})
    await store.open()
    await store.aclose()
    later = HOT_MIGRATIONS[-1].version + 1
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO ck_migrations (component, version, applied_at) VALUES ('hot', ?, 'later')", (later,))
    before = path.read_bytes()
    again = SqliteHotStore(StoreSettings(namespace="app"), {"path": str(path)})
    with pytest.raises(ConfigError, match=f"hot schema version {later}; this one knows versions up to {later - 1}"):
        await again.open()
    await again.aclose()
    assert path.read_bytes() == before
