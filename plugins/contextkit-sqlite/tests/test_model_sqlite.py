"""The stateful reference model (contextkit.testing.model) on the SQLite hot tier and its LangGraph checkpointer.

Random sequences of every HotStore operation with hostile ids and documents, each result compared with a
plain-Python model; the checkpointer is compared with LangGraph's InMemorySaver. One file per test run (each run
of the machine gets its own namespace in it, as apps sharing a file do).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import settings

from contextkit.stores import HotStore, StoreSettings
from contextkit.testing.model import MODEL_SETTINGS, run_checkpointer_model, run_hot_store_model
from contextkit_sqlite import SqliteHotStore

# Fewer runs than the default keep this package's suite well under a minute.
_BOUNDED = settings(MODEL_SETTINGS, max_examples=30)


def _factory(path: Path):  # type: ignore[no-untyped-def]
    async def make(settings: StoreSettings) -> HotStore:
        store = SqliteHotStore(settings, {"path": str(path)})
        await store.open()
        return store

    return make


def test_sqlite_hot_store_matches_the_reference_model(tmp_path: Path) -> None:
    """Every HotStore operation on SQLite agrees with the model: trimming, seqs, hostile ids, JSON documents."""
    run_hot_store_model(_factory(tmp_path / "model.sqlite3"), run_settings=_BOUNDED)


@pytest.mark.skipif(importlib.util.find_spec("langgraph") is None, reason="langgraph is not installed")
def test_sqlite_checkpointer_agrees_with_inmemorysaver(tmp_path: Path) -> None:
    """ContextKitSaver over SQLite returns what LangGraph's InMemorySaver returns for the same calls."""
    run_checkpointer_model(_factory(tmp_path / "checkpoints.sqlite3"), run_settings=_BOUNDED)
