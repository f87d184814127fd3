"""``CheckpointStoreSuite``: the contract of :class:`contextkit.stores.CheckpointStore`, and of
:class:`contextkit.langgraph.ContextKitSaver` over it, for every hot tier that declares ``checkpoints``.

A tier runs it with a few lines::

    from contextkit.testing.checkpoints import CheckpointStoreSuite

    class TestRedisCheckpoints(CheckpointStoreSuite):
        @pytest.fixture
        def checkpoint_store_factory(self, redis_url):
            async def build(settings):          # a new, opened store for these settings
                store = RedisHotStore(settings, url=redis_url)
                await store.open()
                return store
            return build

The suite closes every store it builds (``aclose()``); a store on a shared server should delete its namespace's
keys there or use a namespace the fixture cleans up. Three groups of tests:

* the store protocol itself (no LangGraph needed): keys, order, writes, deletes, copies, prune, TTL, isolation;
* ``langgraph-checkpoint-conformance``: :func:`run_langgraph_conformance` runs its ``validate()`` on a saver over
  the store, and the suite asserts ``report.passed_all()`` (every base and extended capability);
* real compiled LangGraph graphs, async and sync: interrupt and resume, ``update_state`` and replay, subgraphs,
  failing parallel branches, ``DeltaChannel`` with prune.

For tests of the cold read-through (a saver with an archive), :func:`archive_graph`, :func:`run_archive_graph` and
:func:`state_summary` build and run a small graph whose checkpoints must read back identically from the cold tier.

Each test's docstring states the rule it checks and where a failing backend usually goes wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import operator
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Annotated, Any, TypedDict

import pytest

from contextkit.errors import ContextKitError, InvalidInput
from contextkit.stores import (
    CheckpointBundle,
    CheckpointRow,
    CheckpointStore,
    DeltaHistoryStore,
    RetentionPolicy,
    StoreSettings,
    Typed,
    WriteRow,
    checkpoint_id_floor,
)

__all__ = [
    "CheckpointStoreSuite",
    "LossState",
    "StoreFactory",
    "XorTestCipher",
    "archive_graph",
    "check_bounded_delta_walk",
    "delta_chain",
    "delta_graph",
    "generic_delta_history",
    "loss_graph",
    "make_checkpoint_id",
    "paused_graph",
    "run_archive_graph",
    "run_langgraph_conformance",
    "state_summary",
]

StoreFactory = Callable[[StoreSettings], Awaitable[CheckpointStore]]
"""Builds and opens a new store for the given settings."""

_UUID_EPOCH_OFFSET = 0x01B21DD213814000
_last_ticks = 0
#: The idx LangGraph gives an ``__interrupt__`` pending write (``WRITES_IDX_MAP``; this part needs no LangGraph).
_INTERRUPT_IDX = -3


def make_checkpoint_id() -> str:
    """A new UUID v6 string, increasing within the process, like LangGraph's checkpoint ids."""
    global _last_ticks
    ticks = time.time_ns() // 100 + _UUID_EPOCH_OFFSET
    _last_ticks = ticks = max(ticks, _last_ticks + 1)
    high = ticks >> 12
    tail = uuid.uuid4().hex
    return f"{high >> 16:08x}-{high & 0xFFFF:04x}-6{ticks & 0xFFF:03x}-{tail[:4]}-{tail[4:16]}"


async def run_langgraph_conformance(
    store: CheckpointStore,
    *,
    name: str = "ContextKitSaver",
    serde: Any = None,
    capabilities: set[str] | None = None,
    verbose: bool = False,
) -> Any:
    """Run ``langgraph-checkpoint-conformance``'s ``validate()`` on :class:`ContextKitSaver` over ``store``.

    Every capability suite gets a fresh saver over the same (already opened) store; the tests use random thread
    ids, so one store serves them all. Returns the ``CapabilityReport``; assert ``report.passed_all()``.
    """
    from langgraph.checkpoint.conformance import checkpointer_test, validate
    from langgraph.checkpoint.conformance.report import ProgressCallbacks

    from contextkit.langgraph import ContextKitSaver

    @checkpointer_test(name=name)
    async def factory() -> AsyncIterator[ContextKitSaver]:
        yield ContextKitSaver(store, serde=serde)

    progress = ProgressCallbacks.verbose() if verbose else None
    return await validate(factory, capabilities=capabilities, progress=progress)


class XorTestCipher:
    """A stdlib-only ``CipherProtocol`` for tests of ``EncryptedSerializer`` (a keyed stream with an HMAC tag).

    It exists so tests need no pycryptodome; it is not meant to protect real data.
    """

    def __init__(self, key: bytes) -> None:
        self.key = key

    def _stream(self, nonce: bytes, size: int) -> bytes:
        blocks = (hashlib.sha256(self.key + nonce + i.to_bytes(8, "big")).digest() for i in itertools.count())
        return b"".join(itertools.islice(blocks, size // 32 + 1))[:size]

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        """``("xortest", nonce + tag + ciphertext)``."""
        nonce = os.urandom(16)
        body = bytes(a ^ b for a, b in zip(plaintext, self._stream(nonce, len(plaintext)), strict=True))
        tag = hmac.new(self.key, nonce + body, hashlib.sha256).digest()
        return "xortest", nonce + tag + body

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        """The plaintext; raises ``ValueError`` when the tag does not match."""
        if ciphername != "xortest":
            raise ValueError(f"unknown cipher {ciphername!r}")
        nonce, tag, body = ciphertext[:16], ciphertext[16:48], ciphertext[48:]
        if not hmac.compare_digest(tag, hmac.new(self.key, nonce + body, hashlib.sha256).digest()):
            raise ValueError("ciphertext was tampered with")
        return bytes(a ^ b for a, b in zip(body, self._stream(nonce, len(body)), strict=True))


# -- rows used by the protocol tests ---------------------------------------------------------------------------


def _typed(value: Any) -> tuple[str, bytes]:
    return ("json", json.dumps(value).encode())


def _row(
    thread_id: str,
    checkpoint_id: str,
    *,
    parent: str | None = None,
    ns: str = "",
    versions: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> CheckpointRow:
    return CheckpointRow(
        thread_id=thread_id,
        checkpoint_ns=ns,
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent,
        checkpoint=_typed({"id": checkpoint_id}),
        metadata=metadata if metadata is not None else {"source": "loop", "step": 0, "parents": {}},
        channel_versions=versions or {},
    )


def _write(task_id: str, idx: int, channel: str, value: Any, task_path: str = "") -> WriteRow:
    return WriteRow(task_id, idx, channel, _typed(value), task_path)


async def _chain(
    store: CheckpointStore, thread_id: str, n: int, *, ns: str = "", metadata: Iterable[dict[str, Any]] | None = None
) -> list[str]:
    """Put ``n`` checkpoints, each the child of the previous; their ids, oldest first."""
    ids: list[str] = []
    metas = list(metadata) if metadata is not None else [{"source": "loop", "step": i} for i in range(n)]
    for i in range(n):
        cid = make_checkpoint_id()
        await store.cp_put(_row(thread_id, cid, parent=ids[-1] if ids else None, ns=ns, metadata=metas[i]), {})
        ids.append(cid)
    return ids


async def _ids(store: CheckpointStore, thread_id: str | None, ns: str | None = "", **kwargs: Any) -> list[str]:
    return [b.row.checkpoint_id async for b in store.cp_list(thread_id, ns, **kwargs)]


def _values(bundle: CheckpointBundle | None) -> dict[str, Any]:
    assert bundle is not None
    return {ch: json.loads(blob[1]) for ch, blob in bundle.blobs.items() if blob[0] == "json"}


def _write_values(bundle: CheckpointBundle | None) -> list[tuple[str, int, Any]]:
    assert bundle is not None
    return sorted((w.task_id, w.idx, json.loads(w.value[1])) for w in bundle.writes)


async def _aclose(store: Any) -> None:
    aclose = getattr(store, "aclose", None)
    if aclose is not None:
        await aclose()


# -- LangGraph state types (module level, so LangGraph can resolve their annotations) -------------------------


class _ReviewState(TypedDict, total=False):
    topic: str
    draft: str
    approved: bool


class _LogState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


class _TurnsState(TypedDict, total=False):
    turns: Annotated[list[str], operator.add]


class _ArchiveState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    count: int
    doc: str


#: The ``doc`` channel of :func:`archive_graph`: set by the first run, never written again.
ARCHIVE_DOC = "a document set once and never changed " * 50


def archive_graph(checkpointer: Any) -> Any:
    """START -> first -> second -> END over ``{log (list, +), count, doc}``, compiled on ``checkpointer``.

    ``log`` changes on every step, ``doc`` only on the first run: a checkpoint read back from the cold tier must
    carry the values of channels its own step did not write.
    """
    from langgraph.graph import END, START, StateGraph

    def first(state: _ArchiveState) -> dict[str, Any]:
        return {"log": ["first"], "count": state.get("count", 0) + 1}

    def second(state: _ArchiveState) -> dict[str, Any]:
        return {"log": [f"second:{state.get('count', 0)}"]}

    builder = StateGraph(_ArchiveState)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(checkpointer=checkpointer)


async def run_archive_graph(graph: Any, thread_id: str, runs: int) -> None:
    """``runs`` invocations of :func:`archive_graph` on the thread (the first sets ``doc`` and ``count``)."""
    await graph.ainvoke({"log": ["in0"], "doc": ARCHIVE_DOC, "count": 0}, _config(thread_id))
    for n in range(1, runs):
        await graph.ainvoke({"log": [f"in{n}"]}, _config(thread_id))


def state_summary(snapshots: Iterable[Any]) -> list[tuple[str, Any, Any, Any]]:
    """``(checkpoint id, parent id, values, next)`` of each ``StateSnapshot``: what must read back identically."""
    summary = []
    for snapshot in snapshots:
        parent = snapshot.parent_config["configurable"]["checkpoint_id"] if snapshot.parent_config else None
        summary.append((snapshot.config["configurable"]["checkpoint_id"], parent, snapshot.values, snapshot.next))
    return summary


def _review_graph(checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def write(state: _ReviewState) -> _ReviewState:
        return {"draft": f"a draft about {state['topic']}"}

    def review(state: _ReviewState) -> _ReviewState:
        answer = interrupt({"please review": state["draft"]})
        return {"approved": answer == "approve"}

    builder = StateGraph(_ReviewState)
    builder.add_node("write", write)
    builder.add_node("review", review)
    builder.add_edge(START, "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=checkpointer)


def _log_node(name: str, calls: dict[str, int], fail_once: set[str] | None = None) -> Any:
    """A node appending ``name`` to ``log`` and counting its runs in ``calls``; it raises once when ``name`` is in
    ``fail_once`` (and leaves the set)."""

    def run(state: _LogState) -> _LogState:
        calls[name] = calls.get(name, 0) + 1
        if fail_once is not None and name in fail_once:
            fail_once.discard(name)
            raise RuntimeError(f"{name} failed once")
        return {"log": [name]}

    return run


def _log_graph(checkpointer: Any, calls: dict[str, int] | None = None, fail_once: set[str] | None = None) -> Any:
    """START -> a -> (b, c in parallel) -> d -> END, each node appending its name to ``log``."""
    from langgraph.graph import END, START, StateGraph

    calls = calls if calls is not None else {}
    builder = StateGraph(_LogState)
    for name in "abcd":
        builder.add_node(name, _log_node(name, calls, fail_once))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("a", "c")
    builder.add_edge(["b", "c"], "d")
    builder.add_edge("d", END)
    return builder.compile(checkpointer=checkpointer)


def paused_graph(checkpointer: Any, calls: dict[str, int]) -> Any:
    """START -> a -> b -> END, each node appending its name to ``log`` and counting its runs in ``calls``, compiled
    to pause before ``b`` (the checkpoint it pauses at holds ``b``'s trigger, ``branch:to:b``)."""
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(_LogState)
    builder.add_node("a", _log_node("a", calls))
    builder.add_node("b", _log_node("b", calls))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder.compile(checkpointer=checkpointer, interrupt_before=["b"])


def _nested_graph(checkpointer: Any) -> Any:
    """A parent whose node ``child`` is a subgraph that interrupts, so the subgraph checkpoints in its own
    namespace."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def ask(state: _LogState) -> _LogState:
        answer = interrupt("child question")
        return {"log": [f"child got {answer}"]}

    sub = StateGraph(_LogState)
    sub.add_node("ask", ask)
    sub.add_edge(START, "ask")
    sub.add_edge("ask", END)

    def before(state: _LogState) -> _LogState:
        return {"log": ["before"]}

    parent = StateGraph(_LogState)
    parent.add_node("before", before)
    parent.add_node("child", sub.compile())
    parent.add_edge(START, "before")
    parent.add_edge("before", "child")
    parent.add_edge("child", END)
    return parent.compile(checkpointer=checkpointer)


def delta_graph(checkpointer: Any, snapshot_frequency: int = 3) -> Any:
    """One node appending a turn to a ``DeltaChannel`` list that snapshots every ``snapshot_frequency`` updates."""
    from langgraph.channels.delta import DeltaChannel
    from langgraph.graph import END, START, StateGraph

    def concat(state: list[str], writes: list[list[str]]) -> list[str]:
        return [*state, *itertools.chain.from_iterable(writes)]

    # The functional form evaluates the annotation here, where DeltaChannel (an optional import) is in scope.
    turns = Annotated[list[str], DeltaChannel(concat, snapshot_frequency=snapshot_frequency)]
    DeltaState = TypedDict("DeltaState", {"turns": turns})  # noqa: UP013

    def reply(state: Any) -> Any:
        return {"turns": [f"reply {len(state['turns'])}"]}

    builder = StateGraph(DeltaState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=checkpointer)


def _legacy_saver(store: CheckpointStore) -> Any:
    """A saver that writes like contextkit before compact rows: ``f"{n:032}.{random:016}"`` versions, and the
    serialized checkpoint with its channel versions and id (what threads stored by older versions hold)."""
    import random

    from contextkit.langgraph import ContextKitSaver

    class LegacySaver(ContextKitSaver):
        _compact_rows = False

        def get_next_version(self, current: Any, channel: None = None) -> str:
            number = 0 if current is None else int(str(current).split(".", 1)[0])
            return f"{number + 1:032}.{random.random():016}"

    return LegacySaver(store)


def _plain_turns_graph(checkpointer: Any) -> Any:
    """:func:`delta_graph` with an ordinary list reducer: what the ``DeltaChannel`` graph must rebuild."""
    from langgraph.graph import END, START, StateGraph

    def reply(state: _TurnsState) -> _TurnsState:
        return {"turns": [f"reply {len(state['turns'])}"]}

    builder = StateGraph(_TurnsState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=checkpointer)


def long_turns_graph(checkpointer: Any) -> Any:
    """:func:`_plain_turns_graph` with replies of ~300 characters: a list worth sharing
    (:mod:`contextkit.checkpoint_lists`) after a turn or two."""
    from langgraph.graph import END, START, StateGraph

    def reply(state: _TurnsState) -> _TurnsState:
        n = len(state["turns"])
        return {"turns": [f"reply {n}: " + " ".join(f"word{(n * 7 + i) % 97}" for i in range(40))]}

    builder = StateGraph(_TurnsState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=checkpointer)


class LossState(TypedDict, total=False):
    """The state of :func:`loss_graph`."""

    items: Annotated[list[str], operator.add]
    count: int


def loss_graph(checkpointer: Any, lose: Callable[[], Awaitable[None]]) -> Any:
    """A 2-step graph whose second step calls ``lose()`` (making the hot tier lose the thread, as a restart
    without persistence or an expiry would) and then changes only ``count``: ``talk`` appends a ~700-character
    answer to ``items`` (a list worth sharing, :mod:`contextkit.checkpoint_lists`, from two items on), ``lose``
    increments ``count``. Each run's input is one more item; after ``n`` runs the state holds ``2n`` items."""
    from langgraph.graph import END, START, StateGraph

    def talk(state: LossState) -> dict[str, Any]:
        return {"items": [f"answer {len(state.get('items', []))} " + "x" * 700]}

    async def lose_step(state: LossState) -> dict[str, Any]:
        await lose()
        return {"count": state.get("count", 0) + 1}

    builder = StateGraph(LossState)
    builder.add_node("talk", talk)
    builder.add_node("lose", lose_step)
    builder.add_edge(START, "talk")
    builder.add_edge("talk", "lose")
    builder.add_edge("lose", END)
    return builder.compile(checkpointer=checkpointer)


async def delta_chain(store: CheckpointStore, thread_id: str, ns: str = "") -> list[str]:
    """Seven checkpoints ``c0..c6`` for the DeltaChannel history tests (the suite's and a tier's own), oldest first.

    Channel ``a`` has a stored value at ``c0`` and ``c3``, ``b`` at ``c2``, ``c`` nowhere (only the empty marker);
    the other steps give each channel a new version with the empty marker, as LangGraph does between snapshots.
    Every checkpoint holds writes to ``a``, ``b``, ``c`` and ``other`` from two tasks whose ``task_path`` order is
    the reverse of their ``task_id`` order (the replay order is ``writes_sort_key``: path first).
    """
    ids: list[str] = []
    empty = ("empty", b"")
    for i in range(7):
        cid = make_checkpoint_id()
        versions = {"a": f"{i + 1}", "b": f"{i + 1}", "c": f"{i + 1}", "other": "1"}
        blobs = {(ch, v): empty for ch, v in versions.items() if ch != "other"}
        if i in (0, 3):
            blobs[("a", f"{i + 1}")] = _typed(f"A{i}")
        if i == 2:
            blobs[("b", f"{i + 1}")] = _typed(f"B{i}")
        if i == 0:
            blobs[("other", "1")] = _typed("O")
        await store.cp_put(_row(thread_id, cid, parent=ids[-1] if ids else None, ns=ns, versions=versions), blobs)
        writes = [
            _write("task-a", 0, "a", f"a{i}/late", task_path="~1"),
            _write("task-a", 1, "b", f"b{i}/late", task_path="~1"),
            _write("task-z", 0, "a", f"a{i}/early", task_path="~0"),
            _write("task-z", 1, "c", f"c{i}", task_path="~0"),
            _write("task-z", 2, "b", f"b{i}/early", task_path="~0"),
            _write("task-z", 3, "other", f"o{i}", task_path="~0"),
        ]
        await store.cp_put_writes(thread_id, ns, cid, writes, False)
        ids.append(cid)
    return ids


class _WithoutDeltaHistory:
    """A store seen without its ``cp_delta_history``: what a third-party store that lacks it looks like to the
    saver (which then walks with ``cp_get``)."""

    def __init__(self, store: CheckpointStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "cp_delta_history":
            raise AttributeError(name)
        return getattr(self._store, name)


def _history_values(history: Any) -> dict[str, Any]:
    """``{channel: (write values, seed or None)}`` of a ``get_delta_channel_history`` answer."""
    return {channel: ([w[2] for w in entry["writes"]], entry.get("seed")) for channel, entry in history.items()}


async def generic_delta_history(saver: Any, config: Any, channels: list[str]) -> Any:
    """LangGraph's own walk (``BaseCheckpointSaver``'s default, one ``aget_tuple`` per ancestor): the oracle."""
    from langgraph.checkpoint.base import BaseCheckpointSaver

    return await BaseCheckpointSaver.aget_delta_channel_history(saver, config=config, channels=channels)


async def check_bounded_delta_walk(store: CheckpointStore) -> None:
    """Check a store whose ``cp_delta_history`` walks at most 2 ancestors per call (the test lowers the store's own
    bound to 2 first): the walk names the next ancestor as ``resume`` with ``bounded`` set, and the saver calls
    again from there, to LangGraph's own answer."""
    from contextkit.langgraph import ContextKitSaver

    assert isinstance(store, DeltaHistoryStore), "the store walks DeltaChannel histories itself"
    tid = str(uuid.uuid4())
    ids = await delta_chain(store, tid)
    walk = await store.cp_delta_history(tid, "", None, ["c"])
    assert walk is not None and [s.checkpoint_id for s in walk.steps] == ids[5:3:-1]
    assert walk.resume == ids[3] and walk.bounded
    saver = ContextKitSaver(store)
    config = _config(tid, checkpoint_ns="")
    history = await saver.aget_delta_channel_history(config=config, channels=["a", "b", "c"])
    assert history == await generic_delta_history(saver, config, ["a", "b", "c"])
    assert len(history["c"]["writes"]) == 6


def _config(thread_id: str, **extra: Any) -> Any:
    return {"configurable": {"thread_id": thread_id, **extra}}


class CheckpointStoreSuite:
    """The checkpoint contract. Subclass it (``Test...``) and provide ``checkpoint_store_factory``."""

    #: Every test of a subclass carries the ``conformance`` marker (pytest collects class marks along the MRO), so
    #: ``pytest -m conformance`` (``nox -s conformance``) runs every run of every suite, whatever its file's name.
    pytestmark = [pytest.mark.conformance]

    @pytest.fixture
    def checkpoint_store_factory(self) -> StoreFactory:
        """Override: an async callable that builds and opens a new store for the ``StoreSettings`` it is given."""
        raise NotImplementedError("provide a checkpoint_store_factory fixture returning an async store builder")

    @pytest.fixture
    async def checkpoint_store(self, checkpoint_store_factory: StoreFactory) -> AsyncIterator[CheckpointStore]:
        """An opened store in a namespace of its own, closed after the test."""
        store = await checkpoint_store_factory(StoreSettings(namespace=f"ckt-{uuid.uuid4().hex[:12]}"))
        try:
            yield store
        finally:
            await _aclose(store)

    # -- the protocol: reads and writes -----------------------------------------------------------------------
    async def test_put_then_get_returns_the_row_and_its_blobs(self, checkpoint_store: CheckpointStore) -> None:
        """``cp_put`` stores the row verbatim and ``cp_get`` returns it with the blobs of its channel versions.
        A failure here usually means the row's fields or the ``(type, bytes)`` pairs are not stored as given."""
        tid, cid = str(uuid.uuid4()), make_checkpoint_id()
        row = _row(tid, cid, versions={"a": "1", "b": "1"}, metadata={"source": "input", "step": -1, "x": [1, 2]})
        await checkpoint_store.cp_put(row, {("a", "1"): _typed("A"), ("b", "1"): ("bytes", b"\x00\xff")})
        got = await checkpoint_store.cp_get(tid, "", cid)
        assert got is not None
        assert got.row == row
        assert dict(got.blobs) == {"a": _typed("A"), "b": ("bytes", b"\x00\xff")}
        assert list(got.writes) == []

    async def test_get_without_id_returns_the_newest_checkpoint_id(self, checkpoint_store: CheckpointStore) -> None:
        """The newest is the greatest ``checkpoint_id``, not the last one inserted (ids sort by creation time)."""
        tid = str(uuid.uuid4())
        older, newer = make_checkpoint_id(), make_checkpoint_id()
        await checkpoint_store.cp_put(_row(tid, newer), {})
        await checkpoint_store.cp_put(_row(tid, older), {})
        got = await checkpoint_store.cp_get(tid, "", None)
        assert got is not None and got.row.checkpoint_id == newer

    async def test_missing_thread_namespace_or_id_reads_none(self, checkpoint_store: CheckpointStore) -> None:
        """A read of something never stored returns None (not an error, not another namespace's row)."""
        tid = str(uuid.uuid4())
        await checkpoint_store.cp_put(_row(tid, make_checkpoint_id()), {})
        assert await checkpoint_store.cp_get(str(uuid.uuid4()), "", None) is None
        assert await checkpoint_store.cp_get(tid, "other", None) is None
        assert await checkpoint_store.cp_get(tid, "", make_checkpoint_id()) is None

    async def test_unchanged_channels_keep_reading_their_older_blob_versions(self, checkpoint_store: CheckpointStore) -> None:
        """Blobs are keyed by (channel, version) and written only when new: a checkpoint that points at an older
        version of a channel reads that blob, and older checkpoints keep reading their own versions."""
        tid = str(uuid.uuid4())
        c1, c2 = make_checkpoint_id(), make_checkpoint_id()
        await checkpoint_store.cp_put(
            _row(tid, c1, versions={"a": "1", "b": "1"}), {("a", "1"): _typed("a1"), ("b", "1"): _typed("b1")}
        )
        await checkpoint_store.cp_put(_row(tid, c2, parent=c1, versions={"a": "2", "b": "1"}), {("a", "2"): _typed("a2")})
        assert _values(await checkpoint_store.cp_get(tid, "", c2)) == {"a": "a2", "b": "b1"}
        assert _values(await checkpoint_store.cp_get(tid, "", c1)) == {"a": "a1", "b": "b1"}

    async def test_writes_are_insert_if_absent_unless_upserted(self, checkpoint_store: CheckpointStore) -> None:
        """Writes are keyed (task_id, idx): a repeated key keeps the first value, ``upsert=True`` replaces it."""
        tid, cid = str(uuid.uuid4()), make_checkpoint_id()
        await checkpoint_store.cp_put(_row(tid, cid), {})
        put = checkpoint_store.cp_put_writes
        await put(tid, "", cid, [_write("t1", 0, "x", "first"), _write("t1", 1, "y", "second")], False)
        await put(tid, "", cid, [_write("t1", 0, "x", "changed")], False)
        await put(tid, "", cid, [_write("t1", -1, "__error__", "boom")], True)
        await put(tid, "", cid, [_write("t1", -1, "__error__", "boom again")], True)
        await put(tid, "", cid, [_write("t2", 0, "x", "other task")], False)
        assert _write_values(await checkpoint_store.cp_get(tid, "", cid)) == [
            ("t1", -1, "boom again"),
            ("t1", 0, "first"),
            ("t1", 1, "second"),
            ("t2", 0, "other task"),
        ]

    async def test_writes_belong_to_one_checkpoint_of_one_namespace(self, checkpoint_store: CheckpointStore) -> None:
        """Writes of a checkpoint are not seen from another checkpoint or namespace, and a task path is kept."""
        tid = str(uuid.uuid4())
        c1, c2 = make_checkpoint_id(), make_checkpoint_id()
        await checkpoint_store.cp_put(_row(tid, c1), {})
        await checkpoint_store.cp_put(_row(tid, c2, parent=c1), {})
        await checkpoint_store.cp_put(_row(tid, c1, ns="sub:1"), {})
        await checkpoint_store.cp_put_writes(tid, "", c1, [_write("t", 0, "x", 1, task_path="~p")], False)
        first = await checkpoint_store.cp_get(tid, "", c1)
        assert first is not None and [w.task_path for w in first.writes] == ["~p"]
        assert _write_values(await checkpoint_store.cp_get(tid, "", c2)) == []
        assert _write_values(await checkpoint_store.cp_get(tid, "sub:1", c1)) == []

    async def test_writes_that_arrive_before_their_checkpoint_are_kept(self, checkpoint_store: CheckpointStore) -> None:
        """LangGraph saves a checkpoint and its tasks' writes in the background, so writes may land first."""
        tid, cid = str(uuid.uuid4()), make_checkpoint_id()
        await checkpoint_store.cp_put_writes(tid, "", cid, [_write("t", 0, "x", "early")], False)
        await checkpoint_store.cp_put(_row(tid, cid), {})
        assert _write_values(await checkpoint_store.cp_get(tid, "", cid)) == [("t", 0, "early")]

    # -- listing ----------------------------------------------------------------------------------------------
    async def test_list_is_newest_first_with_before_and_limit(self, checkpoint_store: CheckpointStore) -> None:
        """``cp_list`` yields descending ids; ``before`` keeps lower ids; ``limit`` caps; they paginate."""
        tid = str(uuid.uuid4())
        ids = await _chain(checkpoint_store, tid, 7)
        newest_first = ids[::-1]
        assert await _ids(checkpoint_store, tid) == newest_first
        assert await _ids(checkpoint_store, tid, limit=3) == newest_first[:3]
        assert await _ids(checkpoint_store, tid, before=ids[4]) == newest_first[3:]
        assert await _ids(checkpoint_store, tid, before=ids[4], limit=2) == newest_first[3:5]
        assert await _ids(checkpoint_store, tid, limit=0) == []
        assert await _ids(checkpoint_store, tid, checkpoint_id=ids[2]) == [ids[2]]

    async def test_list_filters_on_metadata_equality(self, checkpoint_store: CheckpointStore) -> None:
        """Every key of ``metadata_filter`` must equal the stored metadata's value (nested values too)."""
        tid = str(uuid.uuid4())
        metas = [
            {"source": "input", "step": -1, "user": "u1"},
            {"source": "loop", "step": 0, "user": "u1", "parents": {"": "p"}},
            {"source": "loop", "step": 1, "user": "u2"},
        ]
        ids = await _chain(checkpoint_store, tid, 3, metadata=metas)
        assert await _ids(checkpoint_store, tid, metadata_filter={"source": "loop"}) == [ids[2], ids[1]]
        assert await _ids(checkpoint_store, tid, metadata_filter={"source": "loop", "user": "u1"}) == [ids[1]]
        assert await _ids(checkpoint_store, tid, metadata_filter={"step": -1}) == [ids[0]]
        assert await _ids(checkpoint_store, tid, metadata_filter={"parents": {"": "p"}}) == [ids[1]]
        assert await _ids(checkpoint_store, tid, metadata_filter={"user": "nobody"}) == []
        assert await _ids(checkpoint_store, tid, metadata_filter={"source": "loop"}, limit=1) == [ids[2]]

    async def test_list_without_namespace_or_thread_covers_all_of_them(self, checkpoint_store: CheckpointStore) -> None:
        """``checkpoint_ns=None`` lists every namespace of the thread, newest first; ``thread_id=None`` every
        thread of the store, each checkpoint once and each thread's newest first."""
        t1, t2 = str(uuid.uuid4()), str(uuid.uuid4())
        root = await _chain(checkpoint_store, t1, 2)
        child = await _chain(checkpoint_store, t1, 2, ns="child:1")
        other = await _chain(checkpoint_store, t2, 1)
        assert await _ids(checkpoint_store, t1, None) == sorted(root + child, reverse=True)
        everything = await _ids(checkpoint_store, None, None)
        assert sorted(everything) == sorted(root + child + other)
        assert [i for i in everything if i in root + child] == sorted(root + child, reverse=True)

    # -- deleting ---------------------------------------------------------------------------------------------
    async def test_delete_thread_removes_every_namespace_and_keeps_other_threads(self, checkpoint_store: CheckpointStore) -> None:
        """Every checkpoint, blob and write of the thread goes, in every namespace; other threads stay."""
        t1, t2 = str(uuid.uuid4()), str(uuid.uuid4())
        ids = await _chain(checkpoint_store, t1, 2)
        await _chain(checkpoint_store, t1, 1, ns="child:1")
        await checkpoint_store.cp_put_writes(t1, "", ids[-1], [_write("t", 0, "x", 1)], False)
        kept = await _chain(checkpoint_store, t2, 1)
        await checkpoint_store.cp_delete_thread(t1)
        assert await _ids(checkpoint_store, t1, None) == []
        assert await checkpoint_store.cp_get(t1, "child:1", None) is None
        assert await _ids(checkpoint_store, t2) == kept
        await checkpoint_store.cp_delete_thread(str(uuid.uuid4()))  # a missing thread is a no-op

    async def test_late_writes_after_delete_thread_do_not_bring_it_back(self, checkpoint_store: CheckpointStore) -> None:
        """A run still going when its thread is deleted keeps saving: its put (child of a deleted checkpoint),
        the puts chained onto that one, and writes for any of them are dropped, even writes that arrive before
        their checkpoint. Storing them would leave a thread whose checkpoints miss their parents and blobs."""
        tid = str(uuid.uuid4())
        ids = await _chain(checkpoint_store, tid, 2)
        await checkpoint_store.cp_delete_thread(tid)
        await checkpoint_store.cp_put_writes(tid, "", ids[-1], [_write("t", 0, "x", "late")], False)
        late = make_checkpoint_id()  # made after the delete by the running loop
        await checkpoint_store.cp_put_writes(tid, "", late, [_write("t", 0, "x", "raced ahead")], False)
        await checkpoint_store.cp_put(_row(tid, late, parent=ids[-1]), {})
        later = make_checkpoint_id()
        await checkpoint_store.cp_put(_row(tid, later, parent=late), {})
        await checkpoint_store.cp_put_writes(tid, "", later, [_write("t", 0, "x", "late too")], False)
        assert await _ids(checkpoint_store, tid, None) == []
        for cid in (*ids, late, later):
            assert await checkpoint_store.cp_get(tid, "", cid) is None

    async def test_a_new_run_on_a_deleted_thread_id_is_stored(self, checkpoint_store: CheckpointStore) -> None:
        """After a delete, a new run (no parent, new ids) uses the thread id again normally."""
        tid = str(uuid.uuid4())
        await _chain(checkpoint_store, tid, 2)
        await checkpoint_store.cp_delete_thread(tid)
        fresh = await _chain(checkpoint_store, tid, 2)
        await checkpoint_store.cp_put_writes(tid, "", fresh[-1], [_write("t", 0, "x", "new")], False)
        assert await _ids(checkpoint_store, tid) == fresh[::-1]
        assert _write_values(await checkpoint_store.cp_get(tid, "", None)) == [("t", 0, "new")]

    async def test_delete_for_runs_removes_only_those_runs(self, checkpoint_store: CheckpointStore) -> None:
        """Checkpoints (and writes) whose ``metadata["run_id"]`` is listed go, in every thread and namespace;
        the others keep reading their blobs. The store returns the threads that lost checkpoints (or None when it
        cannot tell: the saver then archives no tombstone for them)."""
        t1, t2 = str(uuid.uuid4()), str(uuid.uuid4())
        c1, c2, c3, c4 = (make_checkpoint_id() for _ in range(4))
        await checkpoint_store.cp_put(_row(t1, c1, versions={"a": "1"}, metadata={"run_id": "r1"}), {("a", "1"): _typed(1)})
        await checkpoint_store.cp_put(_row(t1, c2, parent=c1, versions={"a": "1"}, metadata={"run_id": "r2"}), {})
        await checkpoint_store.cp_put(_row(t1, c3, ns="child:1", metadata={"run_id": "r1"}), {})
        await checkpoint_store.cp_put(_row(t2, c4, metadata={"run_id": "r1"}), {})
        await checkpoint_store.cp_put_writes(t1, "", c1, [_write("t", 0, "x", 1)], False)
        touched = await checkpoint_store.cp_delete_for_runs(["r1", "missing"])
        assert touched is None or sorted(touched) == sorted([t1, t2])
        assert await _ids(checkpoint_store, t1, None) == [c2]
        assert await _ids(checkpoint_store, t2, None) == []
        assert _values(await checkpoint_store.cp_get(t1, "", c2)) == {"a": 1}
        assert not await checkpoint_store.cp_delete_for_runs([])
        assert not await checkpoint_store.cp_delete_for_runs(["r1"])  # nothing of r1 is left

    async def test_copy_thread_copies_everything_and_keeps_the_source(self, checkpoint_store: CheckpointStore) -> None:
        """Every namespace, checkpoint (same ids, order, parents, metadata), blob and write is copied under the
        target id; the source is unchanged; copying a missing thread creates nothing."""
        src, dst = str(uuid.uuid4()), str(uuid.uuid4())
        c1, c2 = make_checkpoint_id(), make_checkpoint_id()
        await checkpoint_store.cp_put(_row(src, c1, versions={"a": "1"}, metadata={"step": 0}), {("a", "1"): _typed("v")})
        await checkpoint_store.cp_put(_row(src, c2, parent=c1, versions={"a": "1"}, metadata={"step": 1}), {})
        await checkpoint_store.cp_put(_row(src, c1, ns="child:1"), {})
        await checkpoint_store.cp_put_writes(src, "", c2, [_write("t", 0, "x", "w")], False)
        await checkpoint_store.cp_copy_thread(src, dst)
        assert await _ids(checkpoint_store, dst) == [c2, c1]
        assert await _ids(checkpoint_store, dst, "child:1") == [c1]
        copied = await checkpoint_store.cp_get(dst, "", c2)
        assert copied is not None
        assert copied.row.thread_id == dst and copied.row.parent_checkpoint_id == c1
        assert dict(copied.row.metadata) == {"step": 1}
        assert _values(copied) == {"a": "v"} and _write_values(copied) == [("t", 0, "w")]
        assert await _ids(checkpoint_store, src, None) == sorted([c1, c2, c1], reverse=True)
        nobody = str(uuid.uuid4())
        await checkpoint_store.cp_copy_thread(str(uuid.uuid4()), nobody)
        assert await _ids(checkpoint_store, nobody, None) == []

    # -- prune ------------------------------------------------------------------------------------------------
    async def test_prune_keep_latest_keeps_the_newest_per_namespace(self, checkpoint_store: CheckpointStore) -> None:
        """The newest checkpoint of each namespace stays with its writes and blobs (including blobs first
        written by a pruned checkpoint); it loses its parent link; other threads are untouched."""
        tid, other = str(uuid.uuid4()), str(uuid.uuid4())
        c1, c2, c3 = (make_checkpoint_id() for _ in range(3))
        await checkpoint_store.cp_put(_row(tid, c1, versions={"a": "1"}), {("a", "1"): _typed("a1")})
        await checkpoint_store.cp_put(_row(tid, c2, parent=c1, versions={"a": "2"}), {("a", "2"): _typed("a2")})
        await checkpoint_store.cp_put(_row(tid, c3, parent=c2, versions={"a": "2", "b": "1"}), {("b", "1"): _typed("b1")})
        await checkpoint_store.cp_put_writes(tid, "", c3, [_write("t", 0, "x", "kept")], False)
        child = await _chain(checkpoint_store, tid, 3, ns="child:1")
        untouched = await _chain(checkpoint_store, other, 2)
        await checkpoint_store.cp_prune([tid], True)
        assert await _ids(checkpoint_store, tid) == [c3]
        assert await _ids(checkpoint_store, tid, "child:1") == [child[-1]]
        latest = await checkpoint_store.cp_get(tid, "", None)
        assert _values(latest) == {"a": "a2", "b": "b1"}
        assert _write_values(latest) == [("t", 0, "kept")]
        assert latest is not None and latest.row.parent_checkpoint_id is None
        assert await _ids(checkpoint_store, other) == untouched[::-1]
        await checkpoint_store.cp_prune([], True)
        await checkpoint_store.cp_prune([str(uuid.uuid4())], True)

    async def test_prune_keep_latest_keeps_the_delta_channel_ancestors(self, checkpoint_store: CheckpointStore) -> None:
        """A ``DeltaChannel`` value is rebuilt from the writes of the ancestors back to the nearest one holding a
        value; ``counters_since_delta_snapshot`` in the newest metadata names such channels. Prune keeps that
        chain (and its writes) and nothing older."""
        tid = str(uuid.uuid4())
        ids = [make_checkpoint_id() for _ in range(5)]
        # ids[1] holds a snapshot of "msgs"; ids[2..4] only mark new versions with the empty blob.
        await checkpoint_store.cp_put(_row(tid, ids[0], versions={"msgs": "1"}), {("msgs", "1"): _typed(["m0"])})
        await checkpoint_store.cp_put(
            _row(tid, ids[1], parent=ids[0], versions={"msgs": "2"}), {("msgs", "2"): _typed(["m0", "m1"])}
        )
        for i in (2, 3, 4):
            meta = {"step": i, "counters_since_delta_snapshot": {"msgs": [i - 1, i - 1]}}
            await checkpoint_store.cp_put(
                _row(tid, ids[i], parent=ids[i - 1], versions={"msgs": str(i + 1)}, metadata=meta),
                {("msgs", str(i + 1)): ("empty", b"")},
            )
            await checkpoint_store.cp_put_writes(tid, "", ids[i - 1], [_write(f"t{i}", 0, "msgs", [f"m{i}"])], False)
        await checkpoint_store.cp_prune([tid], True)
        assert await _ids(checkpoint_store, tid) == ids[:0:-1]
        seed = await checkpoint_store.cp_get(tid, "", ids[1])
        assert _values(seed) == {"msgs": ["m0", "m1"]}
        assert _write_values(seed) == [("t2", 0, ["m2"])]

    async def test_prune_drops_subgraph_calls_of_pruned_root_checkpoints(self, checkpoint_store: CheckpointStore) -> None:
        """A subgraph call's namespace (``node:task``) started from a root checkpoint that prune removes is
        removed whole; one started from the kept root checkpoint keeps its newest checkpoint."""
        tid = str(uuid.uuid4())
        root = await _chain(checkpoint_store, tid, 2)
        await _chain(checkpoint_store, tid, 2, ns="call:old", metadata=[{"parents": {"": root[0]}}] * 2)
        current = await _chain(checkpoint_store, tid, 2, ns="call:new", metadata=[{"parents": {"": root[1]}}] * 2)
        await checkpoint_store.cp_prune([tid], True)
        assert await _ids(checkpoint_store, tid, "call:old") == []
        assert await _ids(checkpoint_store, tid, "call:new") == [current[-1]]

    async def test_retention_keeps_the_newest_n_and_the_first(self, checkpoint_store: CheckpointStore) -> None:
        """``RetentionPolicy(keep_latest=n)`` keeps the newest ``n`` of each namespace with their writes and blobs
        (and the blobs they point at); ``keep_first`` keeps
        the namespace's first checkpoint too; writes of pruned checkpoints go; the oldest kept loses its parent
        link only when that parent is pruned. A second prune with the same policy changes nothing."""
        tid = str(uuid.uuid4())
        ids = [make_checkpoint_id() for _ in range(6)]
        await checkpoint_store.cp_put(_row(tid, ids[0], versions={"a": "1"}), {("a", "1"): _typed("a1")})
        for i in range(1, 6):
            await checkpoint_store.cp_put(_row(tid, ids[i], parent=ids[i - 1], versions={"a": "1", "n": str(i)}),
                                          {("n", str(i)): _typed(i)})
            await checkpoint_store.cp_put_writes(tid, "", ids[i - 1], [_write(f"t{i}", 0, "x", i)], False)
        policy = RetentionPolicy(keep_latest=3, keep_first=True)
        await checkpoint_store.cp_prune([tid], True, policy=policy)
        kept = [ids[5], ids[4], ids[3], ids[0]]
        assert await _ids(checkpoint_store, tid) == kept
        oldest_new = await checkpoint_store.cp_get(tid, "", ids[3])
        assert _values(oldest_new) == {"a": "a1", "n": 3}
        assert oldest_new is not None and oldest_new.row.parent_checkpoint_id is None
        assert _write_values(oldest_new) == [("t4", 0, 4)]
        first = await checkpoint_store.cp_get(tid, "", ids[0])
        assert _values(first) == {"a": "a1"} and _write_values(first) == [("t1", 0, 1)]
        newest = await checkpoint_store.cp_get(tid, "", None)
        assert newest is not None and newest.row.parent_checkpoint_id == ids[4]
        assert await checkpoint_store.cp_get(tid, "", ids[2]) is None
        await checkpoint_store.cp_prune([tid], True, policy=policy)
        assert await _ids(checkpoint_store, tid) == kept

    async def test_retention_max_age_keeps_young_checkpoints_and_always_the_newest(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """``max_age`` removes checkpoints whose id (a UUID v6) dates from longer ago; the newest checkpoint of a
        namespace stays however old (a run interrupted long ago still resumes, with its pending writes); an id
        that is not a UUID v6 has no known age and stays."""
        tid, idle = str(uuid.uuid4()), str(uuid.uuid4())
        now = time.time()
        # checkpoint_id_floor(t) is a valid UUID v6 of time t: checkpoints "made" hours ago.
        old = [checkpoint_id_floor(now - hours * 3600) for hours in (5, 4, 3)]
        young = [make_checkpoint_id(), make_checkpoint_id()]
        chain = [*old, *young]
        for i, cid in enumerate(chain):
            await checkpoint_store.cp_put(_row(tid, cid, parent=chain[i - 1] if i else None), {})
        stale = [checkpoint_id_floor(now - hours * 3600) for hours in (9, 8)]
        await checkpoint_store.cp_put(_row(idle, stale[0]), {})
        await checkpoint_store.cp_put(_row(idle, stale[1], parent=stale[0]), {})
        await checkpoint_store.cp_put_writes(idle, "", stale[1], [_write("t", _INTERRUPT_IDX, "__interrupt__", "ask")], True)
        await checkpoint_store.cp_put(_row(idle, "not-a-uuid", ns="child:1"), {})
        await checkpoint_store.cp_put(_row(idle, "not-a-uuid-2", parent="not-a-uuid", ns="child:1"), {})
        policy = RetentionPolicy(max_age=3600)
        await checkpoint_store.cp_prune([tid, idle], True, policy=policy)
        assert await _ids(checkpoint_store, tid) == young[::-1]
        assert await _ids(checkpoint_store, idle) == [stale[1]]
        resumed = await checkpoint_store.cp_get(idle, "", None)
        assert _write_values(resumed) == [("t", _INTERRUPT_IDX, "ask")]
        assert await _ids(checkpoint_store, idle, "child:1") == ["not-a-uuid-2", "not-a-uuid"]

    async def test_retention_keeps_the_delta_channel_ancestors_of_every_kept_checkpoint(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """Every checkpoint retention keeps can still be rebuilt: the ancestors back to the nearest snapshot of
        each ``DeltaChannel`` it changed since (``counters_since_delta_snapshot``) stay with their writes, older
        ones go."""
        tid = str(uuid.uuid4())
        ids = [make_checkpoint_id() for _ in range(7)]
        snapshots = {1: ["m0", "m1"], 4: ["m0", "m1", "m2", "m3", "m4"]}
        await checkpoint_store.cp_put(_row(tid, ids[0], versions={"msgs": "1"}), {("msgs", "1"): _typed(["m0"])})
        for i in range(1, 7):
            if i in snapshots:
                meta: dict[str, Any] = {"step": i}
                blob = _typed(snapshots[i])
            else:
                meta = {"step": i, "counters_since_delta_snapshot": {"msgs": [1, 1]}}
                blob = ("empty", b"")
            await checkpoint_store.cp_put(
                _row(tid, ids[i], parent=ids[i - 1], versions={"msgs": str(i + 1)}, metadata=meta), {("msgs", str(i + 1)): blob}
            )
            await checkpoint_store.cp_put_writes(tid, "", ids[i - 1], [_write(f"t{i}", 0, "msgs", [f"m{i}"])], False)
        # keep_latest=3 keeps ids[4..6]; ids[4] holds a snapshot, so nothing older is needed.
        await checkpoint_store.cp_prune([tid], True, policy=RetentionPolicy(keep_latest=3))
        assert await _ids(checkpoint_store, tid) == ids[:3:-1]
        # keep_latest=1 keeps ids[6] and walks back to the snapshot in ids[4].
        copy = str(uuid.uuid4())
        await checkpoint_store.cp_copy_thread(tid, copy)
        await checkpoint_store.cp_prune([copy], True, policy=RetentionPolicy(keep_latest=1))
        assert await _ids(checkpoint_store, copy) == ids[:3:-1]
        seed = await checkpoint_store.cp_get(copy, "", ids[4])
        assert _values(seed) == {"msgs": snapshots[4]} and _write_values(seed) == [("t5", 0, ["m5"])]

    async def test_retention_dry_run_plan_is_what_the_prune_removes(self, checkpoint_store: CheckpointStore) -> None:
        """:func:`contextkit.checkpoint_usage.plan_prune` over ``cp_list`` (``contextkit checkpoints prune
        --dry-run``) names exactly the checkpoints ``cp_prune`` then removes, subgraph calls of pruned root
        checkpoints included, and the bytes it frees are the bytes the thread's count drops by."""
        from contextkit.checkpoint_usage import plan_prune, thread_bytes

        tid = str(uuid.uuid4())
        root = await _chain(checkpoint_store, tid, 5)
        await _chain(checkpoint_store, tid, 2, ns="call:old", metadata=[{"parents": {"": root[0]}}] * 2)
        await _chain(checkpoint_store, tid, 3, ns="call:new", metadata=[{"parents": {"": root[4]}}] * 3)
        for i, cid in enumerate(root):
            await checkpoint_store.cp_put_writes(tid, "", cid, [_write("t", 0, "x", "w" * (10 + i))], False)
        await checkpoint_store.cp_put(
            _row(tid, make_checkpoint_id(), parent=root[-1], versions={"big": "1"}), {("big", "1"): _typed("b" * 300)}
        )
        policy = RetentionPolicy(keep_latest=2)
        bundles = [b async for b in checkpoint_store.cp_list(tid, None)]
        plan = plan_prune(tid, bundles, policy, time.time())
        before = thread_bytes(bundles)
        await checkpoint_store.cp_prune([tid], True, policy=policy)
        after = [b async for b in checkpoint_store.cp_list(tid, None)]
        left = {(b.row.checkpoint_ns, b.row.checkpoint_id) for b in after}
        assert left == {(ns, cid) for ns, ids in plan.kept.items() for cid in ids}
        assert not left & {(ns, cid) for ns, ids in plan.pruned.items() for cid in ids}
        assert plan.pruned["call:old"] and not plan.kept["call:old"]
        assert before.total - thread_bytes(after).total == plan.freed_bytes

    async def test_retention_plan_counts_the_shared_list_elements_the_prune_collects(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """On a :class:`~contextkit.stores.SharedBlobStore`, the bytes a plan says a prune frees
        (:func:`contextkit.checkpoint_usage.planned_prune`, ``checkpoints prune --dry-run``) include the list
        elements and blocks the prune collects (those no kept list reaches), and equal what the thread's count,
        nodes included, drops by; elements a kept list still reaches are not counted."""
        from contextkit.checkpoint_lists import BLOCK_TYPE, _block_id, _encode_record, _leaf_id, node_version
        from contextkit.checkpoint_usage import _with_shared_nodes, plan_prune, planned_prune, thread_bytes
        from contextkit.stores import SharedBlobStore

        if not isinstance(checkpoint_store, SharedBlobStore):
            return
        parts = {name: b"\xa1" + (name * 50).encode() for name in "abcd"}
        leaf = {name: _leaf_id(part) for name, part in parts.items()}
        ab, cd = leaf["a"] + leaf["b"], leaf["c"] + leaf["d"]
        node = {name: (node_version(leaf[name]), ("msgpack", part)) for name, part in parts.items()}
        block = {name: (node_version(_block_id(ids)), (BLOCK_TYPE, ids)) for name, ids in (("ab", ab), ("cd", cd))}
        tid = str(uuid.uuid4())
        c1, c2, c3 = (make_checkpoint_id() for _ in range(3))
        # [a, b] -> [a, b, c] -> [c, d]: keeping only the newest collects a, b and their block, not c.
        await checkpoint_store.cp_put(
            _row(tid, c1, versions={"log": "1"}),
            {("log", "1"): _encode_record("msgpack", None, 2, [_block_id(ab)]),
             **{("log", v): typed for v, typed in (node["a"], node["b"], block["ab"])}},
        )
        await checkpoint_store.cp_put(
            _row(tid, c2, parent=c1, versions={"log": "2"}),
            {("log", "2"): _encode_record("msgpack", None, 3, [_block_id(ab), leaf["c"]]), ("log", node["c"][0]): node["c"][1]},
        )
        await checkpoint_store.cp_put(
            _row(tid, c3, parent=c2, versions={"log": "3"}),
            {("log", "3"): _encode_record("msgpack", None, 2, [_block_id(cd)]),
             **{("log", v): typed for v, typed in (node["d"], block["cd"])}},
        )

        async def counted() -> tuple[list[CheckpointBundle], int]:
            bundles = [b async for b in checkpoint_store.cp_list(tid, None)]
            return bundles, (await _with_shared_nodes(checkpoint_store, tid, bundles, thread_bytes(bundles))).total

        bundles, before = await counted()
        policy = RetentionPolicy(keep_latest=1)
        plan = await planned_prune(checkpoint_store, tid, bundles, policy, time.time())
        bare = plan_prune(tid, bundles, policy, time.time())
        collected = sum(len(t[0]) + len(t[1]) for _, t in (node["a"], node["b"], block["ab"]))
        assert plan.freed_bytes == bare.freed_bytes + collected
        await checkpoint_store.cp_prune([tid], True, policy=policy)
        _, after = await counted()
        assert before - after == plan.freed_bytes
        assert set(await checkpoint_store.cp_get_blobs(tid, "", [("log", node["c"][0])])) == {("log", node["c"][0])}

    async def test_usage_counts_a_thread_like_the_generic_count(self, checkpoint_store: CheckpointStore) -> None:
        """A store that counts a thread's bytes itself (:class:`~contextkit.stores.CheckpointUsageStore`) agrees
        with the generic count over ``cp_list``; a store without it is counted by the generic count, whose blob
        bytes are each stored version once."""
        from contextkit.checkpoint_usage import thread_bytes
        from contextkit.stores import CheckpointUsageStore

        tid = str(uuid.uuid4())
        c1, c2 = make_checkpoint_id(), make_checkpoint_id()
        await checkpoint_store.cp_put(_row(tid, c1, versions={"a": "1"}), {("a", "1"): _typed("a" * 100)})
        await checkpoint_store.cp_put(
            _row(tid, c2, parent=c1, versions={"a": "1", "b": "1"}), {("b", "1"): _typed("é" * 10)}
        )
        await checkpoint_store.cp_put_writes(tid, "", c2, [_write("t", 0, "x", "w")], False)
        generic = thread_bytes([b async for b in checkpoint_store.cp_list(tid, None)])
        a_bytes = len(_typed("a" * 100)[1]) + len("json")
        assert generic.checkpoints == 2 and generic.channels["a"] == a_bytes
        assert generic.writes > 0 and generic.rows > 0
        if isinstance(checkpoint_store, CheckpointUsageStore):
            assert await checkpoint_store.cp_usage(tid) == generic
            assert (await checkpoint_store.cp_usage(str(uuid.uuid4()))).total == 0
        else:
            assert not hasattr(checkpoint_store, "cp_usage")

    async def test_thread_ids_name_the_live_threads_holding_a_checkpoint(
        self, checkpoint_store: CheckpointStore, checkpoint_store_factory: StoreFactory
    ) -> None:
        """The threads the maintenance commands visit (:func:`contextkit.checkpoint_usage.thread_ids`): those
        holding a checkpoint in any namespace, sorted; not one with pending writes only, not a deleted or pruned
        away one, not another namespace's. A store listing them from an index
        (:class:`~contextkit.stores.CheckpointThreadsStore`) agrees with the scan of every checkpoint."""
        from contextkit.checkpoint_usage import scanned_thread_ids, thread_ids
        from contextkit.stores import CheckpointThreadsStore

        root, child, writes_only, deleted, pruned = (str(uuid.uuid4()) for _ in range(5))
        await _chain(checkpoint_store, root, 2)
        await _chain(checkpoint_store, child, 1, ns="child:1")
        await checkpoint_store.cp_put_writes(writes_only, "", make_checkpoint_id(), [_write("t", 0, "x", 1)], False)
        for tid in (deleted, pruned):
            await _chain(checkpoint_store, tid, 2)
        await checkpoint_store.cp_delete_thread(deleted)
        await checkpoint_store.cp_prune([pruned], False)
        other = await checkpoint_store_factory(StoreSettings(namespace=f"ckt-{uuid.uuid4().hex[:12]}"))
        try:
            await _chain(other, str(uuid.uuid4()), 1)
            expected = sorted([root, child])
            assert await thread_ids(checkpoint_store) == expected
            assert await scanned_thread_ids(checkpoint_store) == expected
            if isinstance(checkpoint_store, CheckpointThreadsStore):
                assert await checkpoint_store.cp_thread_ids() == expected
            else:
                assert not hasattr(checkpoint_store, "cp_thread_ids")
        finally:
            await _aclose(other)

    async def test_retention_policy_refuses_bad_limits(self) -> None:
        """A limit that cannot be meant (no checkpoint kept, a negative or infinite age, a bool) is refused with
        ``InvalidInput`` when the policy is built, before any store is touched."""
        for bad in ({"keep_latest": 0}, {"keep_latest": True}, {"keep_latest": 1.5}, {"max_age": 0},
                    {"max_age": -1.0}, {"max_age": float("inf")}, {"max_age": "1h"}):
            with pytest.raises(InvalidInput):
                RetentionPolicy(**bad)
        assert not RetentionPolicy().limits and RetentionPolicy(max_age=1).limits

    async def test_prune_delete_removes_the_threads(self, checkpoint_store: CheckpointStore) -> None:
        """``keep_latest=False`` deletes the listed threads entirely."""
        tid, other = str(uuid.uuid4()), str(uuid.uuid4())
        await _chain(checkpoint_store, tid, 3)
        await _chain(checkpoint_store, tid, 1, ns="child:1")
        kept = await _chain(checkpoint_store, other, 1)
        await checkpoint_store.cp_prune([tid], False)
        assert await _ids(checkpoint_store, tid, None) == []
        assert await _ids(checkpoint_store, other) == kept

    # -- TTL and isolation ------------------------------------------------------------------------------------
    async def test_thread_expires_after_its_ttl_and_writes_refresh_it(self, checkpoint_store_factory: StoreFactory) -> None:
        """Each thread lives ``checkpoint_ttl`` seconds after its last put or write; one thread's writes do not
        extend another's (no shared key whose TTL all threads share)."""
        from contextkit.checkpoint_usage import thread_ids

        store = await checkpoint_store_factory(StoreSettings(namespace=f"ckt-{uuid.uuid4().hex[:12]}", checkpoint_ttl=1.0))
        try:
            busy, idle = str(uuid.uuid4()), str(uuid.uuid4())
            busy_ids = await _chain(store, busy, 1)
            await _chain(store, idle, 1)
            await asyncio.sleep(0.6)
            await store.cp_put_writes(busy, "", busy_ids[0], [_write("t", 0, "x", 1)], False)
            await asyncio.sleep(0.6)
            # an expired thread is not listed either (asked first: a read may also remove it)
            assert await thread_ids(store) == [busy]
            assert await store.cp_get(busy, "", None) is not None
            assert await store.cp_get(idle, "", None) is None
            await asyncio.sleep(1.2)
            assert await store.cp_get(busy, "", None) is None
        finally:
            await _aclose(store)

    async def test_any_printable_thread_id_is_its_own_thread(self, checkpoint_store: CheckpointStore) -> None:
        """Ids with separators, glob and hash-tag characters, spaces or unicode never collide or escape."""
        names = ["a:b", "a", "a:b:", "{a}", "*", "a b", "日本:{x}", "a\\:b"]
        ids = {}
        for name in names:
            ids[name] = await _chain(checkpoint_store, name, 1, ns="n:1" if name == "a" else "")
        for name in names:
            ns = "n:1" if name == "a" else ""
            assert await _ids(checkpoint_store, name, ns) == ids[name]
        await checkpoint_store.cp_delete_thread("*")
        assert await _ids(checkpoint_store, "a:b") == ids["a:b"]

    async def test_namespaces_do_not_see_each_other(
        self, checkpoint_store: CheckpointStore, checkpoint_store_factory: StoreFactory
    ) -> None:
        """Two stores with different ``settings.namespace`` never share checkpoints, even for one thread id."""
        other = await checkpoint_store_factory(StoreSettings(namespace=f"ckt-{uuid.uuid4().hex[:12]}"))
        try:
            tid = str(uuid.uuid4())
            await _chain(checkpoint_store, tid, 1)
            assert await other.cp_get(tid, "", None) is None
            await other.cp_delete_thread(tid)
            assert await checkpoint_store.cp_get(tid, "", None) is not None
        finally:
            await _aclose(other)

    # -- LangGraph: the official conformance suite ------------------------------------------------------------
    async def test_langgraph_conformance_passes_every_capability(self, checkpoint_store: CheckpointStore) -> None:
        """``langgraph-checkpoint-conformance`` validate(): every base and extended capability passes."""
        pytest.importorskip("langgraph.checkpoint.conformance")
        report = await run_langgraph_conformance(checkpoint_store)
        failures = {name: r.failures for name, r in report.results.items() if not r.passed}
        assert report.passed_all(), f"conformance failures: {failures}"

    async def test_langgraph_conformance_passes_with_an_encrypted_serializer(self, checkpoint_store: CheckpointStore) -> None:
        """An ``EncryptedSerializer`` passes the same suite, and what the store holds has no plaintext."""
        pytest.importorskip("langgraph.checkpoint.conformance")
        from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

        from contextkit.langgraph import ContextKitSaver

        serde = EncryptedSerializer(XorTestCipher(b"k" * 32))
        report = await run_langgraph_conformance(checkpoint_store, serde=serde, capabilities={"put", "put_writes"})
        assert report.passed_all(), {name: r.failures for name, r in report.results.items() if not r.passed}
        saver = ContextKitSaver(checkpoint_store, serde=serde)
        graph = _review_graph(saver)
        config = _config(str(uuid.uuid4()))
        await graph.ainvoke({"topic": "secret-topic-42"}, config)
        async for bundle in checkpoint_store.cp_list(config["configurable"]["thread_id"], None):
            stored = [bundle.row.checkpoint, *bundle.blobs.values(), *(w.value for w in bundle.writes)]
            assert all(b"secret-topic-42" not in data for _, data in stored)
        assert (await graph.aget_state(config)).values["topic"] == "secret-topic-42"

    # -- LangGraph: real graphs -------------------------------------------------------------------------------
    async def test_graph_interrupt_and_resume(self, checkpoint_store: CheckpointStore) -> None:
        """Human in the loop: ``interrupt()`` stops the run with a saved checkpoint; ``Command(resume=...)``
        continues it from there."""
        pytest.importorskip("langgraph.graph")
        from langgraph.types import Command

        from contextkit.langgraph import ContextKitSaver

        graph = _review_graph(ContextKitSaver(checkpoint_store))
        config = _config(str(uuid.uuid4()))
        first = await graph.ainvoke({"topic": "otters"}, config)
        assert first["__interrupt__"][0].value == {"please review": "a draft about otters"}
        state = await graph.aget_state(config)
        assert state.next == ("review",)
        final = await graph.ainvoke(Command(resume="approve"), config)
        assert final["approved"] is True and final["draft"] == "a draft about otters"
        assert (await graph.aget_state(config)).next == ()

    async def test_graph_update_state_and_replay_from_an_older_checkpoint(self, checkpoint_store: CheckpointStore) -> None:
        """``get_state_history`` lists every step; ``update_state`` on an older checkpoint forks it, and running
        from the fork replays only the steps after it."""
        pytest.importorskip("langgraph.graph")
        from contextkit.langgraph import ContextKitSaver

        calls: dict[str, int] = {}
        graph = _log_graph(ContextKitSaver(checkpoint_store), calls)
        config = _config(str(uuid.uuid4()))
        result = await graph.ainvoke({"log": ["start"]}, config)
        assert result["log"][:2] == ["start", "a"] and result["log"][-1] == "d"
        history = [s async for s in graph.aget_state_history(config)]
        assert [s.metadata["step"] for s in history] == sorted((s.metadata["step"] for s in history), reverse=True)
        after_a = next(s for s in history if s.next == ("b", "c"))
        fork = await graph.aupdate_state(after_a.config, {"log": ["edited"]})
        replayed = await graph.ainvoke(None, fork)
        assert replayed["log"][:3] == ["start", "a", "edited"]
        assert sorted(replayed["log"][3:5]) == ["b", "c"] and replayed["log"][5] == "d"
        assert calls == {"a": 1, "b": 2, "c": 2, "d": 2}
        assert (await graph.aget_state(config)).values["log"] == replayed["log"]

    async def test_graph_subgraph_checkpoints_in_its_own_namespace(self, checkpoint_store: CheckpointStore) -> None:
        """A subgraph saves its checkpoints under its namespace; an interrupt inside it resumes there."""
        pytest.importorskip("langgraph.graph")
        from langgraph.types import Command

        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store)
        graph = _nested_graph(saver)
        config = _config(str(uuid.uuid4()))
        await graph.ainvoke({"log": []}, config)
        namespaces = {t.config["configurable"]["checkpoint_ns"] async for t in saver.alist(config)}
        assert "" in namespaces and any(ns.startswith("child:") for ns in namespaces)
        state = await graph.aget_state(config, subgraphs=True)
        assert state.tasks[0].state.next == ("ask",)
        final = await graph.ainvoke(Command(resume="yes"), config)
        # The subgraph returns its whole state, which the parent's reducer appends: "before" comes back once more.
        assert final["log"] == ["before", "before", "child got yes"]
        assert (await graph.aget_state(config)).next == ()

    async def test_graph_failing_parallel_branch_keeps_the_other_branch_writes(self, checkpoint_store: CheckpointStore) -> None:
        """When one of two parallel nodes fails, the other's writes stay as pending writes of the checkpoint,
        so resuming re-runs only the failed node."""
        pytest.importorskip("langgraph.graph")
        from contextkit.langgraph import ContextKitSaver

        calls: dict[str, int] = {}
        graph = _log_graph(ContextKitSaver(checkpoint_store), calls, fail_once={"c"})
        config = _config(str(uuid.uuid4()))
        with pytest.raises(RuntimeError, match="c failed once"):
            await graph.ainvoke({"log": []}, config)
        saved = await ContextKitSaver(checkpoint_store).aget_tuple(config)
        assert saved is not None
        channels = {channel for _, channel, _ in saved.pending_writes or []}
        assert "log" in channels and "__error__" in channels
        result = await graph.ainvoke(None, config)
        assert sorted(result["log"]) == ["a", "b", "c", "d"]
        assert calls == {"a": 1, "b": 1, "c": 2, "d": 1}

    async def test_graph_node_triggers_are_kept_in_the_row_and_resume_the_node(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """A node's trigger (``branch:to:<node>``) holding None is kept in the serialized checkpoint, not as a blob
        of its own: a graph interrupted before the node reads back the trigger, a fresh saver resumes the node once,
        and every checkpoint reads the channel values a thread of the older layout (a blob per trigger) reads."""
        pytest.importorskip("langgraph.graph")
        from contextkit.langgraph import ContextKitSaver

        calls: dict[str, int] = {}
        values: list[list[dict[str, Any]]] = []
        for writer, legacy in ((ContextKitSaver(checkpoint_store), False), (_legacy_saver(checkpoint_store), True)):
            calls.clear()
            config = _config(str(uuid.uuid4()))
            await paused_graph(writer, calls).ainvoke({"log": ["start"]}, config)
            paused = await writer.aget_tuple(config)
            assert paused is not None and paused.checkpoint["channel_values"].get("branch:to:b", "gone") is None
            cid = paused.config["configurable"]["checkpoint_id"]
            bundle = await checkpoint_store.cp_get(config["configurable"]["thread_id"], "", cid)
            assert bundle is not None and ("branch:to:b" in bundle.blobs) is legacy
            fresh = ContextKitSaver(checkpoint_store)
            assert (await paused_graph(fresh, calls).aget_state(config)).next == ("b",)
            result = await paused_graph(fresh, calls).ainvoke(None, config)
            assert result["log"] == ["start", "a", "b"] and calls == {"a": 1, "b": 1}
            values.append([t.checkpoint["channel_values"] async for t in fresh.alist(config)])
        assert values[0] == values[1] and any("branch:to:b" in v for v in values[0])

    async def test_graph_thread_of_an_older_saver_continues_in_order(self, checkpoint_store: CheckpointStore) -> None:
        """A thread written by an older contextkit (32-digit versions, serialized checkpoints that repeat the
        versions and id the row carries) reads back whole and continues with compact versions: every channel's
        versions keep increasing along the history, each node runs once per turn, and a ``DeltaChannel`` list
        rebuilds across the two formats what a plain list keeps."""
        pytest.importorskip("langgraph.channels.delta")
        from contextkit.langgraph import ContextKitSaver, version_counter

        legacy, saver = _legacy_saver(checkpoint_store), ContextKitSaver(checkpoint_store)
        calls: dict[str, int] = {}
        config = _config(str(uuid.uuid4()))
        dcfg, pcfg = _config(str(uuid.uuid4())), _config(str(uuid.uuid4()))
        for turn in range(6):
            writer = legacy if turn < 3 else saver
            await _log_graph(writer, calls).ainvoke({"log": []}, config)
            await delta_graph(writer).ainvoke({"turns": [f"user {turn}"]}, dcfg)
            await _plain_turns_graph(saver).ainvoke({"turns": [f"user {turn}"]}, pcfg)
        assert calls == {"a": 6, "b": 6, "c": 6, "d": 6}
        assert sorted((await saver.aget_tuple(config)).checkpoint["channel_values"]["log"]) == sorted("abcd" * 6)  # type: ignore[union-attr]
        assert (await delta_graph(saver).aget_state(dcfg)).values == (await _plain_turns_graph(saver).aget_state(pcfg)).values
        for cfg in (config, dcfg):
            tuples = [t async for t in saver.alist(cfg)][::-1]
            formats = set()
            newest: dict[str, str] = {}
            for tup in tuples:
                thread_id, cid = cfg["configurable"]["thread_id"], tup.config["configurable"]["checkpoint_id"]
                bundle = await checkpoint_store.cp_get(thread_id, "", cid)
                assert bundle is not None
                whole = "channel_versions" in saver.serde.loads_typed(bundle.row.checkpoint)
                assert tup.checkpoint["channel_versions"] == dict(bundle.row.channel_versions)
                assert tup.checkpoint["id"] == bundle.row.checkpoint_id
                for channel, given in tup.checkpoint["channel_versions"].items():
                    version = str(given)
                    formats.add((whole, version[0].isdigit()))
                    assert version >= newest.get(channel, ""), (channel, version)
                    assert version_counter(version) >= version_counter(newest.get(channel))
                    newest[channel] = version
            assert formats == {(True, True), (False, True), (False, False)}  # old rows, then old versions in new rows
        # The older rows read the same through the delta walk and LangGraph's own one.
        history = await saver.aget_delta_channel_history(config=dcfg, channels=["turns"])
        assert history == await generic_delta_history(saver, dcfg, ["turns"])

    async def test_graph_delta_channel_survives_prune_keep_latest(self, checkpoint_store: CheckpointStore) -> None:
        """A ``DeltaChannel`` list rebuilt from ancestor writes reads the same after ``aprune(keep_latest)``,
        and the thread goes on from there."""
        pytest.importorskip("langgraph.channels.delta")
        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store)
        graph = delta_graph(saver)
        config = _config(str(uuid.uuid4()))
        for _ in range(5):
            await graph.ainvoke({"turns": ["user"]}, config)
        before = (await graph.aget_state(config)).values["turns"]
        assert len(before) == 10
        await saver.aprune([config["configurable"]["thread_id"]], strategy="keep_latest")
        remaining = [t async for t in saver.alist(config)]
        assert 1 <= len(remaining) < 10
        assert (await graph.aget_state(config)).values["turns"] == before
        await graph.ainvoke({"turns": ["user"]}, config)
        assert (await graph.aget_state(config)).values["turns"] == [*before, "user", "reply 11"]

    async def test_graph_retention_on_write_keeps_the_thread_small_and_its_state_whole(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """A saver with a retention policy and ``prune_every`` prunes a thread as it is written: the thread holds
        about ``keep_latest`` checkpoints plus the ancestors its ``DeltaChannel`` values are rebuilt from, never
        more; the state reads as if nothing was pruned, the graph goes on, and ``aretain`` with a tighter policy
        still keeps the newest."""
        pytest.importorskip("langgraph.channels.delta")
        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store, retention=RetentionPolicy(keep_latest=2), prune_every=1)
        graph = delta_graph(saver, snapshot_frequency=4)
        config = _config(str(uuid.uuid4()))
        expected: list[str] = []
        most = 0
        for turn in range(8):
            await graph.ainvoke({"turns": ["user"]}, config)
            expected += ["user", f"reply {len(expected) + 1}"]
            most = max(most, len([t async for t in saver.alist(config)]))
            assert (await graph.aget_state(config)).values["turns"] == expected, turn
        # keep_latest=2, plus at most snapshot_frequency ancestors back to a snapshot
        assert 2 <= most <= 2 + 4
        tid = config["configurable"]["thread_id"]
        await saver.aretain([tid], RetentionPolicy(keep_latest=1))
        assert (await graph.aget_state(config)).values["turns"] == expected
        with pytest.raises(InvalidInput):
            ContextKitSaver(checkpoint_store, prune_every=-1)
        with pytest.raises(InvalidInput):
            await saver.aretain(tid)

    async def test_graph_compressed_values_read_back_with_or_without_compression(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """With ``compression``, values of at least its threshold are stored compressed under a format marker
        (``"<type>+zstd"`` / ``"+zlib"``) and smaller, small ones as the serde wrote them; the state reads the
        same through a saver with compression and one without (data from before compression and after it stay
        readable both ways), ``DeltaChannel`` writes included."""
        pytest.importorskip("langgraph.channels.delta")
        from contextkit.blob_compression import BlobCompressor
        from contextkit.langgraph import ContextKitSaver

        plain = ContextKitSaver(checkpoint_store)
        packed = ContextKitSaver(checkpoint_store, compression=BlobCompressor(256))
        tid = str(uuid.uuid4())
        config = _config(tid)
        await run_archive_graph(archive_graph(plain), tid, 2)  # before compression
        await run_archive_graph(archive_graph(packed), tid, 1)
        newest = await checkpoint_store.cp_get(tid, "", None)
        assert newest is not None
        kinds = {channel: blob[0] for channel, blob in newest.blobs.items()}
        assert kinds["doc"].endswith(("+zstd", "+zlib")), kinds
        assert len(newest.blobs["doc"][1]) < len(ARCHIVE_DOC) // 4
        assert not kinds["count"].endswith(("+zstd", "+zlib"))
        histories = []
        for saver in (plain, packed):
            state = await archive_graph(saver).aget_state(config)
            assert state.values["doc"] == ARCHIVE_DOC and state.values["count"] == 1
            histories.append(state_summary([s async for s in archive_graph(saver).aget_state_history(config)]))
        assert histories[0] == histories[1] and len(histories[0]) > 6

        delta = delta_graph(packed, snapshot_frequency=3)
        dconfig = _config(str(uuid.uuid4()))
        for _ in range(4):
            await delta.ainvoke({"turns": ["u" * 400]}, dconfig)
        expected = (await delta.aget_state(dconfig)).values["turns"]
        assert len(expected) == 8
        assert (await delta_graph(plain, snapshot_frequency=3).aget_state(dconfig)).values["turns"] == expected
        stored = [w for b in [b async for b in checkpoint_store.cp_list(dconfig["configurable"]["thread_id"], "")]
                  for w in b.writes if w.channel == "turns"]
        assert any(w.value[0].endswith(("+zstd", "+zlib")) for w in stored)

    async def test_late_put_after_adelete_thread_does_not_resurrect_it(self, checkpoint_store: CheckpointStore) -> None:
        """Through the saver: a put and writes reusing a config from before ``adelete_thread`` are dropped."""
        pytest.importorskip("langgraph.checkpoint.base")
        from langgraph.checkpoint.base import empty_checkpoint

        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store)
        tid = str(uuid.uuid4())
        stored = await saver.aput(_config(tid, checkpoint_ns=""), empty_checkpoint(), {"step": -1}, {})
        await saver.adelete_thread(tid)
        await saver.aput_writes(stored, [("x", 1)], "task")
        await saver.aput(stored, empty_checkpoint(), {"step": 0}, {})
        assert await saver.aget_tuple(_config(tid)) is None
        assert [t async for t in saver.alist(_config(tid))] == []

    # -- a hot tier that loses a thread under a running graph -------------------------------------------------
    async def lose_thread(self, store: CheckpointStore, thread_id: str) -> None:
        """Override: make ``store`` lose every key of ``thread_id`` as a restart without persistence, an eviction
        or an expiry would (no tombstone: the thread is simply gone). The default drops the store's namespace
        (``drop_namespace()``, as the Redis and SQLite tiers have)."""
        drop = getattr(store, "drop_namespace", None)
        if drop is None:
            raise NotImplementedError("override lose_thread(store, thread_id) for a store without drop_namespace()")
        await drop()

    async def test_put_relying_on_blobs_that_are_gone_writes_nothing(self, checkpoint_store: CheckpointStore) -> None:
        """A store declaring ``checked_puts`` (:class:`~contextkit.stores.CheckedPutStore`) stores a put whose
        ``requires`` blobs are stored, and refuses one relying on a blob it does not hold (never written, of
        another namespace, or lost with the thread) with :class:`~contextkit.errors.MissingBlobs` naming it,
        writing neither the row nor its new blobs. A hot tier that can lose data under a running graph must
        declare it: without it a checkpoint written after the loss reads back without its older values."""
        from contextkit.errors import MissingBlobs
        from contextkit.stores import Capability, SharedBlobStore

        assert Capability.CHECKED_PUTS.value in getattr(checkpoint_store, "capabilities", ()), (
            "a checkpoint store of a hot tier declares checked_puts (contextkit.stores.CheckedPutStore)"
        )
        store: Any = checkpoint_store
        tid = str(uuid.uuid4())
        first, second, third, fourth = (make_checkpoint_id() for _ in range(4))
        await store.cp_put(_row(tid, first, versions={"a": "v1"}), {("a", "v1"): _typed("one")})
        await store.cp_put(
            _row(tid, second, parent=first, versions={"a": "v1", "b": "v2"}),
            {("b", "v2"): _typed("two")},
            requires=[("a", "v1")],
        )
        stored = await store.cp_get(tid, "", second)
        assert stored is not None and stored.blobs == {"a": _typed("one"), "b": _typed("two")}
        for ns, requires, missing in (
            ("", [("a", "v1"), ("z", "v9")], [("z", "v9")]),
            ("sub", [("a", "v1")], [("a", "v1")]),
        ):
            with pytest.raises(MissingBlobs) as caught:
                await store.cp_put(
                    _row(tid, third, parent=second, ns=ns, versions={"a": "v1", "c": "v3"}),
                    {("c", "v3"): _typed("three")},
                    requires=requires,
                )
            assert list(caught.value.keys) == missing and third in str(caught.value)
            assert await store.cp_get(tid, ns, third) is None
            if isinstance(store, SharedBlobStore):
                assert await store.cp_get_blobs(tid, ns, [("c", "v3")]) == {}
        newest = await store.cp_get(tid, "", None)
        assert newest is not None and newest.row.checkpoint_id == second
        await self.lose_thread(checkpoint_store, tid)
        with pytest.raises(MissingBlobs):
            await store.cp_put(_row(tid, fourth, parent=second, versions={"a": "v1"}), {}, requires=[("a", "v1")])
        assert await store.cp_get(tid, "", None) is None

    async def test_values_a_put_does_not_store_read_back_as_with_langgraphs_own_saver(
        self, checkpoint_store: CheckpointStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A checkpoint put by hand with values of channels that are not in ``new_versions`` (so never stored)
        reads back without them, as with LangGraph's InMemorySaver, and a put on top of it does not ask the store
        for them (``checked_puts`` requires only blobs the saver knows were stored): no refusal, no warning."""
        pytest.importorskip("langgraph.checkpoint.memory")
        from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
        from langgraph.checkpoint.memory import InMemorySaver

        from contextkit.langgraph import ContextKitSaver

        seen = []
        for saver in (InMemorySaver(), ContextKitSaver(checkpoint_store)):
            first = empty_checkpoint()
            first["channel_values"] = {"a": [1, 2], "b": "x"}
            first["channel_versions"] = {"a": 1, "b": 1}
            config = await saver.aput(_config(str(uuid.uuid4()), checkpoint_ns=""), first, {"step": -1}, {})
            second = create_checkpoint(first, None, 0)
            second["channel_values"] = {"a": [1, 2, 3], "b": "x"}
            second["channel_versions"] = {"a": 2, "b": 1}
            config2 = await saver.aput(config, second, {"step": 0}, {"a": 2})
            got = [await saver.aget_tuple(c) for c in (config, config2)]
            seen.append([t.checkpoint["channel_values"] if t is not None else None for t in got])
        assert seen[1] == seen[0] == [{}, {"a": [1, 2, 3]}]
        assert "writing the checkpoint again" not in caplog.text

    async def test_graph_state_survives_a_hot_tier_that_loses_the_thread_between_two_steps(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """The hot tier loses the thread between two steps of each run (the second step's node makes it lose
        everything, as a Redis restart without persistence would), so the second step's checkpoint names values
        of channels it did not change, and shared list nodes, that are gone. The saver's put is refused
        (``MissingBlobs``) and written again with every value: after three runs the thread reads back all six
        list items and the counter, through this saver and a new one. Fails when a put trusts blobs that are
        gone (the list reads back empty, or as ``CorruptData``)."""
        pytest.importorskip("langgraph.graph")
        from contextkit.langgraph import ContextKitSaver

        tid = str(uuid.uuid4())
        losses = 0

        async def lose() -> None:
            nonlocal losses
            await self.lose_thread(checkpoint_store, tid)
            losses += 1

        def build(saver: ContextKitSaver) -> Any:
            return loss_graph(saver, lose)

        graph = build(ContextKitSaver(checkpoint_store))
        config = _config(tid)
        for run in range(3):
            out = await graph.ainvoke({"items": [f"question {run} " + "y" * 700]}, config)
            assert len(out["items"]) == 2 * (run + 1) and out["count"] == run + 1
        assert losses == 3
        for reader in (graph, build(ContextKitSaver(checkpoint_store))):
            state = await reader.aget_state(config)
            items = state.values.get("items", [])
            assert [item.split(" ")[:2] for item in items] == [
                [word, str(n)] for run in range(3) for word, n in (("question", run), ("answer", 2 * run + 1))
            ]
            assert state.values.get("count") == 3

    # -- LangGraph: structural sharing of list values -----------------------------------------------------------
    async def test_shared_blob_store_reads_nodes_by_key_and_collects_those_no_record_reaches(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """A :class:`~contextkit.stores.SharedBlobStore` reads blobs by ``(channel, version)`` in its
        ``(thread, ns)`` (unknown keys left out). Node blobs (versions ``#...``) stay through prunes and
        ``cp_delete_for_runs`` while a remaining record reaches them (as a block, a leaf under a block or a single
        leaf), go with the last record that reached them (a list that dropped elements, then a prune), stay
        whatever happens when a record of the channel has a format this version cannot read, and go with the
        thread. A store without it never sees a node: the saver stores whole values there."""
        from contextkit.checkpoint_lists import BLOCK_TYPE, _block_id, _encode_record, _leaf_id, node_version
        from contextkit.stores import SharedBlobStore

        if not isinstance(checkpoint_store, SharedBlobStore):
            from contextkit.langgraph import ContextKitSaver

            assert not ContextKitSaver(checkpoint_store)._share
            return
        parts = {name: b"\xa1" + name.encode() for name in "abcd"}
        leaf = {name: _leaf_id(part) for name, part in parts.items()}
        ab, cd = leaf["a"] + leaf["b"], leaf["c"] + leaf["d"]
        nodes = {
            **{node_version(leaf[name]): ("msgpack", part) for name, part in parts.items()},
            node_version(_block_id(ab)): (BLOCK_TYPE, ab),
            node_version(_block_id(cd)): (BLOCK_TYPE, cd),
        }
        v = {name: node_version(leaf[name]) for name in "abcd"} | {
            "ab": node_version(_block_id(ab)), "cd": node_version(_block_id(cd))
        }

        def record(n: int, *ids: bytes) -> Typed:
            return _encode_record("msgpack", None, n, ids)

        tid = str(uuid.uuid4())
        c1, c2, c3, c4 = (make_checkpoint_id() for _ in range(4))
        # [a, b] -> [a, b, c] -> [c, d] (a summarizing graph dropped a and b); "raw" holds a record of format 9.
        await checkpoint_store.cp_put(
            _row(tid, c1, versions={"log": "1", "raw": "1"}, metadata={"run_id": "r1", "step": 0}),
            {
                ("log", "1"): record(2, _block_id(ab)),
                **{("log", ver): nodes[ver] for ver in (v["a"], v["b"], v["ab"])},
                ("raw", "1"): ("msgpack+list", b"\x09\x00\x01" + b"\x07" * 16),
                ("raw", "#orphan"): ("msgpack", b"\xc0"),
            },
        )
        await checkpoint_store.cp_put(
            _row(tid, c2, parent=c1, versions={"log": "2", "raw": "1"}),
            {("log", "2"): record(3, _block_id(ab), leaf["c"]), ("log", v["c"]): nodes[v["c"]]},
        )
        await checkpoint_store.cp_put(
            _row(tid, c3, parent=c2, versions={"log": "3", "raw": "1"}),
            {("log", "3"): record(2, _block_id(cd)), ("log", v["d"]): nodes[v["d"]], ("log", v["cd"]): nodes[v["cd"]]},
        )
        await checkpoint_store.cp_put(_row(tid, c4, ns="sub:1", versions={"log": "1"}), {("log", "1"): _typed([9])})
        every = [("log", ver) for ver in v.values()]
        found = await checkpoint_store.cp_get_blobs(tid, "", [*every, ("log", "#missing"), ("raw", "#orphan")])
        assert found == {**{("log", ver): nodes[ver] for ver in v.values()}, ("raw", "#orphan"): ("msgpack", b"\xc0")}
        assert await checkpoint_store.cp_get_blobs(tid, "sub:1", every) == {}
        assert await checkpoint_store.cp_get_blobs(str(uuid.uuid4()), "", every) == {}
        assert await checkpoint_store.cp_get_blobs(tid, "", []) == {}
        await checkpoint_store.cp_delete_for_runs(["r1"])  # c1 goes; [a, b, c] still reaches a, b and their block
        assert set(await checkpoint_store.cp_get_blobs(tid, "", every)) == set(every)
        await checkpoint_store.cp_prune([tid], True)  # only [c, d] stays
        assert await _ids(checkpoint_store, tid) == [c3]
        kept = await checkpoint_store.cp_get_blobs(tid, "", [*every, ("raw", "#orphan")])
        assert set(kept) == {("log", v["c"]), ("log", v["d"]), ("log", v["cd"]), ("raw", "#orphan")}
        await checkpoint_store.cp_delete_thread(tid)
        assert await checkpoint_store.cp_get_blobs(tid, "", [*every, ("raw", "#orphan")]) == {}

    async def test_graph_run_on_top_of_a_checkpoint_another_saver_pruned_reads_back_whole(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """Between two steps of a run, another saver replaces the thread's list (``update_state``, a summary) and
        prunes the thread (``keep_latest``): the run's head is gone, and so are the list elements only it reached
        (a prune collects them). The run's next puts rely on what it cached of its head: the store refuses them
        (``checked_puts``) and the saver writes them again whole, so the thread reads back the run's state, and a
        later prune leaves only the nodes the newest list reaches. Fails when a put trusts collected nodes
        (``CorruptData``) or an unchanged channel whose blob went with the prune (the list reads back empty)."""
        pytest.importorskip("langgraph.graph")
        from langgraph.graph import END, START, StateGraph

        from contextkit.checkpoint_lists import _leaf_id, is_node_version, node_version, reachable_nodes
        from contextkit.langgraph import ContextKitSaver
        from contextkit.stores import SharedBlobStore

        class State(TypedDict, total=False):
            items: list[str]
            count: int

        tid = str(uuid.uuid4())
        config = _config(tid)

        def talk(state: State) -> dict[str, Any]:
            items = state.get("items", [])
            return {"items": [*items, f"answer {len(items)} " + "x" * 700]}

        async def meddle(state: State) -> dict[str, Any]:
            await other_graph.aupdate_state(config, {"items": ["summary " + "s" * 700, "tail " + "t" * 700]})
            await other.aprune([tid])
            return {"count": state.get("count", 0) + 1}

        def build(saver: ContextKitSaver) -> Any:
            builder = StateGraph(State)
            builder.add_node("talk", talk)
            builder.add_node("meddle", meddle)
            builder.add_node("again", talk)
            builder.add_edge(START, "talk")
            builder.add_edge("talk", "meddle")
            builder.add_edge("meddle", "again")
            builder.add_edge("again", END)
            return builder.compile(checkpointer=saver)

        saver, other = ContextKitSaver(checkpoint_store), ContextKitSaver(checkpoint_store)
        graph, other_graph = build(saver), build(other)
        out: dict[str, Any] = {}
        for run in range(2):
            out = await graph.ainvoke({"items": [*out.get("items", []), f"question {run} " + "q" * 700]}, config)
        assert len(out["items"]) == 6 and out["count"] == 2
        for reader in (graph, build(ContextKitSaver(checkpoint_store))):
            state = await reader.aget_state(config)
            assert state.values == out
        if isinstance(checkpoint_store, SharedBlobStore):
            store = checkpoint_store

            async def nodes_of(versions: list[str]) -> set[str]:
                found = await store.cp_get_blobs(tid, "", [("items", ver) for ver in versions])
                return {ver for (_, ver) in found}

            summary = [node_version(_leaf_id(saver.serde.dumps_typed("summary " + "s" * 700)[1]))]
            assert await nodes_of(summary) == set(summary)  # the other saver's update of the last run is stored
            await saver.aprune([tid])
            newest = await checkpoint_store.cp_get(tid, "", None)
            assert newest is not None
            record = newest.blobs["items"]

            # Every node the newest list reaches is stored (6 leaves, blocks of 4 and 2); the summary's are gone.
            top = reachable_nodes([record], lambda ver: None) or set()
            blocks = await store.cp_get_blobs(tid, "", [("items", ver) for ver in top])
            reached = reachable_nodes([record], lambda ver: blocks.get(("items", ver))) or set()
            assert len(reached) == 8 and await nodes_of(sorted(reached)) == reached
            assert all(is_node_version(ver) for ver in reached) and await nodes_of(summary) == set()

    async def test_graph_list_values_are_shared_between_versions(self, checkpoint_store: CheckpointStore) -> None:
        """A growing list channel is stored as a small record per version over nodes every version shares: the
        thread's bytes grow with the list, not with its square; every checkpoint of the history reads back its
        own list, through this saver and through a new one (nothing cached), after a fork, a prune and a copy,
        and exported whole. Without :class:`~contextkit.stores.SharedBlobStore`, values are stored whole and
        read the same."""
        pytest.importorskip("langgraph.graph")
        from contextkit.checkpoint_lists import LIST_MARK
        from contextkit.checkpoint_usage import thread_usage
        from contextkit.langgraph import ContextKitSaver
        from contextkit.stores import SharedBlobStore

        shared = isinstance(checkpoint_store, SharedBlobStore)
        saver = ContextKitSaver(checkpoint_store)
        graph = long_turns_graph(saver)
        tid = str(uuid.uuid4())
        config = _config(tid)
        for turn in range(30):
            await graph.ainvoke({"turns": [f"user {turn}"]}, config)
        expected = (await graph.aget_state(config)).values["turns"]
        assert len(expected) == 60
        newest = await checkpoint_store.cp_get(tid, "", None)
        assert newest is not None
        record = newest.blobs["turns"]
        if shared:
            assert record[0] == "msgpack" + LIST_MARK and len(record[1]) < 200, record[0]
        else:
            assert not record[0].endswith(LIST_MARK)
        histories = []
        for reader in (saver, ContextKitSaver(checkpoint_store), ContextKitSaver(checkpoint_store, share_lists=False)):
            history = [s async for s in long_turns_graph(reader).aget_state_history(config)]
            histories.append([(s.config["configurable"]["checkpoint_id"], s.values.get("turns")) for s in history])
        assert histories[0] == histories[1] == histories[2]
        lengths = [len(turns or []) for _, turns in histories[0]]
        assert lengths == sorted(lengths, reverse=True) and lengths[0] == 60
        assert all(turns == expected[: len(turns)] for _, turns in histories[0] if turns)
        text = sum(len(t.encode()) for t in expected)
        usage = await thread_usage(checkpoint_store, tid)
        assert usage is not None
        # whole values would store the list at each of its ~60 versions: ~30x the text
        assert usage.hot.channels["turns"] < (3 if shared else 100) * text, (usage.hot.channels, text)
        if shared:
            assert usage.hot.channels["turns"] > text
        # a fork from an older checkpoint gets its own list; the original branch is untouched
        older = histories[0][20]
        fork = await graph.aupdate_state(
            {"configurable": {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": older[0]}}, {"turns": ["edited"]}
        )
        forked = await long_turns_graph(ContextKitSaver(checkpoint_store)).aget_state(fork)
        assert forked.values["turns"] == [*older[1], "edited"]
        assert (await graph.aget_state({"configurable": {**config["configurable"], "checkpoint_id": histories[0][0][0]}})).values[
            "turns"
        ] == expected
        # a copy reads the same; a prune keeps the newest readable
        target = str(uuid.uuid4())
        await saver.acopy_thread(tid, target)
        assert (await long_turns_graph(ContextKitSaver(checkpoint_store)).aget_state(_config(target))).values[
            "turns"
        ] == forked.values["turns"]
        await saver.aprune([tid], strategy="keep_latest")
        assert (await long_turns_graph(ContextKitSaver(checkpoint_store)).aget_state(config)).values["turns"] == (
            forked.values["turns"]
        )
        await graph.ainvoke({"turns": ["after the prune"]}, config)
        assert (await long_turns_graph(ContextKitSaver(checkpoint_store)).aget_state(config)).values["turns"][-2:][
            0
        ] == "after the prune"

    async def test_graph_delta_channel_snapshots_are_shared_and_read_back(self, checkpoint_store: CheckpointStore) -> None:
        """A ``DeltaChannel`` snapshot (``_DeltaSnapshot`` of a list) is stored shared and read back as the same
        snapshot, through the state and ``aget_delta_channel_history``'s seeds, by a saver with sharing and one
        without."""
        pytest.importorskip("langgraph.channels.delta")
        from langgraph.checkpoint.serde.types import _DeltaSnapshot

        from contextkit.checkpoint_lists import LIST_MARK
        from contextkit.langgraph import ContextKitSaver
        from contextkit.stores import SharedBlobStore

        saver = ContextKitSaver(checkpoint_store)
        graph = delta_graph(saver, snapshot_frequency=3)
        config = _config(str(uuid.uuid4()))
        for turn in range(7):
            await graph.ainvoke({"turns": [f"user {turn} " + "x" * 300]}, config)
        expected = (await graph.aget_state(config)).values["turns"]
        assert len(expected) == 14
        kinds = {
            blob[0] async for b in checkpoint_store.cp_list(config["configurable"]["thread_id"], "")
            for ch, blob in b.blobs.items() if ch == "turns"
        }
        if isinstance(checkpoint_store, SharedBlobStore):
            assert "msgpack" + LIST_MARK in kinds, kinds
        for reader in (ContextKitSaver(checkpoint_store), ContextKitSaver(checkpoint_store, share_lists=False)):
            assert (await delta_graph(reader, snapshot_frequency=3).aget_state(config)).values["turns"] == expected
            seed = (await reader.aget_delta_channel_history(config=config, channels=["turns"]))["turns"].get("seed")
            assert isinstance(seed, _DeltaSnapshot) and seed.value == expected[: len(seed.value)], seed

    async def test_a_broken_shared_list_record_is_corrupt_data(self, checkpoint_store: CheckpointStore) -> None:
        """A record whose nodes are missing, or of a format this version does not know, raises
        :class:`~contextkit.errors.CorruptData` naming the channel, never a wrong value."""
        pytest.importorskip("langgraph.checkpoint.base")
        from langgraph.checkpoint.base import empty_checkpoint

        from contextkit.errors import CorruptData
        from contextkit.langgraph import ContextKitSaver
        from contextkit.stores import SharedBlobStore

        if not isinstance(checkpoint_store, SharedBlobStore):
            return
        saver = ContextKitSaver(checkpoint_store)
        for data in (b"\x01\x00\x02" + b"\x07" * 16, b"\x09\x00\x01" + b"\x07" * 16, b"\x01\x00\x03" + b"\x07" * 8):
            tid = str(uuid.uuid4())
            checkpoint = empty_checkpoint()
            cid = checkpoint["id"]
            row = CheckpointRow(
                thread_id=tid,
                checkpoint_ns="",
                checkpoint_id=cid,
                parent_checkpoint_id=None,
                checkpoint=saver.serde.dumps_typed(checkpoint),
                metadata={"step": 0},
                channel_versions={"turns": "1"},
            )
            await checkpoint_store.cp_put(row, {("turns", "1"): ("msgpack+list", data)})
            with pytest.raises(CorruptData):
                await saver.aget_tuple(_config(tid))

    # -- LangGraph: DeltaChannel history ------------------------------------------------------------------------
    async def test_delta_history_reads_each_channel_back_to_its_nearest_stored_value(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """``aget_delta_channel_history`` walks the parent chain from the target's parent: per channel, the writes
        oldest first (``writes_sort_key`` order inside a checkpoint: task path first), the stored value of the
        nearest ancestor that has one as ``seed`` (that ancestor's own writes included), no ``seed`` when the walk
        reached the root; the target's own writes and other channels are left out. It answers what LangGraph's
        generic walk answers, with the store's own walk and with the saver's fallback for stores without one. A
        failure usually means the walk stops one checkpoint early or late, takes the empty marker for a value, or
        returns writes in storage order instead of ``writes_sort_key`` order."""
        pytest.importorskip("langgraph.checkpoint.base")
        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store)
        tid = str(uuid.uuid4())
        ids = await delta_chain(checkpoint_store, tid)
        await delta_chain(checkpoint_store, tid, ns="sub:1")  # another namespace of the thread: never read
        config = _config(tid, checkpoint_ns="")
        history = await saver.aget_delta_channel_history(config=config, channels=["a", "b", "c"])

        def writes(ch: str, steps: range) -> list[str]:
            if ch == "c":
                return [f"c{i}" for i in steps]
            return [v for i in steps for v in (f"{ch}{i}/early", f"{ch}{i}/late")]

        assert _history_values(history) == {
            "a": (writes("a", range(3, 6)), "A3"),
            "b": (writes("b", range(2, 6)), "B2"),
            "c": (writes("c", range(0, 6)), None),
        }
        assert "seed" not in history["c"]
        assert [w[0] for w in history["a"]["writes"][:2]] == ["task-z", "task-a"]
        assert history == await generic_delta_history(saver, config, ["a", "b", "c"])
        fallback = ContextKitSaver(_WithoutDeltaHistory(checkpoint_store))
        assert await fallback.aget_delta_channel_history(config=config, channels=["a", "b", "c"]) == history
        # An older target reads from its own parent; `None` as the id means the newest.
        older = _config(tid, checkpoint_ns="", checkpoint_id=ids[4])
        assert _history_values(await saver.aget_delta_channel_history(config=older, channels=["a"])) == {
            "a": (writes("a", range(3, 4)), "A3")
        }
        assert await saver.aget_delta_channel_history(config=older, channels=["b", "a"]) == await generic_delta_history(
            saver, older, ["b", "a"]
        )

    async def test_delta_history_follows_the_parent_chain_of_a_fork(self, checkpoint_store: CheckpointStore) -> None:
        """A fork (a checkpoint whose parent is an older one) reads only its own ancestors, not the newer
        checkpoints of the abandoned branch, though their ids sort between. A failure usually means the walk
        lists by id instead of following ``parent_checkpoint_id``."""
        pytest.importorskip("langgraph.checkpoint.base")
        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store)
        tid = str(uuid.uuid4())
        ids = await delta_chain(checkpoint_store, tid)
        fork, head = make_checkpoint_id(), make_checkpoint_id()
        versions = {"a": "f1", "b": "f1", "c": "f1"}
        empty = {(ch, "f1"): ("empty", b"") for ch in versions}
        await checkpoint_store.cp_put(_row(tid, fork, parent=ids[4], versions=versions), empty)
        await checkpoint_store.cp_put_writes(tid, "", fork, [_write("fork-task", 0, "a", "fork write")], False)
        await checkpoint_store.cp_put(_row(tid, head, parent=fork, versions=versions), {})
        config = _config(tid, checkpoint_ns="", checkpoint_id=head)
        history = await saver.aget_delta_channel_history(config=config, channels=["a"])
        assert _history_values(history) == {"a": (["a3/early", "a3/late", "a4/early", "a4/late", "fork write"], "A3")}
        assert history == await generic_delta_history(saver, config, ["a"])
        fallback = ContextKitSaver(_WithoutDeltaHistory(checkpoint_store))
        assert await fallback.aget_delta_channel_history(config=config, channels=["a"]) == history

    async def test_delta_history_of_nothing_stored_or_a_missing_parent(self, checkpoint_store: CheckpointStore) -> None:
        """No channels: an empty mapping (a string instead of a list of names: ``InvalidInput``). A thread,
        namespace or checkpoint never stored: every channel with no writes and no seed. A chain whose oldest
        parent is not stored (pruned) ends there, without a seed."""
        pytest.importorskip("langgraph.checkpoint.base")
        from contextkit.errors import InvalidInput
        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store)
        tid = str(uuid.uuid4())
        assert await saver.aget_delta_channel_history(config=_config(tid), channels=[]) == {}
        with pytest.raises(InvalidInput):
            await saver.aget_delta_channel_history(config=_config(tid), channels="messages")
        nothing: dict[str, Any] = {"a": {"writes": []}, "b": {"writes": []}}
        assert await saver.aget_delta_channel_history(config=_config(tid), channels=["a", "b"]) == nothing
        ids = await delta_chain(checkpoint_store, tid)
        assert await saver.aget_delta_channel_history(config=_config(tid, checkpoint_ns="x"), channels=["a", "b"]) == nothing
        missing = _config(tid, checkpoint_ns="", checkpoint_id=make_checkpoint_id())
        assert await saver.aget_delta_channel_history(config=missing, channels=["a", "b"]) == nothing
        orphan, child = make_checkpoint_id(), make_checkpoint_id()
        await checkpoint_store.cp_put(_row(tid, orphan, parent=ids[0] + "-pruned", versions={"a": "o1"}), {})
        await checkpoint_store.cp_put_writes(tid, "", orphan, [_write("t", 0, "a", "orphan write")], False)
        await checkpoint_store.cp_put(_row(tid, child, parent=orphan, versions={"a": "o1"}), {})
        config = _config(tid, checkpoint_ns="", checkpoint_id=child)
        history = await saver.aget_delta_channel_history(config=config, channels=["a"])
        assert history == {"a": {"writes": [("t", "a", "orphan write")]}}
        assert history == await generic_delta_history(saver, config, ["a"])

    async def test_delta_history_walks_in_the_store_when_it_can(self, checkpoint_store: CheckpointStore) -> None:
        """A store implementing ``DeltaHistoryStore`` answers the whole walk in one ``cp_delta_history`` call
        (no ``cp_get`` per ancestor); the start is skipped unless ``inclusive``, and ``resume`` names the parent
        the store does not hold (``bounded`` False: the saver reads on from the cold tier, not from the store).
        A store without it is served by the saver's generic walk, which must give LangGraph's own answer."""
        from contextkit.langgraph import ContextKitSaver

        tid = str(uuid.uuid4())
        ids = await delta_chain(checkpoint_store, tid)
        if not isinstance(checkpoint_store, DeltaHistoryStore):
            saver = ContextKitSaver(checkpoint_store)
            config: Any = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
            history = await saver.aget_delta_channel_history(config=config, channels=["a", "b", "c"])
            assert history == await generic_delta_history(saver, config, ["a", "b", "c"])
            return
        walk = await checkpoint_store.cp_delta_history(tid, "", None, ["a", "b"])
        assert walk is not None and walk.checkpoint_id == ids[6] and walk.resume is None
        assert [step.checkpoint_id for step in walk.steps] == ids[5:1:-1]
        assert [sorted(step.seeds) for step in walk.steps] == [[], [], ["a"], ["b"]]
        assert {w.channel for w in walk.steps[-1].writes} == {"b"}  # `a` stopped walking one step before
        inclusive = await checkpoint_store.cp_delta_history(tid, "", ids[3], ["a"], inclusive=True)
        assert inclusive is not None and [step.checkpoint_id for step in inclusive.steps] == [ids[3]]
        assert dict(inclusive.steps[0].seeds) == {"a": _typed("A3")}
        assert await checkpoint_store.cp_delta_history(tid, "", make_checkpoint_id(), ["a"]) is None
        orphan = make_checkpoint_id()
        lost = make_checkpoint_id()
        await checkpoint_store.cp_put(_row(tid, orphan, parent=lost, versions={"a": "o1"}), {})
        cut = await checkpoint_store.cp_delta_history(tid, "", orphan, ["a"], inclusive=True)
        assert cut is not None and [s.checkpoint_id for s in cut.steps] == [orphan]
        assert cut.resume == lost and not cut.bounded

        calls: list[str] = []
        store: Any = checkpoint_store

        class _Counting:
            """The store, counting the reads the saver makes through it."""

            def __getattr__(self, name: str) -> Any:
                attr = getattr(store, name)
                if name == "cp_get":

                    async def counted(*args: Any, **kwargs: Any) -> Any:
                        calls.append(name)
                        return await attr(*args, **kwargs)

                    return counted
                return attr

            async def cp_delta_history(self, *args: Any, **kwargs: Any) -> Any:
                calls.append("cp_delta_history")
                return await store.cp_delta_history(*args, **kwargs)

        saver = ContextKitSaver(_Counting())
        await saver.aget_delta_channel_history(config=_config(tid, checkpoint_ns="", checkpoint_id=ids[6]), channels=["a", "c"])
        assert calls == ["cp_delta_history"]

    async def test_delta_history_stops_at_an_ancestor_the_caller_holds(self, checkpoint_store: CheckpointStore) -> None:
        """``cp_delta_history(..., stop_at=)`` ends once it visited that ancestor (its step included) with
        channels still walking (``stopped``, nothing to resume); a channel that finds its seed first ends the walk
        as without it, and an id off the chain changes nothing. The saver's remembered walks rely on it.

        Fix: in the walk, after the step of ``stop_at``, return ``DeltaWalk(start, steps, stopped=True)`` when
        channels are left."""
        if not isinstance(checkpoint_store, DeltaHistoryStore):
            return
        tid = str(uuid.uuid4())
        ids = await delta_chain(checkpoint_store, tid)
        full = await checkpoint_store.cp_delta_history(tid, "", None, ["a", "b"])
        assert full is not None and not full.stopped
        stopped = await checkpoint_store.cp_delta_history(tid, "", None, ["a", "b"], stop_at=ids[4])
        assert stopped is not None and stopped.stopped and stopped.resume is None and not stopped.bounded
        assert stopped.checkpoint_id == ids[6]
        assert [(s.checkpoint_id, s.writes, s.seeds) for s in stopped.steps] == [
            (s.checkpoint_id, s.writes, s.seeds) for s in full.steps[:2]
        ]
        seeded_first = await checkpoint_store.cp_delta_history(tid, "", None, ["a"], stop_at=ids[2])
        alone = await checkpoint_store.cp_delta_history(tid, "", None, ["a"])
        assert seeded_first is not None and alone is not None and not seeded_first.stopped
        assert [s.checkpoint_id for s in seeded_first.steps] == [s.checkpoint_id for s in alone.steps] == ids[5:2:-1]
        elsewhere = await checkpoint_store.cp_delta_history(tid, "", None, ["a", "b"], stop_at=make_checkpoint_id())
        assert elsewhere is not None and not elsewhere.stopped
        assert [s.checkpoint_id for s in elsewhere.steps] == [s.checkpoint_id for s in full.steps]
        itself = await checkpoint_store.cp_delta_history(tid, "", ids[5], ["a", "b"], inclusive=True, stop_at=ids[5])
        assert itself is not None and itself.stopped and [s.checkpoint_id for s in itself.steps] == [ids[5]]

    async def test_a_saver_remembering_its_delta_walks_answers_as_a_fresh_one(
        self, checkpoint_store: CheckpointStore
    ) -> None:
        """A saver remembers each complete ``DeltaChannel`` walk and asks the store to stop at its start on the
        next one (a turn then reads the checkpoints made since, not those back to the snapshot). Across snapshot
        boundaries, at every checkpoint of the history (newest to oldest, then oldest to newest), after a fork
        from an older checkpoint that goes on, and after a delete of the thread, its answers equal those of a
        saver that never walked before."""
        pytest.importorskip("langgraph.channels.delta")
        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store)
        graph = delta_graph(saver, snapshot_frequency=4)
        config = _config(str(uuid.uuid4()))

        async def same(at: Any) -> None:
            want = await ContextKitSaver(checkpoint_store).aget_delta_channel_history(config=at, channels=["turns"])
            assert await saver.aget_delta_channel_history(config=at, channels=["turns"]) == want, at

        for turn in range(10):
            await graph.ainvoke({"turns": [f"user {turn}"]}, config)
            await same(config)
        history = [s async for s in graph.aget_state_history(config)]
        for snapshot in [*history, *reversed(history)]:
            await same(snapshot.config)
        fork = await graph.aupdate_state(history[11].config, {"turns": ["edited"]})
        await same(fork)
        for turn in range(3):
            await graph.ainvoke(None if turn == 0 else {"turns": [f"fork {turn}"]}, fork if turn == 0 else config)
            await same(config)
        assert (await graph.aget_state(config)).values["turns"][-1].startswith("reply")
        await saver.adelete_thread(config["configurable"]["thread_id"])
        await graph.ainvoke({"turns": ["after the delete"]}, config)
        await same(config)
        if isinstance(checkpoint_store, DeltaHistoryStore) and saver._stop_at:
            assert saver._walks.get((config["configurable"]["thread_id"], "", ("turns",))) is not None

    async def test_graph_delta_channel_rebuilds_what_a_plain_reducer_keeps(self, checkpoint_store: CheckpointStore) -> None:
        """A real ``DeltaChannel`` graph (snapshot every 3 updates) reads back, at the head and at every older
        checkpoint of its history, the list a plain ``operator.add`` channel stores in full; a fork from an older
        checkpoint rebuilds from its own ancestors."""
        pytest.importorskip("langgraph.channels.delta")
        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store)
        delta, plain = delta_graph(saver), _plain_turns_graph(saver)
        dcfg, pcfg = _config(str(uuid.uuid4())), _config(str(uuid.uuid4()))
        for turn in range(8):
            await delta.ainvoke({"turns": [f"user {turn}"]}, dcfg)
            await plain.ainvoke({"turns": [f"user {turn}"]}, pcfg)
        assert (await delta.aget_state(dcfg)).values == (await plain.aget_state(pcfg)).values
        dhist = [s async for s in delta.aget_state_history(dcfg)]
        phist = [s async for s in plain.aget_state_history(pcfg)]
        assert [s.values.get("turns") for s in dhist] == [s.values.get("turns") for s in phist]
        assert len(dhist) == 24
        # Fork both from the same older step and go on: the fork reads its own ancestors.
        dfork = await delta.aupdate_state(dhist[9].config, {"turns": ["edited"]})
        pfork = await plain.aupdate_state(phist[9].config, {"turns": ["edited"]})
        await delta.ainvoke(None, dfork)
        await plain.ainvoke(None, pfork)
        assert (await delta.aget_state(dcfg)).values == (await plain.aget_state(pcfg)).values

    # -- LangGraph: sync code -----------------------------------------------------------------------------------
    def test_sync_graph_invoke_with_a_background_saver(self, checkpoint_store_factory: StoreFactory) -> None:
        """``ContextKitSaver.in_background`` opens the store on a private loop thread, so plain sync code runs
        ``graph.invoke`` / ``get_state_history`` / resume; ``close()`` closes both."""
        pytest.importorskip("langgraph.graph")
        from langgraph.types import Command

        from contextkit.langgraph import ContextKitSaver

        settings = StoreSettings(namespace=f"ckt-{uuid.uuid4().hex[:12]}")
        with ContextKitSaver.in_background(lambda: checkpoint_store_factory(settings)) as saver:
            graph = _review_graph(saver)
            config = _config(str(uuid.uuid4()))
            graph.invoke({"topic": "sync"}, config)
            assert graph.get_state(config).next == ("review",)
            assert graph.invoke(Command(resume="approve"), config)["approved"] is True
            history = list(graph.get_state_history(config))
            assert len(history) >= 4
            saver.delete_thread(config["configurable"]["thread_id"])
            assert saver.get_tuple(config) is None
        assert saver.loop is not None and saver.loop.is_closed()

    def test_sync_delta_channel_graph_with_a_background_saver(self, checkpoint_store_factory: StoreFactory) -> None:
        """Sync code on a ``DeltaChannel`` graph: ``graph.invoke`` rebuilds the list through the sync
        ``get_delta_channel_history``, which answers what the async one does."""
        pytest.importorskip("langgraph.channels.delta")
        from contextkit.langgraph import ContextKitSaver

        settings = StoreSettings(namespace=f"ckt-{uuid.uuid4().hex[:12]}")
        with ContextKitSaver.in_background(lambda: checkpoint_store_factory(settings)) as saver:
            graph = delta_graph(saver)
            config = _config(str(uuid.uuid4()))
            for turn in range(4):
                graph.invoke({"turns": [f"user {turn}"]}, config)
            assert graph.get_state(config).values["turns"] == [
                text for turn in range(4) for text in (f"user {turn}", f"reply {2 * turn + 1}")
            ]
            head = saver.get_tuple(config)
            assert head is not None
            history = saver.get_delta_channel_history(config=head.config, channels=["turns"])
            assert [w[2] for w in history["turns"]["writes"]]
            assert saver.loop is not None
            on_loop = asyncio.run_coroutine_threadsafe(
                saver.aget_delta_channel_history(config=head.config, channels=["turns"]), saver.loop
            )
            assert history == on_loop.result(timeout=30)

    async def test_sync_api_from_another_thread_uses_the_store_loop(self, checkpoint_store: CheckpointStore) -> None:
        """A saver built on a running loop serves sync calls from other threads (``asyncio.to_thread``) on that
        loop, and refuses them on the loop's own thread with a ContextKitError naming the async API."""
        pytest.importorskip("langgraph.graph")
        from contextkit.langgraph import ContextKitSaver

        saver = ContextKitSaver(checkpoint_store)
        graph = _log_graph(saver)
        config = _config(str(uuid.uuid4()))
        result = await asyncio.to_thread(graph.invoke, {"log": []}, config)
        assert sorted(result["log"]) == ["a", "b", "c", "d"]
        with pytest.raises(ContextKitError, match="ainvoke"):
            saver.get_tuple(config)
        with pytest.raises(ContextKitError, match="ainvoke"):
            graph.invoke({"log": []}, config)
        assert (await graph.aget_state(config)).values["log"] == result["log"]

    def test_next_versions_are_compact_monotonic_strings(self) -> None:
        """``get_next_version`` returns short strings that sort like the counter they carry, across every change
        of the counter's length, after any version of the older 32-digit format, and differ between two calls
        from one version (concurrent forks)."""
        pytest.importorskip("langgraph.checkpoint.base")
        from contextkit.langgraph import ContextKitSaver, version_counter

        saver = ContextKitSaver.__new__(ContextKitSaver)
        versions: list[Any] = [None]
        for _ in range(1_400):  # past 36 and 1,296: the counter grows to 2 and 3 base-36 digits
            versions.append(saver.get_next_version(versions[-1], None))
        assert versions[1:] == sorted(versions[1:]) and len(set(versions[1:])) == 1_400
        assert [version_counter(v) for v in versions[1:]] == list(range(1, 1_401))
        assert max(len(v) for v in versions[1:]) <= 13  # 1,400 has 3 digits: 1 + 3 + "." + 8
        assert version_counter(saver.get_next_version(5, None)) == 6
        assert saver.get_next_version("a5.x", None) != saver.get_next_version("a5.x", None)
        for number in (0, 7, 299, 10**31):
            old = f"{number:032}.{0.5:016}"
            new = saver.get_next_version(old, None)
            assert version_counter(old) == number and version_counter(new) == number + 1
            assert new > old and new > f"{10**32 - 1:032}.{0.9:016}"
            assert version_counter(saver.get_next_version(str(number), None)) == number + 1
        with pytest.raises(InvalidInput):
            saver.get_next_version("not-a-version", None)
