"""LangGraph checkpoints archived to the cold tier and read back when the hot tier no longer has them.

Memory hot tier and memory cold tier, through ``kit.checkpointer()``. The hot tier "expires" a thread by moving
its TTL clock (``_cp_now``) past ``checkpoint_ttl``, so only the hot copy is gone; the archive is untouched.
The same scenario on SQLite hot + PostgreSQL cold is ``plugins/contextkit-postgres/tests/test_langgraph_archive.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.checkpoint_archive import LANGGRAPH_KIND
from contextkit.errors import BackendUnavailable
from contextkit.langgraph import ContextKitSaver
from contextkit.stores import CheckpointBundle
from contextkit.testing.checkpoints import (
    ARCHIVE_DOC,
    archive_graph,
    loss_graph,
    paused_graph,
    run_archive_graph,
    state_summary,
)

TTL = 60.0
THREAD = "thread: cold 🙂"


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


def _expire_hot(kit: ContextKit) -> None:
    kit.hot._cp_now.offset += TTL * 2  # type: ignore[attr-defined]


async def _flush(kit: ContextKit) -> None:
    assert kit.archiver is not None
    assert await kit.archiver.flush(timeout=20.0)


def _config(thread_id: str = THREAD, checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": thread_id}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def _history(graph: Any, thread_id: str = THREAD) -> list[Any]:
    return [snapshot async for snapshot in graph.aget_state_history(_config(thread_id))]


async def _langgraph_events(kit: ContextKit, thread_id: str = THREAD) -> list[str]:
    """Checkpoint ids of the archived LangGraph checkpoint events of the thread (one per event)."""
    cold: Any = kit.cold
    rows = cold._rows_of("context_checkpoints", thread_id)
    return [r.payload["checkpoint_id"] for r in rows if r.payload.get("kind") == LANGGRAPH_KIND]


def _comparable(bundle: CheckpointBundle) -> tuple[Any, ...]:
    writes = sorted((w.task_id, w.idx, w.channel, w.value, w.task_path) for w in bundle.writes)
    return (bundle.row, dict(bundle.blobs), writes)


async def test_every_checkpoint_reads_back_from_the_cold_tier_exactly_as_the_hot_tier_has_it(kit: ContextKit) -> None:
    """Each archived checkpoint rebuilds the hot tier's bundle: the row, the blobs of every channel (also those
    its step did not change) and the pending writes; each checkpoint is archived once."""
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    await run_archive_graph(graph, THREAD, 3)
    await _flush(kit)
    assert kit.cold is not None
    hot = [bundle async for bundle in kit.hot.cp_list(THREAD, None)]  # type: ignore[attr-defined]
    archived = await kit.cold.list_langgraph_checkpoints(THREAD, None)
    assert len(hot) == len(archived) >= 9
    for from_hot, from_cold in zip(hot, archived, strict=True):
        assert _comparable(from_cold) == _comparable(from_hot)
    events = await _langgraph_events(kit)
    assert sorted(events) == sorted(b.row.checkpoint_id for b in hot)


async def test_state_and_history_read_back_after_the_hot_tier_expired_the_thread(kit: ContextKit) -> None:
    """After the hot TTL: ``aget_state`` and ``aget_state_history`` give what they gave before, from the cold tier;
    each archived checkpoint appears once in the history."""
    graph = archive_graph(kit.checkpointer())
    await run_archive_graph(graph, THREAD, 4)
    before_state = await graph.aget_state(_config())
    before = state_summary(await _history(graph))
    await _flush(kit)
    _expire_hot(kit)
    assert await kit.hot.cp_get(THREAD, "", None) is None  # type: ignore[attr-defined]

    graph = archive_graph(kit.checkpointer())
    after = state_summary(await _history(graph))
    assert after == before
    assert len({entry[0] for entry in after}) == len(after)
    state = await graph.aget_state(_config())
    assert state.values == before_state.values
    assert state.values["doc"] == ARCHIVE_DOC
    assert state.values["count"] == 4
    limited = [s async for s in graph.aget_state_history(_config(), limit=3)]
    assert state_summary(limited) == before[:3]
    older = [s async for s in graph.aget_state_history(_config(), before=_config(checkpoint_id=before[2][0]))]
    assert state_summary(older) == before[3:]


async def test_time_travel_replays_an_older_archived_checkpoint_after_the_hot_ttl(kit: ContextKit) -> None:
    """Replaying from a checkpoint only the cold tier has forks from it with every channel's value (``doc``
    was written long before), and the thread then continues in the hot tier from the fork."""
    graph = archive_graph(kit.checkpointer())
    await run_archive_graph(graph, THREAD, 3)
    before = state_summary(await _history(graph))
    await _flush(kit)
    _expire_hot(kit)

    graph = archive_graph(kit.checkpointer())
    # The checkpoint after the 2nd run's "first" node: count 2, "second" runs next.
    target = next(entry for entry in before if entry[2].get("count") == 2 and entry[3] == ("second",))
    old = await graph.aget_state(_config(checkpoint_id=target[0]))
    assert old.values == target[2]
    result = await graph.ainvoke(None, _config(checkpoint_id=target[0]))
    assert result["doc"] == ARCHIVE_DOC
    assert result["count"] == 2
    assert result["log"] == [*target[2]["log"], "second:2"]

    newest = await graph.aget_state(_config())
    assert newest.values == result
    parents = {entry[0]: entry[1] for entry in state_summary(await _history(graph))}
    chain, cursor = [], newest.config["configurable"]["checkpoint_id"]
    while cursor is not None and len(chain) < 50:
        chain.append(cursor)
        cursor = parents.get(cursor)
    assert target[0] in chain[1:4]  # the fork descends from the archived checkpoint
    hot_newest = await kit.hot.cp_get(THREAD, "", None)  # type: ignore[attr-defined]
    assert hot_newest is not None
    assert hot_newest.row.checkpoint_id == newest.config["configurable"]["checkpoint_id"]

    # A further run continues from the fork, in the hot tier, with the archived values.
    result = await graph.ainvoke({"log": ["again"]}, _config())
    assert result["count"] == 3
    assert result["doc"] == ARCHIVE_DOC
    history = state_summary(await _history(graph))
    ids = [entry[0] for entry in history]
    assert len(ids) == len(set(ids))
    assert set(entry[0] for entry in before) <= set(ids)


async def test_a_restarted_memory_hot_tier_reads_the_thread_back_from_the_cold_tier(kit: ContextKit) -> None:
    """A new kit with an empty memory hot tier over the same archive: the thread resumes from the cold tier."""
    graph = archive_graph(kit.checkpointer())
    await run_archive_graph(graph, THREAD, 2)
    before = state_summary(await _history(graph))
    await _flush(kit)
    cold = kit.cold
    assert cold is not None
    fresh_hot = kit.plugins.backends.get("hot", "memory").factory(kit.config.store_settings(), {})
    async with ContextKit(fresh_hot, cold, config=kit.config, plugins=kit.plugins) as second:
        graph = archive_graph(second.checkpointer())
        assert state_summary(await _history(graph)) == before
        result = await graph.ainvoke({"log": ["resumed"]}, _config())
        assert result["count"] == 3
        assert result["doc"] == ARCHIVE_DOC


async def test_a_graph_paused_before_a_node_resumes_it_from_the_archive_alone(kit: ContextKit) -> None:
    """The trigger of the node a graph paused before (``branch:to:<node>``, kept in the serialized checkpoint, not
    as a blob) is archived with the checkpoint: a new kit with an empty memory hot tier over the same archive sees
    the graph paused there, and resuming runs that node once."""
    calls: dict[str, int] = {}
    await paused_graph(kit.checkpointer(), calls).ainvoke({"log": ["start"]}, _config())
    await _flush(kit)
    assert kit.cold is not None
    fresh_hot = kit.plugins.backends.get("hot", "memory").factory(kit.config.store_settings(), {})
    async with ContextKit(fresh_hot, kit.cold, config=kit.config, plugins=kit.plugins) as second:
        graph = paused_graph(second.checkpointer(), calls)
        state = await graph.aget_state(_config())
        assert state.next == ("b",) and state.values == {"log": ["start", "a"]}
        assert (await graph.ainvoke(None, _config()))["log"] == ["start", "a", "b"]
    assert calls == {"a": 1, "b": 1}


async def test_a_thread_deleted_through_the_saver_does_not_come_back(kit: ContextKit) -> None:
    """``adelete_thread`` archives a tombstone: neither before the archiver wrote it (the hot tier's tombstone
    covers it) nor after (the cold tier honors it), nor after the hot TTL, does the thread come back; a new run
    after the delete starts fresh and is archived and read back alone."""
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    await run_archive_graph(graph, THREAD, 2)
    await _flush(kit)
    await saver.adelete_thread(THREAD)
    assert (await graph.aget_state(_config())).values == {}
    assert await _history(graph) == []

    await _flush(kit)
    other = archive_graph(ContextKitSaver(kit.hot, archive=kit.archiver))  # type: ignore[arg-type]
    assert (await other.aget_state(_config())).values == {}
    assert await _history(other) == []
    assert kit.cold is not None
    assert await kit.cold.read_langgraph_checkpoint(THREAD, "", None) is None
    assert await kit.cold.list_langgraph_checkpoints(THREAD, None) == []

    result = await other.ainvoke({"log": ["new"], "count": 10}, _config())
    assert result == {"log": ["new", "first", "second:11"], "count": 11}
    await _flush(kit)
    _expire_hot(kit)
    reread = archive_graph(ContextKitSaver(kit.hot, archive=kit.archiver))  # type: ignore[arg-type]
    history = await _history(reread)
    assert history[0].values == result
    assert all("doc" not in s.values for s in history)
    assert len(history) == 4


async def test_a_thread_deleted_by_another_saver_stays_deleted_while_its_delete_waits_in_the_outbox(
    kit: ContextKit,
) -> None:
    """Saver A deletes a thread while the archive refuses writes (its tombstone event waits in the outbox; reads
    still work); saver B, which never saw the delete, reads nothing back from the archive: the hot tier's
    tombstone covers it. After the archive drained and the hot tier lost the thread, nothing comes back either."""
    writer = kit.checkpointer()
    await run_archive_graph(archive_graph(writer), THREAD, 2)
    await _flush(kit)
    cold: Any = kit.cold
    write_events = cold.write_events

    async def refuse(events: Any) -> None:
        raise BackendUnavailable("archive writes paused by the test")

    cold.write_events = refuse
    try:
        await writer.adelete_thread(THREAD)
        assert kit.archiver is not None and await kit.archiver.outbox.depth() == 1
        assert await cold.read_langgraph_checkpoint(THREAD, "", None) is not None  # the archive still has it
        reader = archive_graph(ContextKitSaver(kit.hot, archive=kit.archiver))  # type: ignore[arg-type]
        assert (await reader.aget_state(_config())).values == {}
        assert await _history(reader) == []
    finally:
        cold.write_events = write_events
    await _flush(kit)
    _expire_hot(kit)
    later = archive_graph(ContextKitSaver(kit.hot, archive=kit.archiver))  # type: ignore[arg-type]
    assert (await later.aget_state(_config())).values == {}
    assert await _history(later) == []


async def test_checkpoints_of_runs_deleted_through_the_saver_do_not_come_back(kit: ContextKit) -> None:
    """``adelete_for_runs`` archives a tombstone naming the runs in each thread that lost checkpoints: the run's
    archived checkpoints stay hidden before the archiver wrote it (the saver remembers), after (the cold tier
    honors it, read by another saver) and after the hot TTL; the thread's other run stays readable."""
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    dropped, kept = uuid.uuid4(), uuid.uuid4()
    # (LangGraph Platform passes the run id in configurable; it lands in the checkpoint metadata)
    await graph.ainvoke({"log": ["dropped"], "count": 0}, {"configurable": {"thread_id": THREAD, "run_id": str(dropped)}})
    await graph.ainvoke({"log": ["kept"], "count": 0}, {"configurable": {"thread_id": THREAD, "run_id": str(kept)}})
    await _flush(kit)
    assert {s.metadata["run_id"] for s in await _history(graph)} == {str(dropped), str(kept)}

    await saver.adelete_for_runs([str(dropped)])
    assert {s.metadata["run_id"] for s in await _history(graph)} == {str(kept)}
    await _flush(kit)
    other = archive_graph(ContextKitSaver(kit.hot, archive=kit.archiver))  # type: ignore[arg-type]
    assert {s.metadata["run_id"] for s in await _history(other)} == {str(kept)}
    _expire_hot(kit)
    reread = archive_graph(ContextKitSaver(kit.hot, archive=kit.archiver))  # type: ignore[arg-type]
    history = await _history(reread)
    assert history and {s.metadata["run_id"] for s in history} == {str(kept)}
    assert kit.cold is not None
    assert all(b.row.metadata["run_id"] == str(kept) for b in await kit.cold.list_langgraph_checkpoints(THREAD, None))


async def test_runs_deleted_after_the_hot_tier_lost_the_thread_stay_hidden_for_every_saver(kit: ContextKit) -> None:
    """A restarted memory hot tier no longer has the thread, so only the archive holds the run's checkpoints:
    ``adelete_for_runs`` finds the thread in the archive and archives its runs tombstone there too, so a saver
    that did not do the delete (another process, the next restart) does not read the run back; the other run
    stays readable."""
    graph = archive_graph(kit.checkpointer())
    dropped, kept = uuid.uuid4(), uuid.uuid4()
    await graph.ainvoke({"log": ["dropped"], "count": 0}, {"configurable": {"thread_id": THREAD, "run_id": str(dropped)}})
    await graph.ainvoke({"log": ["kept"], "count": 0}, {"configurable": {"thread_id": THREAD, "run_id": str(kept)}})
    await _flush(kit)
    cold = kit.cold
    assert cold is not None

    def fresh_hot() -> Any:
        return kit.plugins.backends.get("hot", "memory").factory(kit.config.store_settings(), {})

    async with ContextKit(fresh_hot(), cold, config=kit.config, plugins=kit.plugins) as second:
        await second.checkpointer().adelete_for_runs([str(dropped)])
        assert second.archiver is not None and await second.archiver.flush(timeout=20.0)
    async with ContextKit(fresh_hot(), cold, config=kit.config, plugins=kit.plugins) as third:
        history = await _history(archive_graph(third.checkpointer()))
    assert history and {s.metadata["run_id"] for s in history} == {str(kept)}


async def test_deleting_runs_fails_before_deleting_anything_when_the_archive_cannot_be_searched(
    kit: ContextKit,
) -> None:
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    run = uuid.uuid4()
    await graph.ainvoke({"log": ["x"], "count": 0}, {"configurable": {"thread_id": THREAD, "run_id": str(run)}})
    await _flush(kit)
    kit.cold.set_available(False)  # type: ignore[union-attr]
    try:
        with pytest.raises(BackendUnavailable, match="cannot be searched"):
            await saver.adelete_for_runs([str(run)])
    finally:
        kit.cold.set_available(True)  # type: ignore[union-attr]
    assert {s.metadata["run_id"] for s in await _history(graph)} == {str(run)}


async def test_a_late_put_of_a_deleted_thread_is_not_archived(kit: ContextKit) -> None:
    """A put whose parent was made before ``adelete_thread`` (a run still going) is dropped by the hot tier and
    kept out of the archive, so it cannot bring the thread back from the cold tier."""
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    await run_archive_graph(graph, THREAD, 1)
    state = await graph.aget_state(_config())
    await saver.adelete_thread(THREAD)
    # The run goes on after the delete: a child of its last checkpoint.
    await graph.aupdate_state(state.config, {"log": ["late"]})
    await _flush(kit)
    _expire_hot(kit)
    assert kit.cold is not None
    assert await kit.cold.list_langgraph_checkpoints(THREAD, None) == []
    assert (await graph.aget_state(_config())).values == {}


async def test_pruning_the_hot_copy_keeps_the_history_readable_from_the_archive(kit: ContextKit) -> None:
    """``aprune(keep_latest)`` frees the hot tier; the older checkpoints stay readable from the cold tier."""
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    await run_archive_graph(graph, THREAD, 3)
    before = state_summary(await _history(graph))
    await _flush(kit)
    await saver.aprune([THREAD])
    hot = [b async for b in kit.hot.cp_list(THREAD, None)]  # type: ignore[attr-defined]
    assert len(hot) == 1
    after = state_summary(await _history(graph))
    # The kept hot row lost its parent link (prune's rule); everything older comes from the archive.
    assert [(e[0], e[2], e[3]) for e in after] == [(e[0], e[2], e[3]) for e in before]
    assert after[1:] == before[1:]
    assert (await graph.aget_state(_config(checkpoint_id=before[-1][0]))).values == before[-1][2]


async def test_a_copy_of_a_pruned_thread_has_its_whole_archived_history(kit: ContextKit) -> None:
    """``acopy_thread`` archives under the target the source's checkpoints that only the archive still holds, so
    the copy reads back the same history as the source, also once the hot copies are gone; the source is kept."""
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    await run_archive_graph(graph, THREAD, 3)
    before = state_summary(await _history(graph))
    await _flush(kit)
    await saver.aprune([THREAD])  # the hot tier keeps only the newest checkpoint
    target = "thread: the copy"
    await saver.acopy_thread(THREAD, target)
    await _flush(kit)
    _expire_hot(kit)
    reread = archive_graph(ContextKitSaver(kit.hot, archive=kit.archiver))  # type: ignore[arg-type]
    copied = state_summary(await _history(reread, target))
    assert [(e[0], e[2]) for e in copied] == [(e[0], e[2]) for e in before]
    assert [(e[0], e[2]) for e in state_summary(await _history(reread))] == [(e[0], e[2]) for e in before]


async def test_a_copy_fails_before_writing_when_the_archive_cannot_be_read(kit: ContextKit) -> None:
    saver = kit.checkpointer()
    await run_archive_graph(archive_graph(saver), THREAD, 1)
    assert kit.cold is not None

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise BackendUnavailable("cold tier down (test)")

    kit.cold.list_langgraph_checkpoints = down  # type: ignore[method-assign]
    with pytest.raises(BackendUnavailable, match="archived checkpoints cannot be read"):
        await saver.acopy_thread(THREAD, "thread: no copy")
    assert [b async for b in kit.hot.cp_list("thread: no copy", None)] == []  # type: ignore[attr-defined]


async def test_the_sync_api_reads_back_from_the_cold_tier(kit: ContextKit) -> None:
    """``get_state`` / ``get_state_history`` (sync, from a worker thread) also read the archive."""
    import asyncio

    graph = archive_graph(kit.checkpointer())
    await run_archive_graph(graph, THREAD, 2)
    before = state_summary(await _history(graph))
    await _flush(kit)
    _expire_hot(kit)
    graph = archive_graph(kit.checkpointer())
    history = await asyncio.to_thread(lambda: list(graph.get_state_history(_config())))
    assert state_summary(history) == before


async def test_a_new_subgraph_namespace_of_a_live_thread_costs_no_cold_read(kit: ContextKit) -> None:
    """The newest checkpoint of a namespace the hot tier lacks, on a thread whose root namespace it has, is not
    looked up in the cold tier (a new subgraph run), so subgraphs add no cold round trip."""
    saver = kit.checkpointer()
    graph = archive_graph(saver)
    await run_archive_graph(graph, THREAD, 1)
    cold: Any = kit.cold
    calls: list[Any] = []
    original = cold.read_langgraph_checkpoint

    async def counting(*args: Any) -> Any:
        calls.append(args)
        return await original(*args)

    cold.read_langgraph_checkpoint = counting
    config = {"configurable": {"thread_id": THREAD, "checkpoint_ns": "child:1"}}
    assert await saver.aget_tuple(config) is None
    assert calls == []
    assert await saver.aget_tuple({"configurable": {"thread_id": "never seen"}}) is None
    assert len(calls) == 1


async def test_archived_blob_bytes_of_all_channels_versus_changed_channels_only(kit: ContextKit) -> None:
    """The size cost of archiving every channel's blob with each checkpoint, measured on this graph: the large
    ``doc`` channel is repeated in every checkpoint (the worst case: a big value that never changes), while the
    ``log`` list that grows each step dominates both ways. Printed for the design note; the bound only guards
    against an accidental blow-up."""
    graph = archive_graph(kit.checkpointer())
    await run_archive_graph(graph, THREAD, 5)
    await _flush(kit)
    assert kit.cold is not None
    archived = await kit.cold.list_langgraph_checkpoints(THREAD, None)
    all_bytes = sum(len(blob[1]) for bundle in archived for blob in bundle.blobs.values())
    seen: set[tuple[str, str]] = set()
    new_bytes = 0
    for bundle in reversed(archived):
        for channel, version in bundle.row.channel_versions.items():
            if (channel, version) not in seen and channel in bundle.blobs:  # a version without a value has none
                seen.add((channel, version))
                new_bytes += len(bundle.blobs[channel][1])
    print(f"archived blob bytes: all channels {all_bytes}, changed channels only {new_bytes}")
    assert new_bytes <= all_bytes <= new_bytes * len(archived)


async def test_checkpoints_retention_removed_are_not_read_back_from_the_archive() -> None:
    """With ``[checkpoints] keep_latest`` configured, what retention removes from the hot tier stays in the
    archive (its copies are not deleted) but the saver does not read it back: the history is the kept
    checkpoints, an old id reads as missing, and the newest state is whole. A thread whose hot copy expired reads
    back its newest as before."""
    config = {"hot": "memory", "cold": "memory", "checkpoint_ttl": TTL, "checkpoints": {"keep_latest": 3}}
    async with ContextKit.from_config(config, env={}) as kit:
        kit.hot._cp_now = _Clock()  # type: ignore[attr-defined]
        saver = kit.checkpointer()
        assert saver.retention is not None and saver.retention.keep_latest == 3
        graph = archive_graph(saver)
        await run_archive_graph(graph, THREAD, 3)
        before = state_summary(await _history(graph))
        before_state = (await graph.aget_state(_config())).values
        await _flush(kit)
        await saver.aretain([THREAD])
        hot = [b.row.checkpoint_id async for b in kit.hot.cp_list(THREAD, None)]  # type: ignore[attr-defined]
        assert hot == [entry[0] for entry in before[:3]]
        after = state_summary(await _history(graph))
        assert [e[0] for e in after] == hot
        assert await saver.aget_tuple(_config(checkpoint_id=before[-1][0])) is None
        assert (await graph.aget_state(_config())).values == before_state
        # The archive keeps every checkpoint (retention prunes the hot tier only).
        assert len(await kit.cold.list_langgraph_checkpoints(THREAD, None)) == len(before)  # type: ignore[union-attr]

        _expire_hot(kit)
        graph = archive_graph(kit.checkpointer())
        assert (await graph.aget_state(_config())).values == before_state


async def test_compressed_values_are_archived_compressed_and_read_back() -> None:
    """Values over ``compress_above`` go to the archive as stored (compressed, with their marker) and read back
    into the same state after the hot copy expired."""
    config = {"hot": "memory", "cold": "memory", "checkpoint_ttl": TTL, "checkpoints": {"compress_above": 64}}
    async with ContextKit.from_config(config, env={}) as kit:
        kit.hot._cp_now = _Clock()  # type: ignore[attr-defined]
        graph = archive_graph(kit.checkpointer())
        await run_archive_graph(graph, THREAD, 3)
        before = state_summary(await _history(graph))
        await _flush(kit)
        archived = await kit.cold.list_langgraph_checkpoints(THREAD, None)  # type: ignore[union-attr]
        doc_kinds = {bundle.blobs["doc"][0] for bundle in archived if "doc" in bundle.blobs}
        assert doc_kinds and all(kind.endswith(("+zstd", "+zlib")) for kind in doc_kinds)
        _expire_hot(kit)
        assert await kit.hot.cp_get(THREAD, "", None) is None  # type: ignore[attr-defined]
        graph = archive_graph(kit.checkpointer())
        assert state_summary(await _history(graph)) == before


def test_the_retired_view_follows_the_policy_given_the_newer_hot_checkpoints() -> None:
    """Unit test of the rule read-through applies (:class:`contextkit.langgraph._RetiredView`): an archived
    checkpoint is retired only when the hot tier holds newer ones and, given those, the policy drops it."""
    from contextkit.langgraph import _RetiredView
    from contextkit.stores import CheckpointRow, RetentionPolicy, checkpoint_id_floor

    now = time.time()
    ids = [checkpoint_id_floor(now - hours * 3600) for hours in (10, 9, 2, 1)]

    def row(cid: str, parent: str | None = "p") -> CheckpointRow:
        return CheckpointRow(THREAD, "", cid, parent, ("json", b"{}"), {}, {})

    by_count = _RetiredView(RetentionPolicy(keep_latest=2), {"": [ids[3], ids[2]]}, now)
    assert by_count.retired(row(ids[1])) and by_count.retired(row(ids[0]))
    assert not by_count.retired(row(ids[3]))  # nothing newer in the hot tier
    assert not by_count.retired(CheckpointRow(THREAD, "child:1", ids[0], "p", ("json", b"{}"), {}, {}))
    one_newer = _RetiredView(RetentionPolicy(keep_latest=2), {"": [ids[3]]}, now)
    assert not one_newer.retired(row(ids[2]))  # it would be among the 2 newest
    by_age = _RetiredView(RetentionPolicy(max_age=5 * 3600), {"": [ids[3]]}, now)
    assert by_age.retired(row(ids[0])) and not by_age.retired(row(ids[2]))
    assert not by_age.retired(row("0-not-a-uuid"))  # older than the hot one, but of no known age
    first = _RetiredView(RetentionPolicy(keep_latest=1, keep_first=True), {"": [ids[3]]}, now)
    assert not first.retired(row(ids[0], parent=None)) and first.retired(row(ids[1]))


async def test_a_thread_expiring_between_two_steps_is_written_whole_and_archived_once(kit: ContextKit) -> None:
    """The hot tier expires the thread between the two steps of each run: the second step's put relies on blobs
    that went with it, is refused (``MissingBlobs``, nothing written, no archive event) and written again with
    every value. The state reads back whole from the hot tier, each checkpoint is archived exactly once, and
    after the hot copy expires for good the archive gives the same state."""

    async def lose() -> None:
        _expire_hot(kit)

    graph = loss_graph(kit.checkpointer(), lose)
    for run in range(3):
        await graph.ainvoke({"items": [f"question {run}"]}, _config())
    expected = {"items": 6, "count": 3}
    state = await graph.aget_state(_config())
    assert {"items": len(state.values["items"]), "count": state.values["count"]} == expected
    await _flush(kit)
    ids = await _langgraph_events(kit)
    assert len(ids) == len(set(ids)) and state.config["configurable"]["checkpoint_id"] in ids
    _expire_hot(kit)
    fresh = loss_graph(kit.checkpointer(), lose)
    again = await fresh.aget_state(_config())
    assert again.values == state.values
