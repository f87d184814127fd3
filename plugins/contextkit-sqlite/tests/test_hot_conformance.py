"""The hot tier conformance suite on a SQLite file per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextkit.stores import HotStore, StoreSettings
from contextkit.testing.hot import RestoreAwareHotSuite
from contextkit_sqlite import SqliteHotStore


class TestSqliteHotStore(RestoreAwareHotSuite):
    """Every HotStore contract, on a fresh file (the suite also gives each store a fresh namespace)."""

    @pytest.fixture(autouse=True)
    def _database_file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "hot.sqlite3"

    async def make_store(self, settings: StoreSettings) -> HotStore:
        store = SqliteHotStore(settings, {"path": str(self.path)})
        await store.open()
        return store
