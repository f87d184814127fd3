"""The checkpoint contract (``CheckpointStoreSuite``, with the official LangGraph conformance suite in it) on the
machine's Redis and on a 3-master Redis Cluster, plus Redis-specific checks of the layout."""

from __future__ import annotations

import uuid
from dataclasses import replace
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
async def test_a_checkpoint_and_its_delta_walk_read_in_one_script_equal_the_two_reads(store: RedisHotStore) -> None:
    """``cp_get_with_delta_history`` returns what ``cp_get`` and then ``cp_delta_history`` from that checkpoint
    return (the newest or a named one, with and without ``stop_at``), and None for a checkpoint not stored."""
    tid = f"both-{uuid.uuid4().hex[:6]}"
    ids: list[str] = []
    for step in range(6):
        cid = make_checkpoint_id()
        seed = {("c", "s"): ("msgpack", b"\x90")} if step == 0 else {}
        versions = {"c": "s"} if step == 0 else {}
        await store.cp_put(replace(_row(tid, cid, parent=ids[-1] if ids else None), channel_versions=versions), seed)
        await store.cp_put_writes(tid, "", cid, [_w(f"t{step}", 0, "c", b"%d" % step)], False)
        ids.append(cid)
    for cid in (None, ids[-1], ids[3]):
        for stop_at in (None, ids[1], ids[-1]):
            both = await store.cp_get_with_delta_history(tid, "", cid, ["c"], stop_at=stop_at)
            bundle = await store.cp_get(tid, "", cid)
            assert both is not None and bundle is not None and both[0] == bundle
            assert both[1] == await store.cp_delta_history(tid, "", bundle.row.checkpoint_id, ["c"], stop_at=stop_at)
    assert await store.cp_get_with_delta_history(tid, "", make_checkpoint_id(), ["c"]) is None
    assert await store.cp_get_with_delta_history(f"none-{tid}", "", None, ["c"]) is None


@pytest.mark.redis
async def test_a_delta_channel_turn_reads_its_checkpoint_and_walk_in_one_round_trip(
    store: RedisHotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the saver walked a thread's DeltaChannel history, each turn's checkpoint read brings the walk along
    (``cp_get_with_delta_history``) and the history read that follows makes no call to the store; the state read
    back equals a fresh saver's."""
    pytest.importorskip("langgraph.channels.delta")
    import contextkit.langgraph as langgraph_module
    from contextkit.langgraph import ContextKitSaver
    from contextkit.testing.checkpoints import delta_graph

    calls: dict[str, int] = {}
    saver = ContextKitSaver(store)
    for name in ("cp_get", "cp_delta_history", "cp_get_with_delta_history"):
        method = getattr(store, name)

        def counted(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] = calls.get(_name, 0) + 1
            return _method(*args, **kwargs)

        setattr(store, name, counted)
    config = {"configurable": {"thread_id": f"turns-{uuid.uuid4().hex[:6]}"}}
    for turn in range(8):
        await delta_graph(saver).ainvoke({"turns": [f"user {turn}"]}, config)
    assert calls.get("cp_get_with_delta_history", 0) >= 6 and calls.get("cp_delta_history", 0) <= 2
    mine = await delta_graph(saver).aget_state(config)
    fresh = await delta_graph(ContextKitSaver(store)).aget_state(config)
    assert mine.values == fresh.values and len(mine.values["turns"]) == 16
    # walks read ahead and never taken are bounded (the threads read last stay)
    monkeypatch.setattr(langgraph_module, "_PREFETCHED_HELD", 2)
    others = [{"configurable": {"thread_id": f"{config['configurable']['thread_id']}-{i}"}} for i in range(3)]
    for other in others:
        for turn in range(2):
            await delta_graph(saver).ainvoke({"turns": [f"user {turn}"]}, other)
        await saver.aget_tuple(other)
    assert [key[0] for key in saver._prefetched] == [other["configurable"]["thread_id"] for other in others[1:]]


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


# -- packed writes: one lg:wv field per checkpoint ------------------------------------------------------------------
def _w(task: str, idx: int, channel: str, value: bytes, path: str = "") -> WriteRow:
    return WriteRow(task, idx, channel, ("json", value), path)


def _order(writes: Any) -> list[WriteRow]:
    return sorted(writes, key=lambda w: (w.task_id, w.idx))


def _sorted_writes(bundle: Any) -> list[WriteRow]:
    assert bundle is not None
    return _order(bundle.writes)


def test_packed_writes_round_trip_and_a_malformed_value_is_corrupt_data() -> None:
    """Every idx (negative and multi-byte varints), empty and long strings, several tasks and task paths; a repeated
    (task_id, idx) in one call keeps the first value, or the last when upserting; a damaged value is CorruptData."""
    writes = [
        _w("t1", 0, "a", b"x" * 20_000),
        _w("t1", -1, "__error__", b"", "~p"),
        _w("t1", 1_000_000, "c\x00h", b"\x00\xff"),
        _w("t2", -(10**9), "", b"y", "p\x00"),
        _w("", 63, "日本", b"z"),
        _w("t1", 64, "a", b"w", "~other"),
    ]
    raw = redis_checkpoints._encode_writes(writes, False)
    assert raw[0] == 2
    assert _order(redis_checkpoints._decode_writes(raw)) == _order(writes)
    twice = [_w("t", 0, "a", b"first"), _w("t", 1, "b", b"1"), _w("t", 0, "a", b"second")]
    assert redis_checkpoints._decode_writes(redis_checkpoints._encode_writes(twice, False)) == twice[:2]
    assert _order(redis_checkpoints._decode_writes(redis_checkpoints._encode_writes(twice, True))) == _order(twice[1:])
    for bad in (raw[:-1], raw + b"\x05", raw[:3] + b"\xff" * 4):
        with pytest.raises(CorruptData):
            redis_checkpoints._decode_writes(bad)


@pytest.mark.redis
async def test_writes_are_one_hash_field_per_checkpoint_with_the_write_semantics(store: RedisHotStore) -> None:
    """A checkpoint's writes are one lg:wv field and no lg:wk member; a (task_id, idx) is kept unless upserted,
    across calls, task paths and negative (special) idx; hundreds of tasks on one checkpoint (most of them spilled
    into fields of their own) read back, upsert, walk, copy and delete whole."""
    tid, cid = f"packed-{uuid.uuid4().hex[:6]}", make_checkpoint_id()
    await store.cp_put(_row(tid, cid), {("ch", "1"): ("json", b"1")})
    put = store.cp_put_writes
    await put(tid, "", cid, [_w("t1", 0, "x", b"first"), _w("t1", 0, "x", b"dup in call"), _w("t1", 1, "y", b"1")], False)
    await put(tid, "", cid, [_w("t1", 0, "x", b"again"), _w("t1", 2, "z", b"2", "~other path")], False)
    await put(tid, "", cid, [_w("t1", -3, "__interrupt__", b"i1")], True)
    await put(tid, "", cid, [_w("t1", -3, "__interrupt__", b"i2"), _w("t1", -3, "__interrupt__", b"i3")], True)
    await put(tid, "", cid, [_w("t1", 2, "z", b"upserted", "~new path")], True)
    await put(tid, "", cid, [_w("t2", 0, "x", b"other task")], False)
    expected = [
        _w("t1", -3, "__interrupt__", b"i3"),
        _w("t1", 0, "x", b"first"),
        _w("t1", 1, "y", b"1"),
        _w("t1", 2, "z", b"upserted", "~new path"),
        _w("t2", 0, "x", b"other task"),
    ]
    assert _sorted_writes(await store.cp_get(tid, "", cid)) == expected
    wk, wv = store._lg_keys(tid)[4:6]
    assert await store.client.exists(wk) == 0
    assert await store.client.hkeys(wv) == [redis_checkpoints._prefix("") + cid.encode()]
    # a fan-out: 300 tasks of 3 writes each on one checkpoint, then all of them again (not upserted: unchanged);
    # past ~4 KB of packed writes a new task spills into a field of its own (indexed in lg:wk)
    other, child = make_checkpoint_id(), make_checkpoint_id()
    await store.cp_put(_row(tid, other, parent=cid), {})
    await store.cp_put(_row(tid, child, parent=other), {})
    # every other task id of LangGraph's form (stored as 16 bytes: the spill fields then end in binary, NULs too)
    task = [str(uuid.UUID(int=i)) if i % 2 == 0 else f"task-{i:03}" for i in range(300)]
    fanout = _order(_w(task[i], j, f"ch{j}", b"v%d" % i) for i in range(300) for j in range(3))
    for i in range(300):
        await put(tid, "", other, [w for w in fanout if w.task_id == task[i]], False)
    for i in range(300):
        await put(tid, "", other, [replace(w, value=("json", b"late")) for w in fanout if w.task_id == task[i]], False)
    assert _sorted_writes(await store.cp_get(tid, "", other)) == fanout
    spills = await store.client.zcard(wk)
    assert 100 < spills < 300 and await store.client.hlen(wv) == 2 + spills
    # upserts replace in the packed value and in a spill alike; the history walk filters spilled writes too
    ups = [_w(task[0], 1, "ch1", b"up"), _w(task[299], 2, "ch2", b"up")]
    await put(tid, "", other, ups, True)
    fanout = _order([*ups, *(w for w in fanout if (w.task_id, w.idx) not in {(u.task_id, u.idx) for u in ups})])
    assert _sorted_writes(await store.cp_get(tid, "", other)) == fanout
    walk = await store.cp_delta_history(tid, "", child, ["ch2"])
    assert walk is not None and [s.checkpoint_id for s in walk.steps] == [other, cid]
    assert _order(walk.steps[0].writes) == [w for w in fanout if w.channel == "ch2"]
    assert _order(walk.steps[1].writes) == []
    # copied, a checkpoint's writes are one packed value; pruned (deleted), its spills go with it
    await store.cp_copy_thread(tid, tid + "-copy")
    copied = await store.cp_get(tid + "-copy", "", other)
    assert _sorted_writes(copied) == fanout
    await store.cp_prune([tid], True)
    assert await store.client.hkeys(wv) == [] and await store.client.exists(wk) == 0
    assert [b.row.checkpoint_id async for b in store.cp_list(tid, "")] == [child]
    await store.cp_delete_thread(tid + "-copy")


@pytest.mark.redis
async def test_writes_of_a_deleted_thread_are_dropped(store: RedisHotStore) -> None:
    """A late write of a deleted thread's checkpoint (at or below the tombstone floor) stores nothing."""
    tid, cid = f"late-{uuid.uuid4().hex[:6]}", make_checkpoint_id()
    await store.cp_put(_row(tid, cid), {})
    await store.cp_put_writes(tid, "", cid, [_w("t", 0, "x", b"1")], False)
    await store.cp_delete_thread(tid)
    await store.cp_put_writes(tid, "", cid, [_w("t", 1, "x", b"late")], False)
    assert await store.client.exists(*store._lg_keys(tid)[:7]) == 0
    assert await store.cp_get(tid, "", cid) is None


async def _legacy_writes(store: RedisHotStore, tid: str, ns: str, cid: str, writes: list[WriteRow]) -> None:
    """What put_writes stored before writes were packed: a lg:wk member ``P(ns) cid \\0 task \\0 idx`` and a lg:wv
    field of that name holding the write in 8-hex-digit length-prefixed parts (HSETNX)."""
    wk, wv = store._lg_keys(tid)[4:6]
    pack = redis_checkpoints._pack
    for w in writes:
        member = redis_checkpoints._prefix(ns) + cid.encode() + b"\0" + w.task_id.encode() + b"\0" + b"%d" % w.idx
        kind, data = w.value
        value = pack(w.task_id.encode(), b"%d" % w.idx, w.channel.encode(), kind.encode(), data, w.task_path.encode())
        await store.client.hsetnx(wv, member, value)
        await store.client.zadd(wk, {member: 0})


async def _snapshot(store: RedisHotStore, tid: str) -> list[Any]:
    out = []
    async for bundle in store.cp_list(tid, None):
        out.append((replace(bundle.row, thread_id=""), dict(bundle.blobs), _sorted_writes(bundle)))
    return out


@pytest.mark.redis
async def test_a_thread_with_writes_of_the_older_layout_reads_writes_copies_and_deletes_alike(
    store: RedisHotStore,
) -> None:
    """Writes stored before they were packed (lg:wk members) read back as before (get, list, DeltaChannel history),
    and a thread holding them behaves as one written with packed writes: new writes on those checkpoints (the same
    (task_id, idx) kept unless upserted; the old writes move into the packed value), copies (into a fresh thread
    and over a target's old writes of the same checkpoint), prune and delete."""
    old, new = f"old-{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    c1, c2, c3 = make_checkpoint_id(), make_checkpoint_id(), make_checkpoint_id()
    writes = {
        ("", c1): [
            _w("t1", 0, "m", b"1"),
            _w("t1", 1, "branch", b"b", "~p"),
            _w("t2", -1, "__error__", b"e"),
            WriteRow("t5", 0, "m", ("\x01odd type", b"q")),
            WriteRow("t5", 1, "m", ("", b"")),
        ],
        ("", c2): [_w("t1", 0, "m", b"2"), _w("t1", 10, "m", b"2b"), _w("t1", 2, "other", b"o")],
        ("", c3): [_w("t3", 5, "m", b"pending")],
        ("sub:1", c1): [_w("s", 0, "m", b"sub")],
    }
    for tid in (old, new):
        await store.cp_put(
            CheckpointRow(tid, "", c1, None, ("json", b"{}"), {"step": 1}, {"m": "1"}), {("m", "1"): ("json", b"[1]")}
        )
        await store.cp_put(CheckpointRow(tid, "", c2, c1, ("json", b"{}"), {"step": 2}, {"m": "2"}), {("m", "2"): ("empty", b"")})
        await store.cp_put(CheckpointRow(tid, "", c3, c2, ("json", b"{}"), {"step": 3}, {"m": "3"}), {("m", "3"): ("empty", b"")})
        await store.cp_put(_row(tid, c1, ns="sub:1"), {})
        for (ns, cid), rows in writes.items():
            if tid == old:
                await _legacy_writes(store, tid, ns, cid, rows)
            else:
                await store.cp_put_writes(tid, ns, cid, rows, False)
    wk = store._lg_keys(old)[4]
    assert await store.client.zcard(wk) == 10
    assert await _snapshot(store, old) == await _snapshot(store, new)
    for tid in (old, new):
        assert _sorted_writes(await store.cp_get(tid, "", c2)) == _order(writes[("", c2)])
    walks = [await store.cp_delta_history(tid, "", c3, ["m"]) for tid in (old, new)]
    assert walks[0] == walks[1]
    assert walks[0] is not None and [(s.checkpoint_id, _order(s.writes)) for s in walks[0].steps] == [
        (c2, [_w("t1", 0, "m", b"2"), _w("t1", 10, "m", b"2b")]),
        (c1, [_w("t1", 0, "m", b"1"), *writes[("", c1)][3:]]),
    ]
    # new writes on a checkpoint holding old ones: the same (task_id, idx) kept, or replaced when upserted
    for tid in (old, new):
        await store.cp_put_writes(tid, "", c1, [_w("t1", 0, "m", b"changed"), _w("t4", 0, "m", b"new task")], False)
        await store.cp_put_writes(tid, "", c1, [_w("t2", -1, "__error__", b"replaced")], True)
    assert await _snapshot(store, old) == await _snapshot(store, new)
    assert _sorted_writes(await store.cp_get(old, "", c1)) == [
        _w("t1", 0, "m", b"1"),
        _w("t1", 1, "branch", b"b", "~p"),
        _w("t2", -1, "__error__", b"replaced"),
        _w("t4", 0, "m", b"new task"),
        WriteRow("t5", 0, "m", ("\x01odd type", b"q")),
        WriteRow("t5", 1, "m", ("", b"")),
    ]
    assert await store.client.zcard(wk) == 5  # c1's five old writes moved into its packed value
    # copies: into a fresh thread, and over a target holding old writes of the same checkpoint
    copies = {}
    for tid in (old, new):
        target = f"{tid}-copy"
        await _legacy_writes(store, target, "", c1, [_w("t1", 0, "m", b"target"), _w("t9", 0, "m", b"target only")])
        await store.cp_copy_thread(tid, target)
        copies[tid] = await _snapshot(store, target)
        assert await store.client.exists(store._lg_keys(target)[4]) == 0
    assert copies[old] == copies[new]
    # the source's checkpoints and writes (its (t1, 0) over the target's), and the target's own t9 write
    only = _w("t9", 0, "m", b"target only")
    assert [(row, blobs, [w for w in ws if w != only]) for row, blobs, ws in copies[old]] == await _snapshot(store, new)
    assert [row.checkpoint_id for row, _, ws in copies[old] if only in ws] == [c1]
    # prune (the newest stays, with its writes) and delete
    for tid in (old, new):
        await store.cp_prune([tid], True)
    assert await _snapshot(store, old) == await _snapshot(store, new)
    assert [(row.checkpoint_ns, row.checkpoint_id) for row, _, _ in await _snapshot(store, old)] == [("", c3), ("sub:1", c1)]
    assert await store.client.zcard(wk) == 2  # c3's and sub:1's
    await store.cp_delete_thread(old)
    assert await store.client.exists(*store._lg_keys(old)[:7]) == 0
    for tid in (old, new):
        await store.cp_delete_thread(f"{tid}-copy")
        await store.cp_delete_thread(tid)


def test_records_are_varint_packed_and_the_older_format_still_decodes() -> None:
    """A record is ``\\x01`` and varint-length parts (a 20 KB checkpoint needs a 3-byte length), a known type in
    one byte (any other as text), the parent as the bytes it does not share with the id; one of the 8-hex-digit
    format decodes to the same row; a damaged record is CorruptData."""
    row = CheckpointRow(
        "t", "ns", "1f1f-0002", "1f1f-0001", ("msgpack", b"\x00" * 20_000), {"step": 3, "é": [1]}, {"a": "1", "b\x00": "2"}
    )
    raw = redis_checkpoints._encode_record(row)
    assert raw[0] == 1
    _, kind, _, _, parent = redis_checkpoints._record_parts(raw)
    assert kind == b"\x01" and parent == b"+\x08" + b"1"
    old = _old_record(row)
    # lengths 40 -> 8 bytes, versions 23 -> 9 ('["a","1","b\\u0000","2"]'), type 7 -> 1, parent 10 -> 3
    assert len(raw) == len(old) - 32 - 14 - 6 - 7
    for stored in (raw, old):
        assert redis_checkpoints._decode_record("t", "ns", "1f1f-0002", stored) == (row, ["a", "b\x00"])
    for versions in ({}, {"a": "1", "b": "1", "c": "", "d": "", "é": "2", "f": "1"}, {"x": "v" * 200}):
        other = replace(row, channel_versions=versions)
        decoded = redis_checkpoints._decode_record("t", "ns", row.checkpoint_id, redis_checkpoints._encode_record(other))
        assert decoded == (other, list(versions))
    shared = redis_checkpoints._encode_versions({"__start__": "b22.1", "messages": "b22.1", "branch:to:x": "b22.1"})
    # LangGraph's usual channel names as 0xFF and a prefix's index (and the rest): 2 + 2 + 3 bytes, not 9 + 8 + 11
    assert shared == b"\x02\xff\x01\x06b22.1\x02\xff\x02\x00\x03\xff\x00x\x00"
    names = ["branch:to:", "__start__x", "messagesé", "\xff", "", "branch:to", "message", "__start__"]
    assert redis_checkpoints._decode_versions(redis_checkpoints._encode_versions(dict.fromkeys(names, "v"))) == [
        item for name in names for item in (name, "v")
    ]
    # ids of LangGraph's form: the parent as the bytes its 16 do not share with the checkpoint's
    lg_cid, lg_parent = "1f1f1a43-6d85-6ce5-810d-ad6ec048ceed", "1f1f1a43-69e9-635c-802f-2c955b350111"
    packed = redis_checkpoints._parent_part(lg_cid, lg_parent)
    assert packed == b"*\x04" + bytes.fromhex(lg_parent.replace("-", ""))[4:]  # 2 + 12 bytes, not 2 + 24
    for cid, parent_id in ((lg_cid, lg_parent), (lg_cid, lg_cid), (lg_cid, lg_parent.upper()), (lg_cid, "p"), ("c", lg_parent)):
        other = CheckpointRow("t", "", cid, parent_id, ("msgpack", b"c"), {}, {})
        assert redis_checkpoints._decode_record("t", "", cid, redis_checkpoints._encode_record(other))[0] == other
    with pytest.raises(CorruptData):  # a first version that refers to a previous one
        redis_checkpoints._decode_record("t", "", "c", b"\x01\x03\x01a\x00\x01\x01\x00\x02{}\x00")
    for kind_text in ("", "\x01", "\x00x", "t\x00y", "msgpack+aes", "j"):
        for cid, parent_id in (("c2", None), ("c2", "c1"), ("abc-2", "abc-1"), ("x", "a much longer parent id"), ("é-2", "é-1")):
            other = CheckpointRow("t", "", cid, parent_id, (kind_text, b"c"), {}, {})
            assert redis_checkpoints._decode_record("t", "", cid, redis_checkpoints._encode_record(other))[0] == other
    for bad in (raw[:-1], raw + b"x", raw[:2]):
        with pytest.raises(CorruptData):
            redis_checkpoints._decode_record("t", "ns", "c2", bad)


def test_blob_values_name_a_known_type_in_one_byte_and_others_as_text() -> None:
    """``_pack_typed``: one byte for a known type, ``"<length>:" type`` for any other; both forms (and values
    written before the codes) read back; an unknown code is CorruptData."""
    for kind in ("msgpack+zsd1", "empty", "json", "msgpack+aes", "", "\x01", "x:y"):
        for data in (b"", b"\x00\x01:", b"v" * 300):
            raw = redis_checkpoints._pack_typed(kind, data)
            assert redis_checkpoints._typed(raw) == (kind, data)
            assert redis_checkpoints._typed(b"%d:%b%b" % (len(kind.encode()), kind.encode(), data)) == (kind, data)
    assert redis_checkpoints._pack_typed("msgpack+zsd1", b"v") == b"\x02v"
    for bad in (b"\x1fv", b"", b"x"):
        with pytest.raises(CorruptData):
            redis_checkpoints._typed(bad)


def test_record_metadata_is_zstd_packed_with_its_dictionary_when_that_is_smaller() -> None:
    """LangGraph's metadata of a chat turn is stored in a third of its JSON; metadata too small to gain stays JSON;
    a damaged compressed metadata is CorruptData."""
    metadata = {"source": "loop", "step": 72, "parents": {}, "counters_since_delta_snapshot": {"messages": [49, 74]}}
    for meta in (metadata, {}, {"x": "é" * 500, "step": 1}):
        row = CheckpointRow("t", "", "c2", "c1", ("json", b"{}"), meta, {})
        raw = redis_checkpoints._encode_record(row)
        assert redis_checkpoints._decode_record("t", "", "c2", raw)[0] == row
        part = redis_checkpoints._record_parts(raw)[3]
        if meta == {}:
            assert part == b"{}"
        else:
            assert part[:1] == b"\x01" and len(part) < len(redis_checkpoints._json(meta)) / 2
    assert len(redis_checkpoints._record_parts(redis_checkpoints._encode_record(replace(row, metadata=metadata)))[3]) < 40
    vjson, kind, data, part, parent = redis_checkpoints._record_parts(raw)
    broken = b"\x01" + b"".join(redis_checkpoints._vpart(p) for p in (vjson, kind, data, part[:-3] + b"xyz", parent))
    with pytest.raises(CorruptData):
        redis_checkpoints._decode_record("t", "", "c2", broken)


def _old_record(row: CheckpointRow) -> bytes:
    """A record as stored before the varint format: 8-hex-digit lengths, the type as text, the parent as "=" id."""
    flat = [item for pair in row.channel_versions.items() for item in pair]
    parent = b"" if row.parent_checkpoint_id is None else b"=" + row.parent_checkpoint_id.encode()
    kind, data = row.checkpoint
    return redis_checkpoints._pack(
        redis_checkpoints._json(flat), kind.encode(), data, redis_checkpoints._json(row.metadata), parent
    )


@pytest.mark.redis
async def test_records_of_the_older_format_read_walk_and_delete_alike(store: RedisHotStore) -> None:
    """A thread whose records were stored in the 8-hex-digit format (some of them) and blob values with their type
    as text reads back (get, list, DeltaChannel history through their parents, its seeds and empty markers),
    deletes (blobs only they referenced go), copies and prunes as the same thread stored in the newer formats."""
    old, new = f"oldrec-{uuid.uuid4().hex[:6]}", f"newrec-{uuid.uuid4().hex[:6]}"
    ids = [make_checkpoint_id() for _ in range(4)]
    for tid in (old, new):
        parent = None
        for i, cid in enumerate(ids):
            blob = ("json", b"[%d]" % i) if i % 2 == 0 else ("empty", b"")
            row = CheckpointRow(tid, "", cid, parent, ("json", b"{}"), {"step": i}, {"m": str(i), "k": str(i)})
            await store.cp_put(row, {("m", str(i)): blob, ("k", str(i)): ("json", b"k") if i == 0 else ("empty", b"")})
            await store.cp_put_writes(tid, "", cid, [_w("t", 0, "m", b"w%d" % i)], False)
            parent = cid
    cp_key = store._lg_keys(old)[2]
    for cid in ids[:3]:
        field = redis_checkpoints._prefix("") + cid.encode()
        row = redis_checkpoints._decode_record(old, "", cid, await store.client.hget(cp_key, field))[0]
        await store.client.hset(cp_key, field, _old_record(row))
        assert (await store.client.hget(cp_key, field))[:1] == b"0"
    # and every blob value in the "<type length>:" type form
    blobs_key = store._lg_keys(old)[3]
    for field, value in (await store.client.hgetall(blobs_key)).items():
        kind, data = redis_checkpoints._typed(value)
        await store.client.hset(blobs_key, field, b"%d:%b%b" % (len(kind), kind.encode(), data))
    assert await _snapshot(store, old) == await _snapshot(store, new)
    walks = [await store.cp_delta_history(tid, "", None, ["m"]) for tid in (old, new)]
    assert walks[0] == walks[1] and walks[0] is not None
    assert [s.checkpoint_id for s in walks[0].steps] == [ids[2]]
    walks = [await store.cp_delta_history(tid, "", None, ["k"]) for tid in (old, new)]
    assert walks[0] == walks[1] and walks[0] is not None
    assert [s.checkpoint_id for s in walks[0].steps] == [ids[2], ids[1], ids[0]]  # through the older records
    for tid in (old, new):
        await store._lg_delete(tid, [("", [ids[2]], [], {})])
        await store.cp_copy_thread(tid, tid + "-copy")
    assert await _snapshot(store, old) == await _snapshot(store, new) == await _snapshot(store, new + "-copy")
    assert await _snapshot(store, old + "-copy") == await _snapshot(store, new)
    blob_fields = [sorted(await store.client.hkeys(store._lg_keys(tid)[3])) for tid in (old, new)]
    assert blob_fields[0] == blob_fields[1] and len(blob_fields[0]) == 6  # m@2, k@2 went with the only record using them
    for tid in (old, new):
        await store.cp_prune([tid], True)
    assert await _snapshot(store, old) == await _snapshot(store, new)
    for tid in (old, new, old + "-copy", new + "-copy"):
        await store.cp_delete_thread(tid)
