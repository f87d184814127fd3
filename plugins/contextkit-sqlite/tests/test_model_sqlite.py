"""The stateful reference models (contextkit.testing.model) on the SQLite hot tier, its LangGraph checkpointer, and
the whole kit on SQLite hot and cold tiers.

Random sequences of every HotStore operation with hostile ids and documents, each result compared with a
plain-Python model; the checkpointer is compared with LangGraph's InMemorySaver. One file per test run (each run
of the machine gets its own namespace in it, as apps sharing a file do).
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.stateful import precondition, rule, run_state_machine_as_test

from contextkit import ContextKit
from contextkit.stores import HotStore, StoreSettings
from contextkit.testing.model import (
    MODEL_SETTINGS,
    KitModel,
    _LoopMachine,
    run_checkpointer_model,
    run_hot_store_model,
)
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


class _SqliteKitModel(KitModel):
    """The kit model (contextkit.testing.model.KitModel) on a SQLite hot tier archived by a SQLite cold tier, in two
    files: every write flushed to the archive, deletes for good, and ``lose_hot_tier`` wiping every hot row of the
    namespace (as a hot file replaced by an empty one would), after which each id is restored from the archive on
    its first call."""

    with_cold = True
    directory: Path

    def __init__(self) -> None:  # the model's own __init__ builds a memory kit
        _LoopMachine.__init__(self)
        self.namespace = f"ckkit-{uuid.uuid4().hex[:8]}"
        config = {
            "hot": {"backend": "sqlite", "path": str(self.directory / "hot.sqlite3")},
            "cold": {"backend": "sqlite", "path": str(self.directory / "cold.sqlite3")},
            "history_cap": self.history_cap,
            "namespace": self.namespace,
            "archiver": {"flush_interval": 0.001},
        }
        self.kit = ContextKit.from_config(config, env={})
        self.run(self.kit.open())
        self.sessions = {}
        self.in_hot = set()
        self.streams = {}
        self.known = set()

    @precondition(lambda self: self.with_cold)
    @rule()
    def lose_hot_tier(self) -> None:
        """The hot file loses every row of the namespace (its outbox drained first)."""
        self._settle()
        self.run(self.kit.hot.drop_namespace())  # type: ignore[attr-defined]
        self.in_hot.clear()
        self.known.clear()
        for stream in self.streams.values():
            stream.hot = []


def test_the_kit_on_sqlite_hot_and_cold_tiers_matches_the_model(tmp_path: Path) -> None:
    """Random sequences of the kit's session and history calls on SQLite + SQLite agree with the model of the seed
    API and the tiering invariants: counters exact after a hot loss, deleted stays deleted (pending or archived),
    numbering continues above the archive's after a loss or a delete, read-through returns what the hot file lost."""
    machine = type("SqliteKitModelFor", (_SqliteKitModel,), {"directory": tmp_path})
    run_state_machine_as_test(machine, settings=_BOUNDED)
