"""The checkpoint contract and ContextKitSaver on the memory tier (``CheckpointStoreSuite``)."""

from __future__ import annotations

from typing import Any

import pytest

from contextkit.errors import BackendNotFound
from contextkit.stores import CheckpointStore, StoreSettings
from contextkit.testing.checkpoints import CheckpointStoreSuite, StoreFactory
from contextkit_memory.checkpoints import MemoryCheckpoints


class _CheckpointsOnly(MemoryCheckpoints):
    """The mixin alone, for when the memory hot store is not registered (its package is being written)."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings

    async def open(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _memory_factory() -> Any:
    try:
        from contextkit.plugins import get_plugin_manager

        return get_plugin_manager().backends.get("hot", "memory").factory
    except (BackendNotFound, ImportError, AttributeError):
        return lambda settings, options: _CheckpointsOnly(settings)


class TestMemoryCheckpoints(CheckpointStoreSuite):
    """The memory tier's checkpoints, through the plugin's registered factory."""

    @pytest.fixture
    def checkpoint_store_factory(self) -> StoreFactory:
        factory = _memory_factory()

        async def build(settings: StoreSettings) -> CheckpointStore:
            store = factory(settings, {})
            await store.open()
            return store

        return build

    async def lose_thread(self, store: CheckpointStore, thread_id: str) -> None:
        """The memory tier drops the thread as its expiry does (no tombstone)."""
        memory: Any = store
        memory._cp_drop(thread_id)
