"""Several processes on one sqlite file: what one writes, another reads; concurrent appends stay consecutive."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from contextkit.langgraph import ContextKitSaver
from contextkit.records import Message, Session, utcnow
from contextkit.stores import StoreSettings
from contextkit_sqlite import SqliteHotStore

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
