"""``DeltaChannel`` history on a SQLite hot tier archived to PostgreSQL: when the hot tier lost the older part of a
thread's chain (only there), the SQLite query walks what it holds and the saver reads the rest from PostgreSQL.

The memory-tier version of this scenario is ``tests/langgraph/test_delta_history_cold.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.stores import StoreSettings
from contextkit.testing.checkpoints import delta_graph, generic_delta_history
from contextkit_postgres.cold import PostgresColdStore
from contextkit_sqlite import SqliteHotStore

pytestmark = pytest.mark.postgres
pytest.importorskip("langgraph.channels.delta")


@pytest.fixture
async def kit(
    tmp_path: Path, new_settings: Callable[..., StoreSettings], pg_stores: Callable[..., PostgresColdStore]
) -> AsyncIterator[ContextKit]:
    settings = replace(new_settings(), archived=True)
    hot = SqliteHotStore(settings, {"path": str(tmp_path / "hot.sqlite3")})
    async with ContextKit(hot, pg_stores(settings)) as kit:
        yield kit


async def test_delta_history_reads_on_from_postgresql_where_the_sqlite_chain_ends(kit: ContextKit) -> None:
    """Older runs' checkpoints gone from SQLite (the archive keeps them): the history of the newest checkpoint,
    and the graph's state, are what they were; one SQLite walk, then PostgreSQL reads."""
    thread = f"delta-pg-{uuid.uuid4().hex[:8]}"
    # No snapshot in a short thread: every rebuild walks back to the first checkpoint.
    graph = delta_graph(kit.checkpointer(), snapshot_frequency=1000)
    runs = []
    for turn in range(5):
        runs.append(str(uuid.uuid4()))
        config = {"configurable": {"thread_id": thread}, "metadata": {"run_id": runs[-1]}}
        await graph.ainvoke({"turns": [f"user {turn}"]}, config)
    assert kit.archiver is not None
    assert await kit.archiver.flush(timeout=30.0)
    state_config = {"configurable": {"thread_id": thread}}
    before = (await graph.aget_state(state_config)).values
    saver = kit.checkpointer()
    head = await saver.aget_tuple(state_config)
    assert head is not None
    head_config = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": head.checkpoint["id"]}}
    expected = await saver.aget_delta_channel_history(config=head_config, channels=["turns"])
    assert len(expected["turns"]["writes"]) == 10  # 5 questions, 5 replies

    hot: Any = kit.hot
    cold: Any = kit.cold
    assert await hot.cp_delete_for_runs(runs[:-2]) == [thread]
    counts = {"walks": 0, "cold reads": 0}
    walk, read = hot.cp_delta_history, cold.read_langgraph_checkpoint

    async def counted_walk(*args: Any, **kwargs: Any) -> Any:
        counts["walks"] += 1
        return await walk(*args, **kwargs)

    async def counted_read(*args: Any, **kwargs: Any) -> Any:
        counts["cold reads"] += 1
        return await read(*args, **kwargs)

    hot.cp_delta_history, cold.read_langgraph_checkpoint = counted_walk, counted_read
    history = await saver.aget_delta_channel_history(config=head_config, channels=["turns"])
    assert history == expected
    assert counts["walks"] == 1 and counts["cold reads"] >= 1
    assert history == await generic_delta_history(saver, head_config, ["turns"])
    assert (await delta_graph(kit.checkpointer(), snapshot_frequency=1000).aget_state(state_config)).values == before
