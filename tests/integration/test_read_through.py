"""Read-through: what the hot tier lost (expired, restarted, trimmed) is read back from a real cold tier.

The hot keys of a session are deleted behind the kit's back (``kit.hot.delete_session(..., evict=True)``, as an
then the kit's reads must answer from PostgreSQL / ClickHouse and refill the hot tier, which is checked on
``kit.hot`` directly.
"""

from __future__ import annotations

from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.errors import OwnerUnknown
from contextkit.records import TaskContext

SID = "read-through 🙂 session:1"
USER = "user-rt"
AGENT = "agent-rt"
CAP = 100
TOTAL = 300


def _content(seq: int) -> str:
    return f"message {seq:03d} · ünïcödé · {'x' * (seq % 7)}"


async def test_session_lost_by_the_hot_tier_reads_back_from_the_cold_tier_and_refills_it(cold_target: Any) -> None:
    """300 messages with a hot cap of 100, counters, a task context and a user_to_agent conversation; after the hot
    keys are deleted: the session (counters, status, metadata), the newest 50 messages, messages older than the hot
    cap (51..300), the whole history (1..300), the task context, the conversation session and its agent messages
    all come back in order from the cold tier, and the hot tier holds the session, the newest 100 messages, the
    task context and the conversation session again."""
    config = {"hot": "memory", "cold": cold_target.kit_cold(), "timeout": 15.0, "history_cap": CAP}
    async with ContextKit.from_config(config, env={}) as kit:
        await kit.create_session(SID, USER, {"plan": "pro"})
        for i in range(3):
            assert await kit.update_session(SID, increment_requests=True, add_processing_time=0.5 * (i + 1))
        assert await kit.update_session(SID, {"metadata": {"plan": "pro", "seen": True}}, mark_error=True)
        ids = []
        for seq in range(1, TOTAL + 1):
            message = await kit.add_message(SID, "user" if seq % 2 else "assistant", _content(seq), {"n": seq})
            ids.append(message.id)
        assert [m.seq for m in await kit.hot.read_history(SID, None)] == list(range(TOTAL - CAP + 1, TOTAL + 1))
        context = TaskContext({"user_id": USER, "chat_id": SID, "metadata": {"mode": "rt"}}).with_file_operation(
            "/a.txt", "write"
        )
        assert await kit.store_task_context(SID, context)
        key = await kit.create_conversation_session(
            SID, [{"id": USER, "type": "user"}, {"id": AGENT, "type": "agent", "role": "helper"}], "user_to_agent"
        )
        for text, kind in (("plan ready", "task_assignment"), ("done ✓", "task_completion")):
            assert await kit.add_agent_communication_message(key, AGENT, "agent", "helper", USER, "user", None, text, kind)
        assert kit.archiver is not None
        assert await kit.archiver.flush(60), await kit.archiver.metrics()

        # The hot tier loses everything of the session (its conversation sessions too).
        assert await kit.hot.delete_session(SID, evict=True)
        # the hot tier forgot them: it answers "ask the archive" (the kit does), not "nothing"
        for lost in (
            lambda: kit.hot.get_session(SID),
            lambda: kit.hot.read_history(SID, None),
            lambda: kit.hot.get_task_context(SID),
            lambda: kit.hot.get_conversation_session(key),
        ):
            with pytest.raises(OwnerUnknown):
                await lost()

        session = await kit.get_session(SID)
        assert session is not None
        assert (session.session_id, session.user_id, session.status) == (SID, USER, "active")
        assert (session.request_count, session.error_count, session.total_processing_time) == (3, 1, 3.0)
        assert session.metadata == {"plan": "pro", "seen": True}
        refilled = await kit.hot.get_session(SID)
        assert refilled is not None and refilled.request_count == 3 and refilled.error_count == 1

        newest = await kit.get_conversation_history(SID, limit=50)
        assert [m.seq for m in newest] == list(range(TOTAL - 49, TOTAL + 1))
        assert [m.content for m in newest] == [_content(s) for s in range(TOTAL - 49, TOTAL + 1)]
        assert [m.id for m in newest] == ids[-50:]
        assert [m.metadata for m in newest] == [{"n": s} for s in range(TOTAL - 49, TOTAL + 1)]
        # Rehydration fills the hot tier up to its cap with the newest archived messages.
        hot_history = await kit.hot.read_history(SID, None)
        assert [m.seq for m in hot_history] == list(range(TOTAL - CAP + 1, TOTAL + 1))
        assert [m.id for m in hot_history] == ids[-CAP:]

        older = await kit.get_conversation_history(SID, limit=250)
        assert [m.seq for m in older] == list(range(TOTAL - 249, TOTAL + 1))
        assert [m.id for m in older] == ids[-250:]
        everything = await kit.get_conversation_history(SID, limit=TOTAL)
        assert [m.seq for m in everything] == list(range(1, TOTAL + 1))
        assert [(m.role, m.content) for m in everything] == [
            ("user" if s % 2 else "assistant", _content(s)) for s in range(1, TOTAL + 1)
        ]

        restored = await kit.get_task_context(SID)
        assert restored is not None and restored.to_dict() == context.to_dict()
        assert await kit.hot.get_task_context(SID) == context.to_dict()

        conversation = await kit.get_conversation_session(key)
        assert conversation is not None and conversation.session_type == "user_to_agent"
        assert [p.participant_id for p in conversation.participants] == [USER, AGENT]
        assert await kit.hot.get_conversation_session(key) is not None
        agent_history = await kit.get_agent_conversation_history(key)
        assert [(r["seq"], r["content"], r["message_type"]) for r in agent_history] == [
            (1, "plan ready", "task_assignment"),
            (2, "done ✓", "task_completion"),
        ]

        # New writes continue the archived numbering.
        following = await kit.add_message(SID, "user", "after the restore")
        assert following.seq == TOTAL + 1


async def test_a_new_message_after_the_hot_stream_expired_continues_the_archived_numbering(cold_target: Any) -> None:
    """The hot stream is gone and the next call is a write, not a read: the message gets seq 11 (not 1), the hot
    tier holds the archived messages before it, and the archive ends up with seqs 1..11, each once."""
    config = {"hot": "memory", "cold": cold_target.kit_cold(), "timeout": 15.0, "history_cap": CAP}
    async with ContextKit.from_config(config, env={}) as kit:
        await kit.create_session("renumber", USER)
        for seq in range(1, 11):
            await kit.add_message("renumber", "user", f"m{seq}")
        assert kit.archiver is not None and await kit.archiver.flush(60)
        await kit.hot.delete_session("renumber", evict=True)
        message = await kit.add_message("renumber", "assistant", "m11")
        assert message.seq == 11
        assert [m.content for m in await kit.hot.read_history("renumber", None)] == [f"m{s}" for s in range(1, 12)]
        assert await kit.archiver.flush(60)
    final = " FINAL" if cold_target.backend == "clickhouse" else ""
    rows = await cold_target.fetch(
        f"SELECT seq, content FROM {cold_target.table('context_conversations')}{final} ORDER BY seq"
    )
    assert rows == [(s, f"m{s}") for s in range(1, 12)]
