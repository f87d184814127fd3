"""The kit over Redis: the engine scenarios, the fallback to memory, and recovery after an outage mid-run."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from contextkit import BackendUnavailable, ContextEngine, ContextKit
from contextkit.testing.engine import EngineSuite
from contextkit.testing.services import free_port, missing_service
from contextkit.testing.services.redis_servers import RedisServer, redis_binaries


class TestRedisEngine(EngineSuite):
    """Every engine scenario (the seed's examples, fixed bugs, bad input) on the machine's Redis."""

    @pytest.fixture(autouse=True)
    def _url(self, redis_url: str) -> None:
        self.url = redis_url

    def kit_config(self) -> dict[str, Any]:
        return {"hot": {"backend": "redis", "url": self.url}}


async def test_unreachable_redis_at_start_raises_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A wrong Redis URL fails loudly: ``fallback`` is off unless asked for, so opening raises BackendUnavailable
    (the configuration exactly as a user writes it; environment and files that could set fallback kept out)."""
    monkeypatch.delenv("CONTEXTKIT_FALLBACK", raising=False)
    monkeypatch.delenv("CONTEXTKIT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    kit = ContextKit.from_config({"hot": "redis", "redis": {"url": "redis://127.0.0.1:1"}})
    assert kit.config.fallback is False
    with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1\b"):
        await kit.open()


async def test_unreachable_redis_with_fallback_on_runs_on_memory_and_reports_degraded() -> None:
    """``fallback = true`` opts in: the kit runs on the memory tier, health "degraded" with the reason, no secret."""
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    kit = ContextKit.from_config({"hot": {"backend": "redis", "url": url}, "timeout": 0.5, "fallback": True}, env={})
    async with kit:
        assert kit.hot.name == "memory"
        await kit.create_session("s", "u")
        health = await kit.health_check()
        assert health["status"] == "degraded"
        assert health["storage_backend"] == "memory"
        assert any("unreachable" in issue for issue in health["issues"])
        assert "s3cret-pw" not in repr(health) and "s3cret-pw" not in repr(kit.describe())


async def test_seed_engine_initialize_returns_false_on_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's facade keeps the seed's behaviour: Redis unreachable, it runs on memory and says so."""
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("CONTEXTKIT_TIMEOUT", "0.5")
    monkeypatch.delenv("CONTEXTKIT_FALLBACK", raising=False)
    engine = ContextEngine(use_existing_redis=True)
    assert engine.config.fallback is True
    assert await engine.initialize() is False
    assert engine.redis_client is None
    await engine.close()


async def test_seed_engine_with_fallback_off_in_the_environment_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """CONTEXTKIT_FALLBACK=false turns the facade's fallback off too (the environment beats its default)."""
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("CONTEXTKIT_TIMEOUT", "0.5")
    monkeypatch.setenv("CONTEXTKIT_FALLBACK", "false")
    engine = ContextEngine(use_existing_redis=True)
    with pytest.raises(BackendUnavailable):
        await engine.initialize()


async def test_seed_engine_exposes_the_live_redis_client(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("CONTEXTKIT_NAMESPACE", "ckt-client-check")
    engine = ContextEngine(use_existing_redis=True)
    assert await engine.initialize() is True
    try:
        assert await engine.redis_client.ping()
    finally:
        await engine.close()


async def test_outage_mid_run_raises_within_timeout_and_recovers() -> None:
    if redis_binaries() is None:
        missing_service("redis-server", "redis-server is not on PATH")
    server = RedisServer().start()
    try:
        kit = ContextKit.from_config({"hot": {"backend": "redis", "url": server.url}, "timeout": 1.0}, env={})
        async with kit:
            await kit.create_session("s", "u")
            server.kill()
            with pytest.raises(BackendUnavailable):
                await asyncio.wait_for(kit.add_conversation_message("s", "user", "lost?"), timeout=5)
            assert (await kit.health_check())["status"] == "unhealthy"
            server.restart()
            assert await kit.add_conversation_message("s", "user", "back")
            assert (await kit.health_check())["status"] == "healthy"
    finally:
        server.stop()
