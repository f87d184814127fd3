"""LangGraph checkpoints on a SQLite hot tier archived to PostgreSQL, read back after the hot TTL (time travel).

The hot thread expires for real: ``checkpoint_ttl`` is a few seconds and the test waits it out, so only the hot
copy is gone. The memory-tier version of these scenarios is ``tests/langgraph/test_cold_read_through.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.stores import StoreSettings
from contextkit.testing.checkpoints import ARCHIVE_DOC, archive_graph, run_archive_graph, state_summary
from contextkit_postgres.cold import PostgresColdStore
from contextkit_sqlite import SqliteHotStore

pytestmark = pytest.mark.postgres

TTL = 2.5
THREAD = "thread 'pg' 🙂:1"


@pytest.fixture
async def kit(
    tmp_path: Path, new_settings: Callable[..., StoreSettings], pg_stores: Callable[..., PostgresColdStore]
) -> AsyncIterator[ContextKit]:
    settings = replace(new_settings(), checkpoint_ttl=TTL, archived=True)
    hot = SqliteHotStore(settings, {"path": str(tmp_path / "hot.sqlite3")})
    async with ContextKit(hot, pg_stores(settings)) as kit:
        yield kit


def _config(checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": THREAD}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def _history(graph: Any) -> list[Any]:
    return [snapshot async for snapshot in graph.aget_state_history(_config())]


async def _flush_and_expire(kit: ContextKit) -> None:
    assert kit.archiver is not None
    assert await kit.archiver.flush(timeout=30.0)
    await asyncio.sleep(TTL + 0.3)
    assert await kit.hot.cp_get(THREAD, "", None) is None  # type: ignore[attr-defined]


async def test_state_history_and_replay_read_back_from_postgresql_after_the_hot_ttl(kit: ContextKit) -> None:
    """After the SQLite thread expired: aget_state and aget_state_history equal what they were, each archived
    checkpoint once (one archive event each); replaying an older checkpoint forks with every channel's value."""
    graph = archive_graph(kit.checkpointer())
    await run_archive_graph(graph, THREAD, 3)
    before = state_summary(await _history(graph))
    await _flush_and_expire(kit)

    graph = archive_graph(kit.checkpointer())
    after = state_summary(await _history(graph))
    assert after == before
    assert len({entry[0] for entry in after}) == len(after)
    assert kit.cold is not None
    assert await kit.cold.count_events("context_checkpoints", THREAD) == len(before)
    assert (await graph.aget_state(_config())).values == before[0][2]

    target = next(entry for entry in before if entry[2].get("count") == 2 and entry[3] == ("second",))
    result = await graph.ainvoke(None, _config(target[0]))
    assert result == {**target[2], "log": [*target[2]["log"], "second:2"]}
    assert result["doc"] == ARCHIVE_DOC
    continued = await graph.ainvoke({"log": ["again"]}, _config())
    assert continued["count"] == 3
    assert continued["doc"] == ARCHIVE_DOC


async def test_a_thread_deleted_through_the_saver_does_not_come_back_from_postgresql(kit: ContextKit) -> None:
    """adelete_thread archives a tombstone PostgreSQL honors: after the hot TTL the thread reads empty."""
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    await run_archive_graph(graph, THREAD, 2)
    assert kit.archiver is not None
    assert await kit.archiver.flush(timeout=30.0)
    await saver.adelete_thread(THREAD)
    await _flush_and_expire(kit)
    assert kit.cold is not None
    assert await kit.cold.read_langgraph_checkpoint(THREAD, "", None) is None
    graph = archive_graph(kit.checkpointer())
    assert (await graph.aget_state(_config())).values == {}
    assert await _history(graph) == []
