"""Shared list values (contextkit.checkpoint_lists) written by several OS processes at once: two processes fork one
thread from the same checkpoint and extend their branches concurrently, each with its own saver cache, on a SQLite
file and on Redis. Every checkpoint of every branch reads back its own list in a third process's saver, and the
thread's elements are stored once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.blob_compression import unpack
from contextkit.checkpoint_lists import LIST_MARK
from contextkit.testing.checkpoints import long_turns_graph
from contextkit.testing.services import machine_redis_url

BASE_TURNS = 12
BRANCH_TURNS = 10

# Extends one branch: from checkpoint `start`, `turns` turns, each continuing from the newest checkpoint of this
# branch (found by its values: the other branch's lists differ), and prints that checkpoint and its list.
_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys

    from contextkit import ContextKit
    from contextkit.testing.checkpoints import long_turns_graph as build


    async def main(url, namespace, thread, start, label, turns):
        async with ContextKit.from_url(url, namespace=namespace) as kit:
            graph = build(kit.checkpointer())
            config = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": start}}
            print("ready", flush=True)
            sys.stdin.readline()  # both workers start together
            for turn in range(turns):
                result = await graph.ainvoke({"turns": [f"{label} {turn}"]}, config)
                async for snapshot in graph.aget_state_history({"configurable": {"thread_id": thread}}):
                    if snapshot.values.get("turns") == result["turns"] and not snapshot.next:
                        config = snapshot.config
                        break
                else:
                    raise SystemExit("the branch's newest checkpoint was not found")
            print(json.dumps({"checkpoint_id": config["configurable"]["checkpoint_id"], "turns": result["turns"]}))


    asyncio.run(main(*sys.argv[1:6], int(sys.argv[6])))
    """
)


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    return machine_redis_url()


async def test_two_processes_extend_forks_of_one_thread_and_every_list_reads_back(url: str, tmp_path: Path) -> None:
    namespace = f"shared-{uuid.uuid4().hex[:8]}"
    thread = "forked"
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    async with ContextKit.from_url(url, namespace=namespace) as kit:
        try:
            graph = long_turns_graph(kit.checkpointer())
            config = {"configurable": {"thread_id": thread}}
            for turn in range(BASE_TURNS):
                await graph.ainvoke({"turns": [f"base {turn}"]}, config)
            base = await graph.aget_state(config)
            start = base.config["configurable"]["checkpoint_id"]
            workers = [
                await asyncio.create_subprocess_exec(
                    sys.executable, str(worker), url, namespace, thread, start, label, str(BRANCH_TURNS),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                for label in ("left", "right")
            ]
            try:
                for process in workers:
                    assert process.stdout is not None
                    assert (await asyncio.wait_for(process.stdout.readline(), 60)).strip() == b"ready"
                for process in workers:
                    assert process.stdin is not None
                    process.stdin.write(b"go\n")
                    await process.stdin.drain()
                results = []
                for process in workers:
                    out, err = await asyncio.wait_for(process.communicate(), 120)
                    assert process.returncode == 0, err.decode()
                    results.append(json.loads(out.decode().strip().splitlines()[-1]))
            finally:
                for process in workers:
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
            fresh = ContextKit.from_url(url, namespace=namespace)
            async with fresh:
                reader = long_turns_graph(fresh.checkpointer())
                for label, result in zip(("left", "right"), results, strict=True):
                    branch = {"configurable": {"thread_id": thread, "checkpoint_id": result["checkpoint_id"]}}
                    turns = (await reader.aget_state(branch)).values["turns"]
                    assert turns == result["turns"]
                    assert turns[: len(base.values["turns"])] == base.values["turns"]
                    assert [t for t in turns if t.startswith(label)] == [f"{label} {i}" for i in range(BRANCH_TURNS)]
                history = [s async for s in reader.aget_state_history({"configurable": {"thread_id": thread}})]
                assert len(history) == 3 * (BASE_TURNS + 2 * BRANCH_TURNS)  # input, start, reply: per turn
                for snapshot in history:
                    turns = snapshot.values.get("turns") or []
                    parent = snapshot.parent_config
                    if parent is not None and turns:
                        before = (await reader.aget_state(parent)).values.get("turns") or []
                        assert turns[: len(before)] == before  # every version extends its parent's list
                store: Any = fresh.hot
                newest = await store.cp_get(thread, "", results[0]["checkpoint_id"])
                assert newest.blobs["turns"][0] == "msgpack" + LIST_MARK
                usage = await fresh.checkpoint_usage(thread)
                assert usage is not None
                right = results[1]["turns"][len(base.values["turns"]) :]
                text = sum(len(t) for t in results[0]["turns"]) + sum(len(t) for t in right)
                # the elements once (compressed) plus 16-byte ids: far below the lists at every version (~25x)
                assert usage.hot.channels["turns"] < 3 * text, (usage.hot.channels, text)
        finally:
            await kit.checkpointer().adelete_thread(thread)
            if url.startswith("redis"):
                await _drop_namespace(url, namespace)


async def _drop_namespace(url: str, namespace: str) -> None:
    """The delete's tombstone stays for the checkpoint TTL: drop every key of the test's namespace."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# Runs `turns` turns of the thread's main line (each from its newest checkpoint) with a Redis hot tier and a
# SQLite archive, on the graph `kind` names ("turns": long_turns_graph; "delta": delta_graph, a DeltaChannel list
# snapshotted every 4 updates), waits until the archive holds everything, and prints the list.
_LINE_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys

    from contextkit import ContextKit
    from contextkit.testing.checkpoints import delta_graph, long_turns_graph

    GRAPHS = {"turns": long_turns_graph, "delta": lambda saver: delta_graph(saver, snapshot_frequency=4)}


    async def main(kind, url, cold, namespace, thread, label, turns):
        async with ContextKit.from_url(url, cold=cold, namespace=namespace) as kit:
            graph = GRAPHS[kind](kit.checkpointer())
            config = {"configurable": {"thread_id": thread}}
            for turn in range(turns):
                result = await graph.ainvoke({"turns": [f"{label} {turn}"]}, config)
            assert await kit.archiver.flush(60)
            print(json.dumps(result["turns"]))


    asyncio.run(main(*sys.argv[1:7], int(sys.argv[7])))
    """
)


async def _flushall(url: str) -> None:
    """The Redis at ``url`` loses everything, as a restart without persistence does."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


async def _line(worker: Path, *args: str) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(worker), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return list(json.loads(out.decode().strip().splitlines()[-1]))


async def test_shared_lists_survive_a_hot_tier_that_loses_everything_between_processes(tmp_path: Path) -> None:
    """DESIGN 3b with shared lists: a process writes a thread on a private Redis with a SQLite archive; this
    process continues it with its own saver (whose cache now trusts the nodes it wrote), the Redis loses
    everything (FLUSHALL), then a restart; this saver and then a second process go on. Every turn stays in the list
    in the order the callers were acknowledged, and every checkpoint reads back in a fresh saver, from either tier."""
    from contextkit.testing.services.redis_servers import private_redis_server

    worker = tmp_path / "line.py"
    worker.write_text(_LINE_WORKER)
    cold = f"sqlite:///{tmp_path / 'archive.sqlite3'}"
    namespace, thread = f"loss-{uuid.uuid4().hex[:8]}", "lost"
    with private_redis_server() as server:
        url = server.url
        expected = await _line(worker, "turns", url, cold, namespace, thread, "first", "4")
        async with ContextKit.from_url(url, cold=cold, namespace=namespace) as kit:
            graph = long_turns_graph(kit.checkpointer())
            config = {"configurable": {"thread_id": thread}}
            for turn in range(3):
                expected = (await graph.ainvoke({"turns": [f"here {turn}"]}, config))["turns"]
            assert kit.archiver is not None and await kit.archiver.flush(60)
            await _flushall(url)
            for turn in range(2):
                expected = (await graph.ainvoke({"turns": [f"after loss {turn}"]}, config))["turns"]
            assert await kit.archiver.flush(60)
        await _check_thread(url, cold, namespace, thread, expected)  # the hot tier's own copy, before the restart
        server.restart()  # nothing persisted: a second loss, with a new server run
        expected_tail = await _line(worker, "turns", url, cold, namespace, thread, "second", "2")
        assert expected_tail[: len(expected)] == expected
        expected = expected_tail
        labels = [t for t in expected if not t.startswith("reply")]
        assert labels == [
            *(f"first {i}" for i in range(4)), *(f"here {i}" for i in range(3)),
            *(f"after loss {i}" for i in range(2)), *(f"second {i}" for i in range(2)),
        ]
        await _check_thread(url, cold, namespace, thread, expected)


async def _check_thread(url: str, cold: str, namespace: str, thread: str, expected: list[str]) -> None:
    """A fresh saver reads the newest list and every checkpoint's list, each a prefix of the newest, and the
    newest is stored shared in the hot tier."""
    async with ContextKit.from_url(url, cold=cold, namespace=namespace) as fresh:
        reader = long_turns_graph(fresh.checkpointer())
        config = {"configurable": {"thread_id": thread}}
        assert (await reader.aget_state(config)).values["turns"] == expected
        history = [s async for s in reader.aget_state_history(config)]
        assert len(history) == 3 * sum(1 for t in expected if not t.startswith("reply"))
        for snapshot in history:
            turns = snapshot.values.get("turns") or []
            assert turns == expected[: len(turns)]
        newest = await fresh.hot.cp_get(thread, "", None)  # type: ignore[attr-defined]
        assert newest is not None and newest.blobs["turns"][0] == "msgpack" + LIST_MARK
        # The archive alone: every archived checkpoint (full and linked rows, written by three processes and
        # this one across two losses) rebuilds its list, a prefix of the newest.
        assert fresh.cold is not None
        archived = await fresh.cold.list_langgraph_checkpoints(thread, "")
        assert len(archived) == len(history)
        serde = fresh.checkpointer().serde
        for bundle in archived:
            blob = bundle.blobs.get("turns")
            turns = serde.loads_typed(unpack(blob)) if blob is not None else []
            assert turns == expected[: len(turns)], bundle.row.checkpoint_id
    with contextlib.closing(sqlite3.connect(cold.removeprefix("sqlite:///"))) as conn:
        rows = [json.loads(r[0]) for r in conn.execute("SELECT payload FROM context_checkpoints WHERE key = ?", (thread,))]
    rows.sort(key=lambda row: row["checkpoint_id"])
    kinds = "".join("L" if "base" in row else "F" if "nodes" in row else "w" for row in rows)
    # Whole values until the list is worth sharing; then a full row whenever a saver does not know the chain
    # (each process's first put, the first put after each loss), linked rows between.
    assert kinds.count("L") >= 10 and 2 <= kinds.count("F") <= 6, kinds


async def test_remembered_delta_walks_agree_with_fresh_ones_across_processes_and_a_hot_tier_loss(tmp_path: Path) -> None:
    """DESIGN 3b for the DeltaChannel walks a saver remembers: another process extends the thread between this
    process's turns, then the private Redis loses everything (FLUSHALL) and the thread goes on from the archive.
    At every step, for every checkpoint of the history, this saver's history reads equal a fresh saver's, and the
    list holds every turn in the order the callers were acknowledged."""
    from contextkit.langgraph import ContextKitSaver
    from contextkit.testing.checkpoints import delta_graph
    from contextkit.testing.services.redis_servers import private_redis_server

    worker = tmp_path / "line.py"
    worker.write_text(_LINE_WORKER)
    cold = f"sqlite:///{tmp_path / 'archive.sqlite3'}"
    namespace, thread = f"walks-{uuid.uuid4().hex[:8]}", "walked"
    config = {"configurable": {"thread_id": thread}}
    with private_redis_server() as server:
        url = server.url
        await _line(worker, "delta", url, cold, namespace, thread, "first", "5")
        async with ContextKit.from_url(url, cold=cold, namespace=namespace) as kit:
            saver = kit.checkpointer()
            graph = delta_graph(saver, snapshot_frequency=4)

            async def agree() -> int:
                history = [s async for s in graph.aget_state_history(config)]
                for snapshot in [*history, *reversed(history)]:
                    got = await saver.aget_delta_channel_history(config=snapshot.config, channels=["turns"])
                    fresh = ContextKitSaver(kit.hot, archive=kit.archiver)  # one that never walked before
                    assert got == await fresh.aget_delta_channel_history(config=snapshot.config, channels=["turns"])
                return len(history)

            for turn in range(3):
                await graph.ainvoke({"turns": [f"here {turn}"]}, config)
                await agree()
            await _line(worker, "delta", url, cold, namespace, thread, "second", "3")  # another process extends it
            for turn in range(2):
                await graph.ainvoke({"turns": [f"again {turn}"]}, config)
            assert await agree() == 3 * 13
            assert kit.archiver is not None and await kit.archiver.flush(60)
            await _flushall(url)
            for turn in range(2):
                result = await graph.ainvoke({"turns": [f"after loss {turn}"]}, config)
                await agree()
            labels = [t for t in result["turns"] if not t.startswith("reply")]
            assert labels == [
                *(f"first {i}" for i in range(5)), *(f"here {i}" for i in range(3)),
                *(f"second {i}" for i in range(3)), *(f"again {i}" for i in range(2)),
                *(f"after loss {i}" for i in range(2)),
            ]
            assert await kit.archiver.flush(60)
