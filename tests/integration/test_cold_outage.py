"""A cold tier outage through the public kit: writes go on, the archiver retries, nothing is lost or doubled.

The cold tier is a server this session started itself (never the machine's shared one): a private PostgreSQL
(:class:`contextkit.testing.services.postgres_server.PostgresServer`) stopped cleanly, or the session's chdb-core ClickHouse
killed with SIGKILL and restarted on the same data directory and port.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.testing.services import missing_service
from contextkit.testing.services.clickhouse_server import ClickHouseService
from contextkit.testing.services.postgres_server import PostgresServer

pytestmark = pytest.mark.slow

TOTAL = 10_000
SID = "outage-session"


async def _wait_for_failures(kit: ContextKit, at_least: int = 1, timeout: float = 30.0) -> dict[str, Any]:
    """The archiver's metrics once it has failed ``at_least`` times (bounded wait)."""
    assert kit.archiver is not None
    deadline = time.monotonic() + timeout
    while True:
        metrics = await kit.archiver.metrics()
        if metrics["failures"] >= at_least or time.monotonic() > deadline:
            return metrics
        await asyncio.sleep(0.1)


async def _write_while_down(kit: ContextKit) -> list[str]:
    ids = []
    for seq in range(1, TOTAL + 1):
        message = await kit.add_message(SID, "user" if seq % 2 else "assistant", f"outage message {seq}")
        assert message.seq == seq
        ids.append(message.id)
    return ids


async def _check_exactly_once(target: Any, ids: list[str]) -> None:
    """The archive holds each of the messages once: counts, distinct ids, seqs 1..TOTAL and the contents in order."""
    table = target.table("context_conversations")
    where = f"WHERE session_id = '{SID}'"
    if target.backend == "clickhouse":
        # Without FINAL: rows a retried insert doubled (not yet merged) would show here.
        summary = (
            "SELECT count(), uniqExact(message_id), min(seq), max(seq), uniqExact(seq), uniqExact(event_id) "
            f"FROM {table} {where}"
        )
    else:
        summary = (
            "SELECT count(*), count(DISTINCT message_id), min(seq), max(seq), count(DISTINCT seq), "
            f"count(DISTINCT event_id) FROM {table} {where}"
        )
    assert await target.fetch(summary) == [(TOTAL, TOTAL, 1, TOTAL, TOTAL, TOTAL)]
    rows = await target.fetch(f"SELECT seq, message_id, content FROM {table} {where} ORDER BY seq")
    assert [r[1] for r in rows] == ids
    assert [r[2] for r in rows] == [f"outage message {s}" for s in range(1, TOTAL + 1)]


class _PrivatePostgresTarget:
    """The private server as a cold target (the same interface as the conftest targets)."""

    backend = "postgres"

    def __init__(self, server: PostgresServer, schema: str) -> None:
        self.server = server
        self.schema = schema

    def kit_cold(self) -> dict[str, Any]:
        return {"backend": "postgres", "url": self.server.dsn, "schema": self.schema}

    def table(self, name: str) -> str:
        return f'"{self.schema}".{name}'

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        import asyncpg

        conn = await asyncpg.connect(self.server.dsn, timeout=15)
        try:
            return [tuple(row) for row in await conn.fetch(sql, timeout=60)]
        finally:
            await conn.close()


@pytest.mark.postgres
async def test_ten_thousand_messages_written_while_postgres_is_stopped_arrive_exactly_once(
    private_postgres: PostgresServer, fresh_name: str
) -> None:
    """PostgreSQL is stopped after the session was archived; 10,000 messages are written on the memory hot tier
    (every write succeeds, reads are served hot), the archiver fails and backs off with all 10,000 events queued
    and health "degraded"; once the server is started again a flush (within 60 s) delivers them: 10,000 rows,
    10,000 distinct message ids and event ids, seqs 1..10,000 with their contents, queue empty, health healthy."""
    target = _PrivatePostgresTarget(private_postgres, fresh_name)
    config = {
        "hot": "memory",
        "cold": target.kit_cold(),
        "timeout": 10.0,
        "history_cap": TOTAL,
        "archiver": {"batch_size": 1000, "max_backoff": 1.0},
    }
    async with ContextKit.from_config(config, env={}) as kit:
        assert kit.archiver is not None
        await kit.create_session(SID, "u1")
        assert await kit.archiver.flush(30)
        before = await kit.archiver.metrics()

        private_postgres.stop()
        ids = await _write_while_down(kit)
        assert [m.seq for m in await kit.get_conversation_history(SID, limit=3)] == [TOTAL - 2, TOTAL - 1, TOTAL]

        metrics = await _wait_for_failures(kit)
        assert metrics["failures"] > before["failures"]
        assert metrics["queue_depth"] == TOTAL
        assert metrics["consecutive_failures"] >= 1 and metrics["last_error"]
        assert metrics["oldest_pending_age"] > 0
        assert "postgres" in metrics["last_error"].lower() or "connect" in metrics["last_error"].lower()
        health = await kit.health_check()
        assert health["status"] == "degraded" and health["archiver"]["queue_depth"] == TOTAL

        private_postgres.start()
        assert await kit.archiver.flush(60), await kit.archiver.metrics()
        after = await kit.archiver.metrics()
        assert after["queue_depth"] == 0 and after["consecutive_failures"] == 0 and after["dead_letters"] == 0
        assert after["rows"] - before["rows"] == TOTAL
        assert (await kit.health_check())["status"] == "healthy"
    await _check_exactly_once(target, ids)


@pytest.mark.clickhouse
async def test_ten_thousand_messages_written_while_clickhouse_is_killed_arrive_exactly_once(
    clickhouse: ClickHouseService, ch_target: Any
) -> None:
    """The session's ClickHouse is SIGKILLed after the session was archived; 10,000 messages are written meanwhile,
    the archiver fails with all of them queued; the server restarts on the same data directory and port and a
    flush delivers them: 10,000 distinct rows, seqs 1..10,000 with their contents, and no duplicate event."""
    server = clickhouse.server
    if server is None:
        missing_service("clickhouse (launched)", "this test kills the server the session started itself")
    config = {
        "hot": "memory",
        "cold": ch_target.kit_cold(),
        "timeout": 10.0,
        "history_cap": TOTAL,
        "archiver": {"batch_size": 5000, "max_backoff": 1.0},
    }
    try:
        async with ContextKit.from_config(config, env={}) as kit:
            assert kit.archiver is not None
            await kit.create_session(SID, "u1")
            assert await kit.archiver.flush(30)
            before = await kit.archiver.metrics()

            server.kill()
            ids = await _write_while_down(kit)
            metrics = await _wait_for_failures(kit)
            assert metrics["failures"] > before["failures"] and metrics["queue_depth"] == TOTAL
            assert (await kit.health_check())["status"] == "degraded"

            server.start()
            assert await kit.archiver.flush(60), await kit.archiver.metrics()
            after = await kit.archiver.metrics()
            assert after["queue_depth"] == 0 and after["rows"] - before["rows"] == TOTAL
    finally:
        if not server.running:
            server.start()
    await _check_exactly_once(ch_target, ids)


@pytest.mark.postgres
async def test_a_chat_thread_archived_through_a_postgres_outage_reads_back_whole_from_the_archive(
    private_postgres: PostgresServer, fresh_name: str
) -> None:
    """Shared lists archive as linked rows (each needs the rows of its chain before it): a chat thread runs 8
    turns, PostgreSQL is stopped, 8 more turns run (their rows wait in the outbox, the graph never notices), the
    server comes back and the archiver drains. Every one of the 48 checkpoints then reads back from the archive
    alone with the list the hot tier has, the rows of the outage linked to the full row archived before it."""
    from contextkit.blob_compression import unpack
    from contextkit.testing.checkpoints import long_turns_graph

    target = _PrivatePostgresTarget(private_postgres, fresh_name)
    config = {"hot": "memory", "cold": target.kit_cold(), "timeout": 10.0, "archiver": {"max_backoff": 1.0}}
    thread = {"configurable": {"thread_id": "outage-thread"}}
    async with ContextKit.from_config(config, env={}) as kit:
        assert kit.archiver is not None and kit.cold is not None
        saver = kit.checkpointer()
        graph = long_turns_graph(saver)
        for turn in range(8):
            await graph.ainvoke({"turns": [f"before {turn}"]}, thread)
        assert await kit.archiver.flush(30)
        private_postgres.stop()
        for turn in range(8):
            await graph.ainvoke({"turns": [f"during {turn}"]}, thread)
        assert (await _wait_for_failures(kit))["queue_depth"] > 0
        private_postgres.start()
        assert await kit.archiver.flush(60), await kit.archiver.metrics()
        hot = {t.checkpoint["id"]: t.checkpoint["channel_values"].get("turns") async for t in saver.alist(thread)}
        archived = await kit.cold.list_langgraph_checkpoints("outage-thread", "")
        assert len(hot) == len(archived) == 48
        for bundle in archived:
            blob = bundle.blobs.get("turns")
            turns = saver.serde.loads_typed(unpack(blob)) if blob is not None else None
            assert turns == hot[bundle.row.checkpoint_id], bundle.row.checkpoint_id
    rows = await target.fetch(
        f"SELECT data->>'checkpoint_id', data ? 'base', data ? 'nodes' FROM {target.table('context_checkpoints')} "
        "WHERE thread_id = 'outage-thread' ORDER BY 1"
    )
    full = [cid for cid, linked, nodes in rows if nodes and not linked]
    assert len(full) == 1 and sum(1 for _, linked, _ in rows if linked) >= 30  # one chain across the outage
