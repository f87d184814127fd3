"""A dataset written in the original's Redis layout (raw Redis commands, as its code issues them) is imported by
``kit.import_aiecs`` / ``contextkit migrate --from-aiecs`` and reads back identically through the facade."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from click.testing import CliRunner

from contextkit.cli import cli
from contextkit.compat import ContextEngine
from contextkit.testing.services.redis_servers import RedisServer, private_redis_server

T0 = dt.datetime(2024, 3, 1, 10, 0, 0)


def _at(seconds: int) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


SESSION = {
    "session_id": "s1", "user_id": "u1", "created_at": _at(0), "last_activity": _at(50),
    "request_count": 3, "error_count": 1, "total_processing_time": 1.5, "status": "active",
}
TASK_CONTEXT = {
    "user_id": "u1", "chat_id": "s1", "metadata": {"source": "web"},
    "context_history": [{"timestamp": 1709287200.0, "update_type": "message", "data": {"x": 1}, "metadata": {}}],
    "file_tracker": {"/a.txt": {"operation": "read", "source": "task", "timestamp": 1709287201.0, "state": "active"}},
    "model_tracker": [{"model_id": "m", "provider_id": "p", "mode": "chat", "timestamp": 1709287202.0}],
}
MESSAGES = [
    {"role": "user", "content": "first", "timestamp": _at(1), "metadata": {"index": 0}},
    {"role": "assistant", "content": "second", "timestamp": _at(2), "metadata": {}},
    {"role": "user", "content": "third", "timestamp": _at(3), "metadata": {"index": 2}},
]
AGENT_KEY = "s1_user_to_assistant"  # the original's key for a user_to_agent session
CONVERSATION_SESSION = {
    "session_id": "s1",
    "participants": [
        {"participant_id": "u1", "participant_type": "user", "participant_role": "user", "metadata": {}},
        {"participant_id": "a1", "participant_type": "agent", "participant_role": "assistant", "metadata": {}},
    ],
    "session_type": "user_to_agent", "created_at": _at(5), "last_activity": _at(6), "metadata": {"p": 1},
}
AGENT_MESSAGE = {
    "role": "agent_assistant", "content": "report ready", "timestamp": _at(6),
    "metadata": {
        "score": 0.9, "message_id": "m-123", "sender_id": "a1", "sender_type": "agent", "sender_role": "assistant",
        "recipient_id": "u1", "recipient_type": "user", "recipient_role": None, "message_type": "result_report",
    },
}
CHECKPOINTS = {
    "c1": {"checkpoint_id": "c1", "thread_id": "t1", "data": {"step": 1}, "metadata": {}, "created_at": _at(10)},
    "c2": {"checkpoint_id": "c2", "thread_id": "t1", "data": {"step": 2}, "metadata": {"k": 1}, "created_at": _at(20)},
}
WRITES = {"checkpoint_id": "c1", "thread_id": "t1", "task_id": "task-1", "writes": [["messages", ["test"]]],
          "created_at": _at(11)}
DOC_SESSION = {**SESSION, "session_id": "s3", "user_id": "u3", "request_count": 0, "error_count": 0}


@pytest.fixture(scope="module")
def aiecs_redis() -> Iterator[RedisServer]:
    """A private redis-server holding the original's dataset (its keys have no prefix)."""
    with private_redis_server() as server:
        yield server


@pytest.fixture
async def dataset(aiecs_redis: RedisServer) -> str:
    client = redis.Redis.from_url(aiecs_redis.url)
    await client.flushdb()  # a private server of this module only
    dumps = json.dumps
    await client.hset("sessions", "s1", dumps(SESSION))
    await client.hset("task_contexts", "s1", dumps(TASK_CONTEXT))
    for message in MESSAGES:  # the original appended with LPUSH: the newest first
        await client.lpush("conversation:s1", dumps(message))
    await client.hset("conversation_sessions", AGENT_KEY, dumps(CONVERSATION_SESSION))
    await client.lpush(f"conversation:{AGENT_KEY}", dumps(AGENT_MESSAGE))
    # A history the original compressed: RPUSHed chronologically, then one more LPUSHed message.
    for i in range(3):
        await client.rpush("conversation:lonely", dumps({"role": "user", "content": f"kept {i}", "timestamp": _at(30 + i)}))
    await client.lpush("conversation:lonely", dumps({"role": "user", "content": "after", "timestamp": _at(40)}))
    for cid, document in CHECKPOINTS.items():
        await client.hset("checkpoints:t1", cid, dumps(document))
    await client.hset("checkpoint_writes:t1", "c1:task-1", dumps(WRITES))
    # The layout the original's documentation described: one key per record.
    await client.set("session:s3", dumps(DOC_SESSION))
    await client.set("context:s3", dumps({"user_id": "u3", "chat_id": "s3", "metadata": {"doc": True}}))
    await client.set("checkpoint:t2:cA", dumps({"checkpoint_id": "cA", "thread_id": "t2", "data": {}, "metadata": {},
                                                 "created_at": _at(60)}))
    await client.aclose()
    return aiecs_redis.url


async def _check_imported(engine: ContextEngine) -> None:
    session = await engine.get_session("s1")
    assert session is not None
    assert (session.user_id, session.request_count, session.error_count, session.status) == ("u1", 3, 1, "active")
    assert (session.created_at, session.last_activity) == (T0, T0 + dt.timedelta(seconds=50))
    assert session["total_processing_time"] == 1.5 and session.metadata == {"source": "web"}
    history = await engine.get_conversation_history("s1", limit=0)
    assert [m.to_dict()["metadata"] for m in history] == [m["metadata"] for m in MESSAGES]
    assert [(m.role, m.content, m.timestamp.isoformat()) for m in history] == [
        (m["role"], m["content"], m["timestamp"]) for m in MESSAGES
    ]
    context = await engine.get_task_context("s1")
    assert context is not None and context.metadata == {"source": "web"}
    assert context.file_tracker == TASK_CONTEXT["file_tracker"] and context.model_tracker == TASK_CONTEXT["model_tracker"]
    assert [u.to_dict() for u in context.context_history] == TASK_CONTEXT["context_history"]
    [row] = await engine.get_agent_conversation_history(AGENT_KEY)
    assert (row["role"], row["content"], row["timestamp"], row["metadata"]) == (
        AGENT_MESSAGE["role"], AGENT_MESSAGE["content"], AGENT_MESSAGE["timestamp"], AGENT_MESSAGE["metadata"]
    )
    conversation = await engine.get_conversation_session(AGENT_KEY)
    assert conversation is not None and conversation.session_type == "user_to_agent"
    assert [p.participant_id for p in conversation.participants] == ["u1", "a1"]
    assert [m.content for m in await engine.get_conversation_history("lonely", 0)] == ["kept 0", "kept 1", "kept 2", "after"]
    assert [c["checkpoint_id"] for c in await engine.list_checkpoints("t1")] == ["c2", "c1"]
    latest = await engine.get_checkpoint("t1")
    assert latest is not None and latest["data"] == {"step": 2}
    assert await engine.get_writes("t1", "c1") == [("messages", ["test"])]
    documented = await engine.get_session("s3")
    assert documented is not None and documented.user_id == "u3" and documented.metadata == {"doc": True}
    assert (await engine.get_checkpoint("t2", "cA")) is not None


async def test_import_aiecs_reads_back_identically(dataset: str, engine: ContextEngine, tmp_path: Path) -> None:
    seen: list[Any] = []
    summary = await engine.import_aiecs(dataset, state_path=tmp_path / "state.json", on_progress=seen.append)
    assert summary.counts["session"] == 2 and summary.counts["message"] == 3 + 1 + 4
    assert seen and seen[-1].phase == "done" and seen[-1].done == seen[-1].total
    assert not (tmp_path / "state.json").exists()
    await _check_imported(engine)
    again = await engine.import_aiecs(dataset)  # idempotent: the same result
    assert again.counts == summary.counts
    await _check_imported(engine)


def test_cli_migrate_from_aiecs(dataset: str, tier_config: dict[str, Any], tmp_path: Path) -> None:
    import asyncio

    config = tmp_path / "target.toml"
    if tier_config["hot"] == "redis":
        text = f'hot = "redis"\nnamespace = "{tier_config["namespace"]}"\n[redis]\nurl = "{tier_config["redis"]["url"]}"\n'
    else:
        # The memory tier lives in one process: the command line writes to the SQLite tier instead.
        text = f'hot = "sqlite"\nnamespace = "{tier_config["namespace"]}"\n[sqlite]\npath = "{tmp_path / "hot.db"}"\n'
    config.write_text(text)
    runner = CliRunner(env={k: None for k in os.environ if k.startswith(("CONTEXTKIT_", "REDIS_", "CONTEXT_"))})
    # Interrupted after a few records (as a crash would), then run again: it resumes from its state file.
    state = tmp_path / "state.json"
    migrate = ["migrate", "--from-aiecs", dataset, "--to", str(config), "--state", str(state)]
    stopped = runner.invoke(cli, [*migrate, "--stop-after-records", "9"], obj={})
    assert stopped.exit_code == 1 and "run it again to resume" in stopped.output
    assert state.exists()
    result = runner.invoke(cli, migrate, obj={})
    assert result.exit_code == 0, result.output
    assert "migrated" in result.output and "(resumed after sessions 's" in result.output
    assert not state.exists()

    async def check() -> None:
        engine = ContextEngine(config=str(config), env={})
        await engine.initialize()
        try:
            await _check_imported(engine)
        finally:
            drop = getattr(engine.hot, "drop_namespace", None)
            if drop is not None:
                await drop()
            await engine.close()

    asyncio.run(check())
    both = runner.invoke(cli, ["migrate", "--from-aiecs", dataset, "--from", str(config), "--to", str(config)], obj={})
    assert both.exit_code == 2
