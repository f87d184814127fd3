"""The CheckpointStore suite (with langgraph-checkpoint-conformance and real graphs) on a SQLite file per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextkit.stores import CheckpointStore, StoreSettings
from contextkit.testing.checkpoints import CheckpointStoreSuite, StoreFactory
from contextkit_sqlite import SqliteHotStore


class TestSqliteCheckpoints(CheckpointStoreSuite):
    """Every CheckpointStore contract and ContextKitSaver over the sqlite hot tier."""

    @pytest.fixture
    def checkpoint_store_factory(self, tmp_path: Path) -> StoreFactory:
        async def build(settings: StoreSettings) -> CheckpointStore:
            store = SqliteHotStore(settings, {"path": str(tmp_path / "checkpoints.sqlite3")})
            await store.open()
            return store

        return build
