"""Several processes on one sqlite file: what one writes, another reads; concurrent appends stay consecutive; owners
the file lost are restored once and numbered on from the archive; a delete racing updates stays a delete."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.errors import OwnerUnknown
from contextkit.langgraph import ContextKitSaver
from contextkit.records import Message, Session, utcnow
from contextkit.stores import StoreSettings
from contextkit_sqlite import SqliteColdStore, SqliteHotStore

WORKER = Path(__file__).with_name("sqlite_worker.py")


def _worker_module() -> Any:
    spec = importlib.util.spec_from_file_location("sqlite_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen[str]) -> Any:
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, err
    return json.loads(out)


async def test_a_second_process_reads_sessions_history_and_checkpoints_and_resumes_the_graph(tmp_path: Path) -> None:
    """Sessions, history and LangGraph checkpoints written here are read by a new Python process opening the
    same file; that process resumes the interrupted graph, and its writes are read back here."""
    path = str(tmp_path / "shared.sqlite3")
    namespace = f"app-{uuid.uuid4().hex[:8]}"
    settings = StoreSettings(namespace=namespace)
    now = utcnow()
    store = SqliteHotStore(settings, {"path": path})
    await store.open()
    try:
        await store.put_session(Session("s1", "u1", now, now, request_count=2, metadata={"source": "web"}))
        written = await store.append_messages("s1", [Message("user", "hello", now), Message("assistant", "hi", now)])
        graph = _worker_module().review_graph(ContextKitSaver(store))
        first = await graph.ainvoke({"topic": "otters"}, {"configurable": {"thread_id": "t1"}})
        assert "__interrupt__" in first
    finally:
        await store.aclose()

    seen = _result(_start("read", path, namespace, "s1", "t1"))

    assert Session.from_dict(seen["session"]) == Session("s1", "u1", now, now, request_count=2, metadata={"source": "web"})
    assert [Message.from_dict(m) for m in seen["history"]] == written
    assert seen["next"] == ["review"]
    assert seen["draft"] == "a draft about otters"
    assert seen["final"] == {"draft": "a draft about otters", "approved": True}

    reopened = SqliteHotStore(settings, {"path": path})
    await reopened.open()
    try:
        saver = ContextKitSaver(reopened)
        latest = await saver.aget_tuple({"configurable": {"thread_id": "t1"}})
        assert latest is not None
        assert latest.checkpoint["channel_values"]["approved"] is True
        assert latest.metadata["source"] == "loop"
    finally:
        await reopened.aclose()


async def test_processes_writing_the_same_threads_share_one_key_per_thread_and_lose_nothing(tmp_path: Path) -> None:
    """Three processes put checkpoints and pending writes into the same four LangGraph threads at once: each thread
    gets one key (given by whichever wrote first), every checkpoint reads back with its value and its write, and a
    thread deleted then written again starts empty (its key and rows went with the delete)."""
    path, namespace = str(tmp_path / "cp.sqlite3"), "procs"
    threads = [f"thread-{i}" for i in range(4)]
    go = tmp_path / "go"
    workers = [_start("checkpoints", path, namespace, json.dumps(threads), "30", str(go)) for _ in range(3)]
    await asyncio.sleep(0.5)
    go.touch()
    results = [_result(worker) for worker in workers]
    store = SqliteHotStore(StoreSettings(namespace=namespace), {"path": path})
    await store.open()
    try:
        assert await store.cp_thread_ids() == threads
        keys = await store._db.run(
            lambda conn: conn.execute("SELECT thread_id, COUNT(*) FROM ck_checkpoint_threads GROUP BY thread_id").fetchall()
        )
        assert sorted(keys) == [(thread, 1) for thread in threads]
        for thread in threads:
            written = sorted(cid for result in results for cid in result[thread])
            assert len(written) == 90
            listed = [bundle async for bundle in store.cp_list(thread, "")]
            assert sorted(b.row.checkpoint_id for b in listed) == written
            for bundle in listed:
                cid = bundle.row.checkpoint_id
                assert bundle.blobs == {"c": ("json", cid.encode())}
                assert [(w.channel, w.value, w.task_path) for w in bundle.writes] == [
                    ("c", ("json", cid.encode()), "~__pregel_pull, node")
                ]
        await store.cp_delete_thread(threads[0])
    finally:
        await store.aclose()
    again = _result(_start("checkpoints", path, namespace, json.dumps(threads[:1]), "1", str(go)))
    store = SqliteHotStore(StoreSettings(namespace=namespace), {"path": path})
    await store.open()
    try:
        assert [b.row.checkpoint_id async for b in store.cp_list(threads[0], None)] == again[threads[0]]
        usage = await store.cp_usage(threads[0])
        assert usage.checkpoints == 1 and set(usage.channels) == {"c"}
    finally:
        await store.aclose()


async def test_two_processes_appending_to_one_stream_get_unique_consecutive_seqs(tmp_path: Path) -> None:
    """Two processes appending 2-message batches to the same stream at the same time get seqs 1..N, each once,
    each batch contiguous; the session counter both bump is exact."""
    path = str(tmp_path / "race.sqlite3")
    namespace = f"race-{uuid.uuid4().hex[:8]}"
    go = tmp_path / "go"
    batches = 60
    store = SqliteHotStore(StoreSettings(namespace=namespace), {"path": path})
    await store.open()
    try:
        now = utcnow()
        await store.put_session(Session("shared", "u", now, now))
        workers = [_start("append", path, namespace, "shared", str(batches), str(go)) for _ in range(2)]
        go.touch()
        results = [_result(w) for w in workers]

        all_seqs = sorted(seq for r in results for batch in r["seqs"] for seq in batch)
        assert all_seqs == list(range(1, 4 * batches + 1))
        for r in results:
            for batch in r["seqs"]:
                assert batch == [batch[0], batch[0] + 1]
        history = await store.read_history("shared", None)
        assert [m.seq for m in history] == all_seqs
        by_seq = {seq: r["pid"] for r in results for batch in r["seqs"] for seq in batch}
        assert [m.content.split("-")[0] for m in history] == [str(by_seq[m.seq]) for m in history]
        session = await store.get_session("shared")
        assert session is not None
        assert session.request_count == 2 * batches
        assert session.total_processing_time == 0.25 * 2 * batches
    finally:
        await store.aclose()


def _kit_config(tmp_path: Path, namespace: str) -> dict[str, Any]:
    """A kit on a SQLite hot tier (its outbox in the same file) archived by a SQLite cold tier in another file."""
    return {
        "hot": {"backend": "sqlite", "path": str(tmp_path / "hot.sqlite3"), "busy_timeout": 20},
        "cold": {"backend": "sqlite", "path": str(tmp_path / "cold.sqlite3"), "busy_timeout": 20},
        "namespace": namespace,
        "timeout": 20.0,
        "archiver": {"flush_interval": 0.01},
    }


def _start_kit(config: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    return _start(args[0], json.dumps(config), "-", *args[1:])


async def test_processes_restoring_updating_and_appending_on_owners_the_file_lost_keep_exact_counts_and_seqs(
    tmp_path: Path,
) -> None:
    """Three owners with 100 archived increments and 100 archived messages each are lost by the hot file (evicted,
    as expiry does). Four processes then, all at once, bump each owner's counter and append to it 25 times: each
    process's first call meets an owner the file does not know, consults the archive and restores it (put if
    absent, in one transaction), racing the others' restores, updates and appends. Every update returns True,
    the counters end at exactly 100 + 100, the callers got seqs 101..200 each once, the hot history is 1..200
    with each message where its caller was told, and the archive holds the same seqs once each and the final
    counter at the hot tier's version."""
    namespace = f"lost-{uuid.uuid4().hex[:8]}"
    config = _kit_config(tmp_path, namespace)
    owners = ["lost 🙂", "lost:{1}", "lost * 'x'"]
    workers, rounds, archived = 4, 25, 100
    async with ContextKit.from_config(config, env={}) as kit:
        for owner in owners:
            await kit.create_session(owner, "u")
            for i in range(archived):
                assert await kit.update_session(owner, increment_requests=True)
                await kit.add_message(owner, "user", f"archived-{i}")
        assert kit.archiver is not None and await kit.archiver.flush(30)
        for owner in owners:
            assert await kit.hot.delete_session(owner, evict=True)
            with pytest.raises(OwnerUnknown):
                await kit.hot.get_session(owner)

    go = tmp_path / "go"
    processes = [_start_kit(config, "kit-work", json.dumps(owners), str(rounds), str(go)) for _ in range(workers)]
    go.touch()
    results = [_result(p) for p in processes]

    total = archived + workers * rounds
    cold = SqliteColdStore(StoreSettings(namespace=namespace), {"path": str(tmp_path / "cold.sqlite3")})
    await cold.open()
    try:
        async with ContextKit.from_config(config, env={}) as kit:
            assert kit.archiver is not None and await kit.archiver.flush(30)
            for owner in owners:
                assert [r["updates"][owner] for r in results] == [rounds] * workers
                given = sorted(seq for r in results for seq in r["seqs"][owner])
                assert given == list(range(archived + 1, total + 1)), owner
                session = await kit.get_session(owner)
                assert session is not None and session.request_count == total, owner

                by_seq = {seq: f"{r['pid']}-{i}" for r in results for i, seq in enumerate(r["seqs"][owner])}
                hot = await kit.hot.read_history(owner, None)
                assert [m.seq for m in hot] == list(range(1, total + 1)), owner
                assert [m.content for m in hot[archived:]] == [by_seq[m.seq] for m in hot[archived:]]

                archive = await cold.read_history(owner, None)
                assert [(m.seq, m.id, m.content) for m in archive] == [(m.seq, m.id, m.content) for m in hot], owner
                assert await cold.count_events("context_conversations", owner) == total
                archived_session = await cold.read_session(owner)
                assert archived_session is not None and archived_session.request_count == total
                assert archived_session.version == session.version
    finally:
        await cold.aclose()


async def test_a_session_deleted_while_other_processes_update_it_stays_deleted(tmp_path: Path) -> None:
    """Five processes bump a session's counter in a loop while a sixth deletes it: every update that started after
    the delete returned says False (the tombstone answers, nothing comes back through read-through), the session
    reads None, also once the hot file forgot it (then the archive's delete answers), and the archive's newest
    word on it is the delete."""
    namespace = f"deleted-{uuid.uuid4().hex[:8]}"
    config = _kit_config(tmp_path, namespace)
    owner = "doomed {0}"
    async with ContextKit.from_config(config, env={}) as kit:
        await kit.create_session(owner, "u", {"keep": "no"})
        for _ in range(10):
            assert await kit.update_session(owner, increment_requests=True)
        assert kit.archiver is not None and await kit.archiver.flush(30)

    go, stop = tmp_path / "go", tmp_path / "stop"
    updaters = [_start_kit(config, "kit-update", owner, str(go), str(stop)) for _ in range(5)]
    deleter = _start_kit(config, "kit-delete", owner, str(go), "0.5")
    go.touch()
    try:
        deleted_at = _result(deleter)["returned"]
        await asyncio.sleep(0.5)
    finally:
        stop.touch()
    calls = [call for updater in updaters for call in _result(updater)]

    after = [call for call in calls if call[0] > deleted_at]
    assert after, "no update started after the delete returned: the race did not happen"
    assert not [call for call in after if call[2]], "an update started after the delete brought the session back"
    assert any(call[2] for call in calls), "no update succeeded before the delete: the race did not happen"
    async with ContextKit.from_config(config, env={}) as kit:
        assert await kit.get_session(owner) is None
        assert await kit.update_session(owner, increment_requests=True) is False
        assert kit.archiver is not None and await kit.archiver.flush(30)
        await kit.hot.delete_session(owner, evict=True)
        assert await kit.get_session(owner) is None
        assert await kit.cold.read_session(owner) is None  # type: ignore[union-attr]
