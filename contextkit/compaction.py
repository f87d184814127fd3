"""History compaction: the built-in ``truncate`` strategy and its registration.

A compactor receives the *whole* kept history of a stream and returns the history to keep. The kit replaces the
stream atomically with the result, so a compactor can never drop messages it did not see (the seed's
compression read only 50 messages and deleted the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contextkit.hookspecs import hookimpl

if TYPE_CHECKING:
    from contextkit.plugins import CompactorRegistry
    from contextkit.records import Message

__all__ = ["truncate"]


async def truncate(messages: list[Message], keep_recent: int, options: Mapping[str, Any]) -> list[Message]:
    """Keep the newest ``keep_recent`` messages, unchanged and in order."""
    if keep_recent <= 0:
        return []
    return list(messages[-keep_recent:])


@hookimpl
def contextkit_register_compactors(registry: CompactorRegistry) -> None:
    """Register the built-in strategies."""
    registry.add("truncate", truncate)
