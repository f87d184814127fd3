"""The servers a run can use, the facts about the machine printed with the figures, and cleanup of what a run wrote.

Servers: Redis at ``CONTEXTKIT_BENCH_REDIS_URL`` / ``CONTEXTKIT_TEST_REDIS_URL`` / ``redis://127.0.0.1:6379/0``;
PostgreSQL at ``CONTEXTKIT_BENCH_POSTGRES_URL`` / ``CONTEXTKIT_TEST_POSTGRES_URL`` /
``postgresql://postgres@127.0.0.1:5432/test``; ClickHouse at ``CONTEXTKIT_TEST_CLICKHOUSE_URL``, else a server
this run starts from chdb-core (``contextkit.testing.services.clickhouse_server``) and stops at the end. Nothing is ever
flushed or reconfigured: a run writes under its own key prefix / schema / database and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from contextkit.masking import mask_secrets

__all__ = ["Services", "detect_services", "machine_info", "unlink_prefix"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

_PACKAGES = (
    "contextkit",
    "contextkit-redis",
    "contextkit-sqlite",
    "contextkit-postgres",
    "contextkit-clickhouse",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "langgraph-checkpoint-plainredis",
    "redis",
    "asyncpg",
    "psycopg",
    "aiosqlite",
    "clickhouse-connect",
    "chdb-core",
)


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


@dataclass
class Services:
    """Where each server is (a URL) or why it is not (``*_problem``), plus the run's unique name for cleanup.

    :param run_id: short random id; Redis keys start with ``ckbench-<run_id>``, schemas and databases are
        ``ckbench_<run_id>...``.
    """

    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    redis_url: str | None = None
    redis_problem: str | None = None
    redis_version: str | None = None
    postgres_url: str | None = None
    postgres_problem: str | None = None
    postgres_version: str | None = None
    clickhouse_url: str | None = None
    clickhouse_problem: str | None = "not looked for (no selected group needs it)"
    clickhouse_version: str | None = None
    clickhouse_server: Any = None  # a ClickHouseServer this run started (stopped by close())

    @property
    def prefix(self) -> str:
        """The Redis key prefix / contextkit namespace of this run."""
        return f"ckbench-{self.run_id}"

    @property
    def schema(self) -> str:
        """The PostgreSQL schema / ClickHouse database name stem of this run."""
        return f"ckbench_{self.run_id}"

    async def start_clickhouse(self, *, launch: bool) -> None:
        """Use ``CONTEXTKIT_TEST_CLICKHOUSE_URL``, else (when ``launch``) start a chdb-core server on a free port."""
        url = _env("CONTEXTKIT_BENCH_CLICKHOUSE_URL", "CONTEXTKIT_TEST_CLICKHOUSE_URL")
        if url is None and launch:
            from contextkit.testing.services.clickhouse_server import ClickHouseServer, ClickHouseServerError, chdb_available

            if not chdb_available():
                self.clickhouse_problem = "no CONTEXTKIT_TEST_CLICKHOUSE_URL and chdb-core is not installed"
                return
            server = ClickHouseServer(start_timeout=90.0)
            try:
                await asyncio.to_thread(server.start)
            except ClickHouseServerError as exc:
                server.cleanup()
                self.clickhouse_problem = f"the chdb-core ClickHouse did not start: {str(exc)[:200]}"
                return
            self.clickhouse_server = server
            url = server.url
        if url is None:
            self.clickhouse_problem = "no CONTEXTKIT_TEST_CLICKHOUSE_URL (and --no-launch)"
            return
        try:
            client = await asyncio.to_thread(_clickhouse_client, url, None)
            self.clickhouse_version = str(client.command("SELECT version()"))
            client.close()
            self.clickhouse_url, self.clickhouse_problem = url, None
        except Exception as exc:  # any driver error means "not usable" for a benchmark
            self.clickhouse_problem = f"ClickHouse at {mask_secrets(url)} does not answer: {type(exc).__name__}: {exc}"[:200]

    def close(self) -> None:
        """Stop the ClickHouse server this run started, if any."""
        if self.clickhouse_server is not None:
            self.clickhouse_server.cleanup()
            self.clickhouse_server = None


def _clickhouse_client(url: str, database: str | None) -> Any:
    from urllib.parse import urlsplit

    import clickhouse_connect

    parts = urlsplit(url)
    return clickhouse_connect.get_client(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 8123,
        username=parts.username or "default",
        password=parts.password or "",
        database=database or (parts.path.strip("/") or "default"),
        secure=parts.scheme in ("https", "clickhouses"),
    )


def clickhouse_client(url: str, database: str | None = None) -> Any:
    """A clickhouse-connect client for ``url`` (the raw floor's client)."""
    return _clickhouse_client(url, database)


async def detect_services() -> Services:
    """Ping Redis and PostgreSQL (1-2 s each at most); ClickHouse is started on demand by the cli."""
    services = Services()
    redis_url = _env("CONTEXTKIT_BENCH_REDIS_URL", "CONTEXTKIT_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    try:
        import redis.asyncio as aioredis

        client = aioredis.from_url(redis_url, socket_connect_timeout=1.0, socket_timeout=2.0)
        try:
            info = await client.info("server")
            services.redis_version = str(info.get("redis_version"))
            services.redis_url = redis_url
        finally:
            await client.aclose()
    except Exception as exc:
        services.redis_problem = f"Redis at {mask_secrets(redis_url)} does not answer: {type(exc).__name__}"
    pg_url = _env("CONTEXTKIT_BENCH_POSTGRES_URL", "CONTEXTKIT_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    try:
        import asyncpg

        conn = await asyncpg.connect(pg_url, timeout=2.0)
        try:
            services.postgres_version = str(await conn.fetchval("SHOW server_version"))
            services.postgres_url = pg_url
        finally:
            await conn.close()
    except Exception as exc:
        services.postgres_problem = f"PostgreSQL at {mask_secrets(pg_url)} does not answer: {type(exc).__name__}"
    return services


async def unlink_prefix(url: str, prefix: str, *, max_rounds: int = 10_000) -> int:
    """Delete every key starting with ``prefix`` (SCAN + UNLINK, bounded); returns how many were deleted."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    deleted = 0
    try:
        cursor: int = 0
        for _ in range(max_rounds):
            cursor, keys = await client.scan(cursor, match=f"{prefix}*", count=1000)
            if keys:
                deleted += int(await client.unlink(*keys))
            if cursor == 0:
                break
    finally:
        await client.aclose()
    return deleted


def machine_info(services: Services, size: str) -> dict[str, Any]:
    """CPU count, load, Python, package versions and server versions, for the header and the JSON."""
    versions: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "size": size,
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "load_average_at_start": load,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": versions,
        "servers": {
            "redis": services.redis_version or services.redis_problem,
            "postgres": services.postgres_version or services.postgres_problem,
            "clickhouse": services.clickhouse_version or services.clickhouse_problem,
        },
    }
