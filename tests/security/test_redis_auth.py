"""The Redis hot tier against servers that demand credentials: ``requirepass`` and an ACL user held to its prefix.

Every server here is started by the tests (``conftest.py``) on a free loopback port. The ACL user may run only the
commands the tier needs and touch only keys under its prefix; the whole hot-tier conformance suite runs as that
user, which proves the command list is complete and that the tier never strays outside its namespace.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from contextkit import ContextKit
from contextkit.errors import BackendUnavailable
from contextkit.plugins import get_plugin_manager
from contextkit.stores import HotStore, StoreSettings
from contextkit.testing.hot import HotStoreSuite
from contextkit_redis import RedisHotStore

pytestmark = pytest.mark.redis

TIMEOUT = 10.0


def _kit(url: str, *, fallback: bool = False, **redis_options: Any) -> ContextKit:
    config = {
        "hot": "redis",
        "namespace": f"cksec-{uuid.uuid4().hex[:10]}",
        "timeout": TIMEOUT,
        "fallback": fallback,
        "redis": {"url": url, **redis_options},
    }
    return ContextKit.from_config(config, env={})


async def _round_trip(kit: ContextKit) -> None:
    await kit.create_session("s1", user_id="u1", metadata={"k": "v"})
    await kit.add_conversation_message("s1", "user", "hello over an authenticated connection")
    history = await kit.get_conversation_history("s1", limit=10)
    assert [m.content for m in history] == ["hello over an authenticated connection"]
    session = await kit.get_session("s1")
    assert session is not None and session.user_id == "u1"


# -- requirepass --------------------------------------------------------------------------------------------------
async def test_the_right_password_as_an_option_gives_a_working_kit(
    password_redis: Any, assert_hidden: Callable[..., None]
) -> None:
    """``password`` in the options authenticates; describe(), health_check() and reprs never show it."""
    kit = _kit(password_redis.url, password=password_redis.password)
    async with kit:
        await _round_trip(kit)
        health = await kit.health_check()
        assert health["status"] == "healthy", health
        assert health["hot"]["status"] in ("healthy", "degraded"), health["hot"]
        assert_hidden(password_redis.password, kit, kit.hot, kit.describe(), health, kit.hot.describe())
        await kit.hot.drop_namespace()  # type: ignore[attr-defined]


async def test_the_right_password_in_the_url_gives_a_working_kit(password_redis: Any, assert_hidden: Callable[..., None]) -> None:
    """``redis://:<password>@host`` authenticates too, and the URL is shown masked."""
    port = password_redis.server.port
    kit = _kit(f"redis://:{password_redis.password}@127.0.0.1:{port}/0")
    async with kit:
        await _round_trip(kit)
        health = await kit.health_check()
        assert health["status"] == "healthy", health
        assert_hidden(password_redis.password, kit, kit.hot, kit.describe(), health)
        await kit.hot.drop_namespace()  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["wrong password option", "wrong password in url", "no password"])
async def test_a_wrong_or_missing_password_raises_backend_unavailable_without_the_password(
    password_redis: Any, how: str, assert_hidden: Callable[..., None]
) -> None:
    """With fallback off, opening fails with BackendUnavailable; neither password is in the error or describe()."""
    wrong = "wrong-" + uuid.uuid4().hex
    port = password_redis.server.port
    if how == "wrong password option":
        kit = _kit(password_redis.url, password=wrong)
    elif how == "wrong password in url":
        kit = _kit(f"redis://:{wrong}@127.0.0.1:{port}/0")
    else:
        kit = _kit(password_redis.url)
    with pytest.raises(BackendUnavailable) as caught:
        await kit.open()
    try:
        message = str(caught.value)
        assert "redis" in message
        assert_hidden(wrong, caught.value, message, kit.describe(), kit, kit.hot)
        assert_hidden(password_redis.password, caught.value, message, kit.describe())
        # the cause chain is cut (raise ... from None), so a traceback cannot carry the driver's message either
        assert caught.value.__cause__ is None
    finally:
        await kit.aclose()


async def test_a_wrong_password_with_fallback_on_degrades_without_showing_it(
    password_redis: Any, assert_hidden: Callable[..., None]
) -> None:
    """The default fallback runs on the memory tier; the degraded reason and health name no password."""
    wrong = "wrong-" + uuid.uuid4().hex
    kit = _kit(password_redis.url, fallback=True, password=wrong)
    async with kit:
        assert kit.degraded is not None
        assert kit.hot.name == "memory"
        await _round_trip(kit)
        health = await kit.health_check()
        assert health["status"] == "degraded"
        assert_hidden(wrong, kit.degraded, health, kit.describe(), kit)


async def test_a_password_rotated_mid_run_gives_typed_secret_free_errors_and_recovers(
    password_redis: Any, assert_hidden: Callable[..., None]
) -> None:
    """After the server's password changes, calls fail with BackendUnavailable (no secret shown); they work again
    once the kit's password is valid again."""
    kit = _kit(password_redis.url, password=password_redis.password)
    store = None
    async with kit:
        store = kit.hot
        await kit.create_session("s1", user_id="u1")
        admin = aioredis.Redis(port=password_redis.server.port, password=password_redis.password)
        try:
            # Rotate the password and drop the kit's pooled connections: its next connection presents a stale one.
            await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await admin.config_set("requirepass", password_redis.password + "-rotated")
            with pytest.raises(BackendUnavailable) as caught:
                await kit.get_session("s1")
            assert_hidden(password_redis.password, caught.value, kit.describe())
            health = await kit.health_check()
            assert health["status"] == "unhealthy"
            assert_hidden(password_redis.password, health)
        finally:
            await admin.config_set("requirepass", password_redis.password)
            await admin.aclose()
        assert await kit.get_session("s1") is not None  # recovers once the password is valid again
        await store.drop_namespace()  # type: ignore[attr-defined]


# -- ACL user limited to the key prefix ------------------------------------------------------------------------------
class TestHotStoreSuiteAsAclUser(HotStoreSuite):
    """The whole hot-tier conformance suite as an ACL user that may touch only ``ckacl*`` keys.

    The user has exactly the commands in ``conftest.REDIS_TIER_COMMANDS``; a NOPERM reply (a command missing from
    the list, or a key outside the prefix) surfaces as BackendUnavailable and fails the test that hit it.
    """

    namespace_prefix = "ckacl"

    @pytest.fixture(autouse=True)
    def _target(self, acl_redis: Any) -> None:
        self.acl = acl_redis

    async def make_store(self, settings: StoreSettings) -> HotStore:
        """Built through the registered factory with the ACL user's name and password, then opened."""
        factory = get_plugin_manager().backends.get("hot", "redis").factory
        options = {"url": self.acl.url, "username": self.acl.user, "password": self.acl.password, "max_connections": 20}
        store: HotStore = factory(settings, options)
        await store.open()
        return store

    async def cleanup_store(self, store: HotStore) -> None:
        """Remove the test's namespace as the ACL user itself (SCAN + UNLINK stay inside the prefix)."""
        assert isinstance(store, RedisHotStore)
        if store._connected is not None:
            await store.drop_namespace()

    async def test_the_acl_user_cannot_touch_a_key_outside_its_prefix(self, store: HotStore) -> None:
        """A direct call as the same user on a key outside ``ckacl*`` gets NOPERM: the limit is real."""
        client = aioredis.Redis(port=self.acl.server.port, username=self.acl.user, password=self.acl.password)
        try:
            with pytest.raises(NoPermissionError):
                await client.set("other-app:secret", "x")
            with pytest.raises(NoPermissionError):
                await client.get("other-app:secret")
            with pytest.raises(NoPermissionError):
                await client.hset("ckac", "f", "v")  # one character short of the prefix
            assert await client.set(f"{self.acl.prefix}-probe", "ok")
            await client.unlink(f"{self.acl.prefix}-probe")
        finally:
            await client.aclose()

    async def test_the_acl_user_cannot_run_dangerous_commands(self, store: HotStore) -> None:
        """The user the tier runs as cannot flush, reconfigure or list every key of the server."""
        client = aioredis.Redis(port=self.acl.server.port, username=self.acl.user, password=self.acl.password)
        try:
            for command in (("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "GET", "*"), ("ACL", "LIST"), ("SCRIPT", "FLUSH")):
                with pytest.raises(NoPermissionError):
                    await client.execute_command(*command)
        finally:
            await client.aclose()

    async def test_the_archive_outbox_on_redis_works_as_the_acl_user(self, store: HotStore, tmp_path: Any) -> None:
        """With a cold tier, events wait in the tier's Redis stream outbox (XADD, lease scripts, XRANGE, XDEL) under
        the user's prefix, and reach the archive."""
        namespace = f"{self.acl.prefix}-outbox-{uuid.uuid4().hex[:8]}"
        config = {
            "hot": "redis",
            "cold": "sqlite",
            "namespace": namespace,
            "timeout": TIMEOUT,
            "fallback": False,
            "redis": {"url": self.acl.url, "username": self.acl.user, "password": self.acl.password},
            "sqlite": {"path": str(tmp_path / "archive.sqlite3")},
        }
        async with ContextKit.from_config(config, env={}) as kit:
            assert kit.archiver is not None
            assert "outbox" in kit.hot.capabilities
            assert type(kit.archiver.outbox).__name__ == "RedisStreamOutbox"
            await _round_trip(kit)
            assert await kit.archiver.flush(30), await kit.archiver.metrics()
            assert kit.cold is not None
            assert await kit.cold.count_events("context_conversations", "s1") == 1
            assert (await kit.archiver.metrics())["failures"] == 0
            await kit.hot.drop_namespace()  # type: ignore[attr-defined]

    async def test_a_kit_runs_every_operation_as_the_acl_user(self, store: HotStore) -> None:
        """Beyond the store contract: the kit's API (tasks, agents, seed checkpoints, health) as the same user."""
        namespace = f"{self.acl.prefix}-kit-{uuid.uuid4().hex[:8]}"
        config = {
            "hot": "redis",
            "namespace": namespace,
            "timeout": TIMEOUT,
            "fallback": False,
            "redis": {"url": self.acl.url, "username": self.acl.user, "password": self.acl.password},
        }
        async with ContextKit.from_config(config, env={}) as kit:
            await _round_trip(kit)
            assert await kit.update_session("s1", {"metadata": {"step": 2}}, increment_requests=True, add_processing_time=0.5)
            assert await kit.store_task_context("s1", {"user_id": "u1", "chat_id": "s1", "metadata": {"mode": "acl"}})
            assert (await kit.get_task_context("s1")) is not None
            key = await kit.create_conversation_session(
                "s1",
                [{"id": "a1", "type": "agent", "role": "planner"}, {"id": "a2", "type": "agent", "role": "coder"}],
                "agent_to_agent",
            )
            assert await kit.add_agent_communication_message(
                key, "a1", "agent", "planner", "a2", "agent", "coder", "do it", "task_assignment"
            )
            assert len(await kit.get_agent_conversation_history(key)) == 1
            assert await kit.store_checkpoint("th1", "c1", {"v": 1}, {"step": 1})
            assert await kit.put_writes("th1", "c1", "task-1", [("messages", ["x"])])
            assert (await kit.get_checkpoint("th1", "c1")) is not None
            assert len(await kit.get_writes("th1", "c1")) == 1
            assert await kit.end_session("s1")
            assert [s.session_id for s in await kit.list_all_sessions()] == ["s1"]
            assert await kit.cleanup_expired_sessions(max_idle_hours=1000) == 0
            health = await kit.health_check()
            assert health["status"] == "healthy", health
            assert health["hot"]["prefix_keys"] > 0
            assert self.acl.password not in repr(health)
            if "checkpoints" in kit.hot.capabilities:
                saver = kit.checkpointer()
                config_lg = {"configurable": {"thread_id": "lg1", "checkpoint_ns": ""}}
                from langgraph.checkpoint.base import empty_checkpoint

                checkpoint = empty_checkpoint()
                await saver.aput(config_lg, checkpoint, {"source": "input", "step": -1}, {})
                assert (await saver.aget_tuple(config_lg)) is not None
            await kit.hot.drop_namespace()  # type: ignore[attr-defined]
