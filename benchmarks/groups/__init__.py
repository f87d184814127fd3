"""The comparison groups, in the order a full run measures them. Each module has ``async def run(ctx)``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from benchmarks.context import BenchContext
from benchmarks.groups import archiver, checkpointer, history, memory, raw, sessions, storage

__all__ = ["GROUPS", "NEEDS_CLICKHOUSE"]

GROUPS: dict[str, Callable[[BenchContext], Awaitable[None]]] = {
    "raw": raw.run,
    "history": history.run,
    "sessions": sessions.run,
    "checkpointer": checkpointer.run,
    "archiver": archiver.run,
    "memory": memory.run,
    "storage": storage.run,
}

#: Groups that use a ClickHouse (the cli starts one only when one of these is selected).
NEEDS_CLICKHOUSE = frozenset({"raw", "archiver"})
