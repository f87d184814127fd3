"""The seed's integration scenario through the public kit, checked in the six archive tables of a real cold tier.

Everything goes through :class:`contextkit.ContextKit` (memory hot tier, PostgreSQL or ClickHouse cold tier);
after ``archiver.flush`` the tables are read directly with asyncpg / clickhouse-connect, so the test checks what
the archive really holds, not what the store's reads make of it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.records import TaskContext

SID = "seed-scenario: session/1 ünï 🙂"
USER = "user-42"
AGENT = "agent-7"
# About 20 KB of multi-byte text: accents, CJK, emoji (4-byte UTF-8), a combining mark, quotes and a backslash.
LARGE_REPLY = "".join(f"{i:05d} Ωμέγα «ελληνικά» 日本語のテキスト 🙂👍🏽 e\u0301 'q' \"dq\" \\ \n" for i in range(400))


def _json(value: Any) -> Any:
    """A JSON column as Python (asyncpg hands jsonb over as text; ClickHouse stores it as String)."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _session_document(backend: str, payload: Any) -> dict[str, Any]:
    # Both cold tiers keep the session itself in the payload column (the event type has a column of its own).
    session: dict[str, Any] = _json(payload)
    return session


async def test_seed_scenario_fills_all_six_archive_tables_with_the_right_contents(cold_target: Any) -> None:
    """Session create/update/end, a 20 KB unicode assistant message, a task-context snapshot, a checkpoint, its
    writes, a user_to_agent conversation session and an agent message: each lands in its table once, with its
    event types in order, message text byte for byte and the JSON documents' fields intact."""
    backend = cold_target.backend
    assert len(LARGE_REPLY) > 20_000
    config = {"hot": "memory", "cold": cold_target.kit_cold(), "timeout": 15.0}
    async with ContextKit.from_config(config, env={}) as kit:
        await kit.create_session(SID, USER, {"source": "web", "tags": ["a", "b"]})
        assert await kit.update_session(
            SID, {"metadata": {"source": "web", "step": 2}}, increment_requests=True, add_processing_time=1.25
        )
        question = await kit.add_message(SID, "user", "Summarise the paper, s'il vous plaît 🙏")
        reply = await kit.add_message(SID, "assistant", LARGE_REPLY, {"model": "gpt-x", "tokens": 4096})
        context = (
            TaskContext({"user_id": USER, "chat_id": SID, "metadata": {"mode": "research"}})
            .with_file_operation("/work/paper.pdf", "read")
            .with_model_usage("gpt-x", "openai")
        )
        assert await kit.store_task_context(SID, context)
        assert await kit.store_checkpoint(SID, "cp-1", {"messages": ["hi", "there"], "step": 3}, {"source": "loop"})
        assert await kit.put_writes(SID, "cp-1", "task-1", [("messages", ["test"])])
        key = await kit.create_conversation_session(
            SID,
            [{"id": USER, "type": "user"}, {"id": AGENT, "type": "agent", "role": "researcher"}],
            "user_to_agent",
            {"topic": "papers"},
        )
        assert await kit.add_agent_communication_message(
            key, AGENT, "agent", "researcher", USER, "user", None, "Found 3 papers ✓", "analysis_result", {"score": 0.9}
        )
        assert await kit.end_session(SID)
        assert kit.archiver is not None
        assert await kit.archiver.flush(60), await kit.archiver.metrics()
        metrics = await kit.archiver.metrics()
        assert metrics["queue_depth"] == 0 and metrics["dead_letters"] == 0

    t = cold_target.table
    final = " FINAL" if backend == "clickhouse" else ""
    order = "created_at, id" if backend == "postgres" else "created_at, event_id"

    # context_sessions: create, update, end - in that order, each with the session as of that step.
    sessions = await cold_target.fetch(
        f"SELECT session_id, user_id, event_type, payload FROM {t('context_sessions')}{final} ORDER BY {order}"
    )
    assert [(r[0], r[1], r[2]) for r in sessions] == [(SID, USER, "create"), (SID, USER, "update"), (SID, USER, "end")]
    created, updated, ended = (_session_document(backend, r[3]) for r in sessions)
    assert created["session_id"] == SID and created["status"] == "active" and created["request_count"] == 0
    assert created["metadata"] == {"source": "web", "tags": ["a", "b"]}
    assert updated["request_count"] == 1 and updated["total_processing_time"] == 1.25
    assert updated["metadata"] == {"source": "web", "step": 2}
    assert ended["status"] == "completed" and ended["request_count"] == 1

    # context_conversations: the two session messages and the agent message, text byte for byte.
    messages = await cold_target.fetch(
        f"SELECT session_id, seq, message_id, role, content, metadata FROM {t('context_conversations')}{final} "
        "ORDER BY session_id, seq"
    )
    by_stream = {(r[0], r[1]): r for r in messages}
    assert len(messages) == 3 and set(by_stream) == {(SID, 1), (SID, 2), (key, 1)}
    first, second, agent_row = by_stream[(SID, 1)], by_stream[(SID, 2)], by_stream[(key, 1)]
    assert (first[2], first[3], first[4]) == (question.id, "user", "Summarise the paper, s'il vous plaît 🙏")
    assert (second[2], second[3]) == (reply.id, "assistant")
    assert second[4].encode("utf-8") == LARGE_REPLY.encode("utf-8")
    assert _json(second[5]) == {"model": "gpt-x", "tokens": 4096}
    assert (agent_row[3], agent_row[4]) == ("agent_researcher", "Found 3 papers ✓")
    agent_meta = _json(agent_row[5])
    assert agent_meta["score"] == 0.9 and agent_meta["message_type"] == "analysis_result"
    assert (agent_meta["sender_id"], agent_meta["sender_type"], agent_meta["sender_role"]) == (AGENT, "agent", "researcher")
    assert (agent_meta["recipient_id"], agent_meta["recipient_type"]) == (USER, "user")
    assert agent_meta["message_id"] == agent_row[2]

    # context_task_contexts: the snapshot create_session takes, then the stored context with its trackers.
    contexts = await cold_target.fetch(
        f"SELECT session_id, context_data FROM {t('context_task_contexts')}{final} ORDER BY {order}"
    )
    assert [r[0] for r in contexts] == [SID, SID]
    initial, stored = (_json(r[1]) for r in contexts)
    assert (initial["user_id"], initial["chat_id"], initial["metadata"]) == (USER, SID, {"source": "web", "tags": ["a", "b"]})
    assert stored == context.to_dict()
    assert stored["file_tracker"] and "/work/paper.pdf" in json.dumps(stored["file_tracker"])
    assert [m["model_id"] for m in stored["model_tracker"]] == ["gpt-x"]
    assert stored["metadata"] == {"mode": "research"}

    # context_checkpoints: the seed's document, and its metadata in a column of its own.
    checkpoints = await cold_target.fetch(
        f"SELECT thread_id, checkpoint_id, data, metadata FROM {t('context_checkpoints')}{final}"
    )
    assert [(r[0], r[1]) for r in checkpoints] == [(SID, "cp-1")]
    document = _json(checkpoints[0][2])
    assert document["checkpoint_id"] == "cp-1" and document["thread_id"] == SID
    assert document["data"] == {"messages": ["hi", "there"], "step": 3}
    assert document["metadata"] == {"source": "loop"} and _json(checkpoints[0][3]) == {"source": "loop"}

    # context_checkpoint_writes: the tuple arrives as a JSON list.
    writes = await cold_target.fetch(
        f"SELECT thread_id, checkpoint_id, task_id, writes_data FROM {t('context_checkpoint_writes')}{final}"
    )
    assert [(r[0], r[1], r[2]) for r in writes] == [(SID, "cp-1", "task-1")]
    assert _json(writes[0][3]) == [["messages", ["test"]]]

    # context_conversation_sessions: the user_to_agent session under its unambiguous key, created, then touched
    # by the agent message (its last_activity moves forward).
    conversations = await cold_target.fetch(
        f"SELECT session_key, session_data FROM {t('context_conversation_sessions')}{final} ORDER BY created_at"
    )
    assert [r[0] for r in conversations] == [key, key]
    first, data = _json(conversations[0][1]), _json(conversations[1][1])
    assert data["last_activity"] > first["last_activity"]
    assert {k: v for k, v in first.items() if k != "last_activity"} == {
        k: v for k, v in data.items() if k != "last_activity"
    }
    assert data["session_key"] == key and data["session_id"] == SID and data["session_type"] == "user_to_agent"
    assert data["metadata"] == {"topic": "papers"}
    assert [(p["id"], p["type"], p["role"]) for p in data["participants"]] == [
        (USER, "user", None),
        (AGENT, "agent", "researcher"),
    ]


@pytest.mark.postgres
async def test_postgres_archive_rows_carry_unique_event_ids_and_event_times(pg_target: Any) -> None:
    """Every archived row has its own event id (the idempotency key), and created_at is when the event happened,
    so the session events' times are in the order the calls were made."""
    config = {"hot": "memory", "cold": pg_target.kit_cold(), "timeout": 15.0}
    async with ContextKit.from_config(config, env={}) as kit:
        await kit.create_session("s-ids", USER)
        for i in range(5):
            await kit.update_session("s-ids", increment_requests=True, add_processing_time=float(i))
        await kit.end_session("s-ids", "failed")
        assert kit.archiver is not None and await kit.archiver.flush(60)
    rows = await pg_target.fetch(
        f"SELECT event_id, event_type, created_at, payload FROM {pg_target.table('context_sessions')} ORDER BY id"
    )
    assert [r[1] for r in rows] == ["create", *["update"] * 5, "end"]
    assert len({r[0] for r in rows}) == 7
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)
    final = _session_document("postgres", rows[-1][3])
    assert (final["status"], final["request_count"], final["total_processing_time"]) == ("failed", 5, 10.0)
