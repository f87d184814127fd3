"""The checkpoint contract (``CheckpointStoreSuite``, with the official LangGraph conformance suite in it) on the
machine's Redis and on a 3-master Redis Cluster, plus Redis-specific checks of the layout."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from contextkit.errors import ConfigError, CorruptData, SerializationError
from contextkit.stores import CheckpointRow, CheckpointStore, StoreSettings, WriteRow
from contextkit.testing.checkpoints import (
    CheckpointStoreSuite,
    StoreFactory,
    check_bounded_delta_walk,
    make_checkpoint_id,
)
from contextkit.testing.services.redis_servers import RedisClusterServers
from contextkit_redis import RedisHotStore
from contextkit_redis import checkpoints as redis_checkpoints
from contextkit_redis.checkpoints import _read_bundles


class _CleanedStore(RedisHotStore):
    """Removes its namespace from the shared server when the suite closes it."""

    async def aclose(self) -> None:
        if self._connected is not None:
            await self.drop_namespace()
        await super().aclose()


def _factory(url: str) -> StoreFactory:
    async def build(settings: StoreSettings) -> CheckpointStore:
        store = _CleanedStore(settings, {"url": url, "max_connections": 20})
        await store.open()
        assert "checkpoints" in store.capabilities
        return store

    return build


@pytest.mark.redis
class TestRedisCheckpoints(CheckpointStoreSuite):
    """Every CheckpointStore contract, the LangGraph conformance suite and real graphs on plain Redis."""

    @pytest.fixture
    def checkpoint_store_factory(self, redis_url: str) -> StoreFactory:
        return _factory(redis_url)


@pytest.mark.redis
@pytest.mark.cluster
class TestRedisClusterCheckpoints(CheckpointStoreSuite):
    """The same contract on a 3-master Redis Cluster (every thread operation stays in the thread's slot)."""

    @pytest.fixture
    def checkpoint_store_factory(self, redis_cluster: RedisClusterServers) -> StoreFactory:
        return _factory(redis_cluster.url)


# -- Redis specifics ------------------------------------------------------------------------------------------------
def _row(thread_id: str, cid: str, ns: str = "", parent: str | None = None, **meta: Any) -> CheckpointRow:
    return CheckpointRow(thread_id, ns, cid, parent, ("msgpack", b"\x00\xff\x80raw"), meta, {"ch": "1"})


@pytest.fixture
async def store(redis_url: str) -> Any:
    built = _CleanedStore(StoreSettings(namespace=f"ckredis-cp-{uuid.uuid4().hex[:10]}"), {"url": redis_url})
    await built.open()
    try:
        yield built
    finally:
        await built.aclose()


@pytest.mark.redis
async def test_a_thread_has_a_fixed_set_of_keys_in_one_slot_whatever_its_namespaces(store: RedisHotStore) -> None:
    """Many namespaces and checkpoints still make at most eight keys, all with the thread's hash tag, so the
    TTL refresh of a write costs the same on a small and a large thread."""
    tid = "t:{x}"
    for i in range(30):
        cid = make_checkpoint_id()
        await store.cp_put(_row(tid, cid, ns=f"child:{i}"), {("ch", "1"): ("json", b"1")})
        await store.cp_put_writes(tid, f"child:{i}", cid, [WriteRow("task", 0, "ch", ("json", b"2"))], False)
    keys = [k async for k in store.client.scan_iter(match=store.keys.scan_pattern(), count=1000)]
    thread_keys = [k for k in keys if store.keys.owner_tag(tid).encode() in k]
    assert 1 <= len(thread_keys) <= 8
    ttls = [await store.client.pttl(k) for k in thread_keys]
    assert all(0 < ttl <= store.settings.checkpoint_ttl * 1000 for ttl in ttls)


@pytest.mark.redis
async def test_metadata_json_cannot_hold_is_refused_and_nothing_is_stored(store: RedisHotStore) -> None:
    """NaN, infinity or a non-JSON value in the metadata of a put raise SerializationError (not stored as null)."""
    tid = f"thread-{uuid.uuid4().hex}"
    for bad in (float("nan"), float("inf"), {1, 2}):
        row = CheckpointRow(tid, "", make_checkpoint_id(), None, ("msgpack", b"c"), {"score": bad}, {})
        with pytest.raises(SerializationError):
            await store.cp_put(row, {})
    assert await store.cp_get(tid, "", None) is None


@pytest.mark.redis
async def test_binary_values_and_separator_characters_round_trip_exactly(store: RedisHotStore) -> None:
    """Bytes with NUL and 0xFF, and namespaces / channels / task ids containing the layout's separators."""
    tid, cid = "thread\x01", make_checkpoint_id()
    ns = "a:1\x00|b:2"
    blob = ("bytes", bytes(range(256)))
    row = CheckpointRow(tid, ns, cid, None, ("t\x00y", b"\x00" * 3), {"k": "é\x00"}, {"c\x00h": "1", "日本": "2"})
    await store.cp_put(row, {("c\x00h", "1"): blob, ("日本", "2"): ("empty", b"")})
    await store.cp_put_writes(tid, ns, cid, [WriteRow("task\x00id", 3, "c\x00h", blob, "p\x00")], False)
    got = await store.cp_get(tid, ns, None)
    assert got is not None and got.row == row
    assert dict(got.blobs) == {"c\x00h": blob, "日本": ("empty", b"")}
    assert list(got.writes) == [WriteRow("task\x00id", 3, "c\x00h", blob, "p\x00")]
    assert await store.cp_get(tid, "a:1", None) is None


@pytest.mark.redis
async def test_a_client_that_decodes_responses_is_refused_for_checkpoints(redis_url: str) -> None:
    """Checkpoint values are bytes: a caller's client with decode_responses=True would corrupt them."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisHotStore(StoreSettings(namespace=f"ckredis-cp-{uuid.uuid4().hex[:10]}"), {"client": client})
    await store.open()
    try:
        with pytest.raises(ConfigError, match="decode_responses"):
            await store.cp_get("t", "", None)
    finally:
        await store.aclose()
        await client.aclose()


def test_a_read_reply_is_split_per_checkpoint_and_a_malformed_one_is_refused() -> None:
    reply = [b"c2", b"rec2", 2, b"blob-a", None, 1, b"write", b"c1", b"rec1", 0, 0]
    assert _read_bundles(reply) == [(b"c2", b"rec2", [b"blob-a", None], [b"write"]), (b"c1", b"rec1", [], [])]
    assert _read_bundles([]) == []
    for bad in (b"a string", [b"c1", b"rec1", 2, b"only one"], [b"c1", None, 0, 0], [b"c1", b"rec1", "x", 0]):
        with pytest.raises(CorruptData):
            _read_bundles(bad)


@pytest.mark.redis
async def test_delta_history_resumes_past_the_ancestors_one_script_may_walk(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One script walks at most ``_DELTA_MAX_STEPS`` ancestors (so it never blocks the server long); it names the
    next one as ``resume`` and the saver calls again from there, to the same answer."""
    pytest.importorskip("langgraph.checkpoint.base")
    monkeypatch.setattr(redis_checkpoints, "_DELTA_MAX_STEPS", 2)
    await check_bounded_delta_walk(store)


@pytest.mark.redis
@pytest.mark.parametrize("old_layout", [False, True])
async def test_listing_every_namespace_merges_the_root_range_with_the_subgraph_index(
    store: RedisHotStore, old_layout: bool
) -> None:
    """``cp_list(thread, None)`` is newest first over the root namespace (``lg:ids``) and the subgraph namespaces
    (``lg:all``), with ``before``, ``checkpoint_id`` and every ``limit``, each checkpoint once, also for a thread
    written before the layout kept root ids out of ``lg:all`` (simulated: they are added there); the tombstone floor
    of a delete is the thread's newest id wherever it is."""
    tid = f"merge-{uuid.uuid4().hex[:6]}"
    expected: list[tuple[str, str]] = []
    for i in range(12):
        ns = "" if i % 3 else f"child:{i}"
        cid = make_checkpoint_id()
        await store.cp_put(_row(tid, cid, ns=ns), {("ch", "1"): ("json", b"1")})
        expected.append((cid, ns))
    shared = make_checkpoint_id()
    for ns in ("", "child:x"):
        await store.cp_put(_row(tid, shared, ns=ns), {("ch", "1"): ("json", b"1")})
        expected.append((shared, ns))
    ids_key, all_key = store._lg_keys(tid)[:2]
    members = await store.client.zrange(all_key, 0, -1)
    assert all(not member.endswith(b"\0") for member in members)  # no root id in lg:all
    if old_layout:
        await store.client.zadd(all_key, {cid.encode() + b"\0": 0 for cid, ns in expected if ns == ""})
    order = sorted(expected, key=lambda item: (item[0], item[1]), reverse=True)

    async def listed(**kwargs: Any) -> list[tuple[str, str]]:
        return [(b.row.checkpoint_id, b.row.checkpoint_ns) async for b in store.cp_list(tid, None, **kwargs)]

    assert await listed() == order
    for limit in (1, 2, 5, len(order), len(order) + 3):
        assert await listed(limit=limit) == order[:limit]
    for cut in range(len(order)):
        before = order[cut][0]
        assert await listed(before=before) == [item for item in order if item[0] < before]
    assert await listed(checkpoint_id=shared) == [(shared, "child:x"), (shared, "")]
    # a root id above the delete time's floor (ids sort by time: this one is years ahead) is the floor
    future = "1fff0000-0000-6000-8000-000000000000"
    await store.cp_put(_row(tid, future), {})
    await store.cp_delete_thread(tid)
    assert await store.cp_deleted_floor(tid) == future
    assert await store.client.exists(ids_key, all_key) == 0
