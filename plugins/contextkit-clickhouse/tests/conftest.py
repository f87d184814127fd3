"""Fixtures of the ClickHouse cold tier tests: one ClickHouse per test session, and stores on fresh namespaces.

The server is found by :func:`contextkit.testing.services.clickhouse_server.clickhouse_service`:
``CONTEXTKIT_TEST_CLICKHOUSE_URL``; else a server started from the ``chdb-core`` wheel on a free port; else a
testcontainers ClickHouse when Docker answers. Otherwise the tests skip (or fail when
``CONTEXTKIT_REQUIRE_SERVICES=1``). Only one server runs per session (this machine has two cores); the fault
test kills and restarts that same server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from contextkit.stores import StoreSettings
from contextkit.testing.services import missing_service
from contextkit.testing.services.clickhouse_server import ClickHouseService, clickhouse_service
from contextkit_clickhouse import ClickHouseColdStore

#: Tests put their tables in this database, each test under its own table prefix.
TEST_DATABASE = "contextkit_test"


@pytest.fixture(scope="session")
def clickhouse_session_service() -> Iterator[ClickHouseService]:
    """The session's ClickHouse, found or started once."""
    with clickhouse_service() as service:
        yield service


@pytest.fixture
def clickhouse(clickhouse_session_service: ClickHouseService) -> ClickHouseService:
    """The session's ClickHouse; skips (or fails in CI) when there is none."""
    if clickhouse_session_service.problem:
        missing_service("clickhouse", clickhouse_session_service.problem)
    return clickhouse_session_service


@pytest.fixture
def store_url(clickhouse: ClickHouseService) -> str:
    """URL of the test database on the session's ClickHouse."""
    return clickhouse.database_url(TEST_DATABASE)


@pytest.fixture
def fresh_settings() -> Callable[[], StoreSettings]:
    """Makes settings with a unique namespace (so a unique table prefix) and a timeout for a busy machine."""
    return lambda: StoreSettings(namespace=f"t_{uuid.uuid4().hex[:10]}", timeout=30.0)


@pytest.fixture
async def store(store_url: str, fresh_settings: Callable[[], StoreSettings]) -> AsyncIterator[ClickHouseColdStore]:
    """An opened store on a fresh namespace; its tables are dropped afterwards."""
    cold = ClickHouseColdStore(fresh_settings(), {"url": store_url})
    await cold.open()
    try:
        yield cold
    finally:
        try:
            await cold.drop_tables()
        finally:
            await cold.aclose()
