"""Task contexts and the seed's checkpoint documents and writes (the :class:`DocumentsAPI` mixin of the kit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from contextkit.errors import InvalidInput
from contextkit.kit.base import KitBase
from contextkit.records import TaskContext, to_iso, utcnow
from contextkit.validation import check_json_document, check_limit, check_metadata

__all__ = ["DocumentsAPI"]


class DocumentsAPI(KitBase):
    """The task context and seed checkpoint calls of :class:`~contextkit.kit.ContextKit`."""

    # -- task contexts ---------------------------------------------------------------------------------------
    async def store_task_context(self, session_id: str, context: TaskContext | Mapping[str, Any]) -> bool:
        """Store a session's task context (a :class:`TaskContext` or its dict); True once stored."""
        sid = self._id(session_id, "session_id")
        limits = self.config.limits
        if isinstance(context, TaskContext):
            raw: Mapping[str, Any] = context._data
        elif isinstance(context, Mapping):
            # Validate the caller's mapping before TaskContext copies it through json (which would raise raw
            # TypeError / RecursionError on bad values).
            check_json_document(
                context, "task context", max_bytes=limits.max_document_bytes, max_depth=limits.max_metadata_depth * 2
            )
            raw = TaskContext(context)._data
        else:
            raise InvalidInput(f"context must be a TaskContext or a mapping, got {type(context).__name__}")
        document = check_json_document(
            raw, "task context", max_bytes=limits.max_document_bytes, max_depth=limits.max_metadata_depth * 2
        )
        self._check_room(1)

        async def run() -> bool:
            tiered = self.tiered
            await tiered.call(lambda: self._hot.put_task_context(sid, document, archive=tiered.head()))
            tiered.written(1)
            self._emit("task_context.store", sid)
            return True

        return await self._timed(run)

    async def get_task_context(self, session_id: str) -> TaskContext | None:
        """The session's task context (read through from the archive on a hot miss), or None."""
        sid = self._id(session_id, "session_id")

        async def run() -> TaskContext | None:
            document = await self._lookup(lambda: self.tiered.call(lambda: self._hot.get_task_context(sid)))
            return None if document is None else TaskContext.from_dict(document)

        return await self._timed(run)

    # -- seed checkpoints ------------------------------------------------------------------------------------
    async def store_checkpoint(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_data: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store a checkpoint document ``{checkpoint_id, thread_id, data, metadata, created_at}``; True once stored.

        For LangGraph graphs use :meth:`checkpointer` instead: it stores typed channel values.
        """
        tid = self._id(thread_id, "thread_id")
        cid = self._id(checkpoint_id, "checkpoint_id")
        limits = self.config.limits
        data = check_json_document(
            checkpoint_data, "checkpoint_data", max_bytes=limits.max_document_bytes, max_depth=64
        )
        meta = check_metadata(metadata, limits)
        self._check_room(1)
        document = {
            "checkpoint_id": cid,
            "thread_id": tid,
            "data": data,
            "metadata": meta,
            "created_at": to_iso(utcnow()),
        }

        async def run() -> bool:
            tiered = self.tiered
            await tiered.call(lambda: self._hot.put_checkpoint_document(tid, cid, document, archive=tiered.head()))
            tiered.written(1)
            self._emit("checkpoint.store", tid, checkpoint_id=cid)
            return True

        return await self._timed(run)

    put_checkpoint = store_checkpoint

    async def get_checkpoint(self, thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any] | None:
        """A checkpoint document (the newest of the thread when ``checkpoint_id`` is None), or None."""
        tid = self._id(thread_id, "thread_id")
        cid = None if checkpoint_id is None else self._id(checkpoint_id, "checkpoint_id")
        return await self._timed(lambda: self.tiered.checkpoint_document(tid, cid))

    async def list_checkpoints(self, thread_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """Up to ``limit`` checkpoint documents of the thread, newest first."""
        tid = self._id(thread_id, "thread_id")
        check_limit(limit, "limit", self.config.limits)
        return await self._timed(lambda: self.tiered.call(lambda: self._hot.list_checkpoint_documents(tid, limit)))

    async def put_writes(
        self, thread_id: str, checkpoint_id: str, task_id: str, writes_data: Sequence[Any]
    ) -> bool:
        """Add a task's intermediate writes to a checkpoint (a second call adds, never replaces); True once stored."""
        tid = self._id(thread_id, "thread_id")
        cid = self._id(checkpoint_id, "checkpoint_id")
        task = self._id(task_id, "task_id")
        if isinstance(writes_data, (str, bytes)) or not isinstance(writes_data, Sequence):
            raise InvalidInput(f"writes_data must be a list of writes, got {type(writes_data).__name__}")
        limits = self.config.limits
        wrapped = check_json_document(
            {"writes": list(writes_data)}, "writes_data", max_bytes=limits.max_document_bytes, max_depth=64
        )
        writes = wrapped["writes"]
        self._check_room(1)

        async def run() -> bool:
            tiered = self.tiered
            await tiered.call(lambda: self._hot.put_writes_document(tid, cid, task, writes, archive=tiered.head()))
            tiered.written(1)
            self._emit("checkpoint.writes", tid, checkpoint_id=cid, task_id=task)
            return True

        return await self._timed(run)

    async def get_writes(self, thread_id: str, checkpoint_id: str) -> list[tuple[Any, ...]]:
        """The writes of a checkpoint, in the order they were put, each as a tuple."""
        tid = self._id(thread_id, "thread_id")
        cid = self._id(checkpoint_id, "checkpoint_id")
        pairs = await self._timed(lambda: self.tiered.call(lambda: self._hot.get_writes_documents(tid, cid)))
        return [tuple(w) if isinstance(w, list) else (w,) for _task, w in pairs]
