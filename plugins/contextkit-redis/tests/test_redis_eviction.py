"""A Redis that may evict keys, with the archive outbox on it (issue 15, item 6).

An evicting Redis (``maxmemory`` + ``allkeys-lru``) can drop the outbox streams under memory pressure: writes the
kit acknowledged would never reach the archive, silently. With a cold tier the store reads ``maxmemory-policy``
once at open; health is ``degraded`` with the reason (and the kit's health and ``contextkit doctor`` say it), and
``require_noeviction = true`` refuses to open. A server whose CONFIG command is renamed away reports the policy as
unknown rather than failing. Each test starts its own redis-server with the configuration it needs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.errors import ConfigError
from contextkit.stores import StoreSettings
from contextkit.testing.services.redis_servers import RedisClusterServers, RedisServer, private_redis_server
from contextkit_redis import RedisHotStore

EVICTING = ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]


def _server(extra: list[str]) -> Iterator[RedisServer]:
    with private_redis_server(extra_args=extra) as server:
        yield server


@pytest.fixture(scope="module")
def evicting_redis() -> Iterator[RedisServer]:
    """A private redis-server with maxmemory 64mb and allkeys-lru."""
    yield from _server(EVICTING)


@pytest.fixture(scope="module")
def no_config_redis() -> Iterator[RedisServer]:
    """A private, evicting redis-server whose CONFIG command is disabled (as managed services rename it)."""
    yield from _server([*EVICTING, "--rename-command", "CONFIG", ""])


def _settings(archived: bool = True) -> StoreSettings:
    return StoreSettings(namespace=f"ckevict-{uuid.uuid4().hex[:8]}", archived=archived, timeout=10.0)


async def test_an_evicting_redis_with_an_outbox_reports_degraded_health_with_the_reason(
    evicting_redis: RedisServer,
) -> None:
    store = RedisHotStore(_settings(), {"url": evicting_redis.url})
    await store.open()
    try:
        report = await store.health()
        assert report["status"] == "degraded"
        assert report["maxmemory_policy"] == "allkeys-lru"
        assert "allkeys-lru" in report["reason"] and "outbox" in report["reason"]
    finally:
        await store.aclose()


async def test_without_a_cold_tier_an_evicting_redis_is_only_reported_not_degraded(evicting_redis: RedisServer) -> None:
    """Eviction only loses archive events when there is an archive: a cache-like hot tier alone stays healthy."""
    store = RedisHotStore(_settings(archived=False), {"url": evicting_redis.url})
    await store.open()
    try:
        report = await store.health()
        assert report["status"] == "healthy"
        assert "maxmemory_policy" not in report  # not even read: nothing depends on it
    finally:
        await store.aclose()


async def test_the_kit_health_is_degraded_and_names_the_policy(evicting_redis: RedisServer) -> None:
    config = {"hot": "redis", "cold": "memory", "redis": {"url": evicting_redis.url}, "namespace": _settings().namespace}
    async with ContextKit.from_config(config, env={}) as kit:
        await kit.create_session("s1", "u1")  # the tier still serves
        health = await kit.health_check()
        assert health["status"] == "degraded"
        assert health["hot"]["status"] in ("healthy", "degraded"), health["hot"]
        assert any("maxmemory-policy is allkeys-lru" in issue for issue in health["issues"]), health["issues"]


@pytest.mark.parametrize("value", [True, "true", "1"])
async def test_require_noeviction_refuses_to_open_on_an_evicting_redis(evicting_redis: RedisServer, value: Any) -> None:
    for archived in (True, False):  # an explicit requirement holds with or without a cold tier
        store = RedisHotStore(_settings(archived), {"url": evicting_redis.url, "require_noeviction": value})
        with pytest.raises(ConfigError, match="allkeys-lru") as raised:
            await store.open()
        assert "require_noeviction" in str(raised.value)
        assert store._connected is None  # the client it built is closed, not leaked


async def test_require_noeviction_from_the_environment_refuses_the_kit(evicting_redis: RedisServer) -> None:
    env = {"REDIS_URL": evicting_redis.url, "REDIS_REQUIRE_NOEVICTION": "true", "CONTEXTKIT_COLD": "memory"}
    kit = ContextKit.from_config(None, env=env)
    with pytest.raises(ConfigError, match="maxmemory-policy is allkeys-lru"):
        await kit.open()
    await kit.aclose()


def test_a_bad_require_noeviction_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="require_noeviction"):
        RedisHotStore(_settings(), {"require_noeviction": "sometimes"})


async def test_a_noeviction_redis_is_healthy_and_require_noeviction_opens(redis_url: str) -> None:
    store = RedisHotStore(_settings(), {"url": redis_url, "require_noeviction": True})
    await store.open()  # refuses (ConfigError) unless the server's policy is noeviction, Redis's default
    try:
        report = await store.health()
        assert report["maxmemory_policy"] == "noeviction"
        assert report["status"] == "healthy"
    finally:
        await store.drop_namespace()  # the store's epoch key stays behind otherwise on the shared server
        await store.aclose()


async def test_a_renamed_config_command_reports_the_policy_as_unknown(no_config_redis: RedisServer) -> None:
    """CONFIG renamed away: the store opens, health stays up and says the policy is unknown and why; only
    require_noeviction (which cannot be verified then) refuses to open."""
    store = RedisHotStore(_settings(), {"url": no_config_redis.url})
    await store.open()
    try:
        report = await store.health()
        assert report["status"] == "healthy"
        assert report["maxmemory_policy"] == "unknown"
        assert "CONFIG" in report["maxmemory_policy_note"]
        assert "cannot be checked" in report["warning"]
    finally:
        await store.aclose()
    strict = RedisHotStore(_settings(), {"url": no_config_redis.url, "require_noeviction": True})
    with pytest.raises(ConfigError, match="refused"):
        await strict.open()


async def test_a_cluster_reports_the_policy_of_its_masters(redis_cluster: RedisClusterServers) -> None:
    store = RedisHotStore(_settings(), {"url": redis_cluster.url, "require_noeviction": True})
    await store.open()
    try:
        report = await store.health()
        assert report["maxmemory_policy"] == "noeviction" and report["status"] == "healthy"
    finally:
        await store.drop_namespace()
        await store.aclose()


def test_contextkit_doctor_shows_the_reason_and_exits_1(evicting_redis: RedisServer, tmp_path: Path) -> None:
    config = tmp_path / "ck.toml"
    config.write_text(
        f'hot = {{backend = "redis", url = "{evicting_redis.url}"}}\ncold = "memory"\n'
        f'namespace = "{_settings().namespace}"\ntimeout = 10\n'
    )
    run = [sys.executable, "-m", "contextkit.cli", "--config", str(config)]
    result = subprocess.run([*run, "--json", "doctor"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "degraded" and report["hot"]["status"] == "degraded"
    assert any("allkeys-lru" in issue for issue in report["issues"])
    table = subprocess.run([*run, "doctor"], capture_output=True, text=True, timeout=120)
    assert table.returncode == 1 and "allkeys-lru" in table.stdout and "Traceback" not in table.stderr
