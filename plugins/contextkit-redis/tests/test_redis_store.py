"""Behaviour of the Redis hot tier beyond the shared suite: outages, exact counters across processes' pools,
hostile ids against the whole keyspace, cluster detection, secrets, ownership of a caller's client."""

from __future__ import annotations

import asyncio
import signal
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from contextkit.errors import BackendUnavailable, ConfigError
from contextkit.plugins import get_plugin_manager
from contextkit.stores import SessionUpdate, StoreSettings
from contextkit.testing.hot import HOSTILE_IDS, make_message, make_session
from contextkit.testing.services import free_port
from contextkit.testing.services.redis_servers import RedisClusterServers, RedisServer
from contextkit_redis import RedisHotStore
from contextkit_redis.keys import KeyLayout

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def settings(namespace: str | None = None, **overrides: Any) -> StoreSettings:
    return StoreSettings(namespace=namespace or f"ckredis-t-{uuid.uuid4().hex[:10]}", **overrides)


async def opened(url: str, namespace: str | None = None, **options: Any) -> RedisHotStore:
    timeout = options.pop("timeout", 5.0)
    store = RedisHotStore.from_options(settings(namespace, timeout=timeout), {"url": url, **options})
    await store.open()
    return store


async def all_keys(url: str) -> list[str]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        return [key async for key in client.scan_iter(count=1000)]
    finally:
        await client.aclose()


# -- registration -------------------------------------------------------------------------------------------------
def test_the_entry_point_registers_the_redis_hot_tier() -> None:
    info = get_plugin_manager().backends.get("hot", "redis")
    assert isinstance(info.factory(settings(), {}), RedisHotStore)
    assert "Redis" in info.description


def test_the_factory_does_no_io_and_validates_options() -> None:
    store = RedisHotStore.from_options(settings(), {"url": "redis://127.0.0.1:1/0"})  # nothing listens on port 1
    assert store.describe()["cluster"] is None
    with pytest.raises(ConfigError, match="unknown redis option"):
        RedisHotStore.from_options(settings(), {"urll": "redis://x"})
    with pytest.raises(ConfigError, match="redis url must start"):
        RedisHotStore.from_options(settings(), {"url": "http://x"})
    # braces (a hash tag), ':' and '%' in a namespace are percent-encoded in the key prefix, never taken as they are
    assert RedisHotStore.from_options(settings("bad{ns}:x%"), {}).keys.prefix == "bad%7Bns%7D%3Ax%25:"
    with pytest.raises(ConfigError, match="non-empty"):
        RedisHotStore.from_options(StoreSettings(namespace=""), {})


# -- outages --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
async def test_a_killed_server_raises_backend_unavailable_and_the_same_store_recovers_after_restart() -> None:
    server = RedisServer().start()
    store = None
    try:
        store = await opened(server.url, timeout=1.0)
        await store.put_session(make_session("s1"))
        await store.append_messages("s1", [make_message("before")])

        server.kill()
        # each call must fail fast with the typed error, never hang (the outer bound only guards the test run)
        calls = [
            store.get_session("s1"),
            store.update_session("s1", SessionUpdate(activity=T0, requests=1)),
            store.append_messages("s1", [make_message("during")]),
            store.read_history("s1", 10),
            store.stats(),
        ]
        for call in calls:
            with pytest.raises(BackendUnavailable):
                await asyncio.wait_for(call, 5.0)
        report = await store.health()
        assert report["status"] == "unhealthy"

        server.restart()  # same port, empty data (no persistence), empty script cache
        await store.put_session(make_session("s1"))
        updated = await store.update_session("s1", SessionUpdate(activity=T0, requests=2))
        assert updated is not None
        assert updated.request_count == 2
        [message] = await store.append_messages("s1", [make_message("after")])
        assert message.seq == 1
        assert (await store.health())["status"] == "healthy"
    finally:
        if store is not None:
            await store.aclose()
        server.stop()


@pytest.mark.slow
async def test_a_frozen_server_times_out_with_backend_unavailable() -> None:
    server = RedisServer().start()
    store = None
    try:
        store = await opened(server.url, timeout=0.5)
        await store.put_session(make_session("s1"))
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(BackendUnavailable, match=r"no reply|Timeout"):
                await asyncio.wait_for(store.get_session("s1"), 5.0)
        finally:
            server.process.send_signal(signal.SIGCONT)
        session = await store.get_session("s1")
        assert session is not None
    finally:
        if store is not None:
            await store.aclose()
        server.stop()


async def test_open_raises_backend_unavailable_without_the_password() -> None:
    port = free_port()  # nothing listens there
    store = RedisHotStore.from_options(settings(timeout=1.0), {"url": f"redis://user:s3cr3t-pw@127.0.0.1:{port}/0"})
    with pytest.raises(BackendUnavailable) as caught:
        await asyncio.wait_for(store.open(), 5.0)
    assert "s3cr3t-pw" not in str(caught.value)
    assert "***" in str(caught.value)
    assert "s3cr3t-pw" not in repr(store)
    assert "s3cr3t-pw" not in str(store.describe())
    assert "s3cr3t-pw" not in str(await store.health())


async def test_a_password_protected_server_keeps_the_password_out_of_every_report() -> None:
    server = RedisServer(extra_args=["--requirepass", "pw-9f3b"]).start()
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await opened(f"redis://:wrong-77a@127.0.0.1:{server.port}/0", timeout=1.0)
        assert "wrong-77a" not in str(caught.value)
        store = await opened(f"redis://:pw-9f3b@127.0.0.1:{server.port}/0")
        try:
            await store.put_session(make_session("s1"))
            for text in (repr(store), str(store.describe()), str(await store.health())):
                assert "pw-9f3b" not in text
            assert (await store.health())["status"] == "healthy"
        finally:
            await store.aclose()
        by_host = RedisHotStore.from_options(settings(), {"host": "127.0.0.1", "port": server.port, "password": "pw-9f3b"})
        await by_host.open()
        try:
            assert "pw-9f3b" not in str(by_host.describe())
            assert await by_host.get_session("nothing") is None
        finally:
            await by_host.aclose()
    finally:
        server.stop()


# -- exact counters across separate pools -------------------------------------------------------------------------
@pytest.mark.redis
async def test_1000_concurrent_increments_over_4_stores_with_separate_pools_are_exact(redis_url: str) -> None:
    namespace = f"ckredis-t-{uuid.uuid4().hex[:10]}"
    stores = [await opened(redis_url, namespace, max_connections=10) for _ in range(4)]
    try:
        assert len({id(s.client.connection_pool) for s in stores}) == 4
        await stores[0].put_session(make_session("shared"))

        async def bump(i: int) -> None:
            update = SessionUpdate(activity=T0 + timedelta(milliseconds=i), requests=1, processing_time=0.5)
            assert await stores[i % 4].update_session("shared", update) is not None

        await asyncio.gather(*(bump(i) for i in range(1000)))
        final = await stores[3].get_session("shared")
        assert final is not None
        assert final.request_count == 1000
        assert final.total_processing_time == 500.0
        assert final.last_activity == T0 + timedelta(milliseconds=999)
    finally:
        await stores[0].drop_namespace()
        for store in stores:
            await store.aclose()


# -- hostile ids ----------------------------------------------------------------------------------------------------
async def test_hostile_ids_never_collide_and_every_key_stays_under_the_prefix(private_redis: RedisServer) -> None:
    store = await opened(private_redis.url, "ckredis-hostile")
    other = await opened(private_redis.url, "ckredis-hostile2")
    try:
        layout = KeyLayout("ckredis-hostile")
        session_key = layout.owner("s1").session
        ids = [*HOSTILE_IDS, "a}b{", "\u00e9" * 1024, session_key, layout.index(0).by_id, "ckredis-hostile2:x"]
        for index, sid in enumerate(ids):
            await store.put_session(make_session(sid, request_count=index))
            await store.append_messages(sid, [make_message(f"m-{index}")])
            await store.put_task_context(sid, {"i": index})
            await store.put_checkpoint_document(sid, "cp", {"i": index})
            await store.put_writes_document(sid, "cp", "task", [{"i": index}])
            await store.put_conversation_session(f"mc_to_agent/{sid}", {"session_id": sid, "i": index})
        await other.put_session(make_session("s1"))
        for index, sid in enumerate(ids):
            session = await store.get_session(sid)
            assert session is not None
            assert session.request_count == index
            assert [m.content for m in await store.read_history(sid, None)] == [f"m-{index}"]
            assert await store.get_task_context(sid) == {"i": index}
            assert await store.get_checkpoint_document(sid, None) == {"i": index}
            assert await store.get_writes_documents(sid, "cp") == [("task", {"i": index})]
            assert await store.get_conversation_session(f"mc_to_agent/{sid}") == {"session_id": sid, "i": index}
        assert (await other.stats()).sessions == 1

        keys = await all_keys(private_redis.url)
        assert keys
        outside = [k for k in keys if not k.startswith(("ckredis-hostile:", "ckredis-hostile2:"))]
        assert outside == []
        # an id that equals another's key got its own keys: every owner key is tagged with an encoded id
        assert all(k.count("{") == 1 and k.count("}") == 1 for k in keys)

        for sid in ids:
            assert await store.delete_session(sid) is True
        assert await store.get_session("s1") is None
        assert await other.get_session("s1") is not None
        left = [k for k in await all_keys(private_redis.url) if k.startswith("ckredis-hostile:")]
        # only index/stats keys may remain (their counters were brought back to zero)
        assert all(":#index:" in k for k in left), left
        stats = await store.stats()
        assert (stats.sessions, stats.active_sessions, stats.messages, stats.checkpoints) == (0, 0, 0, 0)
    finally:
        await store.drop_namespace()
        await other.drop_namespace()
        await store.aclose()
        await other.aclose()


# -- index maintenance ----------------------------------------------------------------------------------------------
@pytest.mark.redis
async def test_expired_sessions_leave_the_idle_index_when_met(redis_url: str) -> None:
    store = RedisHotStore.from_options(settings(session_ttl=0.2), {"url": redis_url})
    await store.open()
    try:
        await store.put_session(make_session("gone", last_activity=T0))
        await store.put_session(make_session("kept", last_activity=T0))
        await asyncio.sleep(0.4)
        await store.put_session(make_session("kept", last_activity=T0))
        assert (await store.stats()).sessions == 2  # the expired one still counts until met
        assert await store.idle_sessions(T0 + timedelta(hours=1), 10) == ["kept"]
        assert (await store.stats()).sessions == 1
    finally:
        await store.drop_namespace()
        await store.aclose()


# -- ownership -------------------------------------------------------------------------------------------------------
@pytest.mark.redis
async def test_a_client_handed_in_is_used_and_never_closed(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = RedisHotStore.from_options(settings(), {"client": client})
        await store.open()
        await store.put_session(make_session("s1"))
        assert store.client is client
        assert store.describe()["owns_client"] is False
        await store.drop_namespace()
        await store.aclose()
        assert await client.ping()
    finally:
        await client.aclose()


# -- cluster --------------------------------------------------------------------------------------------------------
@pytest.mark.cluster
async def test_each_node_url_of_a_cluster_works_and_data_spreads_over_the_nodes(
    redis_cluster: RedisClusterServers,
) -> None:
    namespace = f"ckredis-t-{uuid.uuid4().hex[:10]}"
    stores = [await opened(f"redis://127.0.0.1:{port}/0", namespace) for port in redis_cluster.ports]
    try:
        for store in stores:
            assert store.cluster
        for i in range(30):
            await stores[i % 3].put_session(make_session(f"s{i}"))
            await stores[i % 3].append_messages(f"s{i}", [make_message("x")])
        for i in range(30):
            assert await stores[(i + 1) % 3].get_session(f"s{i}") is not None
        per_node = []
        for port in redis_cluster.ports:
            node = aioredis.Redis(host="127.0.0.1", port=port)
            try:
                per_node.append(await node.dbsize())
            finally:
                await node.aclose()
        assert all(count > 0 for count in per_node), per_node
        assert (await stores[0].stats()).sessions == 30
        assert (await stores[0].stats()).messages == 30
    finally:
        await stores[0].drop_namespace()
        for store in stores:
            await store.aclose()


@pytest.mark.cluster
async def test_cluster_false_against_a_cluster_node_is_refused_for_a_plain_client(
    redis_cluster: RedisClusterServers,
) -> None:
    client = aioredis.Redis.from_url(redis_cluster.url)
    try:
        store = RedisHotStore.from_options(settings(), {"client": client})
        with pytest.raises(ConfigError, match="RedisCluster"):
            await store.open()
    finally:
        await client.aclose()


# -- targets --------------------------------------------------------------------------------------------------------
def test_redis_targets_hide_passwords_and_keep_everything_else() -> None:
    """describe()'s target is the URL through contextkit.masking.mask_secrets: the password goes, the rest stays."""
    cases = {
        "redis://user:pw@host:6380/2": "redis://user:***@host:6380/2",
        "rediss://:pw@host/0": "rediss://:***@host/0",
        "unix:///tmp/r.sock?db=1&password=pw": "unix:///tmp/r.sock?db=1&password=***",
        "unix:///tmp/r.sock?db=1": "unix:///tmp/r.sock?db=1",
        "redis://host:6379/0": "redis://host:6379/0",
    }
    for url, target in cases.items():
        assert RedisHotStore.from_options(settings(), {"url": url}).describe()["target"] == target


async def test_a_unix_socket_url_connects(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisServer(extra_args=["--unixsocket", str(socket_path), "--unixsocketperm", "700"]).start()
    try:
        store = await opened(f"unix://{socket_path}?db=0")
        try:
            await store.put_session(make_session("s1"))
            assert await store.get_session("s1") is not None
            assert store.describe()["target"] == f"unix://{socket_path}?db=0"
            assert store.cluster is False
        finally:
            await store.aclose()
    finally:
        server.stop()


@pytest.mark.redis
async def test_opening_and_using_the_tier_warns_nothing_on_the_installed_redis_py(redis_url: str) -> None:
    """redis-py 8.2 warns "A synchronous redis.retry.Retry was passed to an asyncio client" for every client
    built with the synchronous Retry; the tier passes redis.asyncio's. Any warning while the tier opens, writes,
    reads and closes fails here (and the suite's filterwarnings fails any test that warns)."""
    from redis.asyncio.retry import Retry as AsyncRetry

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = await opened(redis_url)
        try:
            assert isinstance(store.client.connection_pool.connection_kwargs["retry"], AsyncRetry)
            await store.put_session(make_session("warn-check"))
            assert await store.get_session("warn-check") is not None
        finally:
            await store.drop_namespace()
            await store.aclose()
