"""The tiering suite (:mod:`contextkit.testing.tiering`) on every (hot, cold) pair the project ships together.

Shared hot tiers (Redis, SQLite) run the concurrent scenarios with several OS processes against a real archive
(PostgreSQL, ClickHouse); the memory hot tier lives in one process, so its workers are tasks of the test's process.
A hot tier loses its data on purpose: the namespace's keys dropped (Redis), its rows deleted (SQLite,
``drop_namespace``), its clock moved past every TTL (memory). Redis also restarts from an older snapshot (scenario
5) on a server of its own; the SQLite file gets an older backup of itself copied back, and the restore declared.
The SQLite + SQLite pair runs in the plugin's own tests.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.testing.services.redis_servers import RedisServer, private_redis_server, redis_command
from contextkit.testing.tiering import SnapshotScenario, TieringSuite
from contextkit_sqlite.testing import SqliteSnapshots

pytestmark = pytest.mark.slow


class _Clock:
    """A settable clock for the memory hot tier: moving it past the TTLs loses the whole hot tier."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class TestMemoryTiering(TieringSuite):
    """memory hot + memory cold, in one process (the memory tiers are not shared between processes). The memory hot
    tier keeps no copy of itself to go back to, so it has no scenario 5."""

    processes = 1

    def config(self, namespace: str) -> dict[str, Any]:
        self.clock = _Clock()
        return {"hot": "memory", "cold": "memory", "memory": {"clock": self.clock}, "archiver": {"flush_interval": 0.01}}

    async def lose_hot(self, kit: ContextKit) -> None:
        self.clock.now += 10 * 365 * 86_400.0


@pytest.mark.postgres
class TestMemoryPostgresTiering(TieringSuite):
    """memory hot + PostgreSQL cold: the concurrent workers are tasks of the test's process (the memory hot tier
    lives in it), the archive a real server."""

    processes = 1

    @pytest.fixture(autouse=True)
    def _cold(self, pg_target: Any) -> None:
        self.cold = pg_target

    def config(self, namespace: str) -> dict[str, Any]:
        self.clock = _Clock()
        return {
            "hot": "memory",
            "cold": self.cold.kit_cold(),
            "memory": {"clock": self.clock},
            "archiver": {"flush_interval": 0.01},
        }

    async def lose_hot(self, kit: ContextKit) -> None:
        self.clock.now += 10 * 365 * 86_400.0


@pytest.fixture(scope="module")
def snapshot_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module (with a data directory): the suite restarts it from an older RDB snapshot."""
    with private_redis_server(directory=tmp_path_factory.mktemp("redis-snapshot")) as server:
        yield server


class _RedisPair(SnapshotScenario):
    """Redis hot tiers: several processes; losing the hot tier drops the namespace's keys; scenario 5 restarts the
    module's server from a snapshot taken with SAVE."""

    processes = 4
    server: RedisServer

    @pytest.fixture(autouse=True)
    def _server(self, snapshot_redis: RedisServer) -> None:
        self.server = snapshot_redis

    def hot(self) -> dict[str, Any]:
        return {"backend": "redis", "url": self.server.url}

    async def lose_hot(self, kit: ContextKit) -> None:
        await kit.hot.drop_namespace()  # type: ignore[attr-defined]

    async def cleanup(self, kit: ContextKit) -> None:
        try:
            await kit.hot.drop_namespace()  # type: ignore[attr-defined]
        except Exception:  # the server may be restarting at the end of scenario 5
            pass

    async def snapshot_hot(self, kit: ContextKit) -> None:
        assert redis_command(self.server.port, "SAVE").startswith("+OK")
        shutil.copy(Path(self.server.directory) / "dump.rdb", Path(self.server.directory) / "snapshot.rdb")

    async def restore_hot_snapshot(self, kit: ContextKit) -> None:
        self.server.kill()
        shutil.copy(Path(self.server.directory) / "snapshot.rdb", Path(self.server.directory) / "dump.rdb")
        self.server.start()
        # The test blocked the loop through the restart: let it see the old connections close, as an app's loop
        # would have while the server was down.
        await asyncio.sleep(0.2)


@pytest.mark.redis
@pytest.mark.postgres
class TestRedisPostgresTiering(_RedisPair):
    """Redis hot + PostgreSQL cold."""

    @pytest.fixture(autouse=True)
    def _cold(self, pg_target: Any) -> None:
        self.cold = pg_target

    def config(self, namespace: str) -> dict[str, Any]:
        return {"hot": self.hot(), "cold": self.cold.kit_cold()}


@pytest.mark.redis
@pytest.mark.clickhouse
class TestRedisClickHouseTiering(_RedisPair):
    """Redis hot + ClickHouse cold."""

    @pytest.fixture(autouse=True)
    def _cold(self, ch_target: Any) -> None:
        self.cold = ch_target

    def config(self, namespace: str) -> dict[str, Any]:
        return {"hot": self.hot(), "cold": self.cold.kit_cold()}


@pytest.mark.postgres
class TestSqlitePostgresTiering(SqliteSnapshots):
    """SQLite hot (a file of the test, its outbox in it) + PostgreSQL cold, four worker processes on the file;
    losing the hot tier deletes every row of the namespace; scenario 5 copies an older backup of the file back
    and declares the restore."""

    processes = 4

    @pytest.fixture(autouse=True)
    def _cold(self, pg_target: Any, tmp_path: Path) -> None:
        self.cold = pg_target
        self.directory = tmp_path

    def config(self, namespace: str) -> dict[str, Any]:
        hot = {"backend": "sqlite", "path": str(self.directory / "hot.sqlite3"), "busy_timeout": 20}
        return {"hot": hot, "cold": self.cold.kit_cold(), "archiver": {"flush_interval": 0.01}}

    async def lose_hot(self, kit: ContextKit) -> None:
        await kit.hot.drop_namespace()  # type: ignore[attr-defined]
