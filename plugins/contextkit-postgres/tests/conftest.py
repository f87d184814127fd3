"""Fixtures of the PostgreSQL cold tier tests: the shared server, a schema prefix per run, and stores.

The server is ``CONTEXTKIT_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``, the machine's
PostgreSQL). Every store works in a schema of its own named ``<run prefix>_<random>``; each test drops its schemas,
and the end of the session drops any schema of the run that is left. When the server does not answer, the tests
skip (or fail under ``CONTEXTKIT_REQUIRE_SERVICES=1``). The fault tests start a private server instead
(:mod:`contextkit.testing.services.postgres_server`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest

from contextkit.stores import StoreSettings
from contextkit.testing.services import env_url, missing_service
from contextkit_postgres.cold import PostgresColdStore

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
#: Every schema this test run creates starts with this prefix (a leftover is easy to spot and drop).
RUN_PREFIX = f"ckpg_{uuid.uuid4().hex[:8]}"


async def _probe(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _drop_run_schemas(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        names = await conn.fetch("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", RUN_PREFIX)
        for (name,) in names:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[tuple[str, str | None]]:
    """``(url, problem)`` of the shared server, probed once; leftover schemas of the run are dropped at the end."""
    url = env_url("postgres") or DEFAULT_URL
    problem = asyncio.run(_probe(url))
    yield url, problem
    if problem is None:
        asyncio.run(_drop_run_schemas(url))


@pytest.fixture
def postgres_url(postgres_session_url: tuple[str, str | None]) -> str:
    """URL of the shared test server; skips (or fails in CI) when it does not answer."""
    url, problem = postgres_session_url
    if problem is not None:
        missing_service("postgres", f"{problem} (set CONTEXTKIT_TEST_POSTGRES_URL)")
    return url


@pytest.fixture
def run_prefix() -> str:
    """The prefix of every schema this test run creates."""
    return RUN_PREFIX


@pytest.fixture
def new_settings() -> Callable[..., StoreSettings]:
    """Makes settings on a fresh namespace of this run (so a fresh schema); timeout roomy for a busy machine."""

    def make(timeout: float = 15.0) -> StoreSettings:
        return StoreSettings(namespace=f"{RUN_PREFIX}_{uuid.uuid4().hex[:10]}", timeout=timeout)

    return make


@pytest.fixture
async def pg_stores(postgres_url: str) -> AsyncIterator[Callable[..., PostgresColdStore]]:
    """Builds (unopened) stores on the test server; at teardown drops their schemas and closes them."""
    made: list[PostgresColdStore] = []

    def build(settings: StoreSettings, **options: object) -> PostgresColdStore:
        store = PostgresColdStore(settings, {"url": postgres_url, **options})
        made.append(store)
        return store

    yield build
    schemas = {store.schema for store in made}
    for store in made:
        await store.aclose()
    if schemas:
        conn = await asyncpg.connect(postgres_url, timeout=10)
        try:
            for schema in schemas:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
