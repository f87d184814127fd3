"""Archive rows of shared lists (contextkit.checkpoint_archive, "linked rows"): a growing list is archived as its
new elements, not whole at every checkpoint, and every archived checkpoint still reads back whole.

Memory hot tier and memory cold tier through ``kit.checkpointer()``; the cold tier's rows are read directly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

import contextkit.langgraph as saver_module
from contextkit import ContextKit
from contextkit.blob_compression import unpack
from contextkit.checkpoint_archive import LANGGRAPH_KIND
from contextkit.langgraph import ContextKitSaver
from contextkit.testing.checkpoints import long_turns_graph

THREAD = "thread: archive chains"


@pytest.fixture
async def kit() -> AsyncIterator[ContextKit]:
    async with ContextKit.from_config({"hot": "memory", "cold": "memory"}, env={}) as kit:
        yield kit


async def _turns(saver: ContextKitSaver, count: int, thread_id: str = THREAD) -> None:
    graph = long_turns_graph(saver)
    config = {"configurable": {"thread_id": thread_id}}
    for n in range(count):
        await graph.ainvoke({"turns": [f"question {n}"]}, config)


def _rows(kit: ContextKit, thread_id: str = THREAD) -> list[dict[str, Any]]:
    cold: Any = kit.cold
    return [r.payload for r in cold._rows_of("context_checkpoints", thread_id) if r.payload.get("kind") == LANGGRAPH_KIND]


def _archived_bytes(kit: ContextKit, thread_id: str = THREAD) -> int:
    return sum(len(json.dumps(payload)) for payload in _rows(kit, thread_id))


async def _check_every_row_reads_back_as_the_hot_tier_has_it(
    kit: ContextKit, saver: ContextKitSaver, thread_id: str = THREAD
) -> int:
    """Every archived checkpoint of the thread rebuilds the hot tier's values; returns how many were compared."""
    assert kit.archiver is not None and await kit.archiver.flush(timeout=20.0)
    assert kit.cold is not None
    compared = 0
    async for hot in saver.alist({"configurable": {"thread_id": thread_id}}):
        checkpoint_id = hot.checkpoint["id"]
        cold = await kit.cold.read_langgraph_checkpoint(thread_id, "", checkpoint_id)
        assert cold is not None, checkpoint_id
        turns = saver.serde.loads_typed(unpack(cold.blobs["turns"])) if "turns" in cold.blobs else None
        assert turns == hot.checkpoint["channel_values"].get("turns"), checkpoint_id
        compared += 1
    listed = await kit.cold.list_langgraph_checkpoints(thread_id, "")
    assert len(listed) == compared
    return compared


async def test_a_growing_list_is_archived_as_its_new_elements_and_every_row_reads_back_whole(kit: ContextKit) -> None:
    """A 40-turn chat thread: after the first row, rows are linked (a ``base``, only the new nodes); the
    archive holds each reply about once (not once per later checkpoint), and each archived checkpoint reads
    back from the cold tier with the list the hot tier has."""
    saver = kit.checkpointer()
    await _turns(saver, 20)
    assert kit.archiver is not None and await kit.archiver.flush(timeout=20.0)
    at_20 = _archived_bytes(kit)
    await _turns(saver, 20)
    assert await _check_every_row_reads_back_as_the_hot_tier_has_it(kit, saver) == 120
    at_40 = _archived_bytes(kit)
    rows = _rows(kit)
    # Until the list is worth sharing (1 KB of elements) rows hold whole values; then one full row (every node)
    # and linked rows after it.
    full = [p for p in rows if "base" not in p and "nodes" in p]
    assert len(full) == 1
    linked = [p for p in rows if "base" in p]
    assert len(linked) > 90 and all(p["base"] == full[0]["checkpoint_id"] for p in linked)
    assert all(p["checkpoint_id"] > full[0]["checkpoint_id"] for p in linked)
    # Whole values at every checkpoint grow with the square of the turns (~4x for twice the turns); linked
    # rows grow with the turns.
    assert at_40 / at_20 < 2.4, (at_20, at_40)
    state = await long_turns_graph(saver).aget_state({"configurable": {"thread_id": THREAD}})
    text = sum(len(json.dumps(turn)) for turn in state.values["turns"])
    assert at_40 < 12 * text, (at_40, text)
    # `checkpoints du` counts the archive as stored: each row's record and its new nodes, not the rebuilt list.
    usage = await kit.checkpoint_usage(THREAD)
    assert usage is not None and usage.archive is not None and usage.archive.checkpoints == 120
    assert usage.archive.channels["turns"] < 3 * text, (usage.archive.channels, text)


async def test_a_chain_past_its_full_rows_bytes_starts_over_with_a_full_row(
    kit: ContextKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no floor on a chain's linked bytes, a full row comes whenever the linked rows since the last one
    hold more node bytes than it did (so the full rows add up to about twice the list, not its square), and
    every row of every chain reads back whole."""
    monkeypatch.setattr(saver_module, "_CHAIN_MIN_BYTES", 0)
    saver = kit.checkpointer()
    await _turns(saver, 30)
    assert await _check_every_row_reads_back_as_the_hot_tier_has_it(kit, saver) == 90
    rows = sorted(_rows(kit), key=lambda p: p["checkpoint_id"])
    full = [p["checkpoint_id"] for p in rows if "base" not in p and "nodes" in p]
    assert 3 <= len(full) <= 8, len(full)
    for payload in rows:  # each linked row names the newest full row before it
        if "base" in payload:
            assert payload["base"] == max(f for f in full if f < payload["checkpoint_id"])


async def test_a_saver_that_does_not_know_the_chain_writes_a_full_row_first(kit: ContextKit) -> None:
    """A second saver (another process, a restart) continuing the thread starts a chain of its own with a full
    row: it cannot know which nodes the first saver's rows hold. Both chains read back whole."""
    await _turns(kit.checkpointer(), 5)
    other = ContextKitSaver(kit.hot, archive=kit.archiver)
    await _turns(other, 5)
    assert kit.archiver is not None and await kit.archiver.flush(timeout=20.0)
    rows = sorted(_rows(kit), key=lambda p: p["checkpoint_id"])
    full = [p["checkpoint_id"] for p in rows if "base" not in p and "nodes" in p]
    assert len(full) == 2
    assert full[1] == rows[15]["checkpoint_id"]
    assert all("base" in p for p in rows[16:])
    assert await _check_every_row_reads_back_as_the_hot_tier_has_it(kit, other) == 30


async def test_chains_past_their_bound_forget_the_thread_written_longest_ago(
    kit: ContextKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saver holds the chains of a bounded number of leaf ids: past it, the thread written longest ago is
    forgotten and its next put writes a full row; every row of both threads reads back whole."""
    monkeypatch.setattr(saver_module, "_CHAIN_IDS_HELD", 1)
    saver = kit.checkpointer()
    await _turns(saver, 6, "thread a")
    await _turns(saver, 6, "thread b")
    await _turns(saver, 2, "thread a")
    assert kit.archiver is not None and await kit.archiver.flush(timeout=20.0)
    rows = sorted(_rows(kit, "thread a"), key=lambda p: p["checkpoint_id"])
    full = [n for n, p in enumerate(rows) if "base" not in p and "nodes" in p]
    assert len(full) == 2 and full[1] == 18, full  # the first put of the later run
    assert all("base" in p for p in rows[19:])
    assert await _check_every_row_reads_back_as_the_hot_tier_has_it(kit, saver, "thread a") == 24
    assert await _check_every_row_reads_back_as_the_hot_tier_has_it(kit, saver, "thread b") == 18


async def test_a_chain_holds_a_bounded_number_of_rows(kit: ContextKit, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain of ``_CHAIN_ROWS`` rows starts over with a full row (an archive read fetches at most that many rows
    of a chain), and every row reads back whole."""
    monkeypatch.setattr(saver_module, "_CHAIN_ROWS", 10)
    saver = kit.checkpointer()
    await _turns(saver, 15)
    assert await _check_every_row_reads_back_as_the_hot_tier_has_it(kit, saver) == 45
    rows = sorted(_rows(kit), key=lambda p: p["checkpoint_id"])
    shared = [n for n, p in enumerate(rows) if "nodes" in p or "base" in p]
    full = [n for n in shared if "base" not in rows[n]]
    assert full == shared[::10], (full, shared)
