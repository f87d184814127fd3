"""The hot tier conformance suite: :class:`HotStoreSuite`, the contract every :class:`~contextkit.stores.HotStore` keeps.

A backend package runs it by subclassing and saying how to build a store::

    from contextkit.testing.hot import HotStoreSuite

    class TestMyHotStore(HotStoreSuite):
        async def make_store(self, settings):
            store = MyHotStore(settings, {"url": MY_URL})
            await store.open()
            return store

        async def cleanup_store(self, store):      # optional: remove what the test left in the server
            await store.drop_namespace()

``make_store`` must return an *opened* store whose data is isolated by ``settings.namespace`` (the suite gives
every store a fresh, unique namespace). The suite closes every store it made at teardown, after calling
``cleanup_store``. Optional abilities are read from ``store.capabilities``: a test of an ability the store does not
declare checks the opposite behaviour instead (a refusal, or data never dropped on a timer); no test is skipped.

Every test's docstring says the contract it checks and where to look when it fails. Only test code imports
this module (it needs pytest); it imports no backend.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from contextkit.archiver import Outbox
from contextkit.backend.tables import ArchiveTables
from contextkit.errors import CapabilityNotSupported, OwnerUnknown, SerializationError
from contextkit.records import ArchiveEvent, Message, Session
from contextkit.stores import (
    DEFERRED_MESSAGE_EVENTS,
    MAX_COUNTER,
    ArchiveSpec,
    Capability,
    CheckpointStore,
    EventHead,
    HotStore,
    OutboxProvider,
    OwnerState,
    RestoreAware,
    SessionUpdate,
    StoreSettings,
    Versioned,
    capability_mismatches,
)
from contextkit.testing.suite import StoreSuite
from contextkit.tiered.events import (
    checkpoint_document_event,
    conversation_session_event,
    delete_event,
    message_event,
    session_event,
    task_context_event,
    writes_document_event,
)

__all__ = ["HOSTILE_IDS", "HotStoreSuite", "RestoreAwareHotSuite", "make_message", "make_session", "scan_all", "scan_threads_all"]

#: Ids that break naive key building: separators, glob and hash-tag characters, spaces, long unicode.
HOSTILE_IDS: tuple[str, ...] = (
    "plain",
    "a:b",
    "a:b:c",
    "a",
    "b",
    "{x}",
    "}{",
    "{",
    "*",
    "?",
    "[a]",
    "has space",
    " leading",
    "trailing ",
    "sessions",
    "session:plain",
    "history:plain",
    "plain:history",
    "%3A",
    "a%3Ab",
    "a/b",
    "..",
    "\\",
    '"quoted"',
    "'",
    "é",
    "e\u0301",
    "日本語",
    "🙂",
    ("ключ-🙂-キー-" * 60)[:1024],
)

_T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def make_session(session_id: str, **fields: Any) -> Session:
    """A session record for tests (created at a fixed instant unless ``fields`` say otherwise)."""
    values: dict[str, Any] = {
        "session_id": session_id,
        "user_id": "user-1",
        "created_at": _T0,
        "last_activity": _T0,
        "metadata": {},
    }
    values.update(fields)
    return Session(**values)


def make_message(content: str, role: str = "user", **fields: Any) -> Message:
    """A message for tests (timestamped at a fixed instant unless ``fields`` say otherwise)."""
    values: dict[str, Any] = {"role": role, "content": content, "timestamp": _T0}
    values.update(fields)
    return Message(**values)


def _spec(count: int, prefix: str | None = None) -> ArchiveSpec:
    """An archive spec for ``count`` messages (event ids ``<prefix>-0``, ``<prefix>-1``, ...; a fresh prefix by
    default: a durable outbox keeps one event per id)."""
    prefix = prefix or uuid.uuid4().hex
    return ArchiveSpec(ArchiveTables.CONVERSATIONS, tuple(f"{prefix}-{i}" for i in range(count)), (_T0,) * count)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass (never a timed assertion on speed)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


async def scan_all(store: HotStore, count: int = 100, max_pages: int = 10_000) -> list[Session]:
    """Every session a full scan returns, paging until the cursor is None (a page may be empty before the end)."""
    found: list[Session] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page, cursor = await store.scan_sessions(cursor, count)
        found.extend(page)
        if cursor is None:
            return found
    raise AssertionError(f"scan_sessions did not finish within {max_pages} pages")


async def scan_threads_all(store: HotStore, count: int = 100, max_pages: int = 10_000) -> list[str]:
    """Every seed checkpoint thread id a full ``scan_checkpoint_threads`` returns, paging until the cursor is None."""
    found: list[str] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page, cursor = await store.scan_checkpoint_threads(cursor, count)
        found.extend(page)
        if cursor is None:
            return found
    raise AssertionError(f"scan_checkpoint_threads did not finish within {max_pages} pages")


class HotStoreSuite(StoreSuite[HotStore]):
    """Base class of the hot tier conformance tests; subclass it and implement :meth:`make_store`."""

    #: Every test of a subclass carries the ``conformance`` marker (pytest collects class marks along the MRO), so
    #: ``pytest -m conformance`` (``nox -s conformance``) runs every run of every suite, whatever its file's name.
    pytestmark = [pytest.mark.conformance]

    #: Prefix of the unique namespaces the suite creates (visible in the server if a cleanup fails).
    namespace_prefix: str = "ckt"
    #: Settings every store starts from; :meth:`new_store` overrides single fields.
    default_settings: StoreSettings = StoreSettings(history_cap=1000)

    # -- lifecycle, health, describe ------------------------------------------------------------------------------
    async def test_store_satisfies_the_hot_store_protocol(self, store: HotStore) -> None:
        """The store implements every HotStore method and names itself.

        Fix: implement the missing method of contextkit.stores.HotStore; set ``name`` (str) and ``capabilities``
        (a frozenset of Capability values).
        """
        assert isinstance(store, HotStore)
        assert isinstance(store.name, str)
        assert store.name
        assert isinstance(store.capabilities, frozenset)
        known = {c.value for c in Capability}
        assert set(store.capabilities) <= known, f"unknown capabilities: {set(store.capabilities) - known}"

    async def test_capabilities_match_the_protocols_implemented(self) -> None:
        """Every capability the store declares comes with its protocol (``checkpoints``: CheckpointStore,
        ``outbox`` and ``atomic_outbox``: OutboxProvider), the kit detecting them with ``isinstance``; and a
        protocol the class implements without declaring its capability (in this configuration) refuses typed.
        Checked on a plain and on an archived store.

        Fix: declare in ``capabilities`` what the store implements; where a configuration cannot offer it (a
        SQLite database in memory has no outbox file), leave it undeclared and raise CapabilityNotSupported.
        """
        for store in (await self.new_store(), await self.new_store(archived=True)):
            assert capability_mismatches(store) == [], f"{store.name}: {capability_mismatches(store)}"
            declared = store.capabilities
            if Capability.OUTBOX.value not in declared and isinstance(store, OutboxProvider):
                with pytest.raises(CapabilityNotSupported):
                    store.outbox()
            if Capability.CHECKPOINTS.value not in declared and isinstance(store, CheckpointStore):
                with pytest.raises(CapabilityNotSupported):
                    await store.cp_get("t", "", None)
            if Capability.OUTBOX.value in declared:
                assert isinstance(store, OutboxProvider)
                assert isinstance(store.outbox(), Outbox), "outbox() returns a contextkit.archiver.Outbox"

    async def test_health_reports_a_status_and_latency(self, store: HotStore) -> None:
        """health() returns {"status": healthy|degraded|unhealthy, "latency_ms": number, ...} on a working store.

        Fix: measure the round trip of a cheap call (PING, SELECT 1) and return it as latency_ms.
        """
        report = await store.health()
        assert report["status"] == "healthy"
        assert isinstance(report["latency_ms"], (int, float))
        json.dumps(report, default=str)

    async def test_health_never_raises_after_close(self) -> None:
        """health() never raises, even once the store is closed; aclose() is idempotent.

        Fix: wrap health() in a try/except that reports "unhealthy" with the error class name (no secrets);
        make aclose() a no-op the second time.
        """
        store = await self.new_store()
        await store.aclose()
        await store.aclose()
        report = await store.health()
        assert report["status"] in {"healthy", "degraded", "unhealthy"}

    async def test_describe_names_the_backend_without_io(self, store: HotStore) -> None:
        """describe() is a dict with a "backend" key, JSON serialisable, and costs no I/O.

        Fix: return {"backend": <name>, "namespace": ..., ...} built from the settings only.
        """
        described = store.describe()
        assert isinstance(described, dict)
        assert isinstance(described["backend"], str)
        json.dumps(described, default=str)

    # -- sessions -------------------------------------------------------------------------------------------------
    async def test_put_session_then_get_returns_an_equal_session(self, store: HotStore) -> None:
        """A stored session reads back equal, field for field (timestamps to the microsecond, aware UTC).

        Fix: store Session.to_dict() and rebuild with Session.from_dict(); keep microseconds and the timezone.
        """
        session = make_session(
            "s1", request_count=3, error_count=1, total_processing_time=0.1 + 0.2, metadata={"source": "web"}
        )
        await store.put_session(session)
        assert await store.get_session("s1") == session

    async def test_put_session_replaces_the_whole_record(self, store: HotStore) -> None:
        """put_session on an existing id replaces the record whole (no merge of old metadata keys).

        Fix: overwrite the record instead of merging fields.
        """
        await store.put_session(make_session("s1", metadata={"a": 1, "b": 2}, status="active"))
        replacement = make_session("s1", user_id="user-2", metadata={"c": 3}, status="completed", request_count=9)
        await store.put_session(replacement)
        assert await store.get_session("s1") == replacement

    async def test_get_missing_session_returns_none(self, store: HotStore) -> None:
        """get_session of an id never stored returns None (never raises, never returns an empty record).

        Fix: return None when the key does not exist.
        """
        assert await store.get_session("never-stored") is None

    async def test_update_session_counters_are_exact_under_1000_concurrent_updates(self, store: HotStore) -> None:
        """1,000 concurrent update_session calls add exactly: requests 1,000, errors 500, processing time 500.0.

        Fix: apply increments with server-side atomic operations (HINCRBY / HINCRBYFLOAT in one MULTI, or one
        UPDATE ... SET n = n + ?), never as read-modify-write across round trips or awaits.
        """
        await store.put_session(make_session("s1"))

        async def one(i: int) -> None:
            update = SessionUpdate(
                activity=_T0 + timedelta(seconds=i % 97),
                requests=1,
                errors=i % 2,
                processing_time=0.5,
            )
            assert await store.update_session("s1", update) is not None

        await asyncio.gather(*(one(i) for i in range(1000)))
        final = await store.get_session("s1")
        assert final is not None
        assert final.request_count == 1000
        assert final.error_count == 500
        assert final.total_processing_time == pytest.approx(500.0)
        assert final.last_activity == _T0 + timedelta(seconds=96)

    async def test_update_session_returns_the_updated_session(self, store: HotStore) -> None:
        """update_session returns the session after the update, equal to what get_session reads next.

        Fix: return the record read back inside the same atomic operation.
        """
        await store.put_session(make_session("s1", request_count=2))
        updated = await store.update_session("s1", SessionUpdate(activity=_T0 + timedelta(minutes=1), requests=3))
        assert updated is not None
        assert updated.request_count == 5
        assert updated.last_activity == _T0 + timedelta(minutes=1)
        assert await store.get_session("s1") == updated

    async def test_last_activity_never_moves_backward(self, store: HotStore) -> None:
        """An update with an older activity time leaves last_activity where it was (counters still apply).

        Fix: set last_activity = max(stored, update.activity) atomically (compare in the script / SQL).
        """
        later = _T0 + timedelta(hours=1)
        await store.put_session(make_session("s1", last_activity=later))
        updated = await store.update_session("s1", SessionUpdate(activity=_T0, requests=1))
        assert updated is not None
        assert updated.last_activity == later
        assert updated.request_count == 1
        newer = later + timedelta(seconds=1)
        updated = await store.update_session("s1", SessionUpdate(activity=newer))
        assert updated is not None
        assert updated.last_activity == newer

    async def test_update_session_replaces_status_user_and_metadata(self, store: HotStore) -> None:
        """update.fields replaces status, user_id and metadata whole; other fields are kept.

        Fix: write each key of update.fields as a whole value (metadata replaced, not merged).
        """
        await store.put_session(make_session("s1", metadata={"old": True}, request_count=4))
        update = SessionUpdate(
            activity=_T0, fields={"status": "completed", "user_id": "user-9", "metadata": {"new": ["x", 1]}}
        )
        updated = await store.update_session("s1", update)
        assert updated is not None
        assert updated.status == "completed"
        assert updated.user_id == "user-9"
        assert dict(updated.metadata) == {"new": ["x", 1]}
        assert updated.request_count == 4
        assert updated.created_at == _T0
        assert await store.get_session("s1") == updated

    async def test_update_missing_session_returns_none_and_creates_nothing(self, store: HotStore) -> None:
        """update_session of a missing id returns None and does not create a partial record.

        Fix: check existence inside the atomic operation (a script, or UPDATE ... RETURNING) before writing.
        """
        assert await store.update_session("ghost", SessionUpdate(activity=_T0, requests=1)) is None
        assert await store.get_session("ghost") is None

    async def test_session_metadata_and_unicode_round_trip_exactly(self, store: HotStore) -> None:
        """Metadata (nested, unicode, emoji, numbers, booleans, null) and unicode ids round trip unchanged.

        Fix: serialise with json (ensure_ascii off or on, but decode symmetrically); keep floats and big ints.
        """
        metadata = {
            "text": "héllo wörld 日本語 🙂🚀 e\u0301 \u2028 \t tab\nnewline",
            "nested": {"list": [1, 2.5, None, True, False, "", {"deep": ["🙂"]}], "empty": {}},
            "big": 2**53 + 1,
            "neg": -0.0001,
            "float": 0.1 + 0.2,
        }
        sid = "sessión-🙂-日本"
        session = make_session(sid, user_id="ユーザー", metadata=metadata)
        await store.put_session(session)
        got = await store.get_session(sid)
        assert got == session
        assert got is not None
        assert json.dumps(dict(got.metadata), sort_keys=True) == json.dumps(metadata, sort_keys=True)

    async def test_reads_return_copies_the_caller_cannot_use_to_change_storage(self, store: HotStore) -> None:
        """Mutating a value passed to a write, or returned by a read, never changes what is stored.

        Fix: copy documents and metadata on write and on read (an in-process store must not hand out its own
        dicts).
        """
        metadata: dict[str, Any] = {"k": [1]}
        await store.put_session(make_session("s1", metadata=metadata))
        metadata["k"].append(2)
        got = await store.get_session("s1")
        assert got is not None
        got.metadata["k"].append(3)
        again = await store.get_session("s1")
        assert again is not None
        assert dict(again.metadata) == {"k": [1]}

        doc: dict[str, Any] = {"user_id": "u", "metadata": {"a": 1}}
        await store.put_task_context("s1", doc)
        doc["metadata"]["a"] = 2
        read = await store.get_task_context("s1")
        assert read is not None
        read["metadata"]["a"] = 3
        assert await store.get_task_context("s1") == {"user_id": "u", "metadata": {"a": 1}}

        [stored] = await store.append_messages("s1", [make_message("m", metadata={"x": [1]})])
        stored.metadata["x"].append(2)
        [read_msg] = await store.read_history("s1", None)
        read_msg.metadata["x"].append(3)
        [again_msg] = await store.read_history("s1", None)
        assert dict(again_msg.metadata) == {"x": [1]}

    # -- history --------------------------------------------------------------------------------------------------
    async def test_append_assigns_consecutive_seq_from_one_in_append_order(self, store: HotStore) -> None:
        """Appends keep order and get seq 1, 2, 3, ...; ids, roles, content, timestamps and metadata are kept.

        Fix: assign seq from a per-stream counter (INCRBY by the batch size) and append at the tail (RPUSH).
        """
        first = await store.append_messages("s1", [make_message("one"), make_message("two", role="assistant")])
        second = await store.append_messages(
            "s1", [make_message("three", metadata={"k": "v"}, timestamp=_T0 + timedelta(seconds=5))]
        )
        assert [m.seq for m in first + second] == [1, 2, 3]
        history = await store.read_history("s1", None)
        assert history == first + second
        assert [m.content for m in history] == ["one", "two", "three"]
        assert history[1].role == "assistant"
        assert dict(history[2].metadata) == {"k": "v"}
        assert history[2].timestamp == _T0 + timedelta(seconds=5)
        assert len({m.id for m in history}) == 3

    async def test_append_keeps_the_message_id_given(self, store: HotStore) -> None:
        """A message keeps the id it was appended with (ids are stable, also in the cold tier).

        Fix: store Message.to_dict() including "id"; only seq is assigned by the store.
        """
        message = make_message("hello", id="fixed-id-1")
        [stored] = await store.append_messages("s1", [message])
        assert stored.id == "fixed-id-1"
        assert stored == message.with_seq(1)

    async def test_concurrent_appends_get_unique_consecutive_seqs(self, store: HotStore) -> None:
        """50 tasks appending batches of 4 concurrently get seqs 1..200, each once; a batch is contiguous.

        Fix: reserve the batch's seqs atomically (INCRBY n) and push the batch in the same atomic step, so the
        stored order matches seq order.
        """

        async def one(task: int) -> list[Message]:
            return await store.append_messages("s1", [make_message(f"{task}-{i}") for i in range(4)])

        batches = await asyncio.gather(*(one(t) for t in range(50)))
        seqs = sorted(m.seq for batch in batches for m in batch)
        assert seqs == list(range(1, 201))
        for batch in batches:
            assert [m.seq for m in batch] == list(range(batch[0].seq, batch[0].seq + 4))
        history = await store.read_history("s1", None)
        assert [m.seq for m in history] == list(range(1, 201))
        by_seq = {m.seq: m.content for batch in batches for m in batch}
        assert [m.content for m in history] == [by_seq[s] for s in range(1, 201)]

    async def test_read_history_returns_newest_n_in_chronological_order(self, store: HotStore) -> None:
        """read_history(key, n) is the newest n messages, oldest of them first (the seed returned the oldest).

        Fix: read the tail of the stream (LRANGE -n -1, ORDER BY seq DESC LIMIT n then reverse).
        """
        await store.append_messages("s1", [make_message(f"m{i}") for i in range(1, 11)])
        last3 = await store.read_history("s1", 3)
        assert [m.content for m in last3] == ["m8", "m9", "m10"]
        assert [m.seq for m in last3] == [8, 9, 10]
        assert [m.content for m in await store.read_history("s1", 1)] == ["m10"]
        assert len(await store.read_history("s1", 50)) == 10
        assert [m.seq for m in await store.read_history("s1", None)] == list(range(1, 11))

    async def test_history_cap_trims_the_oldest_and_keeps_seq_monotonic(self) -> None:
        """After 1,200 appends with cap 1,000: read(50) is seqs 1151..1200, read(None) is 1,000 messages 201..1200,
        history_length is 1,000 and history_bounds is (201, 1200).

        Fix: trim from the head after each append (LTRIM -cap -1); keep the seq counter separate from the list so
        trimming never resets it.
        """
        store = await self.new_store(history_cap=1000)
        for start in range(0, 1100, 100):
            await store.append_messages("s1", [make_message(f"m{start + i + 1}") for i in range(100)])
        for i in range(1101, 1201):
            await store.append_messages("s1", [make_message(f"m{i}")])
        last50 = await store.read_history("s1", 50)
        assert [m.seq for m in last50] == list(range(1151, 1201))
        assert [m.content for m in last50] == [f"m{i}" for i in range(1151, 1201)]
        kept = await store.read_history("s1", None)
        assert [m.seq for m in kept] == list(range(201, 1201))
        assert await store.history_length("s1") == 1000
        assert await store.history_bounds("s1") == (201, 1200)

    async def test_a_batch_larger_than_the_cap_keeps_only_its_newest(self) -> None:
        """Appending 8 messages at once with cap 5 returns all 8 with seqs 1..8 and keeps seqs 4..8.

        Fix: trim after pushing the whole batch, keeping the newest ``cap`` entries.
        """
        store = await self.new_store(history_cap=5)
        stored = await store.append_messages("s1", [make_message(f"m{i}") for i in range(1, 9)])
        assert [m.seq for m in stored] == list(range(1, 9))
        assert [m.seq for m in await store.read_history("s1", None)] == [4, 5, 6, 7, 8]
        assert await store.history_bounds("s1") == (4, 8)
        [next_one] = await store.append_messages("s1", [make_message("m9")])
        assert next_one.seq == 9
        assert await store.history_bounds("s1") == (5, 9)

    async def test_append_moves_the_session_last_activity_forward(self, store: HotStore) -> None:
        """Appending to the stream of an existing session moves its last_activity to the newest message's
        timestamp (never backward) and takes it out of the idle list; counters and fields stay as they were.

        Fix: in the append's atomic step, when the session record ``key`` exists, set last_activity =
        max(stored, newest message timestamp) and update the activity index (HotStore.append_messages).
        """
        await store.put_session(make_session("s1", request_count=4, status="paused"))
        later = _T0 + timedelta(hours=2)
        await store.append_messages("s1", [make_message("a", timestamp=later - timedelta(minutes=1)),
                                           make_message("b", timestamp=later)])
        session = await store.get_session("s1")
        assert session is not None
        assert session.last_activity == later
        assert (session.request_count, session.status) == (4, "paused")
        assert await store.idle_sessions(_T0 + timedelta(hours=1), 10) == []
        await store.append_messages("s1", [make_message("old", timestamp=_T0)])
        session = await store.get_session("s1")
        assert session is not None
        assert session.last_activity == later
        assert await store.idle_sessions(later + timedelta(seconds=1), 10) == ["s1"]

    async def test_append_to_a_stream_that_is_no_session_creates_no_session(self, store: HotStore) -> None:
        """Appending to a key with no session record stores the messages and creates no session.

        Fix: touch the session record only when it exists (check inside the atomic step).
        """
        await store.append_messages("free-stream", [make_message("m")])
        assert await store.get_session("free-stream") is None
        assert await store.idle_sessions(_T0 + timedelta(days=1), 10) == []
        assert await store.history_length("free-stream") == 1

    async def test_atomic_outbox_append_writes_the_archive_events(self) -> None:
        """A store declaring "atomic_outbox" (which implies "outbox") writes, with an append given an ArchiveSpec,
        exactly ArchiveEvent(table, key, {"message": stored.to_dict()}, created_at, event_id) per message into its
        outbox, with the stored seqs, from the first message of a stream on.

        Fix: build each event's JSON from the stored message inside the append (contextkit.stores.ArchiveSpec).
        """
        store = await self.new_store()
        caps = store.capabilities
        if Capability.ATOMIC_OUTBOX.value not in caps:
            return  # the kit never passes ``archive`` to such a store; appends are checked by the other tests
        assert Capability.OUTBOX.value in caps and isinstance(store, OutboxProvider)

        outbox = store.outbox(max_pending=1000)
        try:
            key = "é {x} 🙂"
            created = (_T0 + timedelta(seconds=1), _T0 + timedelta(seconds=2))

            def spec(*ids: str) -> ArchiveSpec:
                return ArchiveSpec(ArchiveTables.CONVERSATIONS, ids, created[: len(ids)])

            append = store.append_messages
            first = await append(key, [make_message("first")], archive=spec("ev-0"))
            assert [m.seq for m in first] == [1]
            [event] = await outbox.peek(10)
            assert event.to_dict() == message_event(key, first[0], 1, "ev-0", None, created[0]).to_dict()
            await outbox.ack([event.event_id])
            messages = [make_message('say "hi" \\ 日本語', metadata={"k": ["ü", 1.5]}), make_message("b", role="assistant")]
            stored = await append(key, messages, archive=spec("ev-1", "ev-2"))
            assert [m.seq for m in stored] == [2, 3]
            expected = [
                ArchiveEvent(ArchiveTables.CONVERSATIONS, key, {"message": m.to_dict()}, created_at=at, event_id=eid)
                for m, at, eid in zip(stored, created, ("ev-1", "ev-2"), strict=True)
            ]
            got = await outbox.peek(10)
            assert [e.to_dict() for e in got] == [e.to_dict() for e in expected]
            await outbox.ack([e.event_id for e in got])
            assert await outbox.depth() == 0
        finally:
            await outbox.aclose()

    async def test_deferred_events_append_draws_its_own_ids(self) -> None:
        """A store declaring "deferred_events" (which implies "atomic_outbox") takes DEFERRED_MESSAGE_EVENTS, or a
        spec equal to it, on an append: it writes message_event(key, stored, seq) per message, each under an id of
        its own drawn once (every later read of the outbox sees the same ids) and created at its message's
        timestamp, in the same step as the append.

        Fix: draw each id with contextkit.records.new_event_id() when the event is built (the memory tier's in-process
        outbox builds it when the archiver reads it: MemoryOutbox.queue_messages).
        """
        store = await self.new_store()
        caps = store.capabilities
        if Capability.DEFERRED_EVENTS.value not in caps:
            return  # the kit passes the kit's ids in an ArchiveSpec instead (the test above)
        assert Capability.ATOMIC_OUTBOX.value in caps and isinstance(store, OutboxProvider)

        outbox = store.outbox(max_pending=1000)
        try:
            key = "é {x} 🙂"
            append = store.append_messages
            first = await append(key, [make_message("first")], archive=DEFERRED_MESSAGE_EVENTS)
            metadata: dict[str, Any] = {"k": ["ü", 1.5]}
            messages = [
                make_message('say "hi" \\ 日本語', metadata=metadata, timestamp=_T0 + timedelta(seconds=2)),
                make_message("b", role="assistant", timestamp=_T0 + timedelta(seconds=3)),
            ]
            equal = ArchiveSpec(ArchiveTables.CONVERSATIONS, (), ())
            stored = [*first, *await append(key, messages, archive=equal)]
            assert [m.seq for m in stored] == [1, 2, 3]
            metadata["k"] = "changed after the append"  # the archive keeps what was appended
            got = await outbox.peek(10)
            ids = [e.event_id for e in got]
            assert len(set(ids)) == 3 and all(ids)
            assert [e.to_dict() for e in got] == [
                message_event(key, m, m.seq, event_id, None, m.timestamp).to_dict()
                for m, event_id in zip(stored, ids, strict=True)
            ]
            assert [e.event_id for e in await outbox.peek(10)] == ids, "a second read must see the same ids"
            await outbox.ack(ids)
            assert await outbox.depth() == 0
            [again] = await append(key, [make_message("again")], archive=DEFERRED_MESSAGE_EVENTS)
            [event] = await outbox.peek(10)
            assert event.event_id not in ids and event.created_at == again.timestamp and again.seq == 4
            await outbox.ack([event.event_id])
        finally:
            await outbox.aclose()

    async def test_appends_alone_keep_a_session_alive(self) -> None:
        """Appends every 0.25 s keep a session (not only its history) alive past a 1 s TTL, without any
        update_session.

        Fix: refresh the session record's TTL in the append's atomic step (HotStore.append_messages).
        """
        store = await self.new_store(session_ttl=1.0)
        await store.put_session(make_session("s1"))
        started = time.monotonic()
        step = 0
        while time.monotonic() - started < 1.6:
            await asyncio.sleep(0.25)
            step += 1
            await store.append_messages("s1", [make_message(f"m{step}", timestamp=_T0 + timedelta(seconds=step))])
            session = await store.get_session("s1")
            assert session is not None, "a session whose history is written to expired"
        last = await store.get_session("s1")
        assert last is not None
        assert last.last_activity == _T0 + timedelta(seconds=step)

    async def test_empty_or_missing_stream_reads_empty(self, store: HotStore) -> None:
        """A stream never written reads [], has length 0 and bounds (0, 0); appending [] changes nothing.

        Fix: treat a missing key as an empty stream instead of raising.
        """
        assert await store.read_history("nothing", None) == []
        assert await store.read_history("nothing", 10) == []
        assert await store.history_length("nothing") == 0
        assert await store.history_bounds("nothing") == (0, 0)
        assert await store.append_messages("nothing", []) == []
        assert await store.history_length("nothing") == 0

    async def test_replace_history_replaces_the_whole_stream(self, store: HotStore) -> None:
        """replace_history keeps exactly the given messages (seq included); later appends continue after them.

        Fix: delete and rewrite the stream in one atomic step (MULTI DEL+RPUSH, or one transaction); raise the
        seq counter to at least the highest seq given.
        """
        await store.append_messages("s1", [make_message(f"m{i}") for i in range(1, 11)])
        summary = make_message("summary of m1..m8", role="system", seq=8)
        kept = await store.read_history("s1", 2)
        await store.replace_history("s1", [summary, *kept])
        history = await store.read_history("s1", None)
        assert history == [summary, *kept]
        assert [m.seq for m in history] == [8, 9, 10]
        assert await store.history_length("s1") == 3
        assert await store.history_bounds("s1") == (8, 10)
        [appended] = await store.append_messages("s1", [make_message("m11")])
        assert appended.seq == 11

    async def test_replace_history_rehydrates_an_empty_stream(self, store: HotStore) -> None:
        """replace_history on a missing stream stores the messages as given (read-through from the cold tier),
        and the next append continues after the highest seq.

        Fix: set the seq counter to max(existing counter, highest seq given) when replacing.
        """
        archived = [make_message(f"m{i}", seq=i) for i in range(1, 6)]
        await store.replace_history("s1", archived)
        assert await store.read_history("s1", None) == archived
        [appended] = await store.append_messages("s1", [make_message("m6")])
        assert appended.seq == 6

    async def test_replace_history_is_atomic_for_readers(self, store: HotStore) -> None:
        """Readers running during replace_history see the old stream or the new one, never a mix or a gap.

        Fix: replace in one transaction (MULTI/EXEC, a SQL transaction), not DEL followed by separate pushes.
        """
        old = await store.append_messages("s1", [make_message(f"old{i}") for i in range(20)])
        new = [make_message(f"new{i}", seq=100 + i) for i in range(30)]
        results = await asyncio.gather(
            *(store.read_history("s1", None) for _ in range(10)),
            store.replace_history("s1", new),
            *(store.read_history("s1", None) for _ in range(10)),
        )
        for result in results:
            if result is not None:
                assert result in (old, new)
        assert await store.read_history("s1", None) == new

    async def test_streams_are_independent(self, store: HotStore) -> None:
        """Each stream key has its own messages and its own seq counter.

        Fix: derive the list key and the counter key from the stream key.
        """
        await store.append_messages("a", [make_message("a1"), make_message("a2")])
        [b1] = await store.append_messages("b", [make_message("b1")])
        assert b1.seq == 1
        assert [m.content for m in await store.read_history("a", None)] == ["a1", "a2"]
        assert [m.content for m in await store.read_history("b", None)] == ["b1"]

    # -- isolation ------------------------------------------------------------------------------------------------
    async def test_hostile_ids_never_collide(self, store: HotStore) -> None:
        """Ids with separators, glob/hash-tag characters, spaces and 1 KB of unicode map to distinct keys: distinct
        data written under each (session, history, task context, conversation session, seed checkpoint) reads back
        under each, also for an id equal to the namespace or to another id's storage key.

        Fix: encode ids before building keys (escape the separator, or percent/base64-encode the id) and never
        let an id reach a glob pattern unescaped.
        """
        ids = self._hostile_ids(store)
        for index, sid in enumerate(ids):
            await self._write_hostile(store, index, sid)
        for index, sid in enumerate(ids):
            await self._check_hostile(store, index, sid)
        assert sorted(s.session_id for s in await scan_all(store, 7)) == sorted(ids)
        assert sorted(await scan_threads_all(store, 7)) == sorted(ids)

    async def test_deleting_a_hostile_id_leaves_every_other_id_intact(self, store: HotStore) -> None:
        """delete_session("a:b") must not touch "a:b:c", "*" must not match everything, "{x}" and "sessions" are
        plain ids: after deleting some hostile ids, every other id still has all its data.

        Fix: delete exact keys (tracked per session), never with a pattern built from the id (KEYS/SCAN MATCH
        "ns:a:b*" also matches "ns:a:b:c").
        """
        ids = self._hostile_ids(store)
        for index, sid in enumerate(ids):
            await self._write_hostile(store, index, sid)
        namespace = str(store.describe().get("namespace", "contextkit"))
        doomed = {"a", "a:b", "*", "?", "{x}", "sessions", "%3A", namespace}
        for sid in sorted(doomed):
            assert await store.delete_session(sid) is True, f"delete_session({sid!r}) did not find the record"
        for index, sid in enumerate(ids):
            if sid in doomed:
                assert await store.get_session(sid) is None
                assert await store.read_history(sid, None) == []
                assert await store.get_task_context(sid) is None
                assert await store.get_conversation_session(f"{sid}|conv") is None
                assert await store.get_checkpoint_document(sid, None) is None
            else:
                await self._check_hostile(store, index, sid)

    @staticmethod
    def _hostile_ids(store: HotStore) -> list[str]:
        namespace = str(store.describe().get("namespace", "contextkit"))
        extra = [namespace, f"{namespace}:plain", f"{namespace}:session:plain", f"{namespace}:a:b", f"{namespace}:*"]
        return list(dict.fromkeys([*HOSTILE_IDS, *extra]))

    @staticmethod
    async def _write_hostile(store: HotStore, index: int, sid: str) -> None:
        await store.put_session(make_session(sid, user_id=f"user-{index}", request_count=index))
        await store.append_messages(sid, [make_message(f"content-{index}")])
        await store.put_task_context(sid, {"index": index, "id": sid})
        conv_key = f"{sid}|conv"
        await store.put_conversation_session(conv_key, {"session_id": sid, "session_key": conv_key, "i": index})
        await store.append_messages(conv_key, [make_message(f"conv-{index}")])
        await store.put_checkpoint_document(sid, f"cp-{sid}", {"index": index})
        await store.put_writes_document(sid, f"cp-{sid}", sid, [index])

    @staticmethod
    async def _check_hostile(store: HotStore, index: int, sid: str) -> None:
        session = await store.get_session(sid)
        assert session is not None, f"session {sid!r} was not found"
        assert session.session_id == sid
        assert session.user_id == f"user-{index}"
        assert session.request_count == index
        history = await store.read_history(sid, None)
        assert [m.content for m in history] == [f"content-{index}"], f"history of {sid!r} collided"
        assert await store.get_task_context(sid) == {"index": index, "id": sid}
        conv_key = f"{sid}|conv"
        conv = await store.get_conversation_session(conv_key)
        assert conv is not None, f"conversation session of {sid!r} was not found"
        assert conv["i"] == index
        assert [m.content for m in await store.read_history(conv_key, None)] == [f"conv-{index}"]
        assert await store.get_checkpoint_document(sid, None) == {"index": index}
        assert await store.get_writes_documents(sid, f"cp-{sid}") == [(sid, index)]
        conversations = await store.list_conversation_sessions(sid)
        assert conversations == [(conv_key, {"session_id": sid, "session_key": conv_key, "i": index})]
        documents, writes = await store.read_checkpoint_thread(sid)
        assert documents == [(f"cp-{sid}", {"index": index})]
        assert writes == [(f"cp-{sid}", [(sid, index)])]

    async def test_namespaces_are_isolated(self, store: HotStore) -> None:
        """Two stores with different namespaces never see each other's data, even for the same ids.

        Fix: prefix every key (or table, or row) with settings.namespace, including index and counter keys.
        """
        other = await self.new_store()
        await store.put_session(make_session("s1", user_id="first"))
        await store.append_messages("s1", [make_message("first")])
        assert await other.get_session("s1") is None
        assert await other.read_history("s1", None) == []
        await other.put_session(make_session("s1", user_id="second"))
        session = await store.get_session("s1")
        assert session is not None
        assert session.user_id == "first"
        assert [s.user_id for s in await scan_all(other)] == ["second"]
        other_stats = await other.stats()
        if other_stats.messages != -1:
            assert other_stats.messages == 0

    # -- task contexts and conversation sessions ------------------------------------------------------------------
    async def test_task_context_round_trips_and_replaces(self, store: HotStore) -> None:
        """put_task_context stores a JSON document that reads back equal; a second put replaces it; a missing one
        reads None.

        Fix: store the document as JSON under the session's task key; overwrite on put.
        """
        assert await store.get_task_context("s1") is None
        document = {
            "user_id": "u1",
            "chat_id": "s1",
            "metadata": {"mode": "agent", "ünï": "🙂"},
            "file_tracker": {"/a b/c.txt": {"operation": "write"}},
            "model_tracker": [{"model_id": "m", "timestamp": 1.5}],
            "metadata_toggles": {"mode": False},
        }
        await store.put_task_context("s1", document)
        assert await store.get_task_context("s1") == document
        await store.put_task_context("s1", {"user_id": "u2"})
        assert await store.get_task_context("s1") == {"user_id": "u2"}

    async def test_conversation_session_round_trips(self, store: HotStore) -> None:
        """put_conversation_session stores a document under its key that reads back equal; missing reads None.

        Fix: store the document as JSON under the conversation key (encoded like any id).
        """
        key = "mc_to_agent/s1/agent%3A1"
        document = {
            "session_id": "s1",
            "session_key": key,
            "participants": [{"id": "mc", "type": "master_controller", "role": None, "metadata": {}}],
            "session_type": "mc_to_agent",
            "metadata": {"topic": "日本"},
        }
        assert await store.get_conversation_session(key) is None
        await store.put_conversation_session(key, document)
        assert await store.get_conversation_session(key) == document

    # -- seed checkpoint documents --------------------------------------------------------------------------------
    async def test_checkpoint_documents_list_newest_first_and_get_latest(self, store: HotStore) -> None:
        """Checkpoint documents: get(None) is the last inserted, list is newest-inserted first up to limit, and
        replacing a document keeps its place in the order of first insertion.

        Fix: keep an insertion-ordered index per thread (a sorted set scored by an insertion counter, or a
        sequence column); read it from the newest end.
        """
        for index, cp in enumerate(["cp-b", "cp-a", "cp-c"]):
            await store.put_checkpoint_document("t1", cp, {"checkpoint_id": cp, "n": index})
        latest = await store.get_checkpoint_document("t1", None)
        assert latest == {"checkpoint_id": "cp-c", "n": 2}
        assert await store.get_checkpoint_document("t1", "cp-a") == {"checkpoint_id": "cp-a", "n": 1}
        assert await store.get_checkpoint_document("t1", "missing") is None
        assert await store.get_checkpoint_document("no-thread", None) is None
        listed = await store.list_checkpoint_documents("t1", 2)
        assert [d["checkpoint_id"] for d in listed] == ["cp-c", "cp-a"]
        await store.put_checkpoint_document("t1", "cp-b", {"checkpoint_id": "cp-b", "n": 99})
        listed = await store.list_checkpoint_documents("t1", 10)
        assert [d["checkpoint_id"] for d in listed] == ["cp-c", "cp-a", "cp-b"]
        assert listed[2]["n"] == 99
        assert await store.list_checkpoint_documents("no-thread", 10) == []

    async def test_checkpoint_writes_append_in_put_order(self, store: HotStore) -> None:
        """put_writes_document appends; get_writes_documents returns (task_id, write) pairs in put order.

        Fix: append to a list per (thread, checkpoint) (RPUSH) instead of overwriting a field per task.
        """
        await store.put_writes_document("t1", "cp1", "task-1", [{"channel": "a", "value": 1}, ["b", 2]])
        await store.put_writes_document("t1", "cp1", "task-2", [{"channel": "c", "value": "🙂"}])
        await store.put_writes_document("t1", "cp1", "task-1", [{"channel": "d", "value": None}])
        await store.put_writes_document("t1", "cp2", "task-1", [{"channel": "other"}])
        writes = await store.get_writes_documents("t1", "cp1")
        assert [(task, write) for task, write in writes] == [
            ("task-1", {"channel": "a", "value": 1}),
            ("task-1", ["b", 2]),
            ("task-2", {"channel": "c", "value": "🙂"}),
            ("task-1", {"channel": "d", "value": None}),
        ]
        assert await store.get_writes_documents("t1", "missing") == []

    # -- enumeration ----------------------------------------------------------------------------------------------
    async def test_list_conversation_sessions_returns_those_of_the_session_sorted_by_key(self, store: HotStore) -> None:
        """list_conversation_sessions(sid) returns (key, document) of every conversation session registered under
        sid, the one stored under sid itself (a user_to_mc session) included, sorted by key; other sessions'
        conversations never appear; a session without any, or deleted, lists [].

        Fix: read the per-session registry of conversation keys that delete_session already keeps (a SET, an
        indexed session_id column), add the key equal to the session id when its document names that session,
        fetch the documents and sort by key.
        """
        keys = ["mc_to_agent/s1/b", "agent_to_agent/s1/a/b", "mc_to_agent/s1/a%3A1", "user_to_agent/s1/u/日本"]
        for key in keys:
            await store.put_conversation_session(key, {"session_id": "s1", "session_key": key, "k": key})
        await store.put_conversation_session("s1", {"session_id": "s1", "session_key": "s1", "k": "own"})
        await store.put_conversation_session("mc_to_agent/s2/b", {"session_id": "s2", "session_key": "x"})
        await store.put_conversation_session("s1:other", {"session_id": "s1:other", "session_key": "s1:other"})
        listed = await store.list_conversation_sessions("s1")
        assert [key for key, _ in listed] == sorted([*keys, "s1"])
        assert dict(listed)["s1"] == {"session_id": "s1", "session_key": "s1", "k": "own"}
        assert dict(listed)["agent_to_agent/s1/a/b"]["k"] == "agent_to_agent/s1/a/b"
        assert [key for key, _ in await store.list_conversation_sessions("s2")] == ["mc_to_agent/s2/b"]
        assert await store.list_conversation_sessions("nobody") == []
        await store.delete_session("s1")
        assert await store.list_conversation_sessions("s1") == []
        assert [key for key, _ in await store.list_conversation_sessions("s2")] == ["mc_to_agent/s2/b"]

    async def test_scan_checkpoint_threads_pages_return_each_seed_thread_once(self, store: HotStore) -> None:
        """Paging scan_checkpoint_threads(count=7) returns every thread holding seed checkpoint documents or only
        writes exactly once, ends with a None cursor, and stops listing a thread deleted with its session.

        Fix: keep an index of seed checkpoint threads (a sorted set per shard, an indexed column), add to it in the
        same step as put_checkpoint_document / put_writes_document, and page over it like scan_sessions; drop
        entries whose thread is gone when the scan meets them.
        """
        assert await scan_threads_all(store, 7) == []
        with_documents = [f"t{i:03d}" for i in range(40)]
        with_writes = [f"w{i:03d}" for i in range(15)]
        for tid in with_documents:
            await store.put_checkpoint_document(tid, "cp1", {"t": tid})
        for tid in with_writes:
            await store.put_writes_document(tid, "cp1", "task", [tid])
        await store.put_session(make_session("t000"))
        found = await scan_threads_all(store, 7)
        assert sorted(found) == sorted(with_documents + with_writes)
        assert len(found) == len(set(found))
        await store.delete_session("t000")
        assert sorted(await scan_threads_all(store, 100)) == sorted(with_documents[1:] + with_writes)

    async def test_read_checkpoint_thread_returns_documents_in_insertion_order_and_writes(self, store: HotStore) -> None:
        """read_checkpoint_thread gives the documents as (id, document) in order of first insertion (a replaced
        document keeps its place) and the writes as (checkpoint id, [(task, write)...]) sorted by checkpoint id,
        each in put order, including writes of a checkpoint without a document; a missing thread gives ([], []).

        Fix: read the thread's insertion-ordered id index with the documents, and every writes list of the
        thread, in one consistent read.
        """
        assert await store.read_checkpoint_thread("t1") == ([], [])
        for index, cid in enumerate(["cp-b", "cp-a", "cp-c"]):
            await store.put_checkpoint_document("t1", cid, {"checkpoint_id": cid, "n": index})
        await store.put_checkpoint_document("t1", "cp-b", {"checkpoint_id": "cp-b", "n": 99})
        await store.put_writes_document("t1", "cp-c", "task-2", [{"v": "🙂"}])
        await store.put_writes_document("t1", "cp-a", "task-1", [1, [2, "x"]])
        await store.put_writes_document("t1", "cp-a", "task-0", [None])
        await store.put_writes_document("t1", "no-doc", "task-1", [{"late": True}])
        await store.put_checkpoint_document("t2", "other", {"n": 0})
        documents, writes = await store.read_checkpoint_thread("t1")
        assert documents == [
            ("cp-b", {"checkpoint_id": "cp-b", "n": 99}),
            ("cp-a", {"checkpoint_id": "cp-a", "n": 1}),
            ("cp-c", {"checkpoint_id": "cp-c", "n": 2}),
        ]
        assert writes == [
            ("cp-a", [("task-1", 1), ("task-1", [2, "x"]), ("task-0", None)]),
            ("cp-c", [("task-2", {"v": "🙂"})]),
            ("no-doc", [("task-1", {"late": True})]),
        ]

    # -- deletion -------------------------------------------------------------------------------------------------
    async def test_delete_session_removes_every_key_family(self, store: HotStore) -> None:
        """delete_session removes the record, its history, task context, seed checkpoints and writes (thread id ==
        session id) and the conversation sessions registered under it with their streams; it returns True; the
        data of other sessions stays.

        Fix: keep a per-session index of conversation keys and delete every family in one atomic step.
        """
        conv_key = "mc_to_agent/s1/agent"
        for sid in ("s1", "s2"):
            await store.put_session(make_session(sid))
            await store.append_messages(sid, [make_message(f"{sid}-m")])
            await store.put_task_context(sid, {"sid": sid})
            await store.put_checkpoint_document(sid, "cp1", {"sid": sid})
            await store.put_writes_document(sid, "cp1", "task", [{"sid": sid}])
        await store.put_conversation_session(conv_key, {"session_id": "s1", "session_key": conv_key})
        await store.append_messages(conv_key, [make_message("agent talk")])
        other_key = "mc_to_agent/s2/agent"
        await store.put_conversation_session(other_key, {"session_id": "s2", "session_key": other_key})
        await store.append_messages(other_key, [make_message("other talk")])

        assert await store.delete_session("s1") is True

        assert await store.get_session("s1") is None
        assert await store.read_history("s1", None) == []
        assert await store.history_length("s1") == 0
        assert await store.get_task_context("s1") is None
        assert await store.get_checkpoint_document("s1", None) is None
        assert await store.list_checkpoint_documents("s1", 10) == []
        assert await store.get_writes_documents("s1", "cp1") == []
        assert await store.get_conversation_session(conv_key) is None
        assert await store.read_history(conv_key, None) == []

        assert await store.get_session("s2") is not None
        assert len(await store.read_history("s2", None)) == 1
        assert await store.get_task_context("s2") == {"sid": "s2"}
        assert await store.get_checkpoint_document("s2", None) == {"sid": "s2"}
        assert await store.get_writes_documents("s2", "cp1") == [("task", {"sid": "s2"})]
        assert await store.get_conversation_session(other_key) is not None
        assert len(await store.read_history(other_key, None)) == 1
        assert [s.session_id for s in await scan_all(store)] == ["s2"]

    async def test_delete_session_returns_false_for_a_missing_record(self, store: HotStore) -> None:
        """delete_session returns False when no session record exists, yet still removes the id's other data.

        Fix: report whether the record key existed (DEL's count, rowcount) while deleting every family anyway.
        """
        assert await store.delete_session("ghost") is False
        await store.append_messages("orphan", [make_message("x")])
        await store.put_task_context("orphan", {"a": 1})
        assert await store.delete_session("orphan") is False
        assert await store.read_history("orphan", None) == []
        assert await store.get_task_context("orphan") is None

    async def test_deleted_session_restarts_its_stream_at_seq_one(self, store: HotStore) -> None:
        """After delete_session, a new history for the same id starts again at seq 1 (the counter is deleted too).

        Fix: delete the seq counter key together with the list.
        """
        await store.put_session(make_session("s1"))
        await store.append_messages("s1", [make_message("a"), make_message("b")])
        await store.delete_session("s1")
        [first] = await store.append_messages("s1", [make_message("c")])
        assert first.seq == 1
        assert await store.history_bounds("s1") == (1, 1)

    # -- tiering (settings.archived: a cold tier archives the store) ----------------------------------------------
    async def _archived(self, **overrides: Any) -> tuple[HotStore, Any]:
        """A store built with ``archived=True`` and its outbox (the test closes neither: the suite does)."""
        store = await self.new_store(archived=True, **overrides)
        assert Capability.ATOMIC_OUTBOX.value in store.capabilities, (
            "a hot tier that a cold tier archives must write each write's event in the write's atomic step"
        )
        assert isinstance(store, OutboxProvider), "a store with 'atomic_outbox' implements OutboxProvider"
        outbox = store.outbox(max_pending=100_000)
        return store, outbox

    @staticmethod
    async def _taken(outbox: Any) -> list[ArchiveEvent]:
        """Every event waiting in ``outbox``, acknowledged (so the next call sees only newer ones)."""
        events = await outbox.peek(100_000)
        if events:
            await outbox.ack([e.event_id for e in events])
        return list(events)

    async def test_a_counter_update_that_would_leave_its_range_is_refused_with_nothing_applied(self) -> None:
        """An update_session whose counters would leave what every tier stores (total_processing_time 1e308 + 1e308
        is infinite; request_count beyond 2**63 - 1) raises SerializationError and applies nothing: not its other
        increments, not its fields, no version, no archive event. A retry is refused alike, so nothing is counted
        twice; an update that leaves that counter alone, or stays in range, applies exactly.

        Fix: compute the counters from the stored ones inside the atomic step and refuse before the first write
        (SessionUpdate.counters_after; in a Lua script, before the first HINCRBY: a script's writes before an error
        stay applied).
        """
        store, outbox = await self._archived()
        for owner in ("s1", "s2"):
            await store.restore_owner(OwnerState(owner))
        await store.put_session(make_session("s1", total_processing_time=1e308, request_count=5), archive=EventHead("create"))
        await store.put_session(make_session("s2", request_count=MAX_COUNTER), archive=EventHead("create"))
        await self._taken(outbox)
        later = _T0 + timedelta(hours=1)
        refused = [
            ("s1", SessionUpdate(later, requests=1, errors=1, processing_time=1e308, fields={"status": "completed"})),
            ("s1", SessionUpdate(later, processing_time=1.7e308)),
            ("s2", SessionUpdate(later, requests=1, errors=1, processing_time=0.5, fields={"metadata": {"x": 1}})),
        ]
        for owner, update in refused:
            before = await store.get_session(owner)
            for _attempt in range(2):  # a retry is refused the same way: nothing counted twice
                with pytest.raises(SerializationError):
                    await store.update_session(owner, update, archive=EventHead("update"))
                assert await store.get_session(owner) == before
        assert await self._taken(outbox) == [], "a refused update wrote an archive event"
        updated = await store.update_session("s1", SessionUpdate(later, requests=1, processing_time=1.0))
        assert updated is not None
        assert (updated.request_count, updated.total_processing_time) == (6, 1e308)
        updated = await store.update_session("s2", SessionUpdate(later, errors=1, processing_time=0.5))
        assert updated is not None
        assert (updated.request_count, updated.error_count, updated.total_processing_time) == (MAX_COUNTER, 1, 0.5)

    async def test_an_unknown_owner_raises_before_anything_is_written(self) -> None:
        """With ``archived``, every call on an owner the store does not know raises OwnerUnknown (naming the
        owner) and writes nothing: no record, no event. After restore_owner of an empty state, the owner is new:
        versions and seqs start at 1.

        Fix: keep a per-owner meta record (version, highest seq, tombstone) written in the same atomic step as
        the data; check it first in every script / transaction and raise OwnerUnknown when it is missing.
        """
        store, outbox = await self._archived()
        owner = "unknown {x}:é"
        head = EventHead("create")
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.put_session(make_session(owner), archive=head),
            lambda: store.get_session(owner),
            lambda: store.update_session(owner, SessionUpdate(activity=_T0, requests=1), archive=head),
            lambda: store.delete_session(owner, archive=head),
            lambda: store.append_messages(owner, [make_message("m")], archive=_spec(1)),
            lambda: store.read_history(owner, 10),
            lambda: store.history_bounds(owner),
            lambda: store.put_task_context(owner, {"a": 1}, archive=head),
            lambda: store.get_task_context(owner),
            lambda: store.put_conversation_session(owner, {"session_id": "x", "session_key": owner}, archive=head),
            lambda: store.get_conversation_session(owner),
            lambda: store.put_checkpoint_document(owner, "c1", {"c": 1}, archive=head),
            lambda: store.get_checkpoint_document(owner, None),
            lambda: store.put_writes_document(owner, "c1", "t", [1], archive=head),
            lambda: store.get_writes_documents(owner, "c1"),
        ]
        calls.append(lambda: store.delete_mark(owner))
        for call in calls:
            with pytest.raises(OwnerUnknown) as caught:
                await call()
            assert caught.value.owner == owner
        assert await self._taken(outbox) == []
        assert await scan_all(store) == []
        await store.restore_owner(OwnerState(owner))
        stored = await store.put_session(make_session(owner), archive=EventHead("create"))
        assert stored.version == 1
        [message] = await store.append_messages(owner, [make_message("m")], archive=_spec(1))
        assert message.seq == 1

    async def test_every_write_kind_puts_its_event_with_a_growing_version_in_the_same_step(self) -> None:
        """Each write of a known owner takes the owner's next version and puts exactly the event
        contextkit.tiered.events builds for it into the outbox: create (session + task context), update, task
        context, conversation session, seed checkpoint document and writes, messages (their seq), and the delete
        (version above all, with the stream's highest seq).

        Fix: assign the version inside the write's script / transaction (INCR of the owner's counter) and write the
        event there too, from what was stored (see contextkit.tiered.events for each payload).
        """
        store, outbox = await self._archived()
        owner = "owner 🙂"
        await store.restore_owner(OwnerState(owner))
        created = await store.put_session(
            make_session(owner, metadata={"k": "v"}), task_context={"t": 1}, archive=EventHead("create", "e1", _T0)
        )
        updated = await store.update_session(
            owner, SessionUpdate(activity=_T0 + timedelta(seconds=1), requests=2), archive=EventHead("update", "e2", _T0)
        )
        assert updated is not None and (created.version, updated.version) == (1, 3)
        await store.put_task_context(owner, {"t": 2}, archive=EventHead("", "e3", _T0))
        conversation = {"session_id": owner, "session_key": owner}
        await store.put_conversation_session(owner, conversation, archive=EventHead("", "e4", _T0))
        await store.put_checkpoint_document(owner, "c1", {"d": 1}, archive=EventHead("", "e5", _T0))
        await store.put_writes_document(owner, "c1", "task", [{"w": 1}], archive=EventHead("", "e6", _T0))
        messages = await store.append_messages(owner, [make_message("a"), make_message("b")], archive=_spec(2, "msg"))
        session = await store.get_session(owner)
        assert session is not None and session.version == 3
        events = await self._taken(outbox)
        # The create's second event (its task context) has an id of the store's choosing.
        task_created = events[1] if len(events) > 1 else events[0]
        expected = [
            session_event(created, EventHead("create", "e1", _T0)),
            task_context_event(owner, {"t": 1}, 2, EventHead("", task_created.event_id, task_created.created_at)),
            session_event(updated, EventHead("update", "e2", _T0)),
            task_context_event(owner, {"t": 2}, 4, EventHead("", "e3", _T0)),
            conversation_session_event(owner, conversation, 5, EventHead("", "e4", _T0)),
            checkpoint_document_event(owner, "c1", {"d": 1}, 6, EventHead("", "e5", _T0)),
            writes_document_event(owner, "c1", "task", [{"w": 1}], 7, EventHead("", "e6", _T0)),
            *(message_event(owner, m, m.seq, f"msg-{i}") for i, m in enumerate(messages)),
        ]
        assert [e.to_dict() for e in events] == [e.to_dict() for e in expected]
        assert await store.delete_session(owner, archive=EventHead("delete", "e7", _T0)) is True
        [deleted] = await self._taken(outbox)
        assert deleted.to_dict() == delete_event(owner, 8, 2, session, EventHead("delete", "e7", _T0)).to_dict()

    async def test_restore_owner_continues_above_what_the_archive_holds(self) -> None:
        """restore_owner puts back the archived session (with its version), task context, conversation session and
        history tail; the next write of the owner takes a version above ``state.version`` and the next message
        the seq after ``state.last_seq``, also when the history tail is shorter than the stream.

        Fix: in restore_owner, create the meta with the state's counters and write its records, only when the
        meta is missing (one script / transaction).
        """
        store, outbox = await self._archived(history_cap=5)
        owner = "restored"
        session = replace(make_session(owner, request_count=7), version=40)
        tail = tuple(make_message(f"m{seq}", seq=seq) for seq in range(91, 101))
        state = OwnerState(
            owner,
            version=42,
            last_seq=100,
            session=session,
            task_context=Versioned(41, {"t": 41}),
            conversation=Versioned(42, {"session_id": "p", "session_key": owner}),
            history=tail,
        )
        await store.restore_owner(state)
        got = await store.get_session(owner)
        assert got == session and got is not None and got.version == 40
        assert await store.get_task_context(owner) == {"t": 41}
        assert await store.get_conversation_session(owner) == {"session_id": "p", "session_key": owner}
        assert [m.seq for m in await store.read_history(owner, None)] == [96, 97, 98, 99, 100]
        assert await store.history_bounds(owner) == (96, 100)
        [message] = await store.append_messages(owner, [make_message("new")], archive=_spec(1))
        assert message.seq == 101
        updated = await store.update_session(owner, SessionUpdate(activity=_T0, requests=1), archive=EventHead("update"))
        assert updated is not None and updated.version == 43 and updated.request_count == 8
        assert [e.version for e in await self._taken(outbox)] == [0, 43]

    async def test_restore_owner_is_put_if_absent(self) -> None:
        """restore_owner of an owner the store knows changes nothing: writes that raced the read-through (here:
        made first) are kept, and versions and seqs keep counting from the store's own.

        Fix: make the restore conditional on the meta's absence, inside the same atomic step.
        """
        store, _ = await self._archived()
        owner = "raced"
        await store.restore_owner(OwnerState(owner))
        await store.put_session(make_session(owner, request_count=0), archive=EventHead("create"))
        await store.update_session(owner, SessionUpdate(activity=_T0, requests=5), archive=EventHead("update"))
        await store.append_messages(owner, [make_message("x")], archive=_spec(1))
        stale = OwnerState(owner, version=1, last_seq=0, session=replace(make_session(owner), version=1), history=())
        await store.restore_owner(stale)
        session = await store.get_session(owner)
        assert session is not None and session.request_count == 5 and session.version == 2
        assert [m.content for m in await store.read_history(owner, None)] == ["x"]
        [message] = await store.append_messages(owner, [make_message("y")], archive=_spec(1))
        assert message.seq == 2

    async def test_concurrent_restores_and_updates_lose_no_increment(self) -> None:
        """Many callers that each restore the owner (as read-through does after a hot loss) and then update it
        concurrently: every increment is kept on top of the restored counters (no restore overwrites an
        update that landed before it).

        Fix: restore only when the meta is missing, in the same atomic step as the check.
        """
        store, _ = await self._archived()
        owner = "contended"
        archived = replace(make_session(owner, request_count=100), version=100)

        async def caller() -> None:
            await store.restore_owner(OwnerState(owner, version=100, session=archived))
            updated = await store.update_session(owner, SessionUpdate(activity=_T0, requests=1), archive=EventHead("update"))
            assert updated is not None

        await asyncio.gather(*(caller() for _ in range(50)))
        session = await store.get_session(owner)
        assert session is not None and session.request_count == 150 and session.version == 150

    async def test_a_delete_leaves_a_tombstone_that_reads_empty_and_keeps_counting(self) -> None:
        """After delete_session (archived), the owner reads empty without OwnerUnknown (the tombstone answers), a
        second delete writes no event, a new message continues the stream's numbering and a new session takes a
        version above the delete's; a registered conversation session is deleted with its own event; delete_mark
        gives the delete's (version, last seq) while the meta lives.

        Fix: on delete, drop the data but keep the meta (version + 1, highest seq, the delete's mark) with
        ``tombstone_ttl``.
        """
        store, outbox = await self._archived()
        owner, conversation = "to delete", "user_to_agent/to delete/x"
        await store.restore_owner(OwnerState(owner))
        await store.restore_owner(OwnerState(conversation))
        await store.put_session(make_session(owner), archive=EventHead("create"))
        await store.append_messages(owner, [make_message("a"), make_message("b")], archive=_spec(2))
        await store.put_conversation_session(
            conversation, {"session_id": owner, "session_key": conversation}, archive=EventHead()
        )
        await self._taken(outbox)
        assert await store.delete_session(owner, archive=EventHead("delete")) is True
        deletes = await self._taken(outbox)
        assert sorted(e.key for e in deletes) == sorted([owner, conversation])
        assert all(e.table == ArchiveTables.SESSIONS and e.payload["event_type"] == "delete" for e in deletes)
        mine = next(e for e in deletes if e.key == owner)
        assert (mine.version, mine.payload["last_seq"]) == (2, 2)
        assert await store.delete_mark(owner) == (2, 2)
        assert await store.get_session(owner) is None
        assert await store.read_history(owner, 10) == []
        assert await store.get_conversation_session(conversation) is None
        assert await store.delete_session(owner, archive=EventHead("delete")) is False
        assert await self._taken(outbox) == []
        [message] = await store.append_messages(owner, [make_message("c")], archive=_spec(1))
        assert message.seq == 3
        again = await store.put_session(make_session(owner), archive=EventHead("create"))
        assert again.version == 3
        assert [m.content for m in await store.read_history(owner, None)] == ["c"]
        assert await store.delete_mark(owner) == (2, 2)  # remembered while the meta lives

    async def test_restoring_a_deleted_owner_makes_a_tombstone(self) -> None:
        """restore_owner of a state whose newest write is a delete leaves the owner empty but known: reads answer
        nothing, numbering and versions continue above the archive's.

        Fix: create the meta with the state's counters even when there is no record to restore.
        """
        store, _ = await self._archived()
        owner = "gone"
        await store.restore_owner(OwnerState(owner, version=7, last_seq=9, deleted=True))
        assert await store.get_session(owner) is None
        assert await store.read_history(owner, None) == []
        [message] = await store.append_messages(owner, [make_message("x")], archive=_spec(1))
        assert message.seq == 10
        stored = await store.put_session(make_session(owner), archive=EventHead("create"))
        assert stored.version == 8

    async def test_evict_forgets_an_owner_without_a_tombstone_or_event(self) -> None:
        """delete_session(evict=True) drops the owner as if it expired: the next call raises OwnerUnknown, and no
        event is written (the archive already holds its last state).

        Fix: drop the meta with the data, write nothing to the outbox.
        """
        store, outbox = await self._archived()
        owner = "idle"
        await store.restore_owner(OwnerState(owner))
        await store.put_session(make_session(owner), archive=EventHead("create"))
        await self._taken(outbox)
        assert await store.delete_session(owner, evict=True) is True
        assert await self._taken(outbox) == []
        with pytest.raises(OwnerUnknown):
            await store.get_session(owner)

    async def test_backfill_inserts_only_messages_older_than_every_kept_one(self) -> None:
        """backfill_history puts archived messages before the kept ones (all of them into an empty stream), never
        displaces a kept message, keeps at most the cap (the newest), and returns how many it inserted.

        Fix: insert at the head (LPUSH / lower positions) only messages whose seq is below the first kept seq.
        """
        store, _ = await self._archived(history_cap=6)
        owner = "backfilled"
        await store.restore_owner(OwnerState(owner, last_seq=10))
        [new] = await store.append_messages(owner, [make_message("new")], archive=_spec(1))
        assert new.seq == 11
        older = [make_message(f"m{seq}", seq=seq) for seq in range(1, 12)]  # 11 overlaps the kept message
        assert await store.backfill_history(owner, older) == 5
        assert [m.seq for m in await store.read_history(owner, None)] == [6, 7, 8, 9, 10, 11]
        assert [m.content for m in await store.read_history(owner, 1)] == ["new"]
        assert await store.backfill_history(owner, older) == 0

    # -- scanning, idle index and stats ---------------------------------------------------------------------------
    async def test_iter_data_owners_finds_data_no_session_lists(self, store: HotStore) -> None:
        """iter_data_owners names every id holding a history stream, a task context or a conversation session
        document, with or without a session record (ids with odd characters included); not an id whose data was
        deleted, nor an id holding only a session record or checkpoints.

        Fix: list the ids of the three families (keys, rows or dict entries), not the session index.
        """
        odd = "orph{an}:/ü %2F*?"
        await store.put_session(make_session("s1"))
        await store.append_messages("s1", [make_message("a")])
        await store.put_session(make_session("bare"))
        await store.append_messages("orphan-history", [make_message("x")])
        await store.append_messages(odd, [make_message("y")])
        await store.put_task_context("orphan-task", {"a": 1})
        await store.put_conversation_session("conv:1", {"session_id": "gone", "session_key": "conv:1"})
        await store.put_checkpoint_document("thread-only", "cp1", {"c": 1})
        await store.append_messages("deleted", [make_message("z")])
        await store.delete_session("deleted")
        owners = [owner async for owner in store.iter_data_owners()]
        assert set(owners) == {"s1", "orphan-history", odd, "orphan-task", "conv:1"}

    async def test_scan_sessions_pages_return_each_session_once(self, store: HotStore) -> None:
        """Paging scan_sessions(count=37) over 250 sessions returns each one exactly once and ends with None.

        Fix: page over a stable order (sorted ids, SCAN cursor over an index) and return the next cursor; a
        SCAN-based backend must de-duplicate within the call.
        """
        ids = [f"s{i:04d}" for i in range(250)]
        for sid in ids:
            await store.put_session(make_session(sid))
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(1000):
            page, cursor = await store.scan_sessions(cursor, 37)
            assert all(isinstance(s, Session) for s in page)
            seen.extend(s.session_id for s in page)
            if cursor is None:
                break
        assert cursor is None, "scan never finished"
        assert sorted(seen) == ids

    async def test_scan_sessions_is_stable_under_concurrent_changes(self, store: HotStore) -> None:
        """Sessions present for the whole scan are returned exactly once even while others are added and
        deleted between pages; others appear at most once.

        Fix: use a cursor that does not depend on positions shifting (the last id returned, or Redis SCAN).
        """
        stable = [f"k{i:03d}" for i in range(0, 120, 2)]
        churn = [f"k{i:03d}" for i in range(1, 120, 2)]
        for sid in stable + churn:
            await store.put_session(make_session(sid))
        seen: list[str] = []
        cursor: str | None = None
        for pages in range(1, 1000):
            page, cursor = await store.scan_sessions(cursor, 10)
            seen.extend(s.session_id for s in page)
            if pages <= len(churn) // 3:
                await store.delete_session(churn[pages - 1])
                await store.put_session(make_session(f"new-{pages:03d}"))
                await store.put_session(make_session(f"a-new-{pages:03d}"))
            if cursor is None:
                break
        assert cursor is None, "scan never finished"
        for sid in stable:
            assert seen.count(sid) == 1, f"{sid} returned {seen.count(sid)} times"
        assert len(seen) == len(set(seen)), "a session was returned twice"

    async def test_idle_sessions_returns_only_idle_ones_oldest_first(self, store: HotStore) -> None:
        """idle_sessions(before, limit) lists sessions with last_activity < before, oldest first, at most limit;
        an update that moves last_activity forward takes a session out of the idle list.

        Fix: keep an index ordered by last_activity (a sorted set, an indexed column) updated on every activity.
        """
        now = _T0 + timedelta(days=1)
        ages = {"h3": 3, "h2": 2, "h1": 1, "fresh": 0}
        for sid, hours in ages.items():
            activity = now - timedelta(hours=hours)
            await store.put_session(make_session(sid, created_at=activity, last_activity=activity))
        cutoff = now - timedelta(minutes=30)
        assert await store.idle_sessions(cutoff, 2) == ["h3", "h2"]
        assert await store.idle_sessions(cutoff, 10) == ["h3", "h2", "h1"]
        await store.update_session("h2", SessionUpdate(activity=now))
        assert await store.idle_sessions(cutoff, 10) == ["h3", "h1"]
        await store.delete_session("h3")
        assert await store.idle_sessions(cutoff, 10) == ["h1"]
        assert await store.idle_sessions(now - timedelta(hours=5), 10) == []

    async def test_stats_counts_sessions_messages_and_checkpoints(self, store: HotStore) -> None:
        """stats() counts sessions, active sessions (status "active"), kept messages and checkpoint documents of
        this namespace; -1 is allowed only where a backend cannot count cheaply.

        Fix: keep counters or count through indexes of the namespace (not a KEYS over the whole server).
        """
        empty = await store.stats()
        assert empty.sessions in (0, -1)
        await store.put_session(make_session("s1"))
        await store.put_session(make_session("s2"))
        await store.put_session(make_session("s3", status="completed"))
        await store.append_messages("s1", [make_message(f"m{i}") for i in range(5)])
        await store.append_messages("s2", [make_message("x"), make_message("y")])
        await store.put_checkpoint_document("s1", "cp1", {"a": 1})
        await store.put_checkpoint_document("s1", "cp2", {"a": 2})
        stats = await store.stats()
        assert stats.sessions == 3
        assert stats.active_sessions in (2, -1)
        assert stats.messages in (7, -1)
        assert stats.checkpoints in (2, -1)
        assert isinstance(stats.memory_bytes, int)
        await store.delete_session("s2")
        after = await store.stats()
        assert after.sessions == 2
        assert after.messages in (5, -1)

    # -- TTL ------------------------------------------------------------------------------------------------------
    # Each test checks the behaviour the store declares: with Capability.TTL, data expires by itself; without it,
    # data is never dropped on a timer (the kit's cleanup removes idle sessions instead). No test is skipped.

    async def test_session_ttl_follows_the_declared_capability(self) -> None:
        """With "ttl" declared and session_ttl=1, a session, its history and its task context disappear after
        about a second; without "ttl", they are all still there 1.5 s later.

        Fix: set a per-session TTL on every key of the session (EXPIRE / PEXPIRE, an expires_at column), on
        every write, never on a shared global key; or, if keys do not expire by themselves, do not declare "ttl"
        and never drop data on a timer.
        """
        store = await self.new_store(session_ttl=1.0)
        await store.put_session(make_session("s1"))
        await store.append_messages("s1", [make_message("m")])
        await store.put_task_context("s1", {"a": 1})
        assert await store.get_session("s1") is not None

        async def gone() -> bool:
            return (
                await store.get_session("s1") is None
                and await store.read_history("s1", None) == []
                and await store.get_task_context("s1") is None
            )

        if Capability.TTL.value in store.capabilities:
            assert await _eventually(gone, timeout=10.0), "session data still present 10 s after a 1 s TTL"
            assert await scan_all(store) == []
        else:
            await asyncio.sleep(1.5)
            assert await store.get_session("s1") is not None
            assert await store.history_length("s1") == 1
            assert await store.get_task_context("s1") == {"a": 1}

    async def test_activity_keeps_a_session_alive(self) -> None:
        """update_session and append_messages refresh the TTL: a session touched every 0.3 s outlives a 1.5 s TTL
        (for 2.4 s); with "ttl" declared it then expires once left alone, without it it stays.

        Fix: refresh the TTL of every key of the session on each write (in the same atomic step as the write).
        """
        store = await self.new_store(session_ttl=1.5)
        await store.put_session(make_session("s1"))
        await store.append_messages("s1", [make_message("m0")])
        started = time.monotonic()
        step = 0
        while time.monotonic() - started < 2.4:
            await asyncio.sleep(0.3)
            step += 1
            if step % 2:
                assert await store.update_session("s1", SessionUpdate(activity=_T0, requests=1)) is not None
            else:
                await store.append_messages("s1", [make_message(f"m{step}")])
            assert await store.get_session("s1") is not None, "an active session expired"
            assert await store.history_length("s1") > 0, "the history of an active session expired"

        async def gone() -> bool:
            return await store.get_session("s1") is None and await store.history_length("s1") == 0

        if Capability.TTL.value in store.capabilities:
            assert await _eventually(gone, timeout=12.0), "session still present long after its TTL"
        else:
            assert not await gone()


class RestoreAwareHotSuite(HotStoreSuite):
    """:class:`HotStoreSuite` plus the contract of hot tiers that take a restore declaration
    (:class:`~contextkit.stores.RestoreAware`: a SQLite file copied back from a backup). Subclass it instead of
    :class:`HotStoreSuite` for such a store; a store without the ability has nothing more to check (the kit refuses
    ``hot_restored`` for it with ``CapabilityNotSupported``)."""

    async def test_a_declared_restore_makes_every_owner_written_before_it_stale_until_reconciled(self) -> None:
        """(Stores with the RestoreAware ability.) After ``mark_restored``, every call on an owner written before
        (reads, writes, deletes) raises ``OwnerUnknown(stale=True)`` and writes nothing; ``restore_owner`` then
        reconciles it with the archive's state (counters raised, the newer session and task context and the
        archive's stream tail put in), after which versions and seqs continue above the archive's; a second
        ``restore_owner`` changes nothing, and an owner written after the declaration is not stale.

        Fix: record in each owner's meta the epoch it was written in, compare it with the store's epoch where the
        meta is read, and let restore_owner reconcile a stale meta (see HotStore.restore_owner).
        """
        store, outbox = await self._archived()
        assert isinstance(store, RestoreAware), f"the {store.name} hot tier has no mark_restored (RestoreAware)"
        owner = "restored {x}:é"
        await store.restore_owner(OwnerState(owner))
        await store.put_session(make_session(owner), task_context={"t": 1}, archive=EventHead("create"))
        for _ in range(2):
            await store.update_session(owner, SessionUpdate(activity=_T0, requests=1), archive=EventHead("update"))
        await store.append_messages(owner, [make_message(f"m{i}") for i in range(3)], archive=_spec(3))
        await self._taken(outbox)
        first = await store.mark_restored()
        assert await store.mark_restored() > first
        head = EventHead("update")
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.get_session(owner),
            lambda: store.read_history(owner, 10),
            lambda: store.history_bounds(owner),
            lambda: store.get_task_context(owner),
            lambda: store.append_messages(owner, [make_message("late")], archive=_spec(1)),
            lambda: store.update_session(owner, SessionUpdate(activity=_T0, requests=1), archive=head),
            lambda: store.put_session(make_session(owner), archive=head),
            lambda: store.delete_session(owner, archive=EventHead("delete")),
        ]
        for call in calls:
            with pytest.raises(OwnerUnknown) as caught:
                await call()
            assert caught.value.stale is True
        assert await self._taken(outbox) == []

        state = OwnerState(
            owner,
            version=7,
            last_seq=5,
            session=replace(make_session(owner, request_count=6), version=6),
            task_context=Versioned(7, {"t": 2}),
            history=tuple(make_message(f"a{seq}", seq=seq) for seq in (4, 5)),
        )
        await store.restore_owner(state)
        session = await store.get_session(owner)
        assert session is not None and (session.request_count, session.version) == (6, 6)
        assert await store.get_task_context(owner) == {"t": 2}
        assert [(m.seq, m.content) for m in await store.read_history(owner, 10)] == [(4, "a4"), (5, "a5")]
        await store.restore_owner(replace(state, version=9, last_seq=9, history=()))  # up to date now: no change
        [message] = await store.append_messages(owner, [make_message("next")], archive=_spec(1))
        assert message.seq == 6
        updated = await store.update_session(owner, SessionUpdate(activity=_T0, requests=1), archive=head)
        assert updated is not None and (updated.request_count, updated.version) == (7, 8)
        await store.restore_owner(OwnerState("new"))
        await store.put_session(make_session("new"), archive=EventHead("create"))
        assert await store.get_session("new") is not None
