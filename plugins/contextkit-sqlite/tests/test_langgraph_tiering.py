"""LangGraph checkpoints on the SQLite hot tier archived by the SQLite cold tier: every put, pending write and thread
delete writes its archive event in its own transaction, and a delete stays a delete for every kit on the file,
while its event waits in the outbox and after the hot copy is gone."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.archiver import FileOutbox
from contextkit.checkpoint_archive import DELETE_KIND, LANGGRAPH_KIND
from contextkit.errors import BackendUnavailable
from contextkit.testing.checkpoints import archive_graph, run_archive_graph

pytestmark = pytest.mark.skipif(importlib.util.find_spec("langgraph") is None, reason="langgraph is not installed")

THREAD = "thread: sqlite 🙂"


def _config(tmp_path: Path) -> dict[str, Any]:
    return {
        "hot": {"backend": "sqlite", "path": str(tmp_path / "hot.sqlite3")},
        "cold": {"backend": "sqlite", "path": str(tmp_path / "cold.sqlite3")},
        "namespace": "lg",
        # Short backoffs: the tests pause the archive's writes and let them go again.
        "archiver": {"flush_interval": 0.01, "max_backoff": 0.1},
    }


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[ContextKit]:
    async with ContextKit.from_config(_config(tmp_path), env={}) as kit:
        yield kit


def _thread() -> Any:
    return {"configurable": {"thread_id": THREAD}}


async def _history(graph: Any) -> list[Any]:
    return [snapshot async for snapshot in graph.aget_state_history(_thread())]


async def _pending(kit: ContextKit) -> list[Any]:
    """The events waiting in the hot file's outbox (read through a FileOutbox of its own)."""
    outbox = FileOutbox(kit.hot.options.path, table=kit.hot.outbox_table)  # type: ignore[attr-defined]
    try:
        return await outbox.peek(10_000)
    finally:
        await outbox.aclose()


async def test_puts_writes_and_deletes_are_in_the_outbox_when_the_call_returns(kit: ContextKit) -> None:
    """With the archive refusing writes, a graph run leaves one outbox event per checkpoint the hot file holds
    (and its pending writes), and adelete_thread adds exactly the thread's tombstone event: each was written in
    the transaction of its write, not queued after it."""
    cold: Any = kit.cold
    write_events = cold.write_events

    async def refuse(events: Any) -> None:
        raise BackendUnavailable("archive writes paused by the test")

    cold.write_events = refuse
    try:
        saver = kit.checkpointer()
        graph = archive_graph(saver)
        await run_archive_graph(graph, THREAD, 2)
        pending = await _pending(kit)
        puts = [e.payload["checkpoint_id"] for e in pending if e.table == "context_checkpoints"]
        hot_ids = [snapshot.config["configurable"]["checkpoint_id"] for snapshot in await _history(graph)]
        assert sorted(puts) == sorted(hot_ids)
        assert all(e.payload.get("kind") == LANGGRAPH_KIND for e in pending)
        assert any(e.table == "context_checkpoint_writes" for e in pending)
        await saver.adelete_thread(THREAD)
        [tombstone] = [e for e in await _pending(kit) if e.payload.get("kind") == DELETE_KIND]
        assert tombstone.key == THREAD and tombstone.payload["floor"] >= max(hot_ids)
    finally:
        cold.write_events = write_events
    assert kit.archiver is not None and await kit.archiver.flush(20)
    assert await cold.list_langgraph_checkpoints(THREAD, None) == []


async def test_a_thread_deleted_by_one_kit_stays_deleted_for_another_while_its_delete_waits(
    kit: ContextKit, tmp_path: Path
) -> None:
    """Kit A deletes an archived thread while the archive refuses writes (the tombstone event waits in the file);
    kit B on the same files (its own connections, as another process has) reads nothing back from the archive:
    the hot file's tombstone covers it. Once the archive drained and the hot file lost everything, nothing comes
    back either."""
    await run_archive_graph(archive_graph(kit.checkpointer()), THREAD, 2)
    assert kit.archiver is not None and await kit.archiver.flush(20)
    cold: Any = kit.cold
    write_events = cold.write_events

    async def refuse(events: Any) -> None:
        raise BackendUnavailable("archive writes paused by the test")

    cold.write_events = refuse
    try:
        await kit.checkpointer().adelete_thread(THREAD)
        assert await cold.read_langgraph_checkpoint(THREAD, "", None) is not None  # the archive still has it
        other = await ContextKit.from_config(_config(tmp_path), env={}).open()
        try:
            other.archiver.outbox.peek = _nothing  # type: ignore[union-attr,method-assign]  # B must not drain it
            reader = archive_graph(other.checkpointer())
            assert (await reader.aget_state(_thread())).values == {}
            assert await _history(reader) == []
        finally:
            await other.aclose(drain_timeout=0)  # the event is A's to drain
    finally:
        cold.write_events = write_events
    assert await kit.archiver.flush(20)
    await kit.hot.drop_namespace()  # type: ignore[attr-defined]
    later = archive_graph(kit.checkpointer())
    assert (await later.aget_state(_thread())).values == {}
    assert await _history(later) == []


async def _nothing(count: int) -> list[Any]:
    return []


async def test_a_late_put_of_a_deleted_thread_writes_no_event(kit: ContextKit) -> None:
    """A put that chains onto a checkpoint made before adelete_thread (the run still going) is dropped by the hot
    file together with its event: the archive never sees it, so it cannot bring the thread back."""
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    await run_archive_graph(graph, THREAD, 1)
    state = await graph.aget_state(_thread())
    await saver.adelete_thread(THREAD)
    assert kit.archiver is not None and await kit.archiver.flush(20)
    await graph.aupdate_state(state.config, {"log": ["late"]})
    assert [e for e in await _pending(kit) if e.table == "context_checkpoints"] == []
    assert await kit.archiver.flush(20)
    await kit.hot.drop_namespace()  # type: ignore[attr-defined]
    assert await kit.cold.list_langgraph_checkpoints(THREAD, None) == []  # type: ignore[union-attr]
    assert (await graph.aget_state(_thread())).values == {}
