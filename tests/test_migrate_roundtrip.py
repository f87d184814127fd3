"""A migration round trip memory -> sqlite -> redis -> PostgreSQL archive keeps every record, and survives interruption.

The data set: 100 sessions with 100 messages each (10,000 messages), task contexts, agent conversation sessions of
three kinds with their message streams, seed checkpoints with writes (under session ids and under thread ids of
their own), and three LangGraph threads from a real graph. The memory and sqlite legs run in-process; the sqlite ->
redis leg runs the ``contextkit migrate`` command in a subprocess, interrupted half-way and resumed; the last leg
migrates into a kit whose cold tier is PostgreSQL (interrupted and resumed too) and reads everything back through a
fresh kit with an empty hot tier. Exports of memory, sqlite and redis are compared byte for byte. Redis data lives
under a unique namespace, PostgreSQL data in a unique schema; both are removed at the end.
"""

from __future__ import annotations

import asyncio
import io
import json
import operator
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

from contextkit import ContextKit
from contextkit.records import ARCHIVE_TABLES, Message, utcnow
from contextkit.testing.services import env_url, missing_service
from contextkit.transfer import MigrationInterrupted, export_jsonl, migrate

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

SESSIONS = 100
MESSAGES = 100
#: Messages appended to an id that never became a session (the seed API allows it); migrated like the rest.
ORPHAN = "orphan history ✓ {x}"
ORPHAN_MESSAGES = 3
REDIS_URL = env_url("redis") or "redis://127.0.0.1:6379/0"
POSTGRES_URL = env_url("postgres") or "postgresql://postgres@127.0.0.1:5432/test"


class _State(TypedDict):
    steps: Annotated[list[str], operator.add]


def _graph(saver: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(_State)
    builder.add_node("plan", lambda state: {"steps": ["plan"]})
    builder.add_node("act", lambda state: {"steps": ["act"]})
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "act")
    builder.add_edge("act", END)
    return builder.compile(checkpointer=saver)


async def fill(kit: ContextKit) -> dict[str, Any]:
    """Write the data set through the kit's public API; returns what the archive read-back compares against."""
    conversations: list[str] = []
    mc = {"id": "mc", "type": "master_controller"}
    for i in range(SESSIONS):
        sid = f"session:{i:03d}" if i % 7 else f"sess {{{i}}} ü"
        await kit.create_session(sid, f"user-{i % 10}", {"i": i, "tags": ["a", "b"]})
        for j in range(2):
            await kit.add_message(sid, "user", f"message {j} of {sid} ✓", {"j": j})
        # The other 98 in one batch through the tier (the kit appends one message per call, too slow for 10,000).
        now = utcnow()
        batch = [
            Message("user" if j % 2 == 0 else "assistant", f"message {j} of {sid} ✓", now + timedelta(microseconds=j),
                    {"j": j} if j % 10 == 0 else {})
            for j in range(2, MESSAGES)
        ]
        await kit.hot.append_messages(sid, batch)
        await kit.update_session(sid, increment_requests=True, add_processing_time=0.125 * i, mark_error=i % 5 == 0)
        if i % 3 == 0:
            context = await kit.get_task_context(sid)
            assert context is not None
            await kit.store_task_context(sid, context.with_metadata(step=i).with_model_usage("m", "p"))
        if i % 10 == 0:
            agent = {"id": f"agent:{i}", "type": "agent", "role": "coder"}
            key = await kit.create_conversation_session(sid, [mc, agent], "mc_to_agent", {"topic": i})
            for k in range(3):
                await kit.add_agent_communication_message(
                    key, "mc", "master_controller", None, agent["id"], "agent", "coder", content=f"task {k}",
                    message_type="task_assignment",
                )
            conversations.append(key)
            other = {"id": "agent:b", "type": "agent", "role": "reviewer"}
            pair = await kit.create_conversation_session(sid, [agent, other], "agent_to_agent")
            await kit.add_agent_communication_message(pair, agent["id"], "agent", "coder", content="review please")
            conversations.append(pair)
        if i % 25 == 0:
            own = await kit.create_conversation_session(sid, [{"id": "u", "type": "user"}, mc], "user_to_mc")
            conversations.append(own)
        if i % 5 == 0:
            await kit.store_checkpoint(sid, f"cp-b-{i}", {"state": i}, {"step": 1})
            await kit.store_checkpoint(sid, f"cp-a-{i}", {"state": i + 1}, {"step": 2})
            await kit.put_writes(sid, f"cp-b-{i}", "task-1", [{"channel": "x", "value": i}])
            await kit.put_writes(sid, f"cp-b-{i}", "task-2", [["y", None]])
    for j in range(ORPHAN_MESSAGES):
        await kit.add_message(ORPHAN, "user", f"orphan {j}")
    await kit.hot.put_task_context("orphan task", {"only": "a task context"})
    for t in range(5):
        await kit.store_checkpoint(f"thread/{t}", "only", {"t": t})
        await kit.put_writes(f"thread/{t}", "no-document", "task", [t])
    graph = _graph(kit.checkpointer())
    states = {}
    for t in range(3):
        config = {"configurable": {"thread_id": f"graph-{t}"}}
        await graph.ainvoke({"steps": [f"start {t}"]}, config)
        states[f"graph-{t}"] = (await graph.aget_state(config)).values
    sessions = {s.session_id: s for s in await kit.list_all_sessions()}
    histories = {sid: await kit.get_conversation_history(sid, limit=0) for sid in [*sessions, ORPHAN]}
    agents = {key: await kit.get_agent_conversation_history(key, limit=100) for key in conversations}
    return {
        "sessions": sessions, "histories": histories, "agents": agents, "conversations": conversations, "graphs": states
    }


async def export_text(kit: ContextKit) -> str:
    """The JSONL export of the kit's hot tier."""
    buffer = io.StringIO()
    await export_jsonl(kit.hot, buffer)
    return buffer.getvalue()


def _redis_reachable() -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1.0):
            return True
    except OSError:
        return False


async def _postgres_problem() -> str | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace of this test alone; its Redis keys and PostgreSQL schema are removed afterwards."""
    name = f"ckmig_{uuid.uuid4().hex[:10]}"
    yield name

    async def clean() -> None:
        async with ContextKit.from_config({"hot": {"backend": "redis", "url": REDIS_URL}, "namespace": name}, env={}) as kit:
            await kit.hot.drop_namespace()  # type: ignore[attr-defined]
        if await _postgres_problem() is None:
            import asyncpg

            from contextkit_postgres.options import schema_from_namespace

            conn = await asyncpg.connect(POSTGRES_URL, timeout=10)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_from_namespace(name)}" CASCADE')
            finally:
                await conn.close()

    if _redis_reachable():
        asyncio.run(clean())


@pytest.fixture
def services() -> None:
    """Skips (or fails in CI) unless the machine's Redis and PostgreSQL answer."""
    if not _redis_reachable():
        missing_service("redis", f"nothing answers at {REDIS_URL}")
    problem = asyncio.run(_postgres_problem())
    if problem is not None:
        missing_service("postgres", f"{problem} (set CONTEXTKIT_TEST_POSTGRES_URL)")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTEXTKIT_", "REDIS_", "CONTEXT_", "POSTGRES_"))}
    return subprocess.run(
        [sys.executable, "-m", "contextkit.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300, env=env
    )


async def _memory_to_sqlite(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    async with ContextKit.from_config({"hot": "memory", "namespace": "rt"}, env={}) as memory:
        expected = await fill(memory)
        memory_export = await export_text(memory)
        sqlite_config = {"hot": {"backend": "sqlite", "path": str(tmp_path / "hot.sqlite3")}, "namespace": "rt"}
        async with ContextKit.from_config(sqlite_config, env={}) as sqlite:
            summary = await migrate(memory, sqlite, state_path=tmp_path / "to-sqlite.json")
            assert summary.counts["session"] == SESSIONS
            assert summary.counts["message"] >= SESSIONS * MESSAGES
            assert await export_text(sqlite) == memory_export
    return memory_export, expected


async def _redis_export(namespace: str) -> str:
    async with ContextKit.from_config({"hot": {"backend": "redis", "url": REDIS_URL}, "namespace": namespace}, env={}) as kit:
        return await export_text(kit)


async def _to_archive(namespace: str, state: Path) -> tuple[int, int]:
    """Migrate redis -> (memory hot, postgres cold): interrupted once, then resumed. Returns (units skipped, events)."""
    source_config = {"hot": {"backend": "redis", "url": REDIS_URL}, "namespace": namespace, "fallback": False}
    target_config = {"hot": "memory", "cold": {"backend": "postgres", "url": POSTGRES_URL}, "namespace": namespace}
    async with ContextKit.from_config(source_config, env={}) as source:
        async with ContextKit.from_config(target_config, env={}) as target:
            with pytest.raises(MigrationInterrupted):
                await migrate(source, target, state_path=state, stop_after_records=6_000, commit_every=10)
        assert os.path.isfile(state)  # noqa: ASYNC240 - a stat in a test
        async with ContextKit.from_config(target_config, env={}) as target:
            summary = await migrate(source, target, state_path=state, commit_every=10)
        assert not os.path.exists(state)  # noqa: ASYNC240
        return summary.skipped_units, summary.archived_events


async def _read_back(namespace: str, expected: dict[str, Any]) -> dict[str, int]:
    """Everything the archive holds, read through a kit whose hot tier starts empty (read-through)."""
    config = {"hot": "memory", "cold": {"backend": "postgres", "url": POSTGRES_URL}, "namespace": namespace}
    async with ContextKit.from_config(config, env={}) as kit:
        for sid, session in expected["sessions"].items():
            assert await kit.get_session(sid) == session, sid
        for sid, messages in expected["histories"].items():
            history = await kit.get_conversation_history(sid, limit=0)
            assert [m.to_dict() for m in history] == [m.to_dict() for m in messages], sid
        assert len(expected["histories"][ORPHAN]) == ORPHAN_MESSAGES
        for key, rows in expected["agents"].items():
            conversation = await kit.get_conversation_session(key)
            assert conversation is not None and conversation.session_key == key
            assert await kit.get_agent_conversation_history(key, limit=100) == rows
        assert (await kit.get_checkpoint("session:005", "cp-a-5") or {})["data"] == {"state": 6}
        assert (await kit.get_checkpoint("thread/3") or {})["data"] == {"t": 3}
        graph = _graph(kit.checkpointer())
        for thread_id, values in expected["graphs"].items():
            assert (await graph.aget_state({"configurable": {"thread_id": thread_id}})).values == values
        assert kit.cold is not None
        return {table: await kit.cold.count_events(table) for table in ARCHIVE_TABLES}


def test_migrate_round_trip_memory_sqlite_redis_postgres_keeps_every_record(
    tmp_path: Path, namespace: str, services: None
) -> None:
    """memory -> sqlite -> redis (CLI, interrupted and resumed) -> postgres archive (interrupted and resumed):
    byte-identical exports on the hot tiers, every session, message, conversation and seed checkpoint read back
    from the archive, and no duplicate archive rows."""
    memory_export, expected = asyncio.run(_memory_to_sqlite(tmp_path))
    lines = memory_export.splitlines()
    assert json.loads(lines[-1])["counts"]["message"] == SESSIONS * MESSAGES + 10 * 3 + 10 + ORPHAN_MESSAGES
    assert json.loads(lines[-1])["counts"]["checkpoint"] > 0

    (tmp_path / "sqlite.toml").write_text(
        f'namespace = "rt"\nfallback = false\n[hot]\nbackend = "sqlite"\npath = "{tmp_path / "hot.sqlite3"}"\n'
    )
    (tmp_path / "redis.toml").write_text(
        f'namespace = "{namespace}"\nfallback = false\n[hot]\nbackend = "redis"\nurl = "{REDIS_URL}"\n'
    )
    args = ("migrate", "--from", "sqlite.toml", "--to", "redis.toml", "--state", "state.json")
    stopped = _cli(*args, "--stop-after-records", "5000", cwd=tmp_path)
    assert stopped.returncode == 1, stopped.stderr
    assert "run it again to resume" in stopped.stderr and "Traceback" not in stopped.stderr
    assert (tmp_path / "state.json").is_file()
    resumed = _cli("--json", *args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["resumed_after"]["phase"] == "sessions" and report["skipped_units"] > 0
    assert not (tmp_path / "state.json").exists()
    assert asyncio.run(_redis_export(namespace)) == memory_export

    again = _cli(*args, cwd=tmp_path)  # a finished migration run again: the same result, nothing doubled
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"migrated {SESSIONS} sessions")
    assert asyncio.run(_redis_export(namespace)) == memory_export

    skipped, _ = asyncio.run(_to_archive(namespace, tmp_path / "archive-state.json"))
    assert skipped > 0
    counts = asyncio.run(_read_back(namespace, expected))
    assert counts["context_sessions"] == SESSIONS
    assert counts["context_conversations"] == SESSIONS * MESSAGES + 10 * 3 + 10 + ORPHAN_MESSAGES
    assert counts["context_conversation_sessions"] == len(expected["conversations"])
    assert counts["context_task_contexts"] == SESSIONS + 1
    graph_rows = [json.loads(line) for line in lines if line.startswith('{"kind":"checkpoint"')]
    graph_writes = sum(len({w["task_id"] for w in row["writes"]}) for row in graph_rows)
    assert counts["context_checkpoints"] == 20 * 2 + 5 + len(graph_rows)
    assert counts["context_checkpoint_writes"] == 20 * 2 + 5 + graph_writes


async def test_data_of_ids_that_are_not_sessions_is_exported_and_migrated_once(tmp_path: Path) -> None:
    """A history appended to an id never created as a session, a task context of such an id and a conversation
    session whose session is gone (with its history) are exported and migrated; a conversation its session lists
    is exported once, under the session."""
    async with ContextKit.from_config({"hot": "memory", "namespace": "orphans"}, env={}) as source:
        await source.add_message("no session", "user", "hello")
        await source.hot.put_task_context("task only", {"t": 1})
        await source.create_session("parent", "u")
        agents = [{"id": "a", "type": "agent", "role": "coder"}, {"id": "b", "type": "agent", "role": "reviewer"}]
        listed = await source.create_conversation_session("parent", agents, "agent_to_agent")
        await source.add_agent_communication_message(listed, "a", "agent", "coder", content="listed")
        # A conversation stored under a session id that has no session record (its session expired or was
        # written by another tool): only iter_data_owners finds it.
        document = await source.hot.get_conversation_session(listed)
        assert document is not None
        orphaned = "conversation of a gone session"
        await source.hot.put_conversation_session(orphaned, {**document, "session_id": "gone", "session_key": orphaned})
        await source.hot.append_messages(orphaned, [Message("user", "orphaned", utcnow())])
        text = await export_text(source)
        records = [json.loads(line) for line in text.splitlines()]
        streams = sorted(r["stream"] for r in records if r["kind"] == "message")
        assert streams == sorted(["no session", listed, orphaned])
        assert [r["session_id"] for r in records if r["kind"] == "task_context"].count("task only") == 1
        assert sorted(r["key"] for r in records if r["kind"] == "conversation_session") == sorted([listed, orphaned])
        async with ContextKit.from_config({"hot": "memory", "namespace": "orphans"}, env={}) as target:
            summary = await migrate(source, target, state_path=tmp_path / "state.json")
            assert summary.counts["message"] == 3
            assert [m.content for m in await target.get_conversation_history("no session", limit=0)] == ["hello"]
            assert await target.hot.get_task_context("task only") == {"t": 1}
            assert await export_text(target) == text


async def test_migrate_refuses_langgraph_threads_for_a_target_without_checkpoints(tmp_path: Path) -> None:
    """A source holding LangGraph threads and a target tier that cannot store them: CapabilityNotSupported before
    anything is written."""
    from contextkit.errors import CapabilityNotSupported
    from contextkit.stores import Capability, StoreSettings
    from contextkit_memory.hot import MemoryHotStore

    class NoCheckpoints(MemoryHotStore):
        pass

    target = NoCheckpoints(StoreSettings(namespace="t"))
    target.capabilities = frozenset(target.capabilities - {Capability.CHECKPOINTS.value})
    async with ContextKit.from_config({"hot": "memory"}, env={}) as source:
        await source.create_session("s1", "u1")
        graph = _graph(source.checkpointer())
        await graph.ainvoke({"steps": []}, {"configurable": {"thread_id": "g"}})
        with pytest.raises(CapabilityNotSupported):
            await migrate(source, target)
    assert await target.get_session("s1") is None


async def test_migrate_into_the_same_store_is_refused(tmp_path: Path) -> None:
    """Source and target describing the same shared store (the same file): ConfigError, nothing copied."""
    from contextkit.errors import ConfigError

    config = {"hot": {"backend": "sqlite", "path": str(tmp_path / "same.sqlite3")}}
    async with ContextKit.from_config(config, env={}) as one, ContextKit.from_config(config, env={}) as two:
        with pytest.raises(ConfigError, match="same store"):
            await migrate(one, two)
