"""Memory tier footprint: bytes per session (100,000 sessions at full size) and per message, by tracemalloc.

tracemalloc counts what Python allocated and still holds after the writes (garbage collected first), so the figure
is the store's own cost, not the interpreter's or the allocator's slack. Sessions are created through the kit;
messages are appended through the hot tier in batches.
"""

from __future__ import annotations

import gc
import tracemalloc

from benchmarks.context import BenchContext
from benchmarks.groups.history import fill_history
from benchmarks.report import Row

__all__ = ["run"]

GROUP = "memory"


async def run(ctx: BenchContext) -> None:
    """Bytes per session, then bytes per message, on the memory hot tier."""
    sessions = ctx.sizes.memory_sessions
    messages = ctx.sizes.memory_messages
    session_case = f"{sessions:,} sessions"
    message_case = f"{messages:,} messages (1 session)"
    try:
        async with ctx.kit("memory", history_cap=messages) as kit:
            ctx.progress(f"memory: {sessions:,} sessions")
            before = _held()
            for i in range(sessions):
                await kit.create_session(f"user-session-{i:08d}", user_id=f"user-{i % 1000}")
            per_session = (_held() - before) / sessions
            ctx.report.add(Row(GROUP, session_case, "contextkit memory", value=per_session, unit="B/session",
                               note="create_session, no metadata"))

            ctx.progress(f"memory: {messages:,} messages")
            await kit.create_session("chat", user_id="bench")
            before = _held()
            await fill_history(kit.hot, "chat", messages)
            per_message = (_held() - before) / messages
            ctx.report.add(Row(GROUP, message_case, "contextkit memory", value=per_message, unit="B/message",
                               note="~200 chars of content, 1-key metadata"))
    except Exception as exc:
        ctx.skip_rest(GROUP, (session_case, message_case), "contextkit memory", exc)
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()


def _held() -> int:
    """Bytes Python holds right now (tracemalloc started on first use, after a collection)."""
    gc.collect()
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    return tracemalloc.get_traced_memory()[0]
