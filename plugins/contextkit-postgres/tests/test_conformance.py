"""contextkit's cold tier conformance suite, run against PostgresColdStore on the test server.

Every test of ``ColdStoreSuite`` states the contract it checks and how to fix a failure. Each store gets a fresh
namespace, hence a fresh schema, dropped after the test.
"""

from __future__ import annotations

import asyncpg
import pytest

from contextkit.stores import ColdStore, StoreSettings
from contextkit.testing.cold import ColdStoreSuite
from contextkit_postgres.cold import PostgresColdStore

pytestmark = pytest.mark.postgres


class TestPostgresColdStore(ColdStoreSuite):
    """The whole cold tier contract on PostgreSQL."""

    default_settings = StoreSettings(timeout=15.0)
    url: str

    @pytest.fixture(autouse=True)
    def _postgres_target(self, request: pytest.FixtureRequest, postgres_url: str, run_prefix: str) -> None:
        """Point the suite at the test server (skipping when it is down) and at this run's schema prefix."""
        request.instance.url = postgres_url
        request.instance.namespace_prefix = run_prefix

    async def make_store(self, settings: StoreSettings) -> ColdStore:
        """An opened store whose schema is derived from the suite's fresh namespace."""
        store = PostgresColdStore(settings, {"url": self.url})
        await store.open()
        return store

    async def cleanup_store(self, store: ColdStore) -> None:
        """Drop the test's schema, on a connection of its own (the store may be closed already); a second store
        on the same namespace finds it gone (DROP ... IF EXISTS)."""
        assert isinstance(store, PostgresColdStore)
        conn = await asyncpg.connect(self.url, timeout=15)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')
        finally:
            await conn.close()
