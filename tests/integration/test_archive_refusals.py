"""One refused event never stalls the archive (issue 15, items 1, 2 and the aclose part of 7), on real servers.

* An id a configured cold tier cannot index is refused at the edge, with a typed error naming the limit the tier
  declares (``max_key_bytes``); ordinary sessions written around it are archived.
* An event already in an outbox that the cold tier refuses (PostgreSQL: ``index row size ... exceeds btree
  maximum``) is isolated by bisection and kept as a dead letter (health, metrics), the rest of its batch archived;
  the dead letter outlives the process where the outbox does (Redis, SQLite) and ``contextkit dead-letters``
  lists and replays it.
* ``aclose()`` with the outbox's Redis killed, or the cold tier down, never raises, stops the archiver task and
  reports what stays in the outbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from contextkit import ContextKit
from contextkit.cli import cli
from contextkit.errors import LimitExceeded, OwnerUnknown
from contextkit.records import ArchiveEvent, Message, utcnow
from contextkit.testing.services import free_port
from contextkit.testing.services.redis_servers import RedisServer, private_redis_server
from contextkit.tiered.events import message_event

#: 2,000 CJK characters: 6,000 bytes of UTF-8, under Limits.max_id_length (2,048 characters) but over what a
#: PostgreSQL btree row holds (2,704 bytes). Not a repetition: PostgreSQL compresses an index row first, and a
#: repeated pattern would fit once compressed.
CJK_ID = "".join(chr(0x4E00 + (i * 7919) % 20_000) for i in range(2000))
ORDINARY = 20
TIMEOUT = 15.0


def _config(cold: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"hot": "memory", "cold": cold, "timeout": TIMEOUT, "archiver": {"flush_interval": 0.01}, **more}


async def _ordinary_sessions(kit: ContextKit, tag: str) -> list[str]:
    ids = [f"{tag}-{i:02d}" for i in range(ORDINARY)]
    for sid in ids:
        await kit.create_session(sid, "u")
        await kit.add_message(sid, "user", f"hello from {sid}")
    return ids


def _refused_message_event(key: str = CJK_ID) -> ArchiveEvent:
    """The archive event of a message of stream ``key``, as an outbox would hold it (queued by an application
    that had no edge check, or before the cold tier was configured)."""
    message = Message(role="user", content="queued before the limit was known", timestamp=utcnow())
    return message_event(key, message, 1, None, {}, None)


async def _archived_sessions(target: Any, ids: list[str]) -> int:
    quoted = ", ".join(f"'{sid}'" for sid in ids)
    rows = await target.fetch(
        f"SELECT count(DISTINCT session_id) FROM {target.table('context_conversations')} WHERE session_id IN ({quoted})"
    )
    return int(rows[0][0])


@pytest.mark.postgres
async def test_postgres_refuses_a_cjk_id_at_the_edge_and_archives_the_others(pg_target: Any) -> None:
    """PostgreSQL declares 1,250 bytes per id: the 6,000-byte id is refused before anything is written (the
    error names the tier and the limit); the 20 ordinary sessions are archived; nothing is left at close."""
    kit = await ContextKit.from_config(_config(pg_target.kit_cold()), env={}).open()
    try:
        assert kit.archiver is not None
        ids = await _ordinary_sessions(kit, "pg")
        with pytest.raises(LimitExceeded, match=r"postgres cold tier .* at most 1250 bytes \(max_key_bytes\)"):
            await kit.create_session(CJK_ID, "u")
        with pytest.raises(LimitExceeded, match="6000 bytes"):
            await kit.add_message(CJK_ID, "user", "never stored")
        with pytest.raises(OwnerUnknown):  # nothing of it reached the hot tier
            await kit.hot.get_session(CJK_ID)
        assert await kit.archiver.flush(TIMEOUT)
        assert await _archived_sessions(pg_target, ids) == ORDINARY
        metrics = await kit.archiver.metrics()
        assert metrics["failures"] == 0 and metrics["dead_letters"] == 0
        # An id within the limit in bytes is accepted and archived (1,250 bytes: 416 CJK characters + 2 ASCII).
        near = "汉" * 416 + "ab"
        await kit.add_message(near, "user", "at the limit")
        assert await kit.archiver.flush(TIMEOUT)
        assert await _archived_sessions(pg_target, [near]) == 1
    finally:
        left = await kit.aclose()
    assert left == 0


@pytest.mark.clickhouse
async def test_clickhouse_declares_no_id_limit_and_archives_a_cjk_id(ch_target: Any) -> None:
    """ClickHouse's sorting keys take any length: the same id is accepted and archived with the 20 others."""
    kit = await ContextKit.from_config(_config(ch_target.kit_cold()), env={}).open()
    try:
        assert kit.archiver is not None and kit.cold is not None
        assert getattr(kit.cold, "max_key_bytes", "missing") is None
        ids = await _ordinary_sessions(kit, "ch")
        await kit.create_session(CJK_ID, "u")
        await kit.add_message(CJK_ID, "user", "a long id")
        assert await kit.archiver.flush(TIMEOUT)
        assert await _archived_sessions(ch_target, [*ids, CJK_ID]) == ORDINARY + 1
        metrics = await kit.archiver.metrics()
        assert metrics["failures"] == 0 and metrics["dead_letters"] == 0
    finally:
        left = await kit.aclose()
    assert left == 0


@pytest.mark.postgres
async def test_an_event_postgres_refuses_is_dead_lettered_and_the_rest_archived(pg_target: Any) -> None:
    """An event with the 6,000-byte key already in the outbox, amid 20 sessions' events in one batch: PostgreSQL
    refuses the batch (index row size); the archiver isolates that one event as a dead letter (not a failure,
    never retried) and archives the 20 sessions; health says so, metrics count it; nothing is left at close."""
    config = _config(pg_target.kit_cold(), archiver={"flush_interval": 0.2, "batch_size": 500})
    kit = await ContextKit.from_config(config, env={}).open()
    try:
        assert kit.archiver is not None
        ids = [f"dl-{i:02d}" for i in range(ORDINARY)]
        for sid in ids[:10]:
            await kit.add_message(sid, "user", f"hello from {sid}")
        bad = _refused_message_event()
        await kit.archiver.submit([bad])
        for sid in ids[10:]:
            await kit.add_message(sid, "user", f"hello from {sid}")
        assert await kit.archiver.flush(TIMEOUT)
        assert await _archived_sessions(pg_target, ids) == ORDINARY
        letters = await kit.archiver.list_dead_letters()
        assert [letter.event.event_id for letter in letters] == [bad.event_id]
        assert "ProgramLimitExceededError" in letters[0].reason and "index row size" in letters[0].reason
        metrics = await kit.archiver.metrics()
        assert metrics["dead_letters"] == 1 and metrics["dead_lettered"] == 1
        assert metrics["failures"] == 0 and metrics["queue_depth"] == 0
        health = await kit.health_check()
        assert health["status"] == "degraded"
        assert any("1 archive event(s) refused by the cold tier and kept as dead letters" in i for i in health["issues"])
        assert (await kit.get_metrics())["archiver"]["dead_letters"] == 1
    finally:
        left = await kit.aclose()
    assert left == 0


@pytest.mark.postgres
async def test_dead_letters_outlive_the_process_in_a_sqlite_outbox_and_the_cli_lists_and_replays_them(
    pg_target: Any, tmp_path: Path
) -> None:
    """SQLite hot tier (a durable outbox table) + PostgreSQL: the refused event is kept in the file; a later
    process (the CLI) lists it; after the operator moved the archive to a tier that can hold it (here a SQLite
    cold tier), ``contextkit dead-letters replay`` puts it back and it is archived there."""
    hot = {"backend": "sqlite", "path": str(tmp_path / "hot.db")}
    namespace = f"dl_{uuid.uuid4().hex[:8]}"
    kit = await ContextKit.from_config(
        _config(pg_target.kit_cold(), hot=hot, namespace=namespace), env={}
    ).open()
    try:
        assert kit.archiver is not None
        await kit.add_message("ok", "user", "fine")
        bad = _refused_message_event()
        await kit.archiver.submit([bad])
        assert await kit.archiver.flush(TIMEOUT)
        assert (await kit.archiver.metrics())["dead_letters"] == 1
    finally:
        assert await kit.aclose() == 0

    def toml(cold: str) -> Path:
        path = tmp_path / f"{cold.split()[0].strip('{')}.toml"
        path.write_text(f'namespace = "{namespace}"\nhot = {{backend = "sqlite", path = "{hot["path"]}"}}\ncold = {cold}\n')
        return path

    pg = pg_target.kit_cold()
    with_pg = toml(f'{{backend = "postgres", url = "{pg["url"]}", schema = "{pg["schema"]}"}}')
    runner = CliRunner()  # in a thread: the command runs its own event loop
    listed = await asyncio.to_thread(runner.invoke, cli, ["--config", str(with_pg), "--json", "dead-letters", "list"], obj={})
    assert listed.exit_code == 0, listed.output
    report = json.loads(listed.output)
    assert report["total"] == 1 and report["letters"][0]["event_id"] == bad.event_id
    assert report["letters"][0]["table"] == "context_conversations" and "index row size" in report["letters"][0]["reason"]

    # Replayed into the same PostgreSQL it is refused again: a dead letter again, never retried forever.
    replay = ["dead-letters", "replay", "--wait", "10"]
    again = await asyncio.to_thread(runner.invoke, cli, ["--config", str(with_pg), "--json", *replay], obj={})
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == {"replayed": 1, "left_in_outbox": 0, "dead_letters": 1}

    with_sqlite = toml(f'{{backend = "sqlite", path = "{tmp_path / "cold.db"}"}}')
    replayed = await asyncio.to_thread(
        runner.invoke,
        cli, ["--config", str(with_sqlite), "--json", "dead-letters", "replay", "--id", bad.event_id, "--wait", "10"],
        obj={},
    )
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.output) == {"replayed": 1, "left_in_outbox": 0, "dead_letters": 0}
    listed = await asyncio.to_thread(runner.invoke, cli, ["--config", str(with_sqlite), "--json", "dead-letters", "list"], obj={})
    assert json.loads(listed.output) == {"total": 0, "letters": []}
    async with ContextKit.from_config(with_sqlite, env={}) as kit:
        assert kit.cold is not None
        history = await kit.cold.read_history(CJK_ID, None)
        assert [m.content for m in history] == ["queued before the limit was known"]


@pytest.fixture
def private_redis() -> Any:
    """A redis-server this test starts (and may kill); stopped at the end."""
    with private_redis_server() as server:
        yield server


@pytest.mark.redis
@pytest.mark.postgres
async def test_dead_letters_are_kept_in_redis_and_replayed_by_another_process(
    private_redis: RedisServer, pg_target: Any
) -> None:
    """Redis hot tier: the refused event's letter lives in Redis, beside the outbox streams; a second kit on the
    same namespace (another process) sees it and replays it into a cold tier that holds it."""
    namespace = f"dl_{uuid.uuid4().hex[:8]}"
    hot = {"backend": "redis", "url": private_redis.url}
    kit = await ContextKit.from_config(_config(pg_target.kit_cold(), hot=hot, namespace=namespace), env={}).open()
    try:
        assert kit.archiver is not None
        ids = await _ordinary_sessions(kit, "rd")
        bad = _refused_message_event()
        await kit.archiver.submit([bad])
        assert await kit.archiver.flush(TIMEOUT)
        assert await _archived_sessions(pg_target, ids) == ORDINARY
        assert (await kit.archiver.metrics())["dead_letters"] == 1
    finally:
        assert await kit.aclose() == 0
    other = await ContextKit.from_config(_config({"backend": "memory"}, hot=hot, namespace=namespace), env={}).open()
    try:
        assert other.archiver is not None and other.cold is not None
        letters = await other.archiver.list_dead_letters()
        assert [letter.event.event_id for letter in letters] == [bad.event_id]
        assert await other.archiver.replay_dead_letters() == 1
        assert await other.archiver.flush(TIMEOUT)
        assert await other.archiver.dead_letter_count() == 0
        assert [m.content for m in await other.cold.read_history(CJK_ID, None)] == ["queued before the limit was known"]
    finally:
        assert await other.aclose() == 0


def _archiver_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "contextkit-archiver" and not t.done()]


@pytest.mark.redis
async def test_aclose_with_the_outbox_redis_killed_never_raises_and_stops_the_archiver(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis hot tier, cold tier down (nothing drains), then Redis killed: aclose() returns within the drain
    timeout without raising, no archiver task is left running, and it reports that the outbox cannot be read
    (None: its events stay in Redis if it persists them)."""
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    config = _config(
        {"backend": "postgres", "url": down}, hot={"backend": "redis", "url": private_redis.url},
        namespace=f"ac_{uuid.uuid4().hex[:8]}", timeout=1.0, tiering={"assume_new_when_unreachable": True},
    )
    kit = await ContextKit.from_config(config, env={}).open()
    assert kit.archiver is not None
    for i in range(5):
        await kit.add_message("s", "user", f"m{i}")
    assert (await kit.archiver.metrics())["queue_depth"] == 5
    private_redis.kill()
    with caplog.at_level(logging.WARNING, logger="contextkit.archiver"):
        left = await kit.aclose(drain_timeout=1.0)
    assert left is None
    assert _archiver_tasks() == []
    assert (await kit.archiver.metrics())["running"] is False
    assert any("the outbox cannot be read" in r.getMessage() for r in caplog.records)


@pytest.mark.redis
async def test_aclose_with_the_cold_tier_down_reports_what_stays_in_the_outbox(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Cold tier down, Redis up: aclose() drains nothing within the timeout, returns the count left in the Redis
    outbox (logged as a WARNING and in the metric), and a later kit finds them still there."""
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    namespace = f"ac_{uuid.uuid4().hex[:8]}"
    config = _config(
        {"backend": "postgres", "url": down}, hot={"backend": "redis", "url": private_redis.url},
        namespace=namespace, timeout=1.0, tiering={"assume_new_when_unreachable": True},
    )
    kit = await ContextKit.from_config(config, env={}).open()
    assert kit.archiver is not None
    for i in range(7):
        await kit.add_message("s", "user", f"m{i}")
    with caplog.at_level(logging.WARNING, logger="contextkit.archiver"):
        left = await kit.aclose(drain_timeout=0.5)
    assert left == 7
    assert _archiver_tasks() == []
    assert (await kit.archiver.metrics())["left_at_close"] == 7
    assert any("7 event(s) left in the outbox" in r.getMessage() for r in caplog.records)
    later = await ContextKit.from_config(config, env={}).open()
    try:
        assert later.archiver is not None and (await later.archiver.metrics())["queue_depth"] == 7
    finally:
        assert await later.aclose(drain_timeout=0.2) == 7


@pytest.mark.redis
async def test_a_redis_outbox_reads_batches_bounded_by_bytes(private_redis: RedisServer) -> None:
    """The Redis stream's read script stops before the bound (one entry at least), and a read ahead counts a
    batch ended by bytes as full: a big event goes alone, small ones are not read with it."""
    config = {"hot": {"backend": "redis", "url": private_redis.url}, "namespace": f"bb_{uuid.uuid4().hex[:8]}"}
    kit = await ContextKit.from_config(config, env={}).open()
    try:
        outbox = kit.hot.outbox()  # type: ignore[attr-defined]

        def doc(key: str, size: int) -> ArchiveEvent:
            return ArchiveEvent("context_task_contexts", key, {"context": {"blob": "x" * size}})

        events = [doc("a", 100), doc("b", 100), doc("big", 50_000), doc("c", 100), doc("d", 100)]
        await outbox.push(events)
        assert [e.key for e in await outbox.peek(10, max_bytes=10_000)] == ["a", "b"]
        assert [e.key for e in await outbox.peek_ahead(10, max_bytes=10_000)] == ["big"]
        assert await outbox.peek_ahead(10, max_bytes=10_000) == []
        assert [e.key for e in await outbox.peek_ahead(2, max_bytes=10_000)] == ["c", "d"]
        assert [e.key for e in await outbox.peek(10)] == ["a", "b", "big", "c", "d"]
    finally:
        await kit.aclose()


@pytest.mark.postgres
async def test_the_langgraph_saver_refuses_a_thread_id_postgres_cannot_index(pg_target: Any) -> None:
    """``kit.checkpointer()`` applies the same limit: a checkpoint or writes of the 6,000-byte thread id are
    refused before anything is written; an ordinary thread is archived."""
    pytest.importorskip("langgraph")
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    kit = await ContextKit.from_config(_config(pg_target.kit_cold()), env={}).open()
    try:
        saver = kit.checkpointer()

        async def put(thread_id: str) -> Any:
            checkpoint: Any = empty_checkpoint()
            checkpoint["id"] = str(uuid6())
            checkpoint["channel_values"] = {"messages": ["hi"]}
            checkpoint["channel_versions"] = {"messages": saver.get_next_version(None)}
            config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
            metadata: Any = {"source": "loop", "step": 1, "parents": {}}
            return await saver.aput(config, checkpoint, metadata, dict(checkpoint["channel_versions"]))

        with pytest.raises(LimitExceeded, match=r"thread_id is 6000 bytes .* postgres cold tier"):
            await put(CJK_ID)
        with pytest.raises(LimitExceeded, match="thread_id"):
            await saver.aput_writes(
                {"configurable": {"thread_id": CJK_ID, "checkpoint_ns": "", "checkpoint_id": "c"}}, [("a", 1)], "task"
            )
        stored = await put("ordinary-thread")
        assert kit.archiver is not None and await kit.archiver.flush(TIMEOUT)
        assert (await kit.archiver.metrics())["dead_letters"] == 0
        assert stored["configurable"]["thread_id"] == "ordinary-thread"
        rows = await pg_target.fetch(f"SELECT DISTINCT thread_id FROM {pg_target.table('context_checkpoints')}")
        assert rows == [("ordinary-thread",)]
    finally:
        assert await kit.aclose() == 0
