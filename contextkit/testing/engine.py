"""EngineSuite: scenarios through the whole kit (the seed's examples, its bugs fixed, bad input), for any tiers.

A backend package subclasses it and says how to configure the kit::

    from contextkit.testing.engine import EngineSuite

    class TestRedisEngine(EngineSuite):
        def kit_config(self):
            return {"hot": {"backend": "redis", "url": REDIS_URL}}

Each test gets a unique namespace. The seed's own usage examples and maintenance functions run unchanged through
``ContextEngine`` (configured through the environment, as the seed was). Every test's docstring states the
contract and how to fix a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from contextkit import errors
from contextkit.engine import (
    ContextEngine,
    close_context_engine,
    get_context_engine,
    initialize_context_engine,
    is_context_engine_initialized,
    reset_context_engine,
)
from contextkit.kit import ContextKit
from contextkit.records import TaskContext

__all__ = ["EngineSuite"]


class EngineSuite:
    """Scenarios every composition of tiers must pass. Override :meth:`kit_config` (and optionally
    :meth:`cleanup_kit`)."""

    #: Every test of a subclass carries the ``conformance`` marker (pytest collects class marks along the MRO), so
    #: ``pytest -m conformance`` (``nox -s conformance``) runs every run of every suite, whatever its file's name.
    pytestmark = [pytest.mark.conformance]

    def kit_config(self) -> dict[str, Any]:
        """The kit configuration under test (without ``namespace``; the suite sets a unique one)."""
        return {"hot": "memory"}

    async def cleanup_kit(self, kit: ContextKit) -> None:
        """Remove what a test stored: the hot store's ``drop_namespace()`` when it has one, else every session."""
        drop = getattr(kit.hot, "drop_namespace", None)
        if drop is not None:
            await drop()
            return
        async for session in kit.iter_sessions():
            await kit.delete_session(session.session_id)

    async def cleanup_namespace(self, namespace: str) -> None:
        """Remove what a test stored under ``namespace`` through engines the test built itself."""
        kit = await self.open_kit(namespace)
        try:
            await self.cleanup_kit(kit)
        finally:
            await kit.aclose()

    # -- fixtures ------------------------------------------------------------------------------------------------
    def _namespace(self) -> str:
        return f"ckt-{uuid.uuid4().hex[:10]}"

    def _config(self, namespace: str, **overrides: Any) -> dict[str, Any]:
        config = dict(self.kit_config())
        config.update(overrides)
        config["namespace"] = namespace
        config.setdefault("fallback", False)
        return config

    async def open_kit(self, namespace: str | None = None, **overrides: Any) -> ContextKit:
        """An opened kit on ``namespace`` (a fresh one by default); the caller closes it."""
        kit = ContextKit.from_config(self._config(namespace or self._namespace(), **overrides), env={})
        return await kit.open()

    @pytest.fixture
    async def kit(self) -> AsyncIterator[ContextKit]:
        """An opened kit on a fresh namespace, cleaned and closed after the test."""
        kit = await self.open_kit()
        try:
            yield kit
        finally:
            await self.cleanup_kit(kit)
            await kit.aclose()

    @pytest.fixture
    async def engine_env(self, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
        """Environment that points a bare ``ContextEngine()`` at the tiers under test; yields the namespace."""
        for var in list(os.environ):
            if var.startswith(("CONTEXTKIT_", "REDIS_", "CLICKHOUSE_", "CONTEXT_PG", "CONTEXT_PERMANENT")):
                monkeypatch.delenv(var)
        namespace = self._namespace()
        config = self.kit_config()
        hot = config["hot"]
        if isinstance(hot, Mapping):
            monkeypatch.setenv("CONTEXTKIT_HOT", hot["backend"])
            if "url" in hot:
                monkeypatch.setenv("CONTEXTKIT_HOT_URL", hot["url"])
        else:
            monkeypatch.setenv("CONTEXTKIT_HOT", hot)
        cold = config.get("cold")
        if isinstance(cold, Mapping):
            monkeypatch.setenv("CONTEXTKIT_COLD", cold["backend"])
            if "url" in cold:
                monkeypatch.setenv("CONTEXTKIT_COLD_URL", cold["url"])
        elif cold:
            monkeypatch.setenv("CONTEXTKIT_COLD", cold)
        monkeypatch.setenv("CONTEXTKIT_NAMESPACE", namespace)
        monkeypatch.setenv("CONTEXTKIT_FALLBACK", "false")
        reset_context_engine()
        yield namespace
        reset_context_engine()
        await self.cleanup_namespace(namespace)

    # -- the seed's usage examples, unchanged but for imports ----------------------------------------------------
    async def test_seed_example_1_basic_session_management(self, engine_env: str) -> None:
        """Seed example 1 runs as written: create, update (metrics), end. Fix: ContextEngine's session methods."""
        engine = ContextEngine(use_existing_redis=True)
        await engine.initialize()
        try:
            session = await engine.create_session(
                session_id="user_123_session_001",
                user_id="user_123",
                metadata={"source": "web", "version": "1.0"},
            )
            await engine.update_session(
                session_id="user_123_session_001",
                increment_requests=True,
                add_processing_time=1.5,
                mark_error=False,
            )
            await engine.end_session("user_123_session_001", status="completed")
            stored = await engine.get_session("user_123_session_001")
            assert session.status == "active"
            assert stored is not None
            assert (stored.status, stored.request_count, stored.total_processing_time) == ("completed", 1, 1.5)
            assert stored.metadata == {"source": "web", "version": "1.0"}
            assert stored.last_activity >= stored.created_at
        finally:
            await engine.close()

    async def test_seed_example_2_conversation_history(self, engine_env: str) -> None:
        """Seed example 2: messages come back in order with role, content and metadata. Fix: append/read order."""
        engine = ContextEngine(use_existing_redis=True)
        await engine.initialize()
        try:
            await engine.add_conversation_message(
                session_id="user_123_session_001",
                role="user",
                content="Hello, I need help with data analysis",
                metadata={"message_type": "query", "priority": "normal"},
            )
            await engine.add_conversation_message(
                session_id="user_123_session_001",
                role="assistant",
                content="I'd be happy to help you with data analysis. What specific data do you have?",
                metadata={"message_type": "response", "confidence": 0.95},
            )
            history = await engine.get_conversation_history(session_id="user_123_session_001", limit=10)
            lines = [f"{message.role}: {message.content}" for message in history]
            assert lines == [
                "user: Hello, I need help with data analysis",
                "assistant: I'd be happy to help you with data analysis. What specific data do you have?",
            ]
            assert history[1].metadata == {"message_type": "response", "confidence": 0.95}
            assert [m.seq for m in history] == [1, 2]
        finally:
            await engine.close()

    async def test_seed_example_3_task_context(self, engine_env: str) -> None:
        """Seed example 3: store_task_context returns True (the seed's returned False) and the context round-trips
        with every field. Fix: store/get_task_context and TaskContext.to_dict."""
        engine = ContextEngine(use_existing_redis=True)
        await engine.initialize()
        try:
            context = TaskContext(
                {"user_id": "user_123", "chat_id": "session_001", "metadata": {"task_type": "analysis"}}
            )
            context = context.with_file_operation("/tmp/report.csv", "read").with_model_usage("gpt-x", "openai")
            context = context.with_metadata(mode="analyze", service="sales")
            assert await engine.store_task_context("user_123_session_001", context) is True
            retrieved_context = await engine.get_task_context("user_123_session_001")
            assert retrieved_context is not None
            assert (retrieved_context.mode, retrieved_context.service) == ("analyze", "sales")
            assert retrieved_context == context
            assert retrieved_context.file_tracker["/tmp/report.csv"]["operation"] == "read"
            assert retrieved_context.model_tracker[0]["model_id"] == "gpt-x"
        finally:
            await engine.close()

    async def test_seed_example_4_checkpoints(self, engine_env: str) -> None:
        """Seed example 4: store_checkpoint / get_checkpoint by id and the latest. Fix: checkpoint documents."""
        engine = ContextEngine(use_existing_redis=True)
        await engine.initialize()
        try:
            checkpoint_data = {
                "workflow_state": "data_processing",
                "current_step": "data_cleaning",
                "processed_records": 1000,
                "errors": [],
            }
            assert await engine.store_checkpoint(
                thread_id="workflow_001",
                checkpoint_id="checkpoint_001",
                checkpoint_data=checkpoint_data,
                metadata={"workflow_version": "1.0", "created_by": "system"},
            )
            checkpoint = await engine.get_checkpoint(thread_id="workflow_001", checkpoint_id="checkpoint_001")
            assert checkpoint is not None
            assert checkpoint["data"]["workflow_state"] == "data_processing"
            assert checkpoint["data"]["current_step"] == "data_cleaning"
            await engine.store_checkpoint("workflow_001", "checkpoint_002", {"current_step": "modeling"})
            latest = await engine.get_checkpoint("workflow_001")
            assert latest is not None and latest["checkpoint_id"] == "checkpoint_002"
            listed = await engine.list_checkpoints("workflow_001", limit=5)
            assert [c["checkpoint_id"] for c in listed] == ["checkpoint_002", "checkpoint_001"]
            assert await engine.put_writes("workflow_001", "checkpoint_002", "task-a", [("messages", "hi")])
            assert await engine.put_writes("workflow_001", "checkpoint_002", "task-a", [("messages", "again")])
            assert await engine.get_writes("workflow_001", "checkpoint_002") == [("messages", "hi"), ("messages", "again")]
        finally:
            await engine.close()

    async def test_seed_example_5_agent_conversation_sessions(self, engine_env: str) -> None:
        """Seed example 5: a user_to_agent session, a custom ``analysis_result`` message, filtered history.
        Fix: create_conversation_session / add_agent_communication_message / get_agent_conversation_history."""
        engine = ContextEngine(use_existing_redis=True)
        await engine.initialize()
        try:
            session_key = await engine.create_conversation_session(
                session_id="session_001",
                participants=[
                    {"id": "user_123", "type": "user", "role": "user"},
                    {"id": "agent_001", "type": "agent", "role": "assistant", "metadata": {}},
                ],
                session_type="user_to_agent",
                metadata={"project": "sales_analysis", "priority": "high"},
            )
            await engine.add_agent_communication_message(
                session_key=session_key,
                sender_id="agent_001",
                sender_type="agent",
                sender_role="data_analyst",
                content="I've analyzed your sales data and found some interesting patterns.",
                message_type="analysis_result",
                metadata={"analysis_id": "analysis_001", "confidence": 0.92},
            )
            agent_history = await engine.get_agent_conversation_history(session_key=session_key, limit=20)
            assert len(agent_history) == 1
            row = agent_history[0]
            assert (row["sender_id"], row["message_type"]) == ("agent_001", "analysis_result")
            # The original kept the sender, recipient, type and id in the row's metadata, next to the caller's keys.
            assert row["metadata"]["analysis_id"] == "analysis_001" and row["metadata"]["confidence"] == 0.92
            assert (row["metadata"]["sender_id"], row["metadata"]["message_type"]) == ("agent_001", "analysis_result")
            conversation = await engine.get_conversation_session(session_key)
            assert conversation is not None and conversation.metadata["project"] == "sales_analysis"
        finally:
            await engine.close()

    # -- the seed's maintenance guide -----------------------------------------------------------------------------
    async def test_seed_maintenance_guide_functions(self, engine_env: str, capsys: pytest.CaptureFixture[str]) -> None:
        """The maintenance guide's health check, monitoring, diagnosis and cleanup functions run unchanged and
        print real figures. Fix: health_check / get_metrics keys, list_checkpoints, cleanup_expired_sessions."""
        engine = ContextEngine(use_existing_redis=True)
        await engine.initialize()
        try:
            await engine.create_session("s-maint", "u1")
            await engine.add_conversation_message("s-maint", "user", "hi")
            await engine.store_checkpoint("s-maint", "c1", {"x": 1})

            health_status = await engine.health_check()
            print(f"Engine Status: {health_status['status']}")
            print(f"Storage Backend: {health_status['storage_backend']}")
            print(f"Active Sessions: {health_status['active_sessions']}")
            print(f"Total Messages: {health_status['total_messages']}")
            assert health_status["status"] == "healthy", health_status.get("issues")
            assert health_status["active_sessions"] >= 1 and health_status["total_messages"] >= 1

            metrics = await engine.get_metrics()
            print(f"Total Sessions: {metrics['total_sessions']}")
            print(f"Total Checkpoints: {metrics['total_checkpoints']}")
            if "memory_usage" in metrics:
                print(f"Memory Usage: {metrics['memory_usage']}")
                assert not metrics["memory_usage"] > 0.8
            perf = metrics["storage_performance"]
            print(f"Average Response Time: {perf['avg_response_time']:.3f}s")
            print(f"Cache Hit Rate: {perf['cache_hit_rate']:.2%}")
            assert metrics["total_sessions"] >= 1 and metrics["total_checkpoints"] >= 1

            if engine.redis_client:
                await engine.redis_client.ping()
            session = await engine.get_session("s-maint")
            assert session is not None
            print(f"Status: {session.status} Request Count: {session.request_count} Error Count: {session.error_count}")
            history = await engine.get_conversation_history("s-maint", limit=5)
            context = await engine.get_task_context("s-maint")
            assert context is not None
            print(f"Task context: {context.mode} - {context.service}")
            checkpoints = await engine.list_checkpoints("s-maint", limit=5)
            assert (len(history), len(checkpoints)) == (1, 1)

            cleaned_count = await engine.cleanup_expired_sessions(max_idle_hours=24)
            assert cleaned_count == 0
            cleaned_count = await engine.cleanup_expired_sessions(max_idle_hours=0)
            assert cleaned_count == 1
            assert await engine.get_conversation_history("s-maint", limit=5) == [] or engine.cold is not None
            assert "Engine Status: healthy" in capsys.readouterr().out
        finally:
            await engine.close()

    async def test_seed_migration_between_two_engines(self, engine_env: str) -> None:
        """The maintenance guide's migrate_session_data moves sessions, history (in order) and task contexts
        between two engines. Fix: list_all_sessions, Session.metadata, history order."""
        source = ContextEngine(config=self._config(self._namespace()))
        target = ContextEngine(config=self._config(self._namespace()))
        await source.initialize()
        await target.initialize()
        try:
            for n in range(3):
                await source.create_session(f"m{n}", f"u{n}", {"n": n})
                for i in range(4):
                    await source.add_conversation_message(f"m{n}", "user" if i % 2 == 0 else "assistant", f"{n}-{i}")
            sessions = await source.list_all_sessions()
            migrated_count = 0
            for session in sessions:
                await target.create_session(session.session_id, session.user_id, session.metadata)
                history = await source.get_conversation_history(session.session_id)
                for message in history:
                    await target.add_conversation_message(
                        session.session_id, message.role, message.content, message.metadata
                    )
                context = await source.get_task_context(session.session_id)
                if context:
                    await target.store_task_context(session.session_id, context)
                migrated_count += 1
            assert migrated_count == 3
            for n in range(3):
                moved = await target.get_conversation_history(f"m{n}")
                assert [m.content for m in moved] == [f"{n}-{i}" for i in range(4)]
                moved_session = await target.get_session(f"m{n}")
                assert moved_session is not None and moved_session.metadata == {"n": n}
        finally:
            for engine in (source, target):
                await self.cleanup_kit(engine)
                await engine.close()

    async def test_singleton_lifecycle(self, engine_env: str) -> None:
        """initialize/get/is_initialized/close_context_engine manage one process-wide engine; initialize twice
        returns the same one. Fix: contextkit.engine's module functions."""
        assert get_context_engine() is None and not is_context_engine_initialized()
        engine = await initialize_context_engine()
        try:
            assert await initialize_context_engine() is engine
            assert get_context_engine() is engine and is_context_engine_initialized()
            await engine.add_conversation_message("single", "assistant", "content")
            assert len(await engine.get_conversation_history("single")) == 1
        finally:
            await close_context_engine()
        assert get_context_engine() is None
        await close_context_engine()

    # -- the seed's bugs, fixed -----------------------------------------------------------------------------------
    async def test_history_keeps_newest_after_cap(self) -> None:
        """After 1,200 appends with a cap of 1,000, limit=50 returns messages 1,151..1,200 in order and limit=0
        the 1,000 kept (the seed returned the oldest and trimmed the newest). Fix: append at the tail, trim the
        oldest, read the tail."""
        kit = await self.open_kit(history_cap=1000, cold=None)
        try:
            for i in range(1, 1201):
                await kit.add_conversation_message("capped", "user", f"m{i}")
            last = await kit.get_conversation_history("capped", limit=50)
            assert [m.content for m in last] == [f"m{i}" for i in range(1151, 1201)]
            assert [m.seq for m in last] == list(range(1151, 1201))
            kept = await kit.get_conversation_history("capped", limit=0)
            assert [m.content for m in kept] == [f"m{i}" for i in range(201, 1201)]
        finally:
            await self.cleanup_kit(kit)
            await kit.aclose()

    async def test_concurrent_updates_are_exact(self, kit: ContextKit) -> None:
        """1,000 concurrent update_session calls leave request_count 1000 and total_processing_time 500.0.
        Fix: atomic counter operations in the hot tier (no read-modify-write)."""
        await kit.create_session("busy", "u1")
        results = await asyncio.gather(
            *(kit.update_session("busy", increment_requests=True, add_processing_time=0.5) for _ in range(1000))
        )
        assert all(results)
        session = await kit.get_session("busy")
        assert session is not None
        assert (session.request_count, session.total_processing_time) == (1000, 500.0)

    async def test_compression_never_drops_unseen_messages(self, kit: ContextKit) -> None:
        """compress_conversation sees the whole history and keeps the newest keep_recent (the seed read 50 and
        deleted the rest). Fix: compaction reads the full stream and replaces it atomically."""
        for i in range(300):
            await kit.add_conversation_message("long", "user", f"m{i}")
        result = await kit.compress_conversation("long", config_override={"keep_recent": 10})
        assert result["success"] and (result["original_count"], result["compressed_count"]) == (300, 10)
        kept = await kit.get_conversation_history("long", limit=0)
        assert [m.content for m in kept] == [f"m{i}" for i in range(290, 300)]
        await kit.add_conversation_message("long", "user", "after")
        assert (await kit.get_conversation_history("long", limit=1))[0].content == "after"

    async def test_cleanup_removes_every_key_family(self, kit: ContextKit) -> None:
        """cleanup_expired_sessions removes the session, its history, task context, seed checkpoints and its
        conversation sessions with their streams (the seed left most of them). Fix: HotStore.delete_session."""
        await kit.create_session("old", "u1")
        await kit.add_conversation_message("old", "user", "hi")
        await kit.store_checkpoint("old", "c1", {"a": 1})
        key = await kit.create_conversation_session(
            "old", [{"id": "mc", "type": "master_controller"}, {"id": "a1", "type": "agent", "role": "r"}], "mc_to_agent"
        )
        await kit.add_agent_communication_message(key, "a1", "agent", "r", content="report")
        await kit.create_session("fresh", "u2")
        if kit.cold is not None:
            return  # read-through would bring the archived copies back; covered by the archiver tests
        removed = await kit.cleanup_expired_sessions(max_idle_hours=0)
        assert removed == 2
        assert await kit.get_session("old") is None
        assert await kit.get_conversation_history("old") == []
        assert await kit.get_task_context("old") is None
        assert await kit.get_checkpoint("old") is None
        assert await kit.get_conversation_session(key) is None
        assert await kit.get_agent_conversation_history(key) == []

    async def test_agent_history_filters_before_limit(self, kit: ContextKit) -> None:
        """get_agent_conversation_history(limit=N, message_types=[t]) returns the newest N messages of type t even
        when other types are newer (the seed filtered after the limit). Fix: filter, then take the tail."""
        key = await kit.create_conversation_session(
            "s", [{"id": "a", "type": "agent", "role": "x"}, {"id": "b", "type": "agent", "role": "y"}], "agent_to_agent"
        )
        for i in range(5):
            await kit.add_agent_communication_message(key, "a", "agent", "x", content=f"task {i}",
                                                      message_type="task_assignment")
        for i in range(10):
            await kit.add_agent_communication_message(key, "b", "agent", "y", content=f"progress {i}",
                                                      message_type="progress_update")
        rows = await kit.get_agent_conversation_history(key, limit=3, message_types=["task_assignment"])
        assert [r["content"] for r in rows] == ["task 2", "task 3", "task 4"]

    async def test_conversation_session_keys_are_unambiguous(self, kit: ContextKit) -> None:
        """Different sessions never share a key: two agents with the same role, and roles containing '_', get
        distinct keys; A-to-B and B-to-A are one conversation. Fix: conversation_session_key."""
        def agents(a: str, b: str) -> list[dict[str, str]]:
            return [{"id": a, "type": "agent", "role": "same_role"}, {"id": b, "type": "agent", "role": "same_role"}]

        k1 = await kit.create_conversation_session("s", agents("x", "y"), "agent_to_agent")
        k2 = await kit.create_conversation_session("s", agents("y", "x"), "agent_to_agent")
        k3 = await kit.create_conversation_session("s", agents("x", "z"), "agent_to_agent")
        k4 = await kit.create_conversation_session("s_x", agents("y", "z"), "agent_to_agent")
        assert k1 == k2
        assert len({k1, k3, k4}) == 3

    # -- bad input -------------------------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("session_id", "error"),
        [
            ("", errors.InvalidInput),
            ("x" * (10 * 1024 * 1024), errors.LimitExceeded),
            (123, errors.InvalidInput),
            (None, errors.InvalidInput),
            ("line\nbreak", errors.InvalidInput),
            ("\ud800", errors.InvalidInput),
        ],
    )
    async def test_bad_session_ids_are_refused(self, kit: ContextKit, session_id: Any, error: type) -> None:
        """Empty, 10 MB, non-string and control-character ids raise a typed error and store nothing.
        Fix: validation.check_id at the API edge."""
        with pytest.raises(error):
            await kit.create_session(session_id, "u1")
        with pytest.raises(error):
            await kit.add_conversation_message(session_id, "user", "x")
        assert await kit.list_all_sessions() == []

    @pytest.mark.parametrize("role", ["", "r" * 65, "bad\x00role", " user", 7])
    async def test_malformed_roles_are_refused(self, kit: ContextKit, role: Any) -> None:
        """An empty, too long, control-character or non-string role raises InvalidInput; nothing is stored.
        Fix: validation.check_role."""
        with pytest.raises(errors.InvalidInput):
            await kit.add_conversation_message("s", role, "content")
        assert await kit.get_conversation_history("s") == []

    @pytest.mark.parametrize(
        "metadata",
        [{"f": object()}, {"nan": float("nan")}, {"inf": float("inf")}, {1: "int key"}, "not a mapping", {"b": {b"raw"}}],
    )
    async def test_non_json_metadata_is_refused(self, kit: ContextKit, metadata: Any) -> None:
        """Metadata that JSON cannot represent raises InvalidInput (SerializationError) and nothing is stored.
        Fix: validation.check_metadata."""
        with pytest.raises(errors.InvalidInput):
            await kit.create_session("s", "u", metadata)
        with pytest.raises(errors.InvalidInput):
            await kit.add_conversation_message("s", "user", "c", metadata)
        assert await kit.get_session("s") is None
        assert await kit.get_conversation_history("s") == []

    async def test_deep_or_large_metadata_is_refused(self, kit: ContextKit) -> None:
        """Metadata deeper or larger than the limits raises LimitExceeded. Fix: Limits / check_metadata."""
        deep: dict[str, Any] = {}
        node = deep
        for _ in range(40):
            node["n"] = {}
            node = node["n"]
        with pytest.raises(errors.LimitExceeded):
            await kit.create_session("s", "u", deep)
        with pytest.raises(errors.LimitExceeded):
            await kit.create_session("s", "u", {"blob": "x" * 100_000})
        assert await kit.get_session("s") is None

    @pytest.mark.parametrize("message_type", ["", "Bad Type", "x" * 65, "tab\there", "1starts_with_digit"])
    async def test_malformed_message_types_are_refused(self, kit: ContextKit, message_type: str) -> None:
        """A malformed message type raises InvalidInput; custom well-formed types are accepted.
        Fix: validation.check_name."""
        key = await kit.create_conversation_session(
            "s", [{"id": "u", "type": "user"}, {"id": "a", "type": "agent", "role": "r"}], "user_to_agent"
        )
        with pytest.raises(errors.InvalidInput):
            await kit.add_agent_communication_message(key, "a", "agent", "r", content="x", message_type=message_type)
        assert await kit.get_agent_conversation_history(key) == []
        assert await kit.add_agent_communication_message(key, "a", "agent", "r", content="x", message_type="my_type")

    async def test_bad_participants_are_refused(self, kit: ContextKit) -> None:
        """Unknown participant types, agents without a role, a wrong mix for the session type, a sender who is not
        a participant and an unknown session key raise typed errors. Fix: ContextKit._participants."""
        with pytest.raises(errors.InvalidInput, match="unknown participant type"):
            await kit.create_conversation_session("s", [{"id": "x", "type": "robot"}, {"id": "u", "type": "user"}],
                                                  "user_to_agent")
        with pytest.raises(errors.InvalidInput, match="needs a role"):
            await kit.create_conversation_session("s", [{"id": "a", "type": "agent"}, {"id": "u", "type": "user"}],
                                                  "user_to_agent")
        with pytest.raises(errors.InvalidInput, match="needs participants"):
            await kit.create_conversation_session("s", [{"id": "u", "type": "user"}], "user_to_agent")
        with pytest.raises(errors.InvalidInput, match="unknown session type"):
            await kit.create_conversation_session("s", [], "user_to_everyone")
        key = await kit.create_conversation_session(
            "s", [{"id": "u", "type": "user"}, {"id": "a", "type": "agent", "role": "r"}], "user_to_agent"
        )
        with pytest.raises(errors.InvalidInput, match="not a participant"):
            await kit.add_agent_communication_message(key, "intruder", "agent", "r", content="hi")
        with pytest.raises(errors.NotFound):
            await kit.add_agent_communication_message("no-such-key", "a", "agent", "r", content="hi")

    async def test_wrong_argument_types_are_refused(self, kit: ContextKit) -> None:
        """Wrong types for counters, limits, statuses and updates raise InvalidInput before any write.
        Fix: the argument checks of update_session / get_conversation_history / end_session."""
        await kit.create_session("s", "u")
        bad_calls = [
            kit.update_session("s", increment_requests="yes"),  # type: ignore[arg-type]
            kit.update_session("s", add_processing_time=-1.0),
            kit.update_session("s", add_processing_time="1"),  # type: ignore[arg-type]
            kit.update_session("s", updates={"created_at": "x"}),
            kit.update_session("s", updates={"status": "bogus"}),
            kit.end_session("s", status="done"),
            kit.get_conversation_history("s", limit=-1),
            kit.get_conversation_history("s", limit="10"),  # type: ignore[arg-type]
            kit.store_task_context("s", ["not", "a", "context"]),  # type: ignore[arg-type]
        ]
        for call in bad_calls:
            with pytest.raises(errors.InvalidInput):
                await call
        session = await kit.get_session("s")
        assert session is not None and (session.request_count, session.status) == (0, "active")

    async def test_unknown_backend_lists_installed_and_suggests_a_name(self) -> None:
        """An unknown backend name raises BackendNotFound naming the installed backends; a typo of one gets
        "did you mean". Fix: BackendRegistry.get (the message is BackendNotFound's)."""
        with pytest.raises(errors.BackendNotFound) as info:
            ContextKit.from_config({"hot": "nosuchdb"}, env={})
        assert "memory" in str(info.value)
        with pytest.raises(errors.BackendNotFound, match="did you mean 'memory'"):
            ContextKit.from_config({"hot": "memroy"}, env={})

    async def test_unknown_session_updates_return_false(self, kit: ContextKit) -> None:
        """update_session / end_session on an unknown session return False and create nothing."""
        assert await kit.update_session("ghost", increment_requests=True) is False
        assert await kit.end_session("ghost") is False
        assert await kit.get_session("ghost") is None

    async def test_health_and_metrics_report_real_counts(self, kit: ContextKit) -> None:
        """health_check and get_metrics report the tier's counts, not per-process counters.
        Fix: HotStore.stats and ContextKit.health_check/get_metrics."""
        for n in range(3):
            await kit.create_session(f"h{n}", "u")
            await kit.add_conversation_message(f"h{n}", "user", "x")
        await kit.end_session("h0")
        health = await kit.health_check()
        assert health["status"] == "healthy" and health["issues"] == []
        assert (health["active_sessions"], health["total_messages"]) == (2, 3)
        metrics = await kit.get_metrics()
        assert (metrics["total_sessions"], metrics["active_sessions"], metrics["total_messages"]) == (3, 2, 3)
        assert metrics["storage_performance"]["avg_response_time"] > 0
