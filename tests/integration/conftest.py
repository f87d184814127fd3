"""Fixtures of the end-to-end dual-write tests: real cold tiers reached through the public kit.

This module owns the servers and the per-test isolation of ``tests/integration``:

* :func:`pg_target` - the machine's PostgreSQL (``CONTEXTKIT_TEST_POSTGRES_URL``, default
  ``postgresql://postgres@127.0.0.1:5432/test``) with a schema of its own, dropped at the end of the test;
* :func:`ch_target` - a ClickHouse found or started once per session by
  :func:`contextkit.testing.services.clickhouse_server.clickhouse_service` (``CONTEXTKIT_TEST_CLICKHOUSE_URL``, else a server
  from the chdb-core wheel, else testcontainers), with a table prefix of its own whose tables are dropped at the end;
* :func:`cold_target` - either of them, for tests parametrized over ``["postgres", "clickhouse"]``;
* :func:`private_postgres` - a PostgreSQL this session starts itself, which fault tests may stop, start and kill.

A target knows the kit's cold configuration for its server and runs SQL on the archive tables *directly*
(asyncpg / clickhouse-connect, not through the store), so tests check what really landed in the tables.
A missing server calls :func:`contextkit.testing.services.missing_service` (skip locally, fail in CI).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import asyncpg
import pytest

from contextkit.testing.services import env_url, missing_service
from contextkit.testing.services.clickhouse_server import ClickHouseService, clickhouse_service
from contextkit.testing.services.postgres_server import PostgresServer

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
#: ClickHouse database of these tests; each test has its own table prefix in it.
CLICKHOUSE_DATABASE = "contextkit_integration"
#: Every schema / table prefix of this run starts with this, so a leftover is easy to spot.
RUN_PREFIX = f"ckit_{uuid.uuid4().hex[:8]}"
#: The kit's per-call timeout in these tests: roomy, the machine is shared.
TIMEOUT = 15.0

T = TypeVar("T")


class ColdTarget(Protocol):
    """A cold tier server prepared for one test."""

    backend: str

    def kit_cold(self) -> dict[str, Any]:
        """The kit's ``cold`` configuration table for this server (``{"backend": ..., options}``)."""
        ...

    def table(self, name: str) -> str:
        """The qualified SQL name of archive table ``name``."""
        ...

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql`` directly on the server and return its rows as tuples."""
        ...


class PostgresTarget:
    """A schema of its own on a PostgreSQL server."""

    backend = "postgres"

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema

    def kit_cold(self) -> dict[str, Any]:
        """See :meth:`ColdTarget.kit_cold`."""
        return {"backend": "postgres", "url": self.url, "schema": self.schema}

    def table(self, name: str) -> str:
        """See :meth:`ColdTarget.table`."""
        return f'"{self.schema}".{name}'

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """See :meth:`ColdTarget.fetch` (JSONB columns come back as JSON text: no codec is set)."""
        conn = await asyncpg.connect(self.url, timeout=TIMEOUT)
        try:
            return [tuple(row) for row in await conn.fetch(sql, timeout=60)]
        finally:
            await conn.close()

    async def drop(self) -> None:
        """Drop the schema and everything in it."""
        conn = await asyncpg.connect(self.url, timeout=TIMEOUT)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await conn.close()


class ClickHouseTarget:
    """A table prefix of its own in :data:`CLICKHOUSE_DATABASE` on a ClickHouse server."""

    backend = "clickhouse"

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url.rstrip("/")
        self.prefix = prefix

    def kit_cold(self) -> dict[str, Any]:
        """See :meth:`ColdTarget.kit_cold`."""
        return {"backend": "clickhouse", "url": f"{self.url}/{CLICKHOUSE_DATABASE}", "table_prefix": self.prefix}

    def table(self, name: str) -> str:
        """See :meth:`ColdTarget.table`."""
        return f"`{CLICKHOUSE_DATABASE}`.`{self.prefix}{name}`"

    async def _client(self) -> Any:
        from urllib.parse import urlsplit

        import clickhouse_connect

        parts = urlsplit(self.url)
        return await clickhouse_connect.get_async_client(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 8123,
            username=parts.username or "default",
            password=parts.password or "",
            connect_timeout=TIMEOUT,
            send_receive_timeout=60,
        )

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """See :meth:`ColdTarget.fetch`."""
        client = await self._client()
        try:
            result = await client.query(sql)
            return [tuple(row) for row in result.result_rows]
        finally:
            await client.close()

    async def drop(self) -> None:
        """Drop every table of the prefix (the six archive tables and the migrations table)."""
        client = await self._client()
        try:
            result = await client.query(
                "SELECT name FROM system.tables WHERE database = {db:String} AND startsWith(name, {prefix:String})",
                parameters={"db": CLICKHOUSE_DATABASE, "prefix": self.prefix},
            )
            for (name,) in result.result_rows:
                await client.command(f"DROP TABLE IF EXISTS `{CLICKHOUSE_DATABASE}`.`{name}` SYNC")
        finally:
            await client.close()


def unique_name() -> str:
    """A fresh schema name / table prefix stem of this run."""
    return f"{RUN_PREFIX}_{uuid.uuid4().hex[:10]}"


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh loop in another thread (safe beside pytest-asyncio's own loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _probe_postgres(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except Exception as exc:  # any failure to connect means "no server" here
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@pytest.fixture(scope="session")
def machine_postgres() -> tuple[str, str | None]:
    """``(url, problem)`` of the machine's PostgreSQL, probed once per session."""
    url = env_url("postgres") or DEFAULT_POSTGRES_URL
    return url, run_blocking(_probe_postgres(url))


@pytest.fixture
def pg_target(machine_postgres: tuple[str, str | None]) -> Iterator[PostgresTarget]:
    """The machine's PostgreSQL with a schema for this test (dropped afterwards); skips when it does not answer."""
    url, problem = machine_postgres
    if problem is not None:
        missing_service("postgres", f"{problem} (set CONTEXTKIT_TEST_POSTGRES_URL)")
    target = PostgresTarget(url, unique_name())
    yield target
    run_blocking(target.drop())


@pytest.fixture(scope="session")
def clickhouse_session() -> Iterator[ClickHouseService]:
    """The session's ClickHouse, found or started once (stopped at the end if this session started it)."""
    with clickhouse_service() as service:
        yield service


@pytest.fixture
def clickhouse(clickhouse_session: ClickHouseService) -> ClickHouseService:
    """The session's ClickHouse; skips (or fails in CI) when there is none."""
    if clickhouse_session.problem:
        missing_service("clickhouse", clickhouse_session.problem)
    return clickhouse_session


@pytest.fixture
def ch_target(clickhouse: ClickHouseService) -> Iterator[ClickHouseTarget]:
    """The session's ClickHouse with a table prefix for this test (its tables dropped afterwards)."""
    target = ClickHouseTarget(clickhouse.url, unique_name() + "_")
    yield target
    if clickhouse.server is None or clickhouse.server.running:
        run_blocking(target.drop())


@pytest.fixture(params=["postgres", "clickhouse"])
def cold_target(request: pytest.FixtureRequest) -> ColdTarget:
    """Each cold tier in turn (``postgres``, ``clickhouse``), prepared for this test."""
    marker = pytest.mark.postgres if request.param == "postgres" else pytest.mark.clickhouse
    request.node.add_marker(marker)
    target: ColdTarget = request.getfixturevalue("pg_target" if request.param == "postgres" else "ch_target")
    return target


@pytest.fixture(scope="session")
def private_postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL started by this session on its own port and data directory; removed at the end."""
    server = PostgresServer.create_or_skip()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_postgres(private_postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The private server, running at the start of the test and left running after it (a test may stop it)."""
    private_postgres_server.start()
    yield private_postgres_server
    private_postgres_server.start()


@pytest.fixture
def fresh_name() -> str:
    """A schema name / table prefix stem no other test of this run uses."""
    return unique_name()
