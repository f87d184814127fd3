"""The LangGraph hot path on SQLite (puts, pending writes, reads, DeltaChannel walks) runs on the caller's thread
when the connection is free, and takes the connection's thread otherwise: while the thread runs a job, while a write
is queued for it, and while another process holds the file's write lock (then the loop is not blocked: the thread
waits for the lock)."""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from contextkit.stores import CheckpointRow, StoreSettings, WriteRow
from contextkit.testing.checkpoints import make_checkpoint_id
from contextkit_sqlite import SqliteHotStore


@pytest.fixture
async def hot(tmp_path: Path) -> AsyncIterator[SqliteHotStore]:
    store = SqliteHotStore(StoreSettings(namespace=f"t-{uuid.uuid4().hex[:8]}"), {"path": str(tmp_path / "db.sqlite3")})
    await store.open()
    yield store
    await store.aclose()


def _hops(store: SqliteHotStore) -> list[str]:
    """Records the name of every function sent to the connection's thread from now on."""
    db: Any = store._db._db
    sent: list[str] = []
    execute = db._execute

    def counting(fn: Any, *args: Any) -> Any:
        inner = args[0] if fn.__name__ == "_locked" else fn
        sent.append(getattr(inner, "__name__", repr(inner)))
        return execute(fn, *args)

    db._execute = counting
    return sent


def _row(tid: str, cid: str, parent: str | None = None) -> CheckpointRow:
    return CheckpointRow(tid, "", cid, parent, ("msgpack", b"\x80"), {"step": 1}, {"c": "1"})


async def _hot_path(store: SqliteHotStore, tid: str) -> None:
    first, second = make_checkpoint_id(), make_checkpoint_id()
    await store.cp_put(_row(tid, first), {("c", "1"): ("msgpack", b"\x91\x01")})
    await store.cp_put_writes(tid, "", first, [WriteRow("task", 0, "c", ("msgpack", b"\x91\x02"), "")], False)
    await store.cp_put(_row(tid, second, first), {})
    bundle = await store.cp_get(tid, "", None)
    assert bundle is not None and bundle.row.checkpoint_id == second
    walk = await store.cp_delta_history(tid, "", second, ["c"])
    assert walk is not None and [step.checkpoint_id for step in walk.steps] == [first]
    assert [w.value for w in walk.steps[0].writes] == [("msgpack", b"\x91\x02")]


async def test_the_hot_path_makes_no_hop_on_a_free_connection_and_one_per_call_when_turned_off(
    hot: SqliteHotStore,
) -> None:
    sent = _hops(hot)
    await _hot_path(hot, "inline")
    assert sent == []
    hot._db.inline_small_operations = False
    await _hot_path(hot, "hops")
    assert sent == ["_write_batch", "_write_batch", "_write_batch", "_in_read_transaction", "_in_read_transaction"]


async def test_a_call_takes_the_thread_while_the_thread_holds_the_connection(hot: SqliteHotStore) -> None:
    """A job running on the connection's thread holds it: a hot-path read then waits for the thread (no two users
    of the connection at once) and reads what the job committed."""
    holding, release = threading.Event(), threading.Event()
    tid = "busy-thread"

    def slow_put(conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")
        hot._cp_put(conn, _row(tid, make_checkpoint_id()), "{}", '{"c": "1"}', None, [])
        conn.execute("COMMIT")
        holding.set()
        release.wait(5.0)

    job = asyncio.ensure_future(hot._db.run(slow_put))
    assert await asyncio.to_thread(holding.wait, 5.0)
    sent = _hops(hot)
    read = asyncio.ensure_future(hot.cp_get(tid, "", None))
    await asyncio.sleep(0.05)
    assert not read.done()  # it went to the thread, behind the job
    release.set()
    await job
    bundle = await read
    assert bundle is not None and sent == ["_in_read_transaction"]


_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


async def test_a_write_lock_held_by_another_process_does_not_block_the_loop(hot: SqliteHotStore, tmp_path: Path) -> None:
    """Another process holds the file's write lock for a while: a put gives up inline at once (nothing written),
    the connection's thread waits for the lock (busy_timeout) while the loop goes on with other tasks, and the
    put is stored once the lock goes."""
    tid = "locked-out"
    first = make_checkpoint_id()
    await hot.cp_put(_row(tid, first), {("c", "1"): ("msgpack", b"\x91\x01")})
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, hot._db.path, "1.0", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and (await holder.stdout.readline()).strip() == b"locked"
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        beat = asyncio.ensure_future(ticker())
        sent = _hops(hot)
        second = make_checkpoint_id()
        put = asyncio.ensure_future(hot.cp_put(_row(tid, second, first), {}))
        await asyncio.sleep(0.3)
        assert not put.done() and ticks >= 5  # the put waits on the thread, the loop runs
        await asyncio.wait_for(put, 10.0)
        beat.cancel()
        assert await asyncio.wait_for(holder.wait(), 10.0) == 0 and sent == ["_write_batch"]
        latest = await hot.cp_get(tid, "", None)
        assert latest is not None and latest.row.checkpoint_id == second
        assert sent == ["_write_batch"]  # the lock gone, the read runs inline again
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def test_a_database_closed_and_opened_again_runs_the_hot_path_inline_again(tmp_path: Path) -> None:
    store = SqliteHotStore(StoreSettings(namespace="reopen"), {"path": str(tmp_path / "db.sqlite3")})
    await store.open()
    await store.aclose()
    await store.open()
    try:
        sent = _hops(store)
        await _hot_path(store, "reopened")
        assert sent == []
    finally:
        await store.aclose()
