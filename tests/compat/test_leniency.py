"""The original's leniencies in the facade (the native kit stays strict); metrics; configuration."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from contextkit import ContextKit, errors
from contextkit.compat import (
    ContextEngine,
    close_context_engine,
    get_context_engine,
    initialize_context_engine,
    reset_context_engine,
)


async def test_update_session_ignores_unknown_keys_and_takes_any_status(engine: ContextEngine) -> None:
    await engine.create_session("s1", "u1")
    assert await engine.update_session("s1", {"status": "paused", "not_a_field": 1}, increment_requests=True)
    session = await engine.get_session("s1")
    assert session is not None and session.status == "paused" and session.request_count == 1
    assert await engine.end_session("s1", status="archived_by_app")
    ended = await engine.get_session("s1")
    assert ended is not None and ended["status"] == "archived_by_app"
    assert await engine.update_session("missing", {"status": "x"}) is False


async def test_the_native_kit_stays_strict(engine: ContextEngine) -> None:
    await engine.create_session("s1", "u1")
    engine._seed_leniency = False  # the native kit's rules, on the same store
    try:
        with pytest.raises(errors.InvalidInput):
            await ContextKit.update_session(engine, "s1", {"not_a_field": 1})
        with pytest.raises(errors.InvalidInput):
            await ContextKit.update_session(engine, "s1", {"status": "paused"})
        with pytest.raises(errors.NotFound):
            await ContextKit.add_agent_communication_message(engine, "nobody", "a1", "agent", "r", content="x")
    finally:
        engine._seed_leniency = True
    assert ContextKit._seed_leniency is False


async def test_agent_messages_to_unknown_keys_and_from_non_participants(engine: ContextEngine) -> None:
    assert await engine.add_agent_communication_message("no-such-key", "a1", "agent", "r", None, None, None, "hi")
    assert [r["content"] for r in await engine.get_agent_conversation_history("no-such-key")] == ["hi"]
    key = await engine.create_conversation_session(
        "s1", [{"id": "mc", "type": "master_controller"}, {"id": "a1", "type": "agent", "role": "writer"}], "mc_to_agent"
    )
    assert await engine.add_agent_communication_message(key, "outsider", "agent", "spy", "a1", "agent", "writer", "psst")
    [row] = await engine.get_agent_conversation_history(key)
    assert row["metadata"]["sender_id"] == "outsider"


async def test_get_metrics_has_redis_connected(engine: ContextEngine, tier_config: dict[str, Any]) -> None:
    metrics = await engine.get_metrics()
    assert metrics["redis_connected"] is (tier_config["hot"] == "redis")


async def test_initialize_context_engine_takes_the_original_positional_parameter(tier_config: dict[str, Any]) -> None:
    reset_context_engine()
    try:
        engine = await initialize_context_engine(True, config=tier_config, env={})
        assert engine.use_existing_redis is True and get_context_engine() is engine
        assert await initialize_context_engine(False) is engine  # idempotent, as the original
    finally:
        drop = getattr(engine.hot, "drop_namespace", None)
        if drop is not None:
            await drop()
        await close_context_engine()


async def test_unknown_permanent_backend_warns_and_runs_without_archive(caplog: pytest.LogCaptureFixture) -> None:
    reset_context_engine()
    env = {"CONTEXTKIT_HOT": "memory", "CONTEXT_PERMANENT_BACKEND": "mysql"}
    try:
        with caplog.at_level(logging.WARNING, logger="contextkit.compat"):
            engine = await initialize_context_engine(env=env)
        assert engine.cold is None and engine.archiver is None
        assert any("mysql" in r.getMessage() for r in caplog.records)
        await engine.create_session("s1", "u1")
    finally:
        await close_context_engine()
    with pytest.raises(errors.BackendNotFound):
        ContextKit.from_config(env=env)  # the native kit refuses the unknown name


def test_a_bare_engine_does_not_read_the_cold_tier_variables() -> None:
    env = {
        "CONTEXTKIT_HOT": "memory",
        "CONTEXT_PERMANENT_BACKEND": "postgres",
        "CONTEXT_PG_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "CLICKHOUSE_ENABLED": "true",
    }
    assert ContextEngine(env=env).cold is None
    # initialize_context_engine() reads them (as the original's backend factory did); nothing connects here.
    chosen = ContextEngine(env=env, read_cold_env=True).cold
    assert chosen is not None and chosen.name == "postgres"
    legacy = ContextEngine(env={"CONTEXTKIT_HOT": "memory", "CLICKHOUSE_ENABLED": "true"}, read_cold_env=True).cold
    assert legacy is not None and legacy.name == "clickhouse"


def test_the_engine_prefers_redis_only_when_nothing_else_picks_the_hot_tier(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's "Redis first" is the lowest layer: a contextkit.toml, CONTEXTKIT_HOT or an argument that picks
    another hot tier wins (the file was overridden before), and REDIS_HOST is not hidden behind a default URL."""
    assert ContextEngine(env={}).config.hot == "redis"
    assert ContextEngine(env={"REDIS_HOST": "10.0.0.1"}).config.hot_options == {"host": "10.0.0.1"}
    db = tmp_path / "hot.db"
    env = {"CONTEXTKIT_HOT": "sqlite", "CONTEXTKIT_HOT_URL": f"sqlite:///{db}"}
    assert ContextEngine(env=env).config.hot == "sqlite"
    assert ContextEngine(config={"hot": "memory"}, env={}).config.hot == "memory"
    (tmp_path / "contextkit.toml").write_text(f'hot = "sqlite"\n[sqlite]\npath = "{db}"\n')
    monkeypatch.chdir(tmp_path)
    assert ContextEngine(env={}).config.hot == "sqlite"
