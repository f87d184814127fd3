"""What is particular to the sqlite backend: options, the file and its schema, errors, expiry, indexes, paging."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from contextkit.errors import BackendUnavailable, ConfigError
from contextkit.plugins import PluginManager
from contextkit.records import ArchiveEvent, Message, Session, utcnow
from contextkit.stores import Capability, CheckpointRow, ColdStore, HotStore, StoreSettings, WriteRow
from contextkit_sqlite import DEFAULT_PATH, SqliteColdStore, SqliteHotStore, parse_options
from contextkit_sqlite.schema import COLD_MIGRATIONS, HOT_MIGRATIONS


def _settings(**fields: object) -> StoreSettings:
    return StoreSettings(namespace=f"t-{uuid.uuid4().hex[:8]}", **fields)  # type: ignore[arg-type]


@pytest.fixture
async def hot(tmp_path: Path) -> AsyncIterator[SqliteHotStore]:
    store = SqliteHotStore(_settings(), {"path": str(tmp_path / "db.sqlite3")})
    await store.open()
    yield store
    await store.aclose()


# -- registration and options ---------------------------------------------------------------------------------
def test_the_plugin_registers_sqlite_for_both_tiers_and_factories_do_no_io(tmp_path: Path) -> None:
    """The entry point registers "sqlite" as a hot and a cold backend; building a store creates no file."""
    manager = PluginManager()
    path = tmp_path / "never-created.sqlite3"
    hot = manager.backends.get("hot", "sqlite").factory(_settings(), {"path": str(path)})
    cold = manager.backends.get("cold", "sqlite").factory(_settings(), {"url": f"sqlite:///{path}"})
    assert isinstance(hot, HotStore)
    assert isinstance(cold, ColdStore)
    assert not path.exists()
    assert {Capability.DURABLE, Capability.SHARED, Capability.TTL, Capability.CHECKPOINTS} <= hot.capabilities


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({}, DEFAULT_PATH),
        ({"path": ":memory:"}, ":memory:"),
        ({"url": "sqlite:///relative/file.db"}, "relative/file.db"),
        ({"url": "sqlite:////abs/file.db"}, "/abs/file.db"),
        ({"url": "sqlite:///:memory:"}, ":memory:"),
        ({"path": "x.db", "backend": "sqlite"}, "x.db"),
    ],
)
def test_options_give_the_database_path(options: dict[str, object], path: str) -> None:
    """``path`` and ``url`` (sqlite:///relative, sqlite:////absolute) both name the file; the default is local."""
    assert parse_options(options, 5.0).path == path


@pytest.mark.parametrize(
    "options",
    [
        {"url": "postgres://u:p@h/db"},
        {"url": "sqlite://"},
        {"path": "a.db", "url": "sqlite:///b.db"},
        {"busy_timeout": "soon"},
        {"busy_timeout": -1},
        {"pth": "typo.db"},
    ],
)
def test_bad_options_raise_config_error(options: dict[str, object]) -> None:
    """A wrong URL scheme, both path and url, a bad timeout or an unknown option is a ConfigError."""
    with pytest.raises(ConfigError):
        parse_options(options, 5.0)


def test_busy_timeout_defaults_to_the_tier_timeout() -> None:
    """Without ``busy_timeout``, a writer waits for another process's lock as long as ``settings.timeout``."""
    assert parse_options({}, 2.5).busy_timeout == 2.5
    assert parse_options({"busy_timeout": 0.5}, 2.5).busy_timeout == 0.5


def test_describe_and_repr_show_the_path_and_no_io(tmp_path: Path) -> None:
    """describe() names the backend, tier and file without opening it."""
    path = str(tmp_path / "d.sqlite3")
    store = SqliteHotStore(_settings(), {"path": path})
    described = store.describe()
    assert described["backend"] == "sqlite"
    assert described["tier"] == "hot"
    assert described["path"] == path
    assert path in repr(store)
    assert SqliteColdStore(_settings(), {"path": path}).describe()["tier"] == "cold"
    assert not Path(path).exists()


# -- the file ---------------------------------------------------------------------------------------------------
async def test_open_creates_the_file_in_wal_mode_and_records_migrations(tmp_path: Path) -> None:
    """open() creates the directory and file, switches it to WAL and records each migration once, even when a
    hot and a cold store open the same file several times."""
    path = tmp_path / "nested" / "dir" / "ck.sqlite3"
    for _ in range(2):
        hot = SqliteHotStore(_settings(), {"path": str(path)})
        cold = SqliteColdStore(_settings(), {"path": str(path)})
        await hot.open()
        await cold.open()
        assert (await hot.health())["journal_mode"] == "wal"
        await hot.aclose()
        await cold.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        recorded = conn.execute("SELECT component, version FROM ck_migrations ORDER BY component, version").fetchall()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    expected = sorted((m.component, m.version) for m in (*COLD_MIGRATIONS, *HOT_MIGRATIONS))
    assert recorded == expected
    assert {"ck_sessions", "ck_messages", "ck_checkpoints", "context_sessions", "context_conversations"} <= tables


async def test_a_file_that_is_not_a_database_raises_backend_unavailable(tmp_path: Path) -> None:
    """Opening a file that is not SQLite, or a directory, raises BackendUnavailable (not a sqlite3 error)."""
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendUnavailable, match=r"garbage\.sqlite3"):
        await SqliteHotStore(_settings(), {"path": str(garbage)}).open()
    with pytest.raises(BackendUnavailable):
        await SqliteColdStore(_settings(), {"path": str(tmp_path)}).open()


async def test_a_write_lock_held_past_busy_timeout_raises_backend_unavailable(tmp_path: Path) -> None:
    """While another connection holds the write lock longer than ``busy_timeout``, a write raises
    BackendUnavailable ("database is locked"); once the lock is released writes succeed again."""
    path = tmp_path / "locked.sqlite3"
    store = SqliteHotStore(_settings(), {"path": str(path), "busy_timeout": 0.2})
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        now = utcnow()
        with pytest.raises(BackendUnavailable, match="locked"):
            await store.put_session(Session("s1", "u", now, now))
        assert await store.get_session("s1") is None  # readers are not blocked by the writer in WAL mode
        other.execute("ROLLBACK")
        await store.put_session(Session("s1", "u", now, now))
        assert await store.get_session("s1") is not None
    finally:
        other.close()
        await store.aclose()


async def test_calls_after_aclose_raise_backend_unavailable(hot: SqliteHotStore) -> None:
    """A closed store raises BackendUnavailable on use, and its health says unhealthy."""
    await hot.aclose()
    with pytest.raises(BackendUnavailable):
        await hot.get_session("s1")
    assert (await hot.health())["status"] == "unhealthy"


async def test_a_memory_database_works_for_tests() -> None:
    """``path=":memory:"`` gives a private database (nothing on disk)."""
    store = SqliteHotStore(_settings(), {"path": ":memory:"})
    await store.open()
    try:
        [stored] = await store.append_messages("k", [Message("user", "hi", utcnow())])
        assert stored.seq == 1
    finally:
        await store.aclose()


# -- expiry -----------------------------------------------------------------------------------------------------
async def test_the_sweep_deletes_expired_rows_of_every_kind(tmp_path: Path) -> None:
    """sweep_expired() removes expired sessions, streams with their messages, task contexts, conversation
    sessions and checkpoint threads from the file (reads already hid them)."""
    path = tmp_path / "sweep.sqlite3"
    store = SqliteHotStore(_settings(session_ttl=0.2, checkpoint_ttl=0.2), {"path": str(path)})
    await store.open()
    try:
        now = utcnow()
        await store.put_session(Session("s1", "u", now, now))
        await store.append_messages("s1", [Message("user", "m", now)])
        await store.put_task_context("s1", {"a": 1})
        await store.put_conversation_session("k", {"session_id": "s1"})
        await store.put_checkpoint_document("t1", "c1", {"a": 1})
        await asyncio.sleep(0.3)
        assert await store.get_session("s1") is None
        assert await store.sweep_expired() == 5  # session, stream, task context, conversation, thread
    finally:
        await store.aclose()
    with sqlite3.connect(path) as conn:
        for table in (
            "ck_sessions",
            "ck_streams",
            "ck_messages",
            "ck_task_contexts",
            "ck_conversation_sessions",
            "ck_threads",
            "ck_seed_checkpoints",
        ):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table


async def test_appending_to_an_expired_stream_starts_it_afresh(tmp_path: Path) -> None:
    """A stream that expired is gone: the next append starts at seq 1 and the old messages do not come back."""
    store = SqliteHotStore(_settings(session_ttl=0.2), {"path": str(tmp_path / "e.sqlite3")})
    await store.open()
    try:
        await store.append_messages("s1", [Message("user", f"old{i}", utcnow()) for i in range(3)])
        await asyncio.sleep(0.3)
        [fresh] = await store.append_messages("s1", [Message("user", "new", utcnow())])
        assert fresh.seq == 1
        assert [m.content for m in await store.read_history("s1", None)] == ["new"]
    finally:
        await store.aclose()


# -- indexes: reads cost O(limit) -------------------------------------------------------------------------------
def _plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> str:
    return " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


async def test_hot_reads_walk_indexes_without_sorting(hot: SqliteHotStore) -> None:
    """The newest-N history read, the idle-session read, session scans and checkpoint listing are index walks
    (no full scan, no temporary sort), so they cost O(limit) whatever the table size."""
    await hot.append_messages("s1", [Message("user", "m", utcnow())])

    def plans(conn: sqlite3.Connection) -> dict[str, str]:
        ns = hot.settings.namespace
        return {
            "history": _plan(
                conn,
                "SELECT seq FROM ck_messages WHERE namespace = ? AND stream_key = ? ORDER BY pos DESC LIMIT 50",
                (ns, "s1"),
            ),
            "idle": _plan(
                conn,
                "SELECT session_id FROM ck_sessions WHERE namespace = ? AND last_activity < ? AND expires_at > ? "
                "ORDER BY last_activity LIMIT 10",
                (ns, 0, 0),
            ),
            "scan": _plan(
                conn,
                "SELECT session_id FROM ck_sessions WHERE namespace = ? AND session_id > ? AND expires_at > ? "
                "ORDER BY session_id LIMIT 10",
                (ns, "", 0),
            ),
            "list": _plan(
                conn,
                "SELECT c.checkpoint_id FROM ck_checkpoints c CROSS JOIN ck_checkpoint_threads t ON t.tkey = c.tkey "
                "WHERE t.namespace = ? AND c.tkey = ? AND c.checkpoint_ns = ? ORDER BY c.checkpoint_id DESC LIMIT 10",
                (ns, 1, ""),
            ),
            "list-thread": _plan(
                conn,
                "SELECT c.checkpoint_id FROM ck_checkpoints c CROSS JOIN ck_checkpoint_threads t ON t.tkey = c.tkey "
                "WHERE t.namespace = ? AND c.tkey = ? ORDER BY c.checkpoint_id DESC, c.checkpoint_ns DESC LIMIT 10",
                (ns, 1),
            ),
            "list-all": _plan(
                conn,
                "SELECT c.checkpoint_id FROM ck_checkpoints c CROSS JOIN ck_checkpoint_threads t ON t.tkey = c.tkey "
                "WHERE t.namespace = ? ORDER BY c.checkpoint_id DESC, t.thread_id DESC, c.checkpoint_ns DESC LIMIT 10",
                (ns,),
            ),
        }

    for name, plan in (await hot._db.run(plans)).items():
        # an index, or the primary key of a WITHOUT ROWID table (its rows are that index)
        assert "USING" in plan and ("INDEX" in plan or "PRIMARY KEY" in plan), (name, plan)
        # Listing every thread walks the id index and sorts only checkpoints of equal id by their thread's id.
        allowed = "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY" if name == "list-all" else None
        assert "TEMP B-TREE" not in plan.replace(allowed or "\0", ""), (name, plan)


# -- checkpoint listing pages -----------------------------------------------------------------------------------
def _row(thread_id: str, checkpoint_id: str, **metadata: object) -> CheckpointRow:
    return CheckpointRow(thread_id, "", checkpoint_id, None, ("msgpack", b"x"), dict(metadata), {"c": "1"})


async def test_checkpoint_listing_pages_past_one_page_with_filters(hot: SqliteHotStore) -> None:
    """Listing more checkpoints than one internal page returns each once, newest first, across threads with
    equal ids (copies), with a metadata filter that skips most rows, and stops at ``limit``."""
    ids = [f"{i:05d}" for i in range(250)]
    for cid in ids:
        await hot.cp_put(_row("a", cid, step=int(cid), even=int(cid) % 2 == 0), {("c", "1"): ("json", b"1")})
    await hot.cp_copy_thread("a", "b")
    listed = [(b.row.thread_id, b.row.checkpoint_id) async for b in hot.cp_list(None, None)]
    assert listed == [(t, cid) for cid in reversed(ids) for t in ("b", "a")]
    evens = [b.row.checkpoint_id async for b in hot.cp_list("a", "", metadata_filter={"even": True})]
    assert evens == [cid for cid in reversed(ids) if int(cid) % 2 == 0]
    one = [b.row.checkpoint_id async for b in hot.cp_list("a", "", metadata_filter={"step": 7})]
    assert one == ["00007"]
    limited = [b.row.checkpoint_id async for b in hot.cp_list("a", None, before="00200", limit=120)]
    assert limited == [f"{i:05d}" for i in range(199, 79, -1)]
    assert [b.blobs async for b in hot.cp_list("a", "", limit=1)] == [{"c": ("json", b"1")}]


async def test_a_deleted_thread_takes_its_key_and_every_row_and_a_new_thread_starts_empty(hot: SqliteHotStore) -> None:
    """The LangGraph rows name their thread by its key in ck_checkpoint_threads; a key freed by a delete may be
    given again (SQLite reuses the highest), so the delete removes every row under it with it: the next thread
    reads only its own rows."""
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for cid in ids:
        await hot.cp_put(_row("old", cid), {("c", cid): ("json", b"1")})
    await hot.cp_put_writes("old", "", ids[-1], [WriteRow("task", 0, "c", ("json", b"2"))], upsert=True)

    def keys_and_rows(conn: sqlite3.Connection) -> tuple[list[tuple[str, int]], list[int]]:
        keys = conn.execute("SELECT thread_id, tkey FROM ck_checkpoint_threads ORDER BY thread_id").fetchall()
        counts = [
            conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("ck_checkpoints", "ck_checkpoint_blobs", "ck_checkpoint_writes")
        ]
        return keys, counts

    (old_keys, counts) = await hot._db.run(keys_and_rows)
    assert [t for t, _ in old_keys] == ["old"] and counts == [3, 3, 1]
    await hot.cp_delete_thread("old")
    assert await hot._db.run(keys_and_rows) == ([], [0, 0, 0])
    await hot.cp_put(_row("new", ids[0]), {})
    new_keys, counts = await hot._db.run(keys_and_rows)
    assert new_keys == [("new", old_keys[0][1])] and counts == [1, 0, 0]  # the same key, given again
    bundle = await hot.cp_get("new", "", None)
    assert bundle is not None and bundle.blobs == {} and bundle.writes == []
    assert [b.row.checkpoint_id async for b in hot.cp_list("new", None)] == [ids[0]]


async def test_langgraph_writes_refresh_a_thread_ttl_lazily_and_never_short(tmp_path: Path) -> None:
    """A LangGraph put or write sets the thread to expire a TTL plus 1% (at most a minute) from now, and leaves
    the row alone while it still expires at least a TTL from now: the thread always outlives its last write by
    ``checkpoint_ttl``, and most writes commit two pages fewer."""
    store = SqliteHotStore(_settings(checkpoint_ttl=1000.0), {"path": str(tmp_path / "ttl.sqlite3")})
    await store.open()
    try:

        def expiry(conn: sqlite3.Connection) -> float:
            row = conn.execute(
                "SELECT expires_at FROM ck_threads WHERE namespace = ? AND thread_id = ?", (store._ns, "t")
            ).fetchone()
            return float(row[0])

        before = time.time()
        await store.cp_put(_row("t", "00001"), {})
        first = await store._db.run(expiry)
        assert before + 1000.0 + 10.0 <= first <= time.time() + 1000.0 + 10.0
        await store.cp_put(_row("t", "00002"), {})
        await store.cp_put_writes("t", "", "00002", [WriteRow("task", 0, "c", ("json", b"1"))], False)
        assert await store._db.run(expiry) == first  # still a TTL ahead: not rewritten
        # Once the expiry is less than a TTL ahead, the next write moves it again.
        await store._db.write(lambda conn: conn.execute("UPDATE ck_threads SET expires_at = expires_at - 20"))
        written = time.time()
        await store.cp_put(_row("t", "00003"), {})
        assert await store._db.run(expiry) >= written + 1000.0 + 10.0
    finally:
        await store.aclose()


async def test_the_checkpoint_thread_moves_commits_into_the_file(tmp_path: Path) -> None:
    """Commits leave WAL checkpoints to the database's checkpoint thread: what a few writes committed reaches the
    main file (read while ignoring the WAL) with no commit near SQLite's own threshold, which is raised to a
    backstop; closing stops the thread."""
    path = tmp_path / "wal.sqlite3"
    store = SqliteHotStore(_settings(), {"path": str(path)})
    await store.open()
    try:
        assert await store._db.run(lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 10_000
        checkpointer = store._db._checkpointer
        assert checkpointer is not None and checkpointer._thread.is_alive()
        for i in range(20):
            await store.cp_put(_row("wal", f"{i:05d}"), {})

        def in_file() -> int:
            with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as conn:
                try:
                    return int(conn.execute("SELECT count(*) FROM ck_checkpoints").fetchone()[0])
                except sqlite3.DatabaseError:
                    # The schema is still in the WAL only, or (immutable=1 takes no lock) the thread is copying
                    # pages into the file as this reads it: "malformed" mid-copy. Read again; a file that stayed
                    # unreadable fails the loop below.
                    return -1

        found = -1
        for _ in range(600):  # the thread checkpoints 0.1 s after a write; 30 s on a very busy machine
            found = in_file()
            if found == 20:
                break
            await asyncio.sleep(0.05)
        assert found == 20
    finally:
        await store.aclose()
    assert store._db._checkpointer is None and not checkpointer._thread.is_alive()


async def test_writes_that_wait_together_share_one_transaction_and_fail_alone(hot: SqliteHotStore) -> None:
    """Writes asked for while the connection's thread is busy run in one transaction (one COMMIT), in order,
    each in a savepoint: one that raises is rolled back alone and its caller gets its error (typed as any
    write's), the others are stored and get their own results; a cancelled caller's write still runs."""
    db = hot._db
    await db.write(lambda conn: conn.execute("CREATE TABLE t_batch (k TEXT PRIMARY KEY, n INTEGER)"))
    commits: list[str] = []
    await db.run(lambda conn: conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None))
    release = threading.Event()
    blocker = asyncio.ensure_future(db.run(lambda conn: release.wait(30)))
    await asyncio.sleep(0)

    def insert(conn: sqlite3.Connection, key: str) -> int:
        conn.execute("INSERT INTO t_batch (k, n) VALUES (?, (SELECT count(*) FROM t_batch))", (key, ))
        return int(conn.execute("SELECT count(*) FROM t_batch").fetchone()[0])

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t_batch (k, n) VALUES ('failed', -1)")
        raise RuntimeError("this write fails after writing")

    calls = [db.write(insert, f"k{i}") for i in range(5)]
    calls.insert(2, db.write(insert_then_fail))
    calls.insert(4, db.write(insert, "k0"))  # a duplicate key: an IntegrityError of the driver
    tasks = [asyncio.ensure_future(c) for c in calls]
    cancelled = asyncio.ensure_future(db.write(insert, "after-cancel"))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await blocker
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[:2] == [1, 2] and results[3] == 3 and results[5:] == [4, 5]
    assert isinstance(results[2], RuntimeError)
    assert isinstance(results[4], BackendUnavailable) and "UNIQUE" in str(results[4])
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    stored = await db.run(lambda conn: conn.execute("SELECT k FROM t_batch ORDER BY n").fetchall())
    assert [k for (k,) in stored] == ["k0", "k1", "k2", "k3", "k4", "after-cancel"]
    assert commits == ["COMMIT"]  # the seven writes, one transaction
    await db.run(lambda conn: conn.set_trace_callback(None))

    # A write after which SQLite rolled the whole transaction back (as a full disk or an I/O error does): none of
    # the batch is stored, and every caller gets that error.
    def lose_the_transaction(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    release.clear()
    blocker = asyncio.ensure_future(db.run(lambda conn: release.wait(30)))
    await asyncio.sleep(0)
    lost = [asyncio.ensure_future(db.write(insert, "lost-1")), asyncio.ensure_future(db.write(lose_the_transaction))]
    lost.append(asyncio.ensure_future(db.write(insert, "lost-2")))
    await asyncio.sleep(0)
    release.set()
    await blocker
    for outcome in await asyncio.gather(*lost, return_exceptions=True):
        assert isinstance(outcome, BackendUnavailable) and "disk I/O error" in str(outcome)
    assert await db.run(lambda conn: conn.execute("SELECT count(*) FROM t_batch WHERE k LIKE 'lost%'").fetchone()[0]) == 0
    await hot.aclose()
    with pytest.raises(BackendUnavailable):
        await db.write(insert, "closed")


# -- the cold tier ----------------------------------------------------------------------------------------------
async def test_a_cold_batch_is_written_in_one_transaction(tmp_path: Path) -> None:
    """A batch of 5,000 events across tables is stored whole; written again, nothing is added."""
    store = SqliteColdStore(_settings(), {"path": str(tmp_path / "cold.sqlite3")})
    await store.open()
    try:
        now = utcnow()
        events = [
            ArchiveEvent("context_conversations", "s1", {"message": Message("user", f"m{i}", now, seq=i).to_dict()})
            for i in range(1, 5001)
        ]
        await store.write_events(events)
        await store.write_events(events)
        assert await store.count_events("context_conversations", "s1") == 5000
        assert [m.seq for m in await store.read_history("s1", 3)] == [4998, 4999, 5000]
    finally:
        await store.aclose()
