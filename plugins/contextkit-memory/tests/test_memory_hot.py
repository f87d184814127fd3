"""Behaviour of the memory hot tier beyond the shared suite: clock-driven TTLs, bounded memory, max_sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from contextkit.errors import ConfigError, LimitExceeded
from contextkit.plugins import get_plugin_manager
from contextkit.stores import Capability, SessionUpdate, StoreSettings
from contextkit.testing.hot import make_message, make_session
from contextkit_memory.checkpoints import MemoryCheckpoints
from contextkit_memory.hot import MemoryHotStore


class FakeClock:
    """A clock the test moves by hand (epoch seconds)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def build(clock: FakeClock, **settings: Any) -> MemoryHotStore:
    options: dict[str, Any] = {"clock": clock}
    if "max_sessions" in settings:
        options["max_sessions"] = settings.pop("max_sessions")
    return MemoryHotStore.from_options(StoreSettings(namespace="t", **settings), options)


async def test_every_family_of_a_session_expires_together_when_the_clock_passes_the_ttl() -> None:
    clock = FakeClock()
    store = build(clock, session_ttl=60.0)
    conv_key = "mc_to_agent/s1/agent"
    await store.put_session(make_session("s1"))
    await store.append_messages("s1", [make_message("m")])
    await store.put_task_context("s1", {"a": 1})
    await store.put_conversation_session(conv_key, {"session_id": "s1"})
    await store.append_messages(conv_key, [make_message("agent")])

    clock.advance(59)
    assert await store.get_session("s1") is not None
    assert await store.update_session("s1", SessionUpdate(activity=make_session("s1").created_at)) is not None
    clock.advance(59)  # 118 s after creation, 59 s after the last activity
    assert await store.get_session("s1") is not None
    assert await store.history_length(conv_key) == 1

    clock.advance(2)
    assert await store.get_session("s1") is None
    assert await store.read_history("s1", None) == []
    assert await store.get_task_context("s1") is None
    assert await store.get_conversation_session(conv_key) is None
    assert await store.read_history(conv_key, None) == []
    stats = await store.stats()
    assert (stats.sessions, stats.messages) == (0, 0)


async def test_a_conversation_stream_written_before_registration_follows_its_session_ttl() -> None:
    clock = FakeClock()
    store = build(clock, session_ttl=60.0)
    conv_key = "agent_to_agent/s1/a/b"
    await store.append_messages(conv_key, [make_message("early")])
    clock.advance(50)
    await store.put_session(make_session("s1"))
    await store.put_conversation_session(conv_key, {"session_id": "s1"})
    clock.advance(50)  # the stream's own deadline (60 s) has passed; the session's (110 s) has not
    await store.put_session(make_session("other"))  # a write runs the bounded sweep
    assert await store.history_length(conv_key) == 1
    clock.advance(11)
    assert await store.history_length(conv_key) == 0


async def test_checkpoint_documents_use_the_checkpoint_ttl_not_the_session_ttl() -> None:
    clock = FakeClock()
    store = build(clock, session_ttl=10.0, checkpoint_ttl=100.0)
    await store.put_session(make_session("s1"))
    await store.put_checkpoint_document("s1", "cp1", {"n": 1})
    await store.put_writes_document("s1", "cp1", "task", [1])
    clock.advance(50)
    assert await store.get_session("s1") is None
    assert await store.get_checkpoint_document("s1", None) == {"n": 1}
    clock.advance(51)
    assert await store.get_checkpoint_document("s1", None) is None
    assert await store.get_writes_documents("s1", "cp1") == []


async def test_memory_stays_bounded_when_many_sessions_expire_without_being_read() -> None:
    clock = FakeClock()
    store = build(clock, session_ttl=30.0)
    for i in range(2000):
        sid = f"old-{i}"
        await store.put_session(make_session(sid))
        await store.append_messages(sid, [make_message("x" * 100)])
        await store.put_checkpoint_document(sid, "cp", {"i": i})
    clock.advance(10_000)  # past the session TTL; checkpoint threads (a week) stay
    for i in range(200):
        await store.put_session(make_session(f"new-{i}"))
    # Nothing read the old sessions: the bounded sweep on each write removed them.
    assert len(store._sessions) == 200
    assert len(store._streams) == 0
    assert len(store._deadlines) == 200
    assert len(store._session_ids) == 200
    assert len(store._by_activity) == 200
    assert store._message_count == 0
    assert store._message_bytes == 0
    assert len(store._threads) == 2000  # checkpoint threads live for checkpoint_ttl
    clock.advance(StoreSettings().checkpoint_ttl)
    for i in range(200):
        await store.put_session(make_session(f"newer-{i}"))
    assert len(store._threads) == 0
    assert (await store.health())["items"] == 200


async def test_max_sessions_refuses_new_sessions_instead_of_evicting() -> None:
    clock = FakeClock()
    store = build(clock, session_ttl=60.0, max_sessions=3)
    for sid in ("a", "b", "c"):
        await store.put_session(make_session(sid))
    with pytest.raises(LimitExceeded, match="max_sessions"):
        await store.put_session(make_session("d"))
    assert await store.get_session("d") is None
    assert [s.session_id for s in (await store.scan_sessions(None, 10))[0]] == ["a", "b", "c"]
    await store.put_session(make_session("a", status="completed"))  # replacing an existing one is allowed
    await store.delete_session("b")
    await store.put_session(make_session("d"))
    clock.advance(61)  # expired sessions do not count against the limit
    for sid in ("e", "f", "g"):
        await store.put_session(make_session(sid))
    assert (await store.stats()).sessions == 3


async def test_idle_sessions_skips_sessions_that_already_expired() -> None:
    clock = FakeClock()
    store = build(clock, session_ttl=60.0)
    created = make_session("x").created_at
    await store.put_session(make_session("expired", last_activity=created - timedelta(hours=2)))
    clock.advance(30)
    await store.put_session(make_session("idle", last_activity=created - timedelta(hours=1)))
    clock.advance(31)
    assert await store.idle_sessions(created, 10) == ["idle"]
    assert await store.get_session("expired") is None


async def test_stats_memory_estimate_grows_with_content() -> None:
    store = build(FakeClock())
    before = (await store.stats()).memory_bytes
    await store.put_session(make_session("s1"))
    await store.append_messages("s1", [make_message("x" * 10_000)])
    after = (await store.stats()).memory_bytes
    assert after - before >= 10_000
    await store.delete_session("s1")
    assert (await store.stats()).memory_bytes == before


async def test_factory_rejects_unknown_or_invalid_options() -> None:
    settings = StoreSettings()
    with pytest.raises(ConfigError, match="unknown memory tier options"):
        MemoryHotStore.from_options(settings, {"max_sesions": 3})
    with pytest.raises(ConfigError, match="max_sessions"):
        MemoryHotStore.from_options(settings, {"max_sessions": 0})
    with pytest.raises(ConfigError, match="clock"):
        MemoryHotStore.from_options(settings, {"clock": 5})


def test_plugin_registers_the_memory_hot_and_cold_tiers() -> None:
    backends = get_plugin_manager().backends
    hot = backends.get("hot", "memory")
    cold = backends.get("cold", "memory")
    assert isinstance(hot.factory(StoreSettings(), {}), MemoryHotStore)
    assert cold.plugin == hot.plugin == "memory"


def test_checkpoints_capability_follows_the_checkpoint_mixin() -> None:
    store = build(FakeClock())
    assert Capability.TTL.value in store.capabilities
    assert Capability.DURABLE.value not in store.capabilities
    assert (Capability.CHECKPOINTS.value in store.capabilities) == hasattr(MemoryCheckpoints, "cp_put")
    assert isinstance(store, MemoryCheckpoints)
    assert store.settings.namespace == "t"


def test_describe_reports_backend_namespace_and_cap() -> None:
    store = build(FakeClock(), history_cap=7, max_sessions=9)
    described = store.describe()
    assert described["backend"] == "memory"
    assert described["namespace"] == "t"
    assert described["history_cap"] == 7
    assert described["max_sessions"] == 9
