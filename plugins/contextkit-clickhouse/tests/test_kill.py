"""Fault test: the ClickHouse this session started is SIGKILLed while 10,000 messages are archived in batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from contextkit.errors import BackendUnavailable
from contextkit.records import ArchiveEvent, Message, Session
from contextkit.stores import StoreSettings
from contextkit.testing.services import missing_service
from contextkit.testing.services.clickhouse_server import ClickHouseService
from contextkit_clickhouse import ClickHouseColdStore

pytestmark = [pytest.mark.clickhouse, pytest.mark.slow]

TOTAL = 10_000
BATCH = 500
KILL_AT_BATCH = 6
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def batches(key: str) -> list[list[ArchiveEvent]]:
    """20 batches: 500 messages each plus the session update the kit archives alongside them."""
    out = []
    for start in range(0, TOTAL, BATCH):
        events = []
        for seq in range(start + 1, start + BATCH + 1):
            at = T0 + timedelta(milliseconds=seq)
            message = Message("user" if seq % 2 else "assistant", f"message {seq}", at, {"seq": seq}, id=f"msg-{seq}", seq=seq)
            events.append(ArchiveEvent("context_conversations", key, {"message": message.to_dict()}, created_at=at))
        last = T0 + timedelta(milliseconds=start + BATCH)
        session = Session(key, "u1", T0, last, request_count=start + BATCH)
        events.append(
            ArchiveEvent("context_sessions", key, {"event_type": "update", "session": session.to_dict()}, created_at=last)
        )
        out.append(events)
    return out


async def test_clickhouse_killed_mid_archive_loses_nothing_and_reads_show_no_duplicate(
    clickhouse: ClickHouseService, store_url: str, fresh_settings: Callable[[], StoreSettings]
) -> None:
    """SIGKILL during the writes: write_events raises BackendUnavailable while the server is down; each failed
    batch is retried after the server restarts on the same data directory and port; an already stored batch is
    sent again too (an archiver that died before acknowledging it). In the end all 10,000 messages are there, the
    count of distinct message ids is 10,000 and read_history returns 10,000 unique seqs in order."""
    server = clickhouse.server
    if server is None:
        missing_service("clickhouse (launched)", "the kill test needs the server this session started itself")
    key = "kill-test-session"
    work = batches(key)
    store = ClickHouseColdStore(replace(fresh_settings(), timeout=10.0), {"url": store_url})
    await store.open()
    port, data_dir = server.port, server.data_dir

    failures: list[str] = []
    reached_kill_point = asyncio.Event()
    saw_outage = asyncio.Event()
    killed = asyncio.Event()
    restarted = asyncio.Event()

    async def writer() -> None:
        deadline = time.monotonic() + 120
        for index, batch in enumerate(work):
            if index == KILL_AT_BATCH:
                reached_kill_point.set()
            elif index == KILL_AT_BATCH + 1:
                # batch KILL_AT_BATCH may be in flight when the kill lands; later ones must meet the outage (fast
                # inserts finished two more batches before the kill at times)
                await killed.wait()
            for _attempt in range(400):
                assert time.monotonic() < deadline, "the archive did not recover within 120 s"
                try:
                    await store.write_events(batch)
                    break
                except BackendUnavailable as exc:
                    failures.append(str(exc))
                    saw_outage.set()
                    await asyncio.sleep(0.05)
            else:
                pytest.fail(f"batch {index} was never stored")
            if index == KILL_AT_BATCH + 2:
                # A write can succeed as soon as the server listens, before server.start() (polling /ping in a
                # thread) has returned and the killer has set the event: on a busy machine two batches fit in
                # between. Waiting for it keeps the check (the server that stored them is the restarted one).
                await asyncio.wait_for(restarted.wait(), 60)

    async def killer() -> None:
        await reached_kill_point.wait()
        await asyncio.sleep(0.01)  # aim at the insert in flight (if it already finished, the next one fails)
        await asyncio.to_thread(server.kill)
        assert not server.running
        killed.set()
        await asyncio.wait_for(saw_outage.wait(), 60)  # keep it down until a write has failed
        await asyncio.to_thread(server.start)
        restarted.set()

    try:
        await asyncio.gather(writer(), killer())
        # the archiver died after a batch was stored but before it was acknowledged: it is sent again
        await store.write_events(work[KILL_AT_BATCH - 1])
        await store.write_events(work[KILL_AT_BATCH])
    finally:
        if not server.running:  # the session's other tests need it back
            server.start()

    assert failures, "no write failed although the server was killed"
    assert all("hunter" not in f for f in failures)
    assert (server.port, server.data_dir) == (port, data_dir)

    assert await store.count_events("context_conversations", key) == TOTAL
    client = store._require_client()
    table = store.target.table("context_conversations")
    distinct = (await client.query(f"SELECT uniqExact(message_id) FROM {table}")).result_rows[0][0]
    assert distinct == TOTAL
    history = await store.read_history(key, None)
    assert [m.seq for m in history] == list(range(1, TOTAL + 1))
    assert len({m.id for m in history}) == TOTAL
    assert history[-1] == Message.from_dict(work[-1][-2].payload["message"])
    assert [m.seq for m in await store.read_history(key, 3)] == [TOTAL - 2, TOTAL - 1, TOTAL]
    session = await store.read_session(key)
    assert session is not None
    assert session.request_count == TOTAL
    assert await store.count_events("context_sessions", key) == TOTAL // BATCH

    await store.drop_tables()
    await store.aclose()
