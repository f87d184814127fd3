"""The LangGraph read-through methods of a cold tier, written once.

A cold store implements :meth:`ArchiveCheckpointReads._langgraph_bundles` (one query over its tables, tombstones
applied) and inherits :meth:`~contextkit.stores.ColdStore.read_langgraph_checkpoint` and
:meth:`~contextkit.stores.ColdStore.list_langgraph_checkpoints` from this mixin.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from contextkit.stores import CheckpointBundle

__all__ = ["ArchiveCheckpointReads"]


class ArchiveCheckpointReads(ABC):
    """Mixin of a cold store: the two LangGraph reads of :class:`~contextkit.stores.ColdStore` over one method."""

    @abstractmethod
    async def _langgraph_bundles(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None, before: str | None, limit: int | None
    ) -> list[CheckpointBundle]:
        """The archived LangGraph checkpoints of ``thread_id`` in ``checkpoint_ns`` (every namespace for None),
        that one when ``checkpoint_id`` is given, with an id below ``before``, newest first, at most ``limit``
        (a positive number or None), without those the thread's tombstones hide."""

    async def read_langgraph_checkpoint(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointBundle | None:
        """An archived LangGraph checkpoint (the newest of the namespace for None), or None; see
        :meth:`contextkit.stores.ColdStore.read_langgraph_checkpoint`."""
        found = await self._langgraph_bundles(thread_id, checkpoint_ns, checkpoint_id, None, 1)
        return found[0] if found else None

    async def list_langgraph_checkpoints(
        self, thread_id: str, checkpoint_ns: str | None, *, before: str | None = None, limit: int | None = None
    ) -> list[CheckpointBundle]:
        """Archived LangGraph checkpoints newest first; see
        :meth:`contextkit.stores.ColdStore.list_langgraph_checkpoints`."""
        if limit is not None and limit <= 0:
            return []
        return await self._langgraph_bundles(thread_id, checkpoint_ns, None, before, limit)
