"""Fault tests on a private PostgreSQL (its own data directory and port): stopped, killed, restarted.

Never the machine's shared server. One private server serves the module; each test leaves it running.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from contextkit.errors import BackendUnavailable
from contextkit.records import ArchiveEvent, Message, utcnow
from contextkit.stores import StoreSettings
from contextkit.testing.cold import message_event
from contextkit.testing.services.postgres_server import PostgresServer
from contextkit_postgres.cold import PostgresColdStore

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TIMEOUT = 3.0
SECRET = "not-a-real-Pa55"  # trust authentication ignores it; it must still never appear in errors


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """A private server for this module; killed and its data directory removed at the end."""
    private = PostgresServer.create_or_skip()
    try:
        yield private
    finally:
        private.close()


@pytest.fixture
async def store(server: PostgresServer) -> AsyncIterator[PostgresColdStore]:
    """An opened store on the private server (started if a previous test left it down)."""
    server.start()
    url = server.dsn.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")
    cold = PostgresColdStore(StoreSettings(namespace=f"fault_{id(server)}", timeout=TIMEOUT), {"url": url})
    await cold.open()
    yield cold
    server.start()
    await cold.drop_schema()
    await cold.aclose()


def _batch(start: int, count: int, key: str = "s1") -> list[ArchiveEvent]:
    now = utcnow()
    return [message_event(key, Message("user", f"m{seq}", now, id=f"m{seq}", seq=seq)) for seq in range(start, start + count)]


async def _count(server: PostgresServer, schema: str) -> tuple[int, int]:
    conn = await asyncpg.connect(server.dsn, timeout=10)
    try:
        row = await conn.fetchrow(f'SELECT count(*), count(DISTINCT event_id) FROM "{schema}".context_conversations')
        return int(row[0]), int(row[1])
    finally:
        await conn.close()


async def test_write_while_stopped_raises_then_succeeds_after_restart_without_duplicates(
    server: PostgresServer, store: PostgresColdStore
) -> None:
    first, pending = _batch(1, 500), _batch(501, 500)
    await store.write_events(first)
    # Fill the pool with connections that will all be dead after the restart.
    await asyncio.gather(*(store.read_history("s1", 400) for _ in range(8)))
    server.stop()
    for _ in range(3):  # the archiver's retries, each bounded by the timeout
        with pytest.raises(BackendUnavailable) as caught:
            await asyncio.wait_for(store.write_events(pending), TIMEOUT * 4)
        assert SECRET not in str(caught.value)
    health = await store.health()
    assert health["status"] == "unhealthy"
    assert SECRET not in repr(health)
    server.start()
    # The pooled connections died with the server: the first call after the restart replaces them and succeeds.
    await store.write_events(pending)
    assert (await asyncio.gather(*(store.count_events("context_conversations") for _ in range(8)))) == [1000] * 8
    await store.write_events(first + pending)  # an over-eager retry of both batches
    assert await _count(server, store.schema) == (1000, 1000)
    history = await store.read_history("s1", None)
    assert [m.seq for m in history] == list(range(1, 1001))
    assert (await store.health())["status"] == "healthy"


async def test_write_after_a_crash_and_restart_succeeds_and_reads_work(server: PostgresServer, store: PostgresColdStore) -> None:
    await store.write_events(_batch(1, 100))
    server.kill()
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(store.write_events(_batch(101, 100)), TIMEOUT * 4)
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(store.read_history("s1", 10), TIMEOUT * 4)
    server.start()
    await store.write_events(_batch(101, 100))
    assert [m.seq for m in await store.read_history("s1", 3)] == [198, 199, 200]
    assert await store.count_events("context_conversations", "s1") == 200


async def test_a_batch_cut_by_a_crash_is_all_or_nothing_and_a_retry_completes_it(
    server: PostgresServer, store: PostgresColdStore
) -> None:
    """The server dies while a big batch is being written: either the whole batch committed or none of it, and
    writing it again leaves exactly one row per event."""
    batch = _batch(1, 20_000)
    task = asyncio.create_task(store.write_events(batch))
    await asyncio.sleep(0.05)
    server.kill()
    try:
        await asyncio.wait_for(task, TIMEOUT * 10)
    except BackendUnavailable:
        pass
    server.start()
    count, _ = await _count(server, store.schema)
    assert count in (0, 20_000)
    await store.write_events(batch)
    assert await _count(server, store.schema) == (20_000, 20_000)


async def test_open_while_the_server_is_down_raises_backend_unavailable_then_works(
    server: PostgresServer,
) -> None:
    server.stop()
    url = server.dsn.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")
    cold = PostgresColdStore(StoreSettings(namespace="fault_open", timeout=TIMEOUT), {"url": url})
    with pytest.raises(BackendUnavailable) as caught:
        await asyncio.wait_for(cold.open(), TIMEOUT * 4)
    assert SECRET not in str(caught.value)
    server.start()
    await cold.open()
    assert (await cold.health())["status"] == "healthy"
    await cold.drop_schema()
    await cold.aclose()


def test_the_launcher_restarts_on_the_same_port_and_keeps_the_data(server: PostgresServer) -> None:
    async def write() -> None:
        conn = await asyncpg.connect(server.dsn, timeout=10)
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS launcher_probe (v int)")
            await conn.execute("INSERT INTO launcher_probe VALUES (1)")
        finally:
            await conn.close()

    async def read() -> int:
        conn = await asyncpg.connect(server.dsn, timeout=10)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM launcher_probe"))
        finally:
            await conn.close()

    server.start()
    port, data_dir = server.port, server.data_dir
    asyncio.run(write())
    server.restart()
    assert asyncio.run(read()) == 1
    server.kill()
    assert not server.running
    server.start()
    assert (server.port, server.data_dir) == (port, data_dir)
    assert asyncio.run(read()) == 1
