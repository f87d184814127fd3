"""contextkit's cold tier conformance suite, run against ClickHouseColdStore on the session's real ClickHouse."""

from __future__ import annotations

import pytest

from contextkit.stores import ColdStore, StoreSettings
from contextkit.testing.cold import ColdStoreSuite
from contextkit.testing.services.clickhouse_server import ClickHouseService
from contextkit_clickhouse import ClickHouseColdStore

pytestmark = pytest.mark.clickhouse


class TestClickHouseColdStore(ColdStoreSuite):
    """The whole cold tier contract; every store gets its own table prefix in the test database."""

    default_settings = StoreSettings(timeout=30.0)

    @pytest.fixture(autouse=True)
    def _bind_clickhouse(self, store_url: str, clickhouse: ClickHouseService) -> None:
        """Remember where the session's ClickHouse is (make_store is not a fixture, so it cannot ask for it)."""
        self.store_url = store_url

    async def make_store(self, settings: StoreSettings) -> ColdStore:
        """An opened store; the suite gives each one a fresh namespace, hence fresh tables."""
        store = ClickHouseColdStore(settings, {"url": self.store_url})
        await store.open()
        return store

    async def cleanup_store(self, store: ColdStore) -> None:
        """Drop the store's tables (reconnecting when the test closed the store already)."""
        assert isinstance(store, ClickHouseColdStore)
        await store.open()
        await store.drop_tables()
