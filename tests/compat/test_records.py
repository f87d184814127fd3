"""The facade's records: sessions read as attributes and as the original's dicts, naive UTC timestamps,
ConversationMessage, agent history rows with the original's metadata."""

from __future__ import annotations

import datetime as dt
import json

import contextkit
from contextkit import compat
from contextkit.compat import ContextEngine, ConversationMessage, SessionMetrics
from contextkit.records import Message


async def test_sessions_read_as_attributes_and_as_dicts(engine: ContextEngine) -> None:
    created = await engine.create_session("s1", "u1", {"source": "web"})
    got = await engine.get_session("s1")
    for session in (created, got):
        assert isinstance(session, SessionMetrics)
        assert session["status"] == session.status == "active"
        assert session["user_id"] == "u1" and session.get("missing", 7) == 7
        assert "request_count" in session
        as_dict = dict(session)
        assert as_dict["session_id"] == "s1" and isinstance(as_dict["created_at"], str)
        assert isinstance(session, dict) and json.loads(json.dumps(session)) == as_dict  # the original's dict
        assert session.created_at == dt.datetime.fromisoformat(session["created_at"])  # naive ISO text
    listed = await engine.list_all_sessions()
    assert [s["session_id"] for s in listed] == ["s1"]


async def test_timestamps_are_naive_utc(engine: ContextEngine) -> None:
    await engine.create_session("s1", "u1")
    await engine.add_conversation_message("s1", "user", "hello")
    session = await engine.get_session("s1")
    assert session is not None
    assert session.last_activity.tzinfo is None and session.created_at.tzinfo is None
    idle = dt.datetime.utcnow() - session.last_activity  # the original's idiom; aware datetimes raise TypeError
    assert dt.timedelta(0) <= idle < dt.timedelta(hours=1)
    [message] = await engine.get_conversation_history("s1")
    assert isinstance(message, ConversationMessage) and message.timestamp.tzinfo is None


async def test_the_native_kit_keeps_aware_datetimes(engine: ContextEngine) -> None:
    await engine.create_session("s1", "u1")
    session = await contextkit.ContextKit.get_session(engine, "s1")
    assert session is not None and session.last_activity.tzinfo is not None


def test_message_with_metadata_none_converts_to_a_dict() -> None:
    now = dt.datetime.utcnow()
    assert ConversationMessage(role="user", content="x", timestamp=now, metadata=None).to_dict()["metadata"] == {}
    assert Message(role="user", content="x", timestamp=now, metadata=None).to_dict()["metadata"] == {}  # type: ignore[arg-type]


def test_the_original_names_are_importable() -> None:
    for name in ("ConversationMessage", "SessionMetrics", "CompressionConfig", "ContextEngine"):
        assert getattr(contextkit, name) is getattr(compat, name)
    from contextkit.engine import ContextEngine as Shimmed

    assert Shimmed is ContextEngine


async def test_agent_history_rows_keep_the_original_metadata(engine: ContextEngine) -> None:
    key = await engine.create_conversation_session(
        "s1",
        [{"id": "u1", "type": "user", "role": "user"}, {"id": "a1", "type": "agent", "role": "analyst"}],
        "user_to_agent",
    )
    await engine.add_agent_communication_message(
        key, "a1", "agent", "analyst", "u1", "user", None, "result", "result_report", {"score": 1}
    )
    [row] = await engine.get_agent_conversation_history(key)
    meta = row["metadata"]
    assert meta["score"] == 1
    assert (meta["message_type"], meta["sender_id"], meta["sender_type"], meta["sender_role"]) == (
        "result_report", "a1", "agent", "analyst"
    )
    assert (meta["recipient_id"], meta["recipient_type"], meta["recipient_role"]) == ("u1", "user", None)
    assert meta["message_id"] == row["message_id"]
    assert dt.datetime.fromisoformat(row["timestamp"]).tzinfo is None
    filtered = await engine.get_agent_conversation_history(key, message_types=["feedback"])
    assert filtered == []
