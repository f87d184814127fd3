"""contextkit.checkpoint_lists on its own: the record over shared nodes rebuilds exactly the bytes the serde writes
for the whole list, for every list length and element kind, and reuses what earlier versions stored."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from contextkit.checkpoint_lists import BLOCK_TYPE, LIST_MARK, ListSharing, is_node_version, shared_node_bytes
from contextkit.errors import CorruptData

Typed = tuple[str, bytes]


class DictStore:
    """Blobs of one thread in a dict, as a SharedBlobStore keeps them; counts its reads."""

    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str, str], Typed] = {}
        self.reads = 0

    async def cp_get_blobs(
        self, thread_id: str, checkpoint_ns: str, keys: Sequence[tuple[str, str]]
    ) -> Mapping[tuple[str, str], Typed]:
        self.reads += 1
        return {k: b for k in keys if (b := self.blobs.get((checkpoint_ns, *k))) is not None}

    def put(self, nodes: Mapping[str, Typed], channel: str = "c", ns: str = "") -> None:
        for version, typed in nodes.items():
            assert is_node_version(version)
            self.blobs.setdefault((ns, channel, version), typed)


def _elements(kind: str, n: int) -> list[Any]:
    rng = random.Random(n)
    if kind == "ints":
        return [rng.randrange(-(2**40), 2**40) for _ in range(n)]
    if kind == "text":
        return ["w" * rng.randrange(0, 300) + str(i) for i in range(n)]
    if kind == "dicts":
        return [{"i": i, "tags": ["a", "b"][: i % 3], "nested": {"x": [i, None, 1.5]}} for i in range(n)]
    return [
        (HumanMessage if i % 2 == 0 else AIMessage)(content=f"message {i} " + "z" * rng.randrange(50), id=f"m{i}")
        for i in range(n)
    ]


@pytest.mark.parametrize("kind", ["ints", "text", "dicts", "messages"])
async def test_records_rebuild_the_serdes_bytes_exactly(kind: str) -> None:
    serde = JsonPlusSerializer()
    sharing = ListSharing(serde, min_bytes=1)
    store = DictStore()
    for n in [2, 3, 15, 16, 17, 31, 32, 33, 100, 255, 256, 1000]:
        for value in (_elements(kind, n), _DeltaSnapshot(_elements(kind, n))):
            split = sharing.split("t", "", None, "c", value)
            assert split is not None
            assert split.whole == serde.dumps_typed(value)
            assert split.record[0] == "msgpack" + LIST_MARK and len(split.record[1]) <= 4 + 16 * n.bit_count() + 3
            store.put(split.nodes)
            fresh = ListSharing(serde)  # nothing cached: every node read from the store
            resolved = await fresh.resolve(store, "t", "", {"c": split.record})
            assert resolved["c"] == split.whole
            assert serde.loads_typed(resolved["c"]) == value


async def test_appends_store_only_the_new_nodes_on_top_of_the_head() -> None:
    serde = JsonPlusSerializer()
    sharing = ListSharing(serde, min_bytes=1)
    store = DictStore()
    items = _elements("text", 64)
    parent = None
    sent = []
    for n in range(2, 65):
        split = sharing.split("t", "", parent, "c", items[:n])
        assert split is not None
        store.put(split.nodes)
        sent.append(len(split.nodes))
        parent = f"cp{n}"
        sharing.written("t", "", parent, {"c": split.tree})
    # the first put sends its two leaves and its block; each later one its new leaf and at most one block
    assert sent[0] == 3 and max(sent[1:]) <= 2
    leaves = [k for k, v in store.blobs.items() if v[0] == "msgpack"]
    assert len(leaves) == 64
    # a put on top of a checkpoint this saver did not write or read sends every node again (put-if-absent)
    split = sharing.split("t", "", "someone-else", "c", items)
    assert split is not None and len(split.nodes) == 64 + 1
    # what the nodes add up to: the text once plus 16-byte ids, not the list at each version
    text = sum(len(serde.dumps_typed(i)[1]) for i in items)
    counted = await shared_node_bytes(store, "t", {("", "c"): [split.record]})
    assert text < counted[("", "c")] < text + 64 * 16 * 8


async def test_reads_use_the_cache_and_detect_missing_or_altered_nodes() -> None:
    serde = JsonPlusSerializer()
    writer = ListSharing(serde, min_bytes=1)
    store = DictStore()
    value = _elements("messages", 40)
    split = writer.split("t", "", None, "c", value)
    assert split is not None
    store.put(split.nodes)
    writer.written("t", "", "cp1", {"c": split.tree})
    assert (await writer.resolve(store, "t", "", {"c": split.record}))["c"] == split.whole
    assert store.reads == 0  # the writer's own tree
    reader = ListSharing(serde)
    await reader.resolve(store, "t", "", {"c": split.record})
    reads = store.reads
    assert reads == 2  # the blocks, then the leaves
    await reader.resolve(store, "t", "", {"c": split.record})
    assert store.reads == reads
    # an altered leaf or block is refused, never returned
    leaf = next(k for k, v in store.blobs.items() if v[0] == "msgpack")
    store.blobs[leaf] = ("msgpack", b"\xc0")
    with pytest.raises(CorruptData, match="do not match its id"):
        await ListSharing(serde).resolve(store, "t", "", {"c": split.record})
    block = next(k for k, v in store.blobs.items() if v[0] == BLOCK_TYPE)
    del store.blobs[block]
    with pytest.raises(CorruptData, match="missing"):
        await ListSharing(serde).resolve(store, "t", "", {"c": split.record})


def test_only_msgpack_lists_worth_it_are_shared() -> None:
    serde = JsonPlusSerializer()
    sharing = ListSharing(serde, min_bytes=100)
    assert sharing.split("t", "", None, "c", ["a", "b"]) == serde.dumps_typed(["a", "b"])  # too small: whole
    assert sharing.split("t", "", None, "c", ["x" * 100]) is None  # one element
    assert sharing.split("t", "", None, "c", ("x" * 100, "y" * 100)) is None  # a tuple is not a list
    assert sharing.split("t", "", None, "c", ["x" * 100, b"raw bytes"]) is None  # an element the serde types "bytes"
    assert sharing.split("t", "", None, "c", {"k": "x" * 200}) is None
    assert ListSharing.supports(serde)
    assert not ListSharing.supports(EncryptedSerializer.from_pycryptodome_aes(key=b"k" * 16)) if _has_aes() else True


def _has_aes() -> bool:
    try:
        import Crypto  # noqa: F401
    except ImportError:
        return False
    return True
