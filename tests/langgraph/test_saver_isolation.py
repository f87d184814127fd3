"""ContextKitSaver on the memory tier: what a read returns and what a put stored are never shared with a caller.

The memory tier keeps its rows and blobs in process, so these tests pin what any caching there must not change:
a caller mutating what it got (LangGraph mutates the checkpoint it resumes from) or what it put never changes what
the store returns next; a re-put blob, a new pending write and a late blob are seen by the next read.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.base")

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from contextkit.langgraph import ContextKitSaver
from contextkit.stores import StoreSettings
from contextkit_memory.checkpoints import MemoryCheckpoints


class _Store(MemoryCheckpoints):
    def __init__(self) -> None:
        self.settings = StoreSettings()


VALUES: dict[str, Any] = {
    "messages": [{"role": "user", "content": "hé", "tags": ["a", "b"]}, {"role": "assistant", "content": "ok"}],
    "step": 3,
    "doc": {"text": "d" * 100, "nested": {"deep": [1, 2.5, None, True, {"x": []}]}, "raw": b"\x00\x01"},
    "flat": ["x", "y"],
    "empty_list": [],
    "empty_dict": {},
    "opaque": {1, 2, 3},  # a set: decoded from msgpack by an ext hook, not plain
}


@pytest.fixture
def saver() -> ContextKitSaver:
    return ContextKitSaver(_Store())


def _config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def _put(
    saver: ContextKitSaver,
    config: dict[str, Any],
    values: dict[str, Any],
    *,
    versions: dict[str, str] | None = None,
    new: dict[str, str] | None = None,
) -> dict[str, Any]:
    checkpoint: Any = empty_checkpoint()
    checkpoint["id"] = str(uuid6())
    checkpoint["channel_values"] = values
    checkpoint["channel_versions"] = versions if versions is not None else {ch: saver.get_next_version(None) for ch in values}
    checkpoint["versions_seen"] = {"node": {ch: v for ch, v in checkpoint["channel_versions"].items()}}
    new_versions = new if new is not None else dict(checkpoint["channel_versions"])
    return await saver.aput(config, checkpoint, {"source": "loop", "step": 1, "parents": {}, "run_id": "r1"}, new_versions)


def _mutate(value: Any) -> None:
    """Mutate every dict and list reachable from ``value`` in place."""
    if isinstance(value, dict):
        for item in list(value.values()):
            _mutate(item)
        value["__mutated__"] = True
    elif isinstance(value, list):
        for item in value:
            _mutate(item)
        value.append("__mutated__")
    elif isinstance(value, set):
        value.add("__mutated__")


async def _read_twice(saver: ContextKitSaver, config: dict[str, Any]) -> tuple[Any, Any]:
    first = await saver.aget_tuple(config)
    listed = [t async for t in saver.alist(config, limit=1)]
    return first, listed[0]


async def test_mutating_a_returned_tuple_does_not_change_the_next_read(saver: ContextKitSaver) -> None:
    """Everything a read returns (checkpoint, values, versions, metadata, writes, configs) is the caller's own."""
    config = _config(str(uuid.uuid4()))
    stored = await _put(saver, config, copy.deepcopy(VALUES))
    await saver.aput_writes(stored, [("messages", [{"role": "tool", "content": "w"}]), ("step", 4)], task_id="t1")
    expected = await saver.aget_tuple(config)
    assert expected is not None
    expected = copy.deepcopy(expected)
    for _ in range(3):
        for got in await _read_twice(saver, config):
            assert got == expected
            _mutate(got.checkpoint)
            _mutate(got.metadata)
            _mutate(got.config)
            _mutate(got.parent_config)
            for write in got.pending_writes:
                _mutate(write[2])
    again = await saver.aget_tuple(config)
    assert again == expected
    assert again is not None
    assert again.checkpoint["channel_values"]["opaque"] == {1, 2, 3}


async def test_two_reads_never_share_a_mutable_object(saver: ContextKitSaver) -> None:
    """Two reads of the same checkpoint share no dict, list or set (only immutable leaves)."""
    config = _config(str(uuid.uuid4()))
    await _put(saver, config, copy.deepcopy(VALUES))
    one, two = await _read_twice(saver, config)
    three = await saver.aget_tuple(config)

    def containers(value: Any, out: dict[int, Any]) -> dict[int, Any]:
        if isinstance(value, (dict, list, set)):
            out[id(value)] = value
            items = value.values() if isinstance(value, dict) else value
            for item in items:
                containers(item, out)
        elif isinstance(value, tuple):
            for item in value:
                containers(item, out)
        return out

    seen = [containers(tuple(t), {}) for t in (one, two, three)]
    assert not set(seen[0]) & set(seen[1])
    assert not set(seen[1]) & set(seen[2])


async def test_mutating_what_was_put_does_not_change_what_is_stored(saver: ContextKitSaver) -> None:
    """The store keeps its own form of a put: the caller's dicts stay the caller's."""
    config = _config(str(uuid.uuid4()))
    values = copy.deepcopy(VALUES)
    await _put(saver, config, values)
    before = await saver.aget_tuple(config)
    _mutate(values)
    after = await saver.aget_tuple(config)
    assert before == after


async def test_a_re_put_blob_of_the_same_version_is_read_back(saver: ContextKitSaver) -> None:
    """A blob put again under a version already stored (same key, new bytes) replaces the stored one."""
    config = _config(str(uuid.uuid4()))
    versions = {"step": "1", "doc": "1"}
    first = await _put(saver, config, {"step": 1, "doc": {"v": 1}}, versions=versions)
    assert (await saver.aget_tuple(first)).checkpoint["channel_values"]["doc"] == {"v": 1}  # type: ignore[union-attr]
    await _put(saver, config, {"step": 2, "doc": {"v": 2}}, versions=versions)
    got = await saver.aget_tuple(first)
    assert got is not None and got.checkpoint["channel_values"] == {"step": 2, "doc": {"v": 2}}


async def test_writes_added_after_a_read_are_in_the_next_read(saver: ContextKitSaver) -> None:
    config = _config(str(uuid.uuid4()))
    stored = await _put(saver, config, {"step": 1})
    got = await saver.aget_tuple(stored)
    assert got is not None and got.pending_writes == []
    await saver.aput_writes(stored, [("step", 2)], task_id="a")
    got = await saver.aget_tuple(stored)
    assert got is not None and got.pending_writes == [("a", "step", 2)]
    listed = [t async for t in saver.alist(config)]
    assert listed[0].pending_writes == [("a", "step", 2)]


async def test_a_channel_put_after_its_checkpoint_is_read_back(saver: ContextKitSaver) -> None:
    """A checkpoint read while one of its blobs is missing, then the blob arrives: the next read has it."""
    config = _config(str(uuid.uuid4()))
    versions = {"a": "1", "b": "1"}
    first = await _put(saver, config, {"a": 1, "b": 1}, versions=versions, new={"a": "1"})
    got = await saver.aget_tuple(first)
    assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
    await _put(saver, config, {"a": 1, "b": 1}, versions=versions, new={"b": "1"})
    got = await saver.aget_tuple(first)
    assert got is not None and got.checkpoint["channel_values"] == {"a": 1, "b": 1}
