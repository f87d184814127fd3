"""``[compat] physical_names = "aiecs"``: the PostgreSQL cold tier uses the original's tables (``public`` schema,
``context_*``); an archive the original wrote there is adopted in place, read through, and queried as before.

The archive is written as the original's PostgreSQL backend wrote it (its DDL, its INSERTs), in a database of this
test's own on the machine's PostgreSQL (dropped afterwards)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from contextkit.compat import ContextEngine
from contextkit.config import load_config
from contextkit.testing.services import env_url, missing_service

asyncpg = pytest.importorskip("asyncpg")
pytest.importorskip("contextkit_postgres", reason="needs the contextkit-postgres plugin")

PG_URL = env_url("postgres") or "postgresql://postgres@127.0.0.1:5432/test"

# The six tables as the original's 001_context_permanent_tables.sql created them (public schema, no event ids).
_ORIGINAL_DDL = """
CREATE TABLE context_sessions (id BIGSERIAL PRIMARY KEY, session_id TEXT NOT NULL, user_id TEXT NOT NULL,
    event_type TEXT NOT NULL, payload JSONB NOT NULL DEFAULT '{}'::jsonb, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
CREATE TABLE context_conversations (id BIGSERIAL PRIMARY KEY, session_id TEXT NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, metadata JSONB NOT NULL DEFAULT '{}'::jsonb, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
CREATE TABLE context_task_contexts (id BIGSERIAL PRIMARY KEY, session_id TEXT NOT NULL,
    context_data JSONB NOT NULL DEFAULT '{}'::jsonb, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
CREATE TABLE context_checkpoints (id BIGSERIAL PRIMARY KEY, thread_id TEXT NOT NULL, checkpoint_id TEXT NOT NULL,
    data JSONB NOT NULL DEFAULT '{}'::jsonb, metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
CREATE TABLE context_checkpoint_writes (id BIGSERIAL PRIMARY KEY, thread_id TEXT NOT NULL, checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL, writes_data JSONB NOT NULL DEFAULT '[]'::jsonb, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
CREATE TABLE context_conversation_sessions (id BIGSERIAL PRIMARY KEY, session_key TEXT NOT NULL,
    session_data JSONB NOT NULL DEFAULT '{}'::jsonb, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
CREATE INDEX idx_context_sessions_session_created ON context_sessions (session_id, created_at);
CREATE INDEX idx_context_conversations_session_created ON context_conversations (session_id, created_at);
"""

SESSION = {"session_id": "s1", "user_id": "u1", "created_at": "2024-03-01T10:00:00", "request_count": 0,
           "error_count": 0, "total_processing_time": 0.0, "status": "active", "last_activity": "2024-03-01T10:00:00"}
UPDATED = {**SESSION, "request_count": 2, "last_activity": "2024-03-01T10:05:00"}
MESSAGES = [("user", "hello", {"index": 0}, "2024-03-01T10:01:00Z"), ("assistant", "hi there", {}, "2024-03-01T10:02:00Z"),
            ("user", "bye", {"index": 2}, "2024-03-01T10:03:00Z")]
CONTEXT = {"user_id": "u1", "chat_id": "s1", "metadata": {"source": "web"}, "context_history": [],
           "file_tracker": {}, "model_tracker": []}
CONVERSATION = {"session_id": "s1", "participants": [
    {"participant_id": "u1", "participant_type": "user", "participant_role": "user", "metadata": {}},
    {"participant_id": "a1", "participant_type": "agent", "participant_role": "assistant", "metadata": {}}],
    "session_type": "user_to_agent", "created_at": "2024-03-01T10:00:30", "last_activity": "2024-03-01T10:00:30",
    "metadata": {}}


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture
async def aiecs_archive() -> AsyncIterator[str]:
    """A database of this test holding an archive the original wrote; yields its URL."""
    try:
        admin = await asyncpg.connect(PG_URL, timeout=5)
    except Exception as exc:  # no server here
        missing_service("postgres", f"{type(exc).__name__}: {exc}")
    database = f"ckcompat_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = _with_database(PG_URL, database)
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(_ORIGINAL_DDL)
            dumps = json.dumps
            for event, payload, at in (("create", SESSION, "2024-03-01T10:00:00Z"), ("update", UPDATED, "2024-03-01T10:05:00Z")):
                await conn.execute(
                    "INSERT INTO context_sessions (session_id, user_id, event_type, payload, created_at) "
                    "VALUES ($1, $2, $3, $4::jsonb, $5::text::timestamptz)", "s1", "u1", event, dumps(payload), at)
            for role, content, metadata, at in MESSAGES:
                await conn.execute(
                    "INSERT INTO context_conversations (session_id, role, content, metadata, created_at) "
                    "VALUES ($1, $2, $3, $4::jsonb, $5::text::timestamptz)", "s1", role, content, dumps(metadata), at)
            await conn.execute("INSERT INTO context_task_contexts (session_id, context_data) VALUES ($1, $2::jsonb)",
                               "s1", dumps(CONTEXT))
            await conn.execute(
                "INSERT INTO context_checkpoints (thread_id, checkpoint_id, data, metadata, created_at) "
                "VALUES ('t1', 'c1', $1::jsonb, $2::jsonb, '2024-03-01T10:04:00Z')", dumps({"step": 1}), dumps({"k": 1}))
            await conn.execute(
                "INSERT INTO context_checkpoint_writes (thread_id, checkpoint_id, task_id, writes_data) "
                "VALUES ('t1', 'c1', 'task-1', $1::jsonb)", dumps([["messages", ["test"]]]))
            await conn.execute("INSERT INTO context_conversation_sessions (session_key, session_data) "
                               "VALUES ('s1_user_to_assistant', $1::jsonb)", dumps(CONVERSATION))
        finally:
            await conn.close()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
        await admin.close()


def test_physical_names_aiecs_selects_the_original_names() -> None:
    pg = load_config({"cold": "postgres", "postgres": {"url": PG_URL}, "compat": {"physical_names": "aiecs"}}, env={})
    assert pg.cold_options["schema"] == "public"
    ch = load_config({"cold": "clickhouse", "compat": {"physical_names": "aiecs"}}, env={})
    assert ch.cold_options["table_prefix"] == ""
    explicit = load_config(
        {"cold": "postgres", "postgres": {"url": PG_URL, "schema": "mine"}, "compat": {"physical_names": "aiecs"}}, env={}
    )
    assert explicit.cold_options["schema"] == "mine"
    assert "schema" not in load_config({"cold": "postgres", "postgres": {"url": PG_URL}}, env={}).cold_options


async def test_an_archive_the_original_wrote_reads_through(aiecs_archive: str) -> None:
    config: dict[str, Any] = {
        "hot": "memory", "cold": "postgres", "postgres": {"url": aiecs_archive},
        "compat": {"physical_names": "aiecs"}, "namespace": "aiecs-app", "fallback": False,
    }
    engine = ContextEngine(config=config, env={})
    await engine.initialize()
    try:
        session = await engine.get_session("s1")  # the hot tier is empty: read through from the original's rows
        assert session is not None
        assert (session.user_id, session.request_count, session.status) == ("u1", 2, "active")
        assert session["last_activity"] == "2024-03-01T10:05:00"
        history = await engine.get_conversation_history("s1", limit=0)
        assert [(m.role, m.content, m.to_dict()["metadata"]) for m in history] == [(r, c, m) for r, c, m, _ in MESSAGES]
        context = await engine.get_task_context("s1")
        assert context is not None and context.metadata == {"source": "web"}
        checkpoint = await engine.get_checkpoint("t1", "c1")
        assert checkpoint is not None and (checkpoint["data"], checkpoint["metadata"]) == ({"step": 1}, {"k": 1})
        conversation = await engine.get_conversation_session("s1_user_to_assistant")
        assert conversation is not None and conversation.session_type == "user_to_agent"

        await engine.add_conversation_message("s1", "assistant", "new in contextkit")  # numbering continues
        [latest] = await engine.get_conversation_history("s1", limit=1)
        assert latest.seq == 4
        assert engine.archiver is not None and await engine.archiver.flush(30.0)
    finally:
        await engine.close()
    conn = await asyncpg.connect(aiecs_archive)
    try:  # the original's own queries still work, on old and new rows alike
        rows = await conn.fetch("SELECT role, content FROM context_conversations WHERE session_id = 's1' ORDER BY created_at")
        assert [r["content"] for r in rows] == ["hello", "hi there", "bye", "new in contextkit"]
        events = await conn.fetch("SELECT event_type FROM context_sessions WHERE session_id = 's1' ORDER BY created_at")
        assert [e["event_type"] for e in events][:2] == ["create", "update"]
        writes = await conn.fetchval("SELECT writes_data::text FROM context_checkpoint_writes WHERE thread_id = 't1'")
        assert json.loads(writes) == [["messages", ["test"]]]
        assert await conn.fetchval("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'aiecs-app'") == 0
    finally:
        await conn.close()


# -- ClickHouse ----------------------------------------------------------------------------------------------------
# The tables as the original's clickhouse 001_context_tables.sql created them (unprefixed, in the configured database).
_ORIGINAL_CH_DDL = [
    "CREATE TABLE {db}.context_sessions (session_id String, user_id String, event_type LowCardinality(String), "
    "payload String, created_at DateTime64(3)) ENGINE = MergeTree() ORDER BY (session_id, created_at)",
    "CREATE TABLE {db}.context_conversations (session_id String, role LowCardinality(String), content String, "
    "metadata String, created_at DateTime64(3)) ENGINE = MergeTree() ORDER BY (session_id, created_at)",
    "CREATE TABLE {db}.context_task_contexts (session_id String, context_data String, created_at DateTime64(3)) "
    "ENGINE = MergeTree() ORDER BY (session_id, created_at)",
    "CREATE TABLE {db}.context_checkpoints (thread_id String, checkpoint_id String, data String, metadata String, "
    "created_at DateTime64(3)) ENGINE = MergeTree() ORDER BY (thread_id, created_at)",
    "CREATE TABLE {db}.context_checkpoint_writes (thread_id String, checkpoint_id String, task_id String, "
    "writes_data String, created_at DateTime64(3)) ENGINE = MergeTree() ORDER BY (thread_id, created_at)",
    "CREATE TABLE {db}.context_conversation_sessions (session_key String, session_data String, "
    "created_at DateTime64(3)) ENGINE = MergeTree() ORDER BY (session_key, created_at)",
]


@pytest.fixture(scope="module")
def clickhouse_url() -> Any:
    from contextkit.testing.services.clickhouse_server import clickhouse_service

    pytest.importorskip("contextkit_clickhouse", reason="needs the contextkit-clickhouse plugin")
    with clickhouse_service() as service:
        if service.problem:
            missing_service("clickhouse", service.problem)
        yield service.url.rstrip("/")


@pytest.fixture
async def aiecs_clickhouse(clickhouse_url: str) -> AsyncIterator[str]:
    """A database of this test holding an archive the original wrote to ClickHouse; yields its URL."""
    import clickhouse_connect

    parts = urlsplit(clickhouse_url)
    client = await clickhouse_connect.get_async_client(host=parts.hostname, port=parts.port or 8123)
    database = f"ckcompat_{uuid.uuid4().hex[:10]}"
    db = f"`{database}`"
    await client.command(f"CREATE DATABASE {db}")
    try:
        for ddl in _ORIGINAL_CH_DDL:
            await client.command(ddl.format(db=db))
        dumps = json.dumps
        rows = {
            "context_sessions": [["s1", "u1", "create", dumps(SESSION), "2024-03-01 10:00:00.000"],
                                 ["s1", "u1", "update", dumps(UPDATED), "2024-03-01 10:05:00.000"]],
            "context_conversations": [["s1", r, c, dumps(m), at.replace("T", " ").rstrip("Z") + ".000"]
                                      for r, c, m, at in MESSAGES],
            "context_task_contexts": [["s1", dumps(CONTEXT), "2024-03-01 10:00:00.000"]],
            "context_checkpoints": [["t1", "c1", dumps({"step": 1}), dumps({"k": 1}), "2024-03-01 10:04:00.000"]],
            "context_checkpoint_writes": [["t1", "c1", "task-1", dumps([["messages", ["test"]]]), "2024-03-01 10:04:01.000"]],
            "context_conversation_sessions": [["s1_user_to_assistant", dumps(CONVERSATION), "2024-03-01 10:00:30.000"]],
        }
        for table, values in rows.items():
            literal = ", ".join("(" + ", ".join("'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'" for v in row) + ")"
                                for row in values)
            await client.command(f"INSERT INTO {db}.{table} VALUES {literal}")
        yield f"{clickhouse_url}/{database}"
    finally:
        await client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
        await client.close()


async def test_a_clickhouse_archive_the_original_wrote_reads_through(aiecs_clickhouse: str) -> None:
    config: dict[str, Any] = {
        "hot": "memory", "cold": "clickhouse", "clickhouse": {"url": aiecs_clickhouse},
        "compat": {"physical_names": "aiecs"}, "namespace": "aiecs-app", "fallback": False,
    }
    engine = ContextEngine(config=config, env={})
    await engine.initialize()
    try:
        session = await engine.get_session("s1")
        assert session is not None and (session.user_id, session.request_count) == ("u1", 2)
        history = await engine.get_conversation_history("s1", limit=0)
        assert [(m.role, m.content, m.to_dict()["metadata"]) for m in history] == [(r, c, m) for r, c, m, _ in MESSAGES]
        context = await engine.get_task_context("s1")
        assert context is not None and context.metadata == {"source": "web"}
        checkpoint = await engine.get_checkpoint("t1", "c1")
        assert checkpoint is not None and checkpoint["data"] == {"step": 1}
        conversation = await engine.get_conversation_session("s1_user_to_assistant")
        assert conversation is not None and conversation.session_type == "user_to_agent"
        await engine.add_conversation_message("s1", "assistant", "new in contextkit")
        assert (await engine.get_conversation_history("s1", limit=1))[0].seq == 4
        assert engine.archiver is not None and await engine.archiver.flush(30.0)
    finally:
        await engine.close()
    import clickhouse_connect

    parts = urlsplit(aiecs_clickhouse)
    client = await clickhouse_connect.get_async_client(host=parts.hostname, port=parts.port or 8123)
    try:  # the original's query, on the adopted table; its own table is kept aside, untouched
        database = parts.path.strip("/")
        result = await client.query(
            f"SELECT content FROM `{database}`.context_conversations FINAL WHERE session_id = 's1' ORDER BY created_at"
        )
        assert [r[0] for r in result.result_rows] == ["hello", "hi there", "bye", "new in contextkit"]
        kept = await client.query(f"SELECT count() FROM `{database}`.context_conversations__aiecs_original")
        assert kept.result_rows[0][0] == 3
    finally:
        await client.close()
