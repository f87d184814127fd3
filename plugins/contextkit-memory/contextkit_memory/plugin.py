"""contextkit-memory: the in-process tiers, registered as the hot tier ``memory`` and the cold tier ``memory``.

* :class:`~contextkit_memory.hot.MemoryHotStore` - the default hot tier (sessions, history, task contexts,
  conversation sessions, seed checkpoints, and LangGraph checkpoints through
  :class:`~contextkit_memory.checkpoints.MemoryCheckpoints`).
* :class:`~contextkit_memory.cold.MemoryColdStore` - an in-process archive for tests and demos (not durable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import contextkit
from contextkit_memory.cold import MemoryColdStore, create_memory_cold_store
from contextkit_memory.hot import MemoryHotStore, create_memory_hot_store

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = [
    "MemoryColdStore",
    "MemoryHotStore",
    "contextkit_register_backends",
    "create_memory_cold_store",
    "create_memory_hot_store",
]


@contextkit.hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the hot tier ``memory`` and the cold tier ``memory`` (the latter for tests and demos)."""
    registry.add_hot(
        "memory",
        create_memory_hot_store,
        description="in-process memory (default; data lives as long as the process)",
    )
    registry.add_cold(
        "memory",
        create_memory_cold_store,
        description="in-process archive for tests and demos (not durable)",
    )
