"""``DeltaChannel`` history read through from the cold tier when the chain reaches checkpoints the hot tier no longer
holds: the hot store walks what it has (one call) and names where it stopped; the saver reads on from the archive.

Memory hot and memory cold tiers through ``kit.checkpointer()``, as in ``test_cold_read_through.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.testing.checkpoints import delta_graph, generic_delta_history

pytest.importorskip("langgraph.channels.delta")

TTL = 60.0


class _Clock:
    """The memory hot tier's TTL clock, moved by the test."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
async def kit() -> AsyncIterator[ContextKit]:
    async with ContextKit.from_config({"hot": "memory", "cold": "memory", "checkpoint_ttl": TTL}, env={}) as kit:
        kit.hot._cp_now = _Clock()  # type: ignore[attr-defined]
        yield kit


def _graph(saver: Any) -> Any:
    # No snapshot in these short threads: every rebuild walks to the first checkpoint.
    return delta_graph(saver, snapshot_frequency=1000)


async def _run(kit: ContextKit, thread_id: str, turns: int) -> tuple[Any, list[str]]:
    """Run ``turns`` turns, each its own run id; the graph and the run ids, oldest first."""
    graph = _graph(kit.checkpointer())
    runs = []
    for turn in range(turns):
        run_id = str(uuid.uuid4())
        runs.append(run_id)
        config = {"configurable": {"thread_id": thread_id}, "metadata": {"run_id": run_id}}
        await graph.ainvoke({"turns": [f"user {turn}"]}, config)
    assert kit.archiver is not None
    assert await kit.archiver.flush(timeout=20.0)
    return graph, runs


def _spy(kit: ContextKit) -> dict[str, int]:
    """Count the hot walks and the cold reads the saver makes from now on."""
    counts = {"hot walks": 0, "cold reads": 0}
    hot: Any = kit.hot
    cold: Any = kit.cold
    walk, read = hot.cp_delta_history, cold.read_langgraph_checkpoint

    async def counted_walk(*args: Any, **kwargs: Any) -> Any:
        counts["hot walks"] += 1
        return await walk(*args, **kwargs)

    async def counted_read(*args: Any, **kwargs: Any) -> Any:
        counts["cold reads"] += 1
        return await read(*args, **kwargs)

    hot.cp_delta_history = counted_walk
    cold.read_langgraph_checkpoint = counted_read
    return counts


async def test_delta_history_reads_on_from_the_archive_where_the_hot_chain_ends(kit: ContextKit) -> None:
    """The hot tier lost the older runs' checkpoints (only there: the archive keeps them): the state and the
    history of the newest checkpoint rebuild as before, the hot part from one hot walk, the rest from the archive."""
    tid = f"delta-cold-{uuid.uuid4().hex[:8]}"
    graph, runs = await _run(kit, tid, 7)
    config = {"configurable": {"thread_id": tid}}
    before = (await graph.aget_state(config)).values
    saver = kit.checkpointer()
    head = await saver.aget_tuple(config)
    assert head is not None
    head_config = {"configurable": {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": head.checkpoint["id"]}}
    expected = await saver.aget_delta_channel_history(config=head_config, channels=["turns"])

    lost = await kit.hot.cp_delete_for_runs(runs[:-2])  # type: ignore[attr-defined]
    assert lost == [tid]
    counts = _spy(kit)
    history = await saver.aget_delta_channel_history(config=head_config, channels=["turns"])
    assert history == expected
    assert counts["hot walks"] == 1 and counts["cold reads"] >= 1
    assert history == await generic_delta_history(saver, head_config, ["turns"])
    assert (await _graph(kit.checkpointer()).aget_state(config)).values == before


async def test_delta_history_of_a_thread_only_the_archive_holds(kit: ContextKit) -> None:
    """After the hot TTL the whole chain comes from the archive (the head too), and the graph goes on from it."""
    tid = f"delta-cold-{uuid.uuid4().hex[:8]}"
    graph, _ = await _run(kit, tid, 5)
    config = {"configurable": {"thread_id": tid}}
    before = (await graph.aget_state(config)).values
    kit.hot._cp_now.offset += TTL * 2  # type: ignore[attr-defined]
    assert await kit.hot.cp_get(tid, "", None) is None  # type: ignore[attr-defined]
    graph = _graph(kit.checkpointer())
    assert (await graph.aget_state(config)).values == before
    await graph.ainvoke({"turns": ["user 5"]}, config)
    assert (await graph.aget_state(config)).values["turns"] == [*before["turns"], "user 5", "reply 11"]
