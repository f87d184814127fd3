"""The cold tier conformance suite on a SQLite file per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextkit.stores import ColdStore, StoreSettings
from contextkit.testing.cold import ColdStoreSuite
from contextkit_sqlite import SqliteColdStore


class TestSqliteColdStore(ColdStoreSuite):
    """Every ColdStore contract; stores of one test share a file, namespaces keep them apart."""

    @pytest.fixture(autouse=True)
    def _database_file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "cold.sqlite3"

    async def make_store(self, settings: StoreSettings) -> ColdStore:
        store = SqliteColdStore(settings, {"path": str(self.path)})
        await store.open()
        return store
