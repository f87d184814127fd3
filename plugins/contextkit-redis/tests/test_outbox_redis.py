"""The archiver's outbox on Redis (``RedisStreamOutbox``): durable across processes, drained by one process at a
time, sharded on a cluster; a kit on Redis archives through it; a SIGKILLed app's events are drained by the next."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.records import ArchiveEvent
from contextkit.stores import StoreSettings
from contextkit.testing.outbox import check_batch_bytes, check_dead_letters, check_peek_ahead
from contextkit.testing.services.redis_servers import RedisClusterServers
from contextkit_redis import RedisHotStore
from contextkit_redis.outbox import RedisStreamOutbox


def _events(count: int, key: str = "s1") -> list[ArchiveEvent]:
    return [ArchiveEvent("context_conversations", f"{key}-{i % 5}", {"message": {"n": i, "text": "é\x01"}}) for i in range(count)]


async def _open(url: str, namespace: str) -> RedisHotStore:
    store = RedisHotStore(StoreSettings(namespace=namespace), {"url": url})
    await store.open()
    return store


@pytest.fixture
def namespace() -> str:
    return f"ckredis-ob-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def store(redis_url: str, namespace: str) -> AsyncIterator[RedisHotStore]:
    built = await _open(redis_url, namespace)
    try:
        yield built
    finally:
        await built.drop_namespace()
        await built.aclose()


@pytest.mark.redis
async def test_the_store_declares_a_durable_outbox(store: RedisHotStore) -> None:
    """``outbox`` is a capability, and ``outbox()`` is a durable stream outbox of the namespace."""
    assert "outbox" in store.capabilities
    outbox = store.outbox()
    assert isinstance(outbox, RedisStreamOutbox) and outbox.durable
    assert outbox.streams == [f"{store.settings.namespace}:#outbox:{{#o0}}"]


@pytest.mark.redis
async def test_pushed_events_survive_closing_and_reopening_the_outbox_and_the_store(
    store: RedisHotStore, redis_url: str, namespace: str
) -> None:
    """Events stay in Redis when the outbox and its store are closed; a new store finds them, oldest first,
    exactly as pushed (ids, times, payloads)."""
    events = _events(5)
    first = store.outbox()
    await first.push(events[:3])
    await first.push(events[3:])
    await first.aclose()
    reopened = await _open(redis_url, namespace)
    try:
        outbox = reopened.outbox()
        assert await outbox.depth() == 5
        assert await outbox.oldest() == events[0].created_at
        assert [e.to_dict() for e in await outbox.peek(10)] == [e.to_dict() for e in events]
        assert [e.event_id for e in await outbox.peek(2)] == [e.event_id for e in events[:2]]
    finally:
        await reopened.aclose()


@pytest.mark.redis
async def test_peek_does_not_remove_and_ack_removes_only_what_was_acked(store: RedisHotStore) -> None:
    """A batch is read again until it is acked; acking part of it leaves the rest first in line."""
    outbox = store.outbox()
    events = _events(6)
    await outbox.push(events)
    batch = await outbox.peek(4)
    assert [e.event_id for e in await outbox.peek(4)] == [e.event_id for e in batch]
    await outbox.ack([batch[0].event_id, batch[2].event_id, "not-an-event"])
    assert await outbox.depth() == 4
    assert [e.event_id for e in await outbox.peek(10)] == [events[i].event_id for i in (1, 3, 4, 5)]
    await outbox.ack([e.event_id for e in events])
    assert await outbox.depth() == 0
    assert await outbox.oldest() is None
    assert await outbox.peek(10) == []


@pytest.mark.redis
async def test_has_room_bounds_the_stream_instead_of_trimming_it(store: RedisHotStore) -> None:
    """No MAXLEN: a full outbox refuses more (the kit then refuses the write) and keeps every event."""
    outbox = RedisStreamOutbox(store, max_pending=5)
    await outbox.push(_events(4))
    assert outbox.has_room(1) and not outbox.has_room(2)
    await outbox.push(_events(3))  # push itself never drops
    assert await outbox.depth() == 7
    assert not outbox.has_room(0)


@pytest.mark.redis
async def test_one_process_drains_at_a_time_and_a_closed_drainer_hands_over(
    store: RedisHotStore, redis_url: str, namespace: str
) -> None:
    """The first outbox to peek holds the shard's drain lease: another process's outbox sees the depth but reads
    nothing until the holder closes (or its lease expires)."""
    other_store = await _open(redis_url, namespace)
    try:
        holder, waiter = store.outbox(), RedisStreamOutbox(other_store, lease=0.5)
        await holder.push(_events(3))
        assert len(await holder.peek(10)) == 3
        assert await waiter.peek(10) == []
        assert await waiter.depth() == 3
        await holder.aclose()
        assert len(await waiter.peek(10)) == 3
        # a holder that stops renewing loses the shard after its lease
        quiet = RedisStreamOutbox(store, lease=0.3)
        assert await quiet.peek(10) == []  # waiter holds it now (renewed by its peek)
        await asyncio.sleep(0.7)
        assert len(await quiet.peek(10)) == 3
    finally:
        await other_store.aclose()


@pytest.mark.redis
@pytest.mark.cluster
async def test_on_a_cluster_each_owner_writes_the_stream_of_its_slot_and_peek_merges_them(
    redis_cluster: RedisClusterServers,
) -> None:
    """On a cluster an event goes to the stream of its owner's hash slot (so a write script can XADD it in the same
    step); peek returns the events of every stream written, and a drained stream is no longer read."""
    store = await _open(redis_cluster.url, f"ckredis-ob-{uuid.uuid4().hex[:10]}")
    try:
        outbox = store.outbox()
        events = [ArchiveEvent("context_sessions", f"key-{i}", {"i": i}) for i in range(40)]
        await outbox.push(events)
        assert len(outbox.streams) > 1 and sum([await store.client.xlen(s) for s in outbox.streams]) == 40
        placed = {}
        for stream in outbox.streams:
            for _, fields in await store.client.xrange(stream):
                key = json.loads(fields[b"e"])["key"]
                placed[key] = stream
                assert store.client.keyslot(stream) == store.client.keyslot(store.keys.owner(key).session)
        assert sorted(placed) == sorted(event.key for event in events)
        peeked = await outbox.peek(100)
        assert sorted(e.event_id for e in peeked) == sorted(e.event_id for e in events)
        await outbox.ack([e.event_id for e in peeked])
        assert await outbox.peek(100) == []
        assert outbox.streams == [] and await outbox.depth() == 0
    finally:
        await store.drop_namespace()
        await store.aclose()


@pytest.mark.redis
@pytest.mark.cluster
async def test_on_a_cluster_a_new_process_finds_the_streams_a_dead_one_left(redis_cluster: RedisClusterServers) -> None:
    """Events another process wrote (and never drained: it died) are found by a new outbox's sweep of every slot's
    stream at its first read, then drained."""
    namespace = f"ckredis-ob-{uuid.uuid4().hex[:10]}"
    writer = await _open(redis_cluster.url, namespace)
    reader = await _open(redis_cluster.url, namespace)
    try:
        events = [ArchiveEvent("context_sessions", f"left-{i}", {"i": i}) for i in range(25)]
        await writer.outbox().push(events)
        outbox = reader.outbox()
        assert outbox.streams == []
        peeked = await outbox.peek(100)
        assert sorted(e.event_id for e in peeked) == sorted(e.event_id for e in events)
        assert await outbox.oldest() == min(e.created_at for e in events)
        await outbox.ack([e.event_id for e in peeked])
        assert await outbox.peek(100) == [] and await outbox.oldest() is None
    finally:
        await reader.drop_namespace()
        await reader.aclose()
        await writer.aclose()


@pytest.mark.redis
async def test_peek_ahead_reads_past_the_batches_in_flight(store: RedisHotStore) -> None:
    """The archiver's window: ``peek_ahead`` continues after the entries handed out (see
    :func:`contextkit.testing.outbox.check_peek_ahead`)."""
    await check_peek_ahead(store.outbox())


async def test_peek_ahead_on_a_cluster_continues_in_every_shard(redis_cluster: RedisClusterServers) -> None:
    """On a cluster the read position is kept per stream (each keeps push order; the merge by stream id does not
    order events of different streams)."""
    store = await _open(redis_cluster.url, f"ckredis-ob-{uuid.uuid4().hex[:10]}")
    try:
        await check_peek_ahead(store.outbox(), ordered=False)
    finally:
        await store.drop_namespace()
        await store.aclose()


@pytest.mark.redis
async def test_dead_letters_and_byte_bounded_reads(store: RedisHotStore) -> None:
    """The dead letters (a hash beside the stream) and reads bounded by ``max_bytes`` (the read script), see
    :func:`contextkit.testing.outbox.check_dead_letters` and :func:`~contextkit.testing.outbox.check_batch_bytes`."""
    await check_dead_letters(store.outbox())
    await check_batch_bytes(store.outbox())


async def test_dead_letters_and_byte_bounded_reads_on_a_cluster(redis_cluster: RedisClusterServers) -> None:
    """On a cluster: the dead-letter hash lives in one slot, the events in theirs; reads merged over the slot
    streams stay within the bound."""
    store = await _open(redis_cluster.url, f"ckredis-dl-{uuid.uuid4().hex[:10]}")
    try:
        await check_dead_letters(store.outbox())
        await check_batch_bytes(store.outbox(), ordered=False)
    finally:
        await store.drop_namespace()
        await store.aclose()


@pytest.mark.redis
async def test_a_kit_on_redis_archives_through_the_stream(redis_url: str, namespace: str) -> None:
    """hot=redis, cold=memory: the archiver's outbox is the Redis stream; after a flush it is empty (XLEN 0)
    and the cold tier holds every message once."""
    config = {"hot": {"backend": "redis", "url": redis_url}, "cold": "memory", "namespace": namespace}
    kit = await ContextKit.from_config(config, env={}).open()
    try:
        assert kit.archiver is not None
        outbox = kit.archiver.outbox
        assert isinstance(outbox, RedisStreamOutbox)
        await kit.create_session("s1", "u1")
        for i in range(50):
            await kit.add_conversation_message("s1", "user", f"message {i}")
        assert await kit.archiver.flush(30)
        assert await kit.hot.client.xlen(outbox.streams[0]) == 0  # type: ignore[attr-defined]
        assert kit.cold is not None
        assert await kit.cold.count_events("context_conversations", "s1") == 50
    finally:
        await kit.aclose()
        cleanup = await _open(redis_url, namespace)
        await cleanup.drop_namespace()
        await cleanup.aclose()


# -- a SIGKILLed app with events pending ---------------------------------------------------------------------------
TOTAL = 2_000
SID = "crash-session"
_CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from contextkit import ContextKit

    async def write(config, count):
        kit = ContextKit.from_config(config, env={})
        kit.hot.outbox_lease = 1.0  # the drain lease this process dies holding
        await kit.open()
        await kit.create_session("crash-session", "u1")
        for start in range(1, count + 1, 50):  # 50 writes in flight at a time, like concurrent requests
            await asyncio.gather(*(
                kit.add_conversation_message("crash-session", "user", f"crash message {i}")
                for i in range(start, min(start + 50, count + 1))
            ))
        print("written", await kit.archiver.outbox.depth(), flush=True)
        await asyncio.sleep(300)

    async def drain(config):
        kit = ContextKit.from_config(config, env={})
        kit.hot.outbox_lease = 1.0
        await kit.open()
        try:
            flushed = await kit.archiver.flush(60)
            print(json.dumps({"flushed": flushed, "depth": await kit.archiver.outbox.depth()}), flush=True)
        finally:
            await kit.aclose(drain_timeout=5)

    command, config = sys.argv[1], json.loads(sys.argv[2])
    asyncio.run(write(config, int(sys.argv[3])) if command == "write" else drain(config))
    """
)


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return proc.stdout.readline().strip()


def _write_and_kill(config: dict[str, Any], cwd: Path, env: dict[str, str]) -> int:
    """Run the writer until it reports its outbox depth, SIGKILL it; the depth it reported."""
    with open(cwd / "writer.log", "w") as log:
        writer = subprocess.Popen(
            [sys.executable, "-c", _CHILD, "write", json.dumps(config), str(TOTAL)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=cwd,
            env=env,
        )
    try:
        line = _read_line(writer, 120)
        assert line.startswith("written"), (cwd / "writer.log").read_text()[-3000:]
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        if writer.stdout is not None:
            writer.stdout.close()  # our end of the pipe: left to the garbage collector it is a ResourceWarning
    assert writer.returncode == -signal.SIGKILL
    return int(line.split()[1])


def _drain(config: dict[str, Any], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, "drain", json.dumps(config)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
async def test_events_of_a_sigkilled_app_are_drained_from_the_stream_by_the_next_process(
    redis_url: str, namespace: str, tmp_path: Path
) -> None:
    """hot=redis, cold=postgres (a private server, stopped): a process writes 2,000 messages to a session the hot
    tier knows, all pending in the Redis stream, and is SIGKILLed. With PostgreSQL started, a new process on the
    same namespace drains the stream: exactly 2,000 message rows, each event once, and the stream is empty."""
    import asyncpg

    from contextkit.testing.services.postgres_server import PostgresServer

    server = await asyncio.to_thread(PostgresServer.create_or_skip)
    schema = f"ck_ob_{uuid.uuid4().hex[:10]}"
    try:
        dsn = server.dsn
        config: dict[str, Any] = {
            "hot": {"backend": "redis", "url": redis_url},
            "cold": {"backend": "postgres", "url": dsn, "schema": schema},
            "namespace": namespace,
            "history_cap": TOTAL * 2,
            "archiver": {"max_backoff": 0.5},
        }
        # The session exists before the outage (a new id cannot be numbered while the archive is down).
        async with ContextKit.from_config(config, env={}) as kit:
            await kit.create_session(SID, "u1")
        await asyncio.to_thread(server.stop)  # the writer finds the cold tier down
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        assert await asyncio.to_thread(_write_and_kill, config, tmp_path, env) >= TOTAL
        await asyncio.to_thread(server.start)
        assert await asyncio.to_thread(_drain, config, tmp_path, env) == {"flushed": True, "depth": 0}

        conn = await asyncpg.connect(dsn, timeout=15)
        try:
            rows = await conn.fetch(
                f'SELECT seq, event_id, content FROM "{schema}".context_conversations WHERE session_id = $1 ORDER BY seq',
                SID,
            )
        finally:
            await conn.close()
        assert len(rows) == TOTAL
        assert [r["seq"] for r in rows] == list(range(1, TOTAL + 1))
        assert len({r["event_id"] for r in rows}) == TOTAL
        assert sorted(r["content"] for r in rows) == sorted(f"crash message {i}" for i in range(1, TOTAL + 1))
    finally:
        await asyncio.to_thread(server.close)
        cleanup = await _open(redis_url, namespace)
        await cleanup.drop_namespace()
        await cleanup.aclose()


async def _cancel_a_peek_before_its_shard_reads_run(store: RedisHotStore) -> None:
    outbox = store.outbox()
    await outbox.push(_events(3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.create_task(outbox.peek(10))
        await asyncio.sleep(0)  # the task runs up to the gather: the shard reads are scheduled, none has run yet
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(3):  # let the cancelled shard reads finish
            await asyncio.sleep(0)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert len(await outbox.peek(10)) == 3  # nothing was consumed


@pytest.mark.redis
async def test_a_peek_cancelled_before_its_shard_reads_ran_leaves_no_coroutine_unawaited(store: RedisHotStore) -> None:
    """``aclose()`` cancels the archiver wherever it is, also just after peek's gather made its shard reads and
    before any of them ran (a SIGKILLed peer's lease keeps the archiver peeking until the drain timeout). No Lua
    script coroutine may be left unawaited: Python would print "coroutine 'AsyncScript.__call__' was never
    awaited". Fix: create each script call inside the task that awaits it (RedisStreamOutbox._peek_stream)."""
    await _cancel_a_peek_before_its_shard_reads_run(store)


@pytest.mark.redis
@pytest.mark.cluster
async def test_a_peek_cancelled_before_its_shard_reads_ran_on_a_cluster_leaves_no_coroutine_unawaited(
    redis_cluster: RedisClusterServers,
) -> None:
    """The same on a cluster, whose outbox has a stream per slot written to, each read in a task of its own."""
    store = await _open(redis_cluster.url, f"ckredis-ob-{uuid.uuid4().hex[:10]}")
    try:
        await _cancel_a_peek_before_its_shard_reads_run(store)
        assert len(store.outbox().streams) > 1
    finally:
        await store.drop_namespace()
        await store.aclose()
