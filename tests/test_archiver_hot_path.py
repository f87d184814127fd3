"""The archive's share of the hot path: messages queued as records in the in-process outbox (events built by the
drain, once, with stable ids), encoded at once in a durable outbox, cheap event ids, and the JSON codec the outboxes
and cold writers share (orjson when installed, with the stdlib's meaning)."""

import json
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.archiver import FileOutbox, MemoryOutbox, archive_json, archive_loads, message_event
from contextkit.records import ArchiveEvent, Message, new_event_id, utcnow
from contextkit.stores import DEFERRED_MESSAGE_EVENTS, ArchiveSpec, Capability, StoreSettings
from contextkit_memory.cold import MemoryColdStore
from contextkit_memory.hot import MemoryHotStore


async def _kit(**overrides: Any) -> ContextKit:
    config: dict[str, Any] = {"hot": "memory", "cold": "memory", "namespace": "hotpath", "archiver": {"flush_interval": 60}}
    config.update(overrides)
    return await ContextKit.from_config(config, env={}).open()


def _pending(kit: ContextKit) -> MemoryOutbox:
    assert kit.archiver is not None
    outbox = kit.archiver.outbox
    assert isinstance(outbox, MemoryOutbox)
    return outbox


async def test_a_queued_message_becomes_the_event_of_the_stored_message_with_one_stable_id() -> None:
    kit = await _kit()
    try:
        await kit.create_session("s", "u")
        stored = await kit.add_message("s", "user", "hello", {"k": [1, 2]})
        outbox = _pending(kit)
        first = await outbox.peek(10)
        again = await outbox.peek(10)
        assert [e.event_id for e in first] == [e.event_id for e in again]  # built once, retried as is
        assert [e.table for e in first] == ["context_sessions", "context_task_contexts", "context_conversations"]
        event = first[2]
        assert event.key == "s" and event.payload == {"message": stored.to_dict()}
        assert event.created_at == stored.timestamp
        assert len(event.event_id) == 32 and len({e.event_id for e in first}) == 3
        assert await outbox.oldest() == first[0].created_at
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        assert await kit.cold.read_history("s", None) == [stored]  # type: ignore[union-attr]
    finally:
        await kit.aclose()


async def test_changing_a_message_dict_after_the_call_does_not_change_its_archive() -> None:
    kit = await _kit()
    try:
        metadata = {"k": "before"}
        stored = await kit.add_message("s", "user", "hello", metadata)
        metadata["k"] = "caller changed it"
        stored.metadata["k"] = "returned record changed"  # type: ignore[index]
        [event] = await _pending(kit).peek(10)
        assert event.payload["message"]["metadata"] == {"k": "before"}
    finally:
        await kit.aclose()


async def test_deferred_and_built_events_keep_their_order_through_peek_and_ack() -> None:
    outbox = MemoryOutbox()
    now = utcnow()
    messages = [Message("user", f"m{i}", now, id=f"id{i}") for i in range(4)]
    outbox.queue_message("s", messages[0], 1)
    await outbox.push([ArchiveEvent("context_sessions", "s", {"n": 1})])
    outbox.queue_message("s", messages[1], 2)
    outbox.queue_message("s", messages[2], 3)
    assert await outbox.oldest() == now and await outbox.depth() == 4
    head = await outbox.peek(2)
    assert [e.table for e in head] == ["context_conversations", "context_sessions"]
    await outbox.ack([e.event_id for e in head])
    outbox.queue_message("s", messages[3], 4)
    rest = await outbox.peek(10)
    assert [e.payload["message"]["seq"] for e in rest] == [2, 3, 4]
    assert [e.payload["message"]["id"] for e in rest] == ["id1", "id2", "id3"]
    await outbox.ack([rest[1].event_id])  # not a prefix: only that one leaves
    assert [e.event_id for e in await outbox.peek(10)] == [rest[0].event_id, rest[2].event_id]
    assert not outbox.has_room(1_000_000)


async def test_queue_messages_counts_and_builds_what_queue_message_does() -> None:
    """The memory tier's batch call keeps the byte accounting (max_pending_bytes, batch_bytes) and the events of
    the one-message call: same sizes, same payloads, ids drawn once each and times from the messages."""
    now = utcnow()
    messages = [
        Message("user", "plain", now, metadata={}, seq=1),
        Message("assistant", "日本語 ü" * 50, now.replace(microsecond=1), metadata={"k": ["ü", 1.5], "n": None}, seq=2),
        Message("user", "x" * 10_000, now.replace(microsecond=2), metadata={"deep": {"a": [1, {"b": "c"}]}}, seq=3),
    ]
    one, batch = MemoryOutbox(), MemoryOutbox()
    for message in messages:
        one.queue_message("k", message, message.seq)
    batch.queue_messages("k", messages)
    assert batch.pending_bytes == one.pending_bytes > 10_000
    assert list(batch._sizes) == list(one._sizes)
    # The queue keeps the fields, not the records: the hot tier frees a message it trims while its event waits.
    assert not [m for item in [*batch._events, *one._events] for m in messages if any(x is m for x in item)]
    messages[1].metadata["k"] = "changed after queueing"  # type: ignore[index]
    built, expected = await batch.peek(10), await one.peek(10)
    assert [e.event_id for e in built] == [e.event_id for e in await batch.peek(10)]  # drawn once
    assert len({e.event_id for e in built + expected}) == 6
    assert [(e.key, e.payload, e.created_at) for e in built] == [(e.key, e.payload, e.created_at) for e in expected]
    assert [e.created_at for e in built] == [m.timestamp for m in messages]
    assert built[1].payload["message"]["metadata"] == {"k": ["ü", 1.5], "n": None}
    await batch.ack([e.event_id for e in built])
    assert batch.pending_bytes == 0 and await batch.depth() == 0


class _RecordingStore(MemoryHotStore):
    """The memory tier, recording the archive spec of each append; ``deferred=False`` drops its deferred_events
    capability, as a hot tier without it declares."""

    def __init__(self, settings: StoreSettings, deferred: bool) -> None:
        super().__init__(settings)
        if not deferred:
            self.capabilities = self.capabilities - {Capability.DEFERRED_EVENTS.value}
        self.specs: list[ArchiveSpec | None] = []

    async def append_messages(
        self, key: str, messages: Sequence[Message], *, archive: ArchiveSpec | None = None
    ) -> list[Message]:
        self.specs.append(archive)
        return await super().append_messages(key, messages, archive=archive)


@pytest.mark.parametrize("deferred", [True, False], ids=["deferred_events", "kit draws the ids"])
async def test_the_kit_draws_event_ids_only_for_a_hot_tier_without_deferred_events(deferred: bool) -> None:
    hot = _RecordingStore(StoreSettings(namespace="hotpath", archived=True), deferred)
    kit = await ContextKit(hot, MemoryColdStore(StoreSettings(namespace="hotpath"))).open()
    try:
        await kit.create_session("s", "u")
        stored = [await kit.add_message("s", "user", f"m{i}") for i in range(3)]
        if deferred:
            assert hot.specs == [DEFERRED_MESSAGE_EVENTS] * 3
        else:
            assert all(isinstance(s, ArchiveSpec) and len(s.event_ids) == 1 for s in hot.specs)
            assert [s.created_at for s in hot.specs if s is not None] == [(m.timestamp,) for m in stored]
        events = [e for e in await _pending(kit).peek(100) if e.table == "context_conversations"]
        assert [e.created_at for e in events] == [m.timestamp for m in stored]
        assert len({e.event_id for e in events}) == 3
        if not deferred:
            assert [e.event_id for e in events] == [s.event_ids[0] for s in hot.specs if s is not None]
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        assert await kit.cold.read_history("s", None) == stored  # type: ignore[union-attr]
    finally:
        await kit.aclose()


async def test_a_durable_outbox_holds_the_message_event_when_the_call_returns(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    kit = await _kit(archiver={"flush_interval": 60, "outbox_path": str(path)})
    try:
        stored = await kit.add_message("s", "user", "durable", {"n": 1})
        # Read the file from another connection: the event is there, encoded, before any drain.
        reader = FileOutbox(path)
        try:
            events = await reader.peek(10)
        finally:
            await reader.aclose()
        assert [e.payload for e in events] == [{"message": stored.to_dict()}]
    finally:
        await kit.aclose()


def test_message_event_matches_the_stored_message() -> None:
    message = Message("user", "hi", utcnow(), metadata={"a": 1})
    event = message_event("k", message, 7, "e1")
    assert event == ArchiveEvent(
        "context_conversations", "k", {"message": message.with_seq(7).to_dict()}, message.timestamp, "e1"
    )
    assert ArchiveEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_event_ids_are_unique_across_threads() -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def draw() -> None:
        mine = [new_event_id() for _ in range(5000)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(ids) == 20_000 and len(set(ids)) == 20_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids[:10])
    assert new_event_id() != ArchiveEvent("t", "k", {}).event_id


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_draws_event_ids_of_its_own() -> None:
    parent = [new_event_id() for _ in range(3)]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        os.write(write_end, " ".join(new_event_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    later = [new_event_id() for _ in range(3)]
    assert len(child) == 3 and not set(child) & set(parent + later)
    assert {i[:16] for i in child}.isdisjoint({i[:16] for i in parent})


_SAME_AS_STDLIB: list[Any] = [
    {},
    [],
    {"a": 1, "b": [1, 2.5, None, True, False], "c": {"d": "e"}},
    {"unicode": "héllo ☃ 𝄞", "controls": "\x00\x01\n\t\r\x1f\x7f", "quote": '"\\/'},
    {"big": 2**70, "neg": -(2**64), "edge": 2**63, "float": 1e16, "tiny": 5e-324},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    {"null": None},
    [{"deep": [[[[[]]]]]}],
    "plain text",
    12,
]


class _Text(str):
    pass


@pytest.mark.parametrize("value", [*_SAME_AS_STDLIB, {"sub": _Text("x")}], ids=repr)
def test_archive_json_means_what_json_dumps_means(value: Any) -> None:
    text = archive_json(value)
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert json.loads(text) == json.loads(expected)
    assert archive_loads(text) == json.loads(expected)
    assert archive_loads(text.encode()) == json.loads(expected)


@pytest.mark.parametrize("value", [math.nan, {"x": [1, math.inf]}, {"deep": {"x": -math.inf}}], ids=repr)
def test_archive_json_refuses_nan_and_infinity_like_the_stdlib(value: Any) -> None:
    with pytest.raises(ValueError):
        archive_json(value)
    assert archive_json(value, allow_nan=True) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("value", [{"x": utcnow()}, {"x": {1, 2}}, {"x": b"raw"}, {("a",): 1}, {"x": object()}], ids=repr)
def test_archive_json_refuses_what_the_stdlib_refuses(value: Any) -> None:
    with pytest.raises(TypeError):
        archive_json(value)


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 123456789012345678901234567890}',
        "[-9223372036854775809, 18446744073709551616]",
        '{"x": NaN}',
        '"\\ud800"',
        '{"a": 1.5, "b": "\\u00e9"}',
    ],
)
def test_archive_loads_reads_what_json_loads_reads(text: str) -> None:
    expected = json.loads(text)
    got = archive_loads(text)
    assert repr(got) == repr(expected)  # exact ints, NaN, lone surrogates
    assert repr(archive_loads(text.encode("utf-8", "surrogatepass"))) == repr(json.loads(text.encode()))


def test_archive_loads_refuses_text_that_is_not_json() -> None:
    for text in ("", "{", "[1,]", b"\xff"):
        with pytest.raises(ValueError):
            archive_loads(text)


@pytest.fixture
def without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextkit.codec as codec

    monkeypatch.setattr(codec, "_orjson", None)
    monkeypatch.setattr(codec, "_orjson_dumps", None)


@pytest.mark.usefixtures("without_orjson")
@pytest.mark.parametrize("value", _SAME_AS_STDLIB, ids=repr)
def test_the_codec_without_orjson_is_the_stdlib(value: Any) -> None:
    assert archive_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert archive_loads(archive_json(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize(
    "text",
    [
        "12345678901234567890",
        "-12345678901234567890",
        '{"a":123456789012345678901234567890}',
        '{"a": \n -98765432109876543210}',
        "[1,\t18446744073709551616]",
        '[{"x":[99999999999999999999]}]',
    ],
)
def test_archive_loads_reads_every_long_integer_exactly(text: str) -> None:
    """Integers of 19 digits or more wherever JSON allows a number (start, after ':', ',', '[', with whitespace and
    sign) are read exactly, as the stdlib reads them (orjson alone would give an inexact float)."""
    assert archive_loads(text) == json.loads(text)
    assert repr(archive_loads(text)) == repr(json.loads(text))


def test_long_digit_runs_inside_strings_keep_the_fast_parser() -> None:
    """LangGraph's zero-padded channel versions and hex event ids are digit runs inside strings: they do not send
    the text to the stdlib parser (the slow path, see docs/benchmarks.md, "Measurements behind design choices")."""
    import contextkit.codec as codec

    versions = '{"channel_versions":{"messages":"00000000000000000000000000000002.0.5434","step":"0000000000000000000001"}}'
    assert not codec._has_long_integer(versions)
    assert not codec._has_long_integer('{"f":1.0000000000000000000001,"e":2e1234567890123456789}')
    assert codec._has_long_integer('{"s":"a,1234567890123456789"}')  # a false alarm only costs the slower parser
    assert archive_loads(versions) == json.loads(versions)
