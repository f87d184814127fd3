"""The CheckpointStore suite (with langgraph-checkpoint-conformance and real graphs) on a SQLite file per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextkit.stores import CheckpointStore, StoreSettings
from contextkit.testing.checkpoints import (
    CheckpointStoreSuite,
    StoreFactory,
    check_bounded_delta_walk,
)
from contextkit_sqlite import SqliteHotStore
from contextkit_sqlite import checkpoints as sqlite_checkpoints


class TestSqliteCheckpoints(CheckpointStoreSuite):
    """Every CheckpointStore contract and ContextKitSaver over the sqlite hot tier."""

    @pytest.fixture
    def checkpoint_store_factory(self, tmp_path: Path) -> StoreFactory:
        async def build(settings: StoreSettings) -> CheckpointStore:
            store = SqliteHotStore(settings, {"path": str(tmp_path / "checkpoints.sqlite3")})
            await store.open()
            return store

        return build


async def test_delta_history_resumes_past_the_ancestors_one_query_may_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One query walks at most ``_DELTA_MAX_STEPS`` ancestors (a looped chain cannot recurse without end); it
    names the next one as ``resume`` and the saver goes on from there, to the same answer."""
    pytest.importorskip("langgraph.checkpoint.base")
    monkeypatch.setattr(sqlite_checkpoints, "_DELTA_MAX_STEPS", 2)
    store = SqliteHotStore(StoreSettings(namespace="delta"), {"path": str(tmp_path / "delta.sqlite3")})
    await store.open()
    try:
        await check_bounded_delta_walk(store)
    finally:
        await store.aclose()
