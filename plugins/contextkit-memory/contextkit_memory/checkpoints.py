"""LangGraph checkpoint storage of the memory tier (placeholder: the CheckpointStore methods land here)."""

from __future__ import annotations


class MemoryCheckpoints:
    """Mixin implementing :class:`contextkit.stores.CheckpointStore` in memory (to be filled in)."""
