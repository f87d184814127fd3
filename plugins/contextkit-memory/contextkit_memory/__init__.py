"""contextkit-memory: the in-process tiers, registered as the hot tier ``memory`` and the cold tier ``memory``.

* :class:`~contextkit_memory.hot.MemoryHotStore` - the default hot tier (sessions, history, task contexts,
  conversation sessions, seed checkpoints, and LangGraph checkpoints through
  :class:`~contextkit_memory.checkpoints.MemoryCheckpoints`).
* :class:`~contextkit_memory.cold.MemoryColdStore` - an in-process archive for tests and demos (not durable).

The hook implementations are in :mod:`contextkit_memory.plugin`.
"""

from __future__ import annotations

from contextkit_memory.cold import MemoryColdStore, create_memory_cold_store
from contextkit_memory.hot import MemoryHotStore, create_memory_hot_store

__all__ = ["MemoryColdStore", "MemoryHotStore", "create_memory_cold_store", "create_memory_hot_store"]
