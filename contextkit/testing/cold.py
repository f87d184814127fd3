"""The cold tier conformance suite: :class:`ColdStoreSuite`, the contract every :class:`~contextkit.stores.ColdStore` keeps.

A backend package runs it by subclassing and saying how to build a store::

    from contextkit.testing.cold import ColdStoreSuite

    class TestMyColdStore(ColdStoreSuite):
        async def make_store(self, settings):
            store = MyColdStore(settings, {"url": MY_URL})
            await store.open()
            return store

        async def cleanup_store(self, store):      # optional: remove what the test left in the server
            await store.drop_schema()

``make_store`` must return an *opened* store whose data is isolated by ``settings.namespace`` (the suite gives
every store a fresh, unique namespace; :meth:`ColdStoreSuite.new_store` can reuse one to open a second store on
the same data). The suite closes every store it made at teardown, after calling ``cleanup_store`` once per store
(so it must tolerate a namespace already cleaned). A store that declares the ``durable`` or ``shared`` capability
is also checked to show its data to a second store opened on the same namespace.

The event builders (:func:`session_event`, :func:`message_event`, ...) make :class:`~contextkit.records.ArchiveEvent`
values with the payload each table expects; archiver tests can use them too. Every test's docstring states the
contract it checks and where to look when it fails. Only test code imports this module (it needs pytest).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from contextkit.backend.tables import ArchiveTables
from contextkit.checkpoint_archive import checkpoint_payload, delete_payload, writes_payload
from contextkit.checkpoint_lists import ListSharing, SplitList
from contextkit.errors import CorruptData, InvalidInput
from contextkit.records import (
    ARCHIVE_TABLES,
    ArchiveEvent,
    ConversationParticipant,
    ConversationSession,
    Message,
    Session,
)
from contextkit.stores import (
    CAPABILITY_PROTOCOLS,
    Capability,
    CheckpointRow,
    ColdStore,
    EventHead,
    OwnerState,
    StoreSettings,
    Typed,
    Versioned,
    WriteRow,
    capability_mismatches,
)
from contextkit.testing.suite import StoreSuite
from contextkit.tiered import events as core_events

__all__ = [
    "HOSTILE_TEXTS",
    "ColdStoreSuite",
    "checkpoint_event",
    "conversation_session_event",
    "message_event",
    "session_event",
    "task_context_event",
    "writes_event",
]

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)

#: Strings that break naive SQL, JSON or key handling: quotes, metacharacters, escapes, unicode, emoji.
#: (No U+0000: PostgreSQL cannot store it, and core validation decides what to do with it.)
HOSTILE_TEXTS: tuple[str, ...] = (
    "'; DROP TABLE x; --",
    "Robert'); DROP TABLE context_conversations;--",
    "\"double\" and 'single' quotes",
    "back\\slash \\\\ and \\' and \\\" and a trailing \\",
    "\\u0000 as six literal characters, \\x00 too",
    '$1 $2 %s %(name)s {} {0} :name :"schema" ? ??',
    "/* comment */ -- comment\n# hash",
    "tab\there\nnewline\r\ncrlf \x01\x1f\x7f",
    "e\u0301 vs \u00e9, \u212b, \ufb01, \u00df",
    "日本語のテキスト, 中文, 한국어, العربية \u202eRTL override\u202c",
    "emoji 🙂👍🏽👩‍👩‍👧‍👦🏳️‍🌈 and a lone-looking \U0001f9ea",
    "\u2028line separator\u2029paragraph separator\ufeffBOM",
    " leading and trailing spaces ",
    "",
)


# -- event builders ---------------------------------------------------------------------------------------------
def session_event(
    session: Session, event_type: str = "update", *, created_at: datetime | None = None, event_id: str | None = None
) -> ArchiveEvent:
    """A ``context_sessions`` event carrying ``session`` as of ``event_type`` (create/update/end/delete)."""
    return _event(
        ArchiveTables.SESSIONS,
        session.session_id,
        {"event_type": event_type, "session": session.to_dict()},
        created_at,
        event_id,
    )


def message_event(key: str, message: Message, *, created_at: datetime | None = None, event_id: str | None = None) -> ArchiveEvent:
    """A ``context_conversations`` event archiving ``message`` of stream ``key``."""
    return _event(ArchiveTables.CONVERSATIONS, key, {"message": message.to_dict()}, created_at, event_id)


def task_context_event(
    session_id: str, document: Mapping[str, Any], *, created_at: datetime | None = None, event_id: str | None = None
) -> ArchiveEvent:
    """A ``context_task_contexts`` event with a task context document."""
    return _event(ArchiveTables.TASK_CONTEXTS, session_id, {"context": dict(document)}, created_at, event_id)


def checkpoint_event(
    thread_id: str,
    checkpoint_id: str,
    document: Mapping[str, Any],
    *,
    created_at: datetime | None = None,
    event_id: str | None = None,
) -> ArchiveEvent:
    """A ``context_checkpoints`` event with a seed checkpoint document."""
    payload = {"checkpoint_id": checkpoint_id, "document": dict(document)}
    return _event(ArchiveTables.CHECKPOINTS, thread_id, payload, created_at, event_id)


def writes_event(
    thread_id: str,
    checkpoint_id: str,
    task_id: str,
    writes: Sequence[Any],
    *,
    created_at: datetime | None = None,
    event_id: str | None = None,
) -> ArchiveEvent:
    """A ``context_checkpoint_writes`` event with the writes of one task."""
    payload = {"checkpoint_id": checkpoint_id, "task_id": task_id, "writes": list(writes)}
    return _event(ArchiveTables.CHECKPOINT_WRITES, thread_id, payload, created_at, event_id)


def conversation_session_event(
    session: ConversationSession | Mapping[str, Any],
    *,
    created_at: datetime | None = None,
    event_id: str | None = None,
) -> ArchiveEvent:
    """A ``context_conversation_sessions`` event keyed by the session's ``session_key``."""
    document = session.to_dict() if isinstance(session, ConversationSession) else dict(session)
    return _event(ArchiveTables.CONVERSATION_SESSIONS, str(document["session_key"]), {"session": document}, created_at, event_id)


def _event(table: str, key: str, payload: Mapping[str, Any], created_at: datetime | None, event_id: str | None) -> ArchiveEvent:
    return ArchiveEvent(
        table=table,
        key=key,
        payload=payload,
        created_at=created_at or datetime.now(timezone.utc),
        event_id=event_id or uuid.uuid4().hex,
    )


def _lg_id(n: int) -> str:
    """A LangGraph-like checkpoint id (UUID v6 text) that sorts by ``n``."""
    return f"1ef00000-0000-6{n:03x}-8000-000000000000"


def _lg_row(thread_id: str, n: int, parent: int | None = None, ns: str = "", **metadata: Any) -> CheckpointRow:
    return CheckpointRow(
        thread_id=thread_id,
        checkpoint_ns=ns,
        checkpoint_id=_lg_id(n),
        parent_checkpoint_id=None if parent is None else _lg_id(parent),
        checkpoint=("msgpack", bytes([n % 256, 0, 255]) + b"checkpoint"),
        metadata={"step": n, "source": "loop", **metadata},
        channel_versions={"a": f"{n:032}.1", "b": f"{1:032}.1"},
    )


def _lg_event(row: CheckpointRow, *, created_at: datetime | None = None, value: bytes | None = None) -> ArchiveEvent:
    blobs = {"a": ("msgpack", value if value is not None else f"a{row.checkpoint_id}".encode()), "b": ("empty", b"")}
    return _event(ArchiveTables.CHECKPOINTS, row.thread_id, checkpoint_payload(row, blobs), created_at, None)


def _lg_writes(
    thread_id: str, n: int, task_id: str, writes: Sequence[tuple[int, str, bytes]], *, upsert: bool = False,
    ns: str = "", created_at: datetime | None = None,
) -> ArchiveEvent:
    rows = [WriteRow(task_id, idx, channel, ("msgpack", value), "~path") for idx, channel, value in writes]
    payload = writes_payload(ns, _lg_id(n), task_id, rows, upsert)
    return _event(ArchiveTables.CHECKPOINT_WRITES, thread_id, payload, created_at, None)


class _ElementSerde:
    """Writes each list element as its UTF-8 bytes under the ``msgpack`` type: enough for ListSharing to split a
    list (the archive only concatenates and hashes element bytes)."""

    def dumps_typed(self, value: Any) -> Typed:
        return ("msgpack", str(value).encode())


def _session(session_id: str, **fields: Any) -> Session:
    values: dict[str, Any] = {"session_id": session_id, "user_id": "user-1", "created_at": T0, "last_activity": T0}
    values.update(fields)
    return Session(**values)


def _message(seq: int, content: str | None = None, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "role": "user" if seq % 2 else "assistant",
        "content": f"message {seq}" if content is None else content,
        "timestamp": T0 + timedelta(seconds=seq, microseconds=seq),
        "metadata": {"n": seq},
        "id": f"m-{seq:06d}",
        "seq": seq,
    }
    values.update(fields)
    return Message(**values)


def _conversation_session(session_id: str = "s1", **fields: Any) -> ConversationSession:
    values: dict[str, Any] = {
        "session_id": session_id,
        "participants": (
            ConversationParticipant("u1", "user"),
            ConversationParticipant("agent-1", "agent", "writer", {"model": "m"}),
        ),
        "session_type": "user_to_agent",
        "created_at": T0,
        "last_activity": T0,
        "metadata": {"topic": "t"},
    }
    values.update(fields)
    return ConversationSession(**values)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class ColdStoreSuite(StoreSuite[ColdStore]):
    """Base class of the cold tier conformance tests; subclass it and implement :meth:`make_store`."""

    #: Every test of a subclass carries the ``conformance`` marker (pytest collects class marks along the MRO), so
    #: ``pytest -m conformance`` (``nox -s conformance``) runs every run of every suite, whatever its file's name.
    pytestmark = [pytest.mark.conformance]

    #: Prefix of the unique namespaces the suite creates (visible in the server if a cleanup fails).
    namespace_prefix: str = "ckc"
    #: Namespaces become schema or table names: "_" keeps them identifiers.
    namespace_separator = "_"
    #: Settings every store starts from; :meth:`new_store` overrides single fields.
    default_settings: StoreSettings = StoreSettings()
    #: Messages and batch size of the long-history tests.
    history_messages: int = 2500
    history_batch: int = 500

    async def _write_history(self, store: ColdStore, key: str, count: int, batch: int) -> list[Message]:
        messages = [_message(seq) for seq in range(1, count + 1)]
        for start in range(0, count, batch):
            chunk = messages[start : start + batch]
            await store.write_events([message_event(key, m, created_at=_at(m.seq)) for m in chunk])
        return messages

    # -- lifecycle, health, describe ------------------------------------------------------------------------------
    async def test_store_satisfies_the_cold_store_protocol(self, store: ColdStore) -> None:
        """The store implements every ColdStore method and names itself.

        Fix: implement the missing method of contextkit.stores.ColdStore; set ``name`` (str) and ``capabilities``
        (a frozenset of Capability values).
        """
        assert isinstance(store, ColdStore)
        assert isinstance(store.name, str)
        assert store.name
        assert isinstance(store.capabilities, frozenset)
        known = {c.value for c in Capability}
        assert set(store.capabilities) <= known, f"unknown capabilities: {set(store.capabilities) - known}"

    async def test_capabilities_match_the_protocols_implemented(self, store: ColdStore) -> None:
        """A cold tier declares no capability whose protocol it lacks (``checkpoints``, ``outbox`` and
        ``atomic_outbox`` are hot tier abilities: a cold store declaring them would be handed the hot tier's
        work), and implements none of those protocols without declaring it.

        Fix: declare only the storage properties (``durable``, ``shared``, ``cluster``, ``concurrent_writes``).
        """
        assert capability_mismatches(store) == [], f"{store.name}: {capability_mismatches(store)}"
        for capability, protocol in CAPABILITY_PROTOCOLS.items():
            assert (capability.value in store.capabilities) == isinstance(store, protocol), (
                f"{store.name}: {capability.value!r} declared {capability.value in store.capabilities}, "
                f"{protocol.__name__} implemented {isinstance(store, protocol)}"
            )

    async def test_health_reports_a_status_and_latency(self, store: ColdStore) -> None:
        """health() returns {"status": "healthy", "latency_ms": number, ...} on a working store, JSON serialisable.

        Fix: time a cheap round trip (SELECT 1) and return it as latency_ms.
        """
        report = await store.health()
        assert report["status"] == "healthy"
        assert isinstance(report["latency_ms"], (int, float))
        json.dumps(report, default=str)

    async def test_health_never_raises_after_close(self) -> None:
        """health() never raises, even once the store is closed; aclose() is idempotent.

        Fix: catch everything in health() and report "unhealthy" with a masked error; make aclose() a no-op the
        second time.
        """
        store = await self.new_store()
        await store.aclose()
        await store.aclose()
        report = await store.health()
        assert report["status"] in {"healthy", "degraded", "unhealthy"}

    async def test_describe_names_the_backend_and_is_json(self, store: ColdStore) -> None:
        """describe() is a JSON-serialisable dict with a "backend" key, built without I/O.

        Fix: return {"backend": <name>, <target without credentials>, ...} from the settings and options only.
        """
        described = store.describe()
        assert isinstance(described, dict)
        assert isinstance(described["backend"], str)
        json.dumps(described, default=str)

    # -- sessions -------------------------------------------------------------------------------------------------
    async def test_session_round_trips_field_for_field(self, store: ColdStore) -> None:
        """read_session returns the archived session equal to what was written (microseconds, UTC, metadata).

        Fix: store the payload's "session" dict and rebuild with Session.from_dict().
        """
        session = _session(
            "s1", request_count=3, error_count=1, total_processing_time=0.1 + 0.2, metadata={"source": "web", "n": [1, 2]}
        )
        await store.write_events([session_event(session, "create")])
        assert await store.read_session("s1") == session

    async def test_session_read_gives_the_newest_events_state(self, store: ColdStore) -> None:
        """With create/update/end events archived (even out of order, in separate batches), read_session returns
        the state of the event with the newest created_at.

        Fix: order by the event's created_at (ties: the order rows were first written), not by arrival order.
        """
        created = _session("s1")
        updated = _session("s1", request_count=5, last_activity=_at(10))
        ended = _session("s1", request_count=6, status="completed", last_activity=_at(20))
        await store.write_events([session_event(ended, "end", created_at=_at(20))])
        await store.write_events([session_event(created, "create", created_at=_at(0))])
        await store.write_events([session_event(updated, "update", created_at=_at(10))])
        assert await store.read_session("s1") == ended

    async def test_session_whose_newest_event_is_a_delete_reads_none(self, store: ColdStore) -> None:
        """A session whose newest archived event is "delete" reads back None, so read-through cannot bring a deleted
        session back.

        Fix: in read_session, return None when the newest event's event_type is "delete".
        """
        session = _session("s1")
        await store.write_events(
            [session_event(session, "create", created_at=_at(0)), session_event(session, "delete", created_at=_at(1))]
        )
        assert await store.read_session("s1") is None
        assert await store.count_events(ArchiveTables.SESSIONS, "s1") == 2

    # -- history --------------------------------------------------------------------------------------------------
    async def test_message_round_trips_field_for_field(self, store: ColdStore) -> None:
        """An archived message reads back equal: id, seq, role, content, timestamp (microseconds) and metadata.

        Fix: keep every field of Message.to_dict(); rebuild the timestamp as an aware UTC datetime.
        """
        message = _message(1, metadata={"nested": {"list": [1, 2.5, None, True, "x"]}, "empty": {}})
        await store.write_events([message_event("s1", message)])
        assert await store.read_history("s1", None) == [message]

    async def test_read_history_newest_n_in_seq_order_over_2500_messages(self, store: ColdStore) -> None:
        """Over 2,500 messages written in batches of 500, read_history(limit) returns the newest ``limit`` in seq
        order; limit=None returns all; a limit above the count returns all.

        Fix: select the highest seqs first (ORDER BY seq DESC LIMIT n) and reverse them before returning.
        """
        messages = await self._write_history(store, "s1", self.history_messages, self.history_batch)
        assert await store.read_history("s1", 50) == messages[-50:]
        assert await store.read_history("s1", 1) == messages[-1:]
        assert await store.read_history("s1", None) == messages
        assert await store.read_history("s1", self.history_messages + 10) == messages
        assert await store.read_history("s1", 0) == []

    async def test_read_history_before_seq_pages_back_without_gaps(self, store: ColdStore) -> None:
        """read_history(key, limit, before_seq) returns the newest ``limit`` messages with seq < before_seq; paging
        back from the end with it visits every message exactly once.

        Fix: filter seq < before_seq (strictly) before taking the newest ``limit``.
        """
        messages = await self._write_history(store, "s1", self.history_messages, self.history_batch)
        assert await store.read_history("s1", 3, before_seq=5) == messages[1:4]
        assert await store.read_history("s1", 10, before_seq=1) == []
        assert await store.read_history("s1", None, before_seq=101) == messages[:100]
        seen: list[int] = []
        before: int | None = None
        for _ in range(self.history_messages):
            page = await store.read_history("s1", 333, before_seq=before)
            if not page:
                break
            assert [m.seq for m in page] == sorted(m.seq for m in page)
            seen[:0] = [m.seq for m in page]
            before = page[0].seq
        assert seen == list(range(1, self.history_messages + 1))

    async def test_same_message_under_a_second_event_id_is_read_once(self, store: ColdStore) -> None:
        """A message archived twice under different event ids (the hot tier re-archived it) is read once, and a
        limit still returns ``limit`` distinct messages.

        Fix: de-duplicate on the message id while reading (DISTINCT ON message_id, or skip ids already taken) and
        keep reading until ``limit`` distinct messages are found.
        """
        messages = [_message(seq) for seq in range(1, 11)]
        await store.write_events([message_event("s1", m) for m in messages])
        await store.write_events([message_event("s1", m) for m in messages[7:]])
        assert await store.count_events(ArchiveTables.CONVERSATIONS, "s1") == 13
        assert await store.read_history("s1", None) == messages
        assert await store.read_history("s1", 3) == messages[-3:]
        assert await store.read_history("s1", 2, before_seq=10) == messages[7:9]

    async def test_streams_are_independent(self, store: ColdStore) -> None:
        """Messages archived under one stream key never appear in another, even for keys that prefix each other.

        Fix: filter every read on the exact key (no LIKE, no prefix match).
        """
        keys = ["a", "a:b", "a%", "A", "user_to_agent/s1/agent-1"]
        for index, key in enumerate(keys):
            await store.write_events([message_event(key, _message(1, f"in {index}", id=f"m-{index}"))])
        for index, key in enumerate(keys):
            assert [m.content for m in await store.read_history(key, None)] == [f"in {index}"]

    # -- task contexts, conversation sessions, checkpoints ------------------------------------------------------------
    async def test_task_context_round_trips_and_the_newest_wins(self, store: ColdStore) -> None:
        """read_task_context returns the newest archived document of the session, equal to what was written.

        Fix: store the payload's "context" document; order by created_at to pick the newest.
        """
        first = {"user_id": "u1", "chat_id": "s1", "metadata": {"mode": "a"}, "file_tracker": {"f": {"op": "r"}}}
        second = {**first, "metadata": {"mode": "b"}, "model_tracker": [{"model_id": "m", "timestamp": 1.5}]}
        await store.write_events([task_context_event("s1", second, created_at=_at(2))])
        await store.write_events([task_context_event("s1", first, created_at=_at(1))])
        assert await store.read_task_context("s1") == second

    async def test_conversation_session_round_trips_and_the_newest_wins(self, store: ColdStore) -> None:
        """read_conversation_session returns the newest archived document under its session key.

        Fix: key the table by the session key (payload["session"]["session_key"]); pick the newest created_at.
        """
        first = _conversation_session()
        later = _conversation_session(last_activity=_at(60), metadata={"topic": "changed"})
        await store.write_events([conversation_session_event(first, created_at=_at(0))])
        await store.write_events([conversation_session_event(later, created_at=_at(60))])
        document = await store.read_conversation_session(first.session_key)
        assert document == later.to_dict()
        assert ConversationSession.from_dict(document) == later

    async def test_checkpoint_document_by_id_and_newest(self, store: ColdStore) -> None:
        """read_checkpoint_document returns the document of a checkpoint id, or the thread's newest for None.

        Fix: filter on (thread_id, checkpoint_id); for None order the thread's rows by created_at, newest first.
        """
        docs = {
            cid: {"checkpoint_id": cid, "thread_id": "t1", "data": {"step": n}, "metadata": {"source": "loop", "step": n}}
            for n, cid in enumerate(["c1", "c2", "c3"])
        }
        await store.write_events(
            [checkpoint_event("t1", cid, doc, created_at=_at(n)) for n, (cid, doc) in enumerate(docs.items())]
        )
        assert await store.read_checkpoint_document("t1", "c2") == docs["c2"]
        assert await store.read_checkpoint_document("t1", None) == docs["c3"]
        assert await store.read_checkpoint_document("t1", "missing") is None
        assert await store.read_checkpoint_document("t2", None) is None

    async def test_checkpoint_writes_are_stored_and_counted_per_thread(self, store: ColdStore) -> None:
        """context_checkpoint_writes rows are stored per event and counted per thread.

        Fix: insert one row per event into context_checkpoint_writes keyed by thread id.
        """
        await store.write_events(
            [
                writes_event("t1", "c1", "task-1", [["messages", ["test"]]]),
                writes_event("t1", "c1", "task-2", [["x", {"nested": [1, 2]}]]),
                writes_event("t2", "c9", "task-1", []),
            ]
        )
        assert await store.count_events(ArchiveTables.CHECKPOINT_WRITES, "t1") == 2
        assert await store.count_events(ArchiveTables.CHECKPOINT_WRITES, "t2") == 1
        assert await store.count_events(ArchiveTables.CHECKPOINT_WRITES) == 3

    # -- LangGraph checkpoints (contextkit.checkpoint_archive) ---------------------------------------------------
    async def test_langgraph_checkpoint_reads_back_with_its_blobs_and_writes(self, store: ColdStore) -> None:
        """read_langgraph_checkpoint rebuilds an archived checkpoint byte for byte: row, blobs and pending writes
        (an ``upsert`` event replaces a (task, idx) key, any other keeps the first); None of the id reads the
        newest of the namespace by checkpoint id.

        Fix: select ``payload["kind"] == "langgraph"`` rows of (thread, ns[, id]); decode with
        contextkit.checkpoint_archive.bundle_from_payloads, passing the writes in archive order.
        """
        rows = [_lg_row("t1", n, n - 1 if n > 1 else None) for n in (1, 2, 3)]
        await store.write_events([_lg_event(row, created_at=_at(n)) for n, row in enumerate(rows)])
        await store.write_events(
            [
                _lg_writes("t1", 2, "task-1", [(0, "a", b"w0"), (1, "b", b"w1")], created_at=_at(10)),
                _lg_writes("t1", 2, "task-1", [(0, "a", b"ignored")], created_at=_at(11)),
                _lg_writes("t1", 2, "task-2", [(-1, "__error__", b"e1")], upsert=True, created_at=_at(12)),
                _lg_writes("t1", 2, "task-2", [(-1, "__error__", b"e2")], upsert=True, created_at=_at(13)),
                _lg_writes("t1", 3, "task-9", [(0, "a", b"other checkpoint")], created_at=_at(14)),
            ]
        )
        bundle = await store.read_langgraph_checkpoint("t1", "", _lg_id(2))
        assert bundle is not None
        assert bundle.row == rows[1]
        assert dict(bundle.blobs) == {"a": ("msgpack", f"a{_lg_id(2)}".encode()), "b": ("empty", b"")}
        writes = sorted((w.task_id, w.idx, w.channel, w.value, w.task_path) for w in bundle.writes)
        assert writes == [
            ("task-1", 0, "a", ("msgpack", b"w0"), "~path"),
            ("task-1", 1, "b", ("msgpack", b"w1"), "~path"),
            ("task-2", -1, "__error__", ("msgpack", b"e2"), "~path"),
        ]
        newest = await store.read_langgraph_checkpoint("t1", "", None)
        assert newest is not None and newest.row == rows[2]
        assert [w.value for w in newest.writes] == [("msgpack", b"other checkpoint")]
        assert await store.read_langgraph_checkpoint("t1", "", _lg_id(9)) is None
        assert await store.read_langgraph_checkpoint("t1", "child:1", None) is None
        assert await store.read_langgraph_checkpoint("t2", "", None) is None

    async def test_langgraph_checkpoints_list_newest_first_each_once(self, store: ColdStore) -> None:
        """list_langgraph_checkpoints: descending checkpoint id, one namespace or all, ``before`` and ``limit``;
        a checkpoint archived twice reads once, from its newest event; seed documents are never listed.

        Fix: order by checkpoint id descending and, per id, newest event first; keep the first of each (ns, id).
        """
        events = [_lg_event(_lg_row("t1", n, n - 1 if n > 1 else None), created_at=_at(n)) for n in range(1, 8)]
        events.append(_lg_event(_lg_row("t1", 4, 3), created_at=_at(20), value=b"re-put"))
        events.append(_lg_event(_lg_row("t1", 5, None, ns="child:x"), created_at=_at(21)))
        events.append(checkpoint_event("t1", "seed-doc", {"checkpoint_id": "seed-doc", "data": {}}, created_at=_at(22)))
        await store.write_events(events)
        listed = await store.list_langgraph_checkpoints("t1", "")
        assert [b.row.checkpoint_id for b in listed] == [_lg_id(n) for n in (7, 6, 5, 4, 3, 2, 1)]
        assert listed[3].blobs["a"] == ("msgpack", b"re-put")
        page = await store.list_langgraph_checkpoints("t1", "", before=_lg_id(6), limit=2)
        assert [b.row.checkpoint_id for b in page] == [_lg_id(5), _lg_id(4)]
        every = await store.list_langgraph_checkpoints("t1", None)
        assert sorted((b.row.checkpoint_ns, b.row.checkpoint_id) for b in every) == sorted(
            [("", _lg_id(n)) for n in range(1, 8)] + [("child:x", _lg_id(5))]
        )
        assert [b.row.checkpoint_ns for b in await store.list_langgraph_checkpoints("t1", "child:x")] == ["child:x"]
        assert await store.list_langgraph_checkpoints("t1", "", limit=0) == []
        assert await store.list_langgraph_checkpoints("t2", None) == []
        assert await store.read_checkpoint_document("t1", None) == {"checkpoint_id": "seed-doc", "data": {}}

    async def test_linked_langgraph_rows_rebuild_shared_lists_from_the_rows_of_their_chain(self, store: ColdStore) -> None:
        """A shared list archived as a record and the nodes its chain's earlier rows do not hold (a linked row,
        ``base`` naming the chain's full row) reads back whole, by id and in listings, from the rows whose ids
        lie from its base to its own; a linked row whose base row is gone reads as CorruptData naming it.

        Fix: when a chosen payload has ``base``, fetch the thread's LangGraph rows with ids in
        contextkit.checkpoint_archive.linked_span(chosen) and pass them as ``linked`` to bundles_from_payloads.
        """
        lists = ListSharing(_ElementSerde(), min_bytes=0)
        values = [f"element {i} " * 8 for i in range(9)]
        wholes: dict[int, Typed] = {}
        events: list[ArchiveEvent] = []
        held: tuple[Sequence[bytes], frozenset[bytes]] | None = None
        for n, size in ((1, 3), (2, 4), (3, 5), (4, 7), (5, 9)):
            parent = n - 1 if n > 1 else None
            row = _lg_row("t1", n, parent)
            split = lists.split("t1", "", None if parent is None else _lg_id(parent), "a", values[:size])
            assert isinstance(split, SplitList)
            nodes = lists.archive_nodes(split, held)
            if held is not None:  # a linked row sends the new elements (and blocks), not the whole list
                assert len([v for v, node in nodes.items() if node[0] == "msgpack"]) <= size - len(held[0])
            base = None if n == 1 else _lg_id(1)
            if n == 5:
                base = _lg_id(4)  # its chain's full row is "gone": the rows of ids 1-3 do not reach it
                nodes = {v: node for v, node in nodes.items() if node[0] == "msgpack"}
            payload = checkpoint_payload(row, {"a": split.record, "b": ("empty", b"")}, nodes={"a": nodes}, base=base)
            events.append(_event(ArchiveTables.CHECKPOINTS, "t1", payload, _at(n), None))
            lists.written("t1", "", row.checkpoint_id, {"a": split.tree})
            held = (split.tree.leaf_ids, frozenset(split.tree.blocks.values()))
            wholes[n] = split.whole
        await store.write_events(events[:4])
        for n in (1, 2, 3, 4):
            bundle = await store.read_langgraph_checkpoint("t1", "", _lg_id(n))
            assert bundle is not None and bundle.blobs["a"] == wholes[n], n
        listed = await store.list_langgraph_checkpoints("t1", "")
        assert [(b.row.checkpoint_id, b.blobs["a"]) for b in listed] == [(_lg_id(n), wholes[n]) for n in (4, 3, 2, 1)]
        page = await store.list_langgraph_checkpoints("t1", "", before=_lg_id(4), limit=1)
        assert [b.blobs["a"] for b in page] == [wholes[3]]
        await store.write_events(events[4:])
        with pytest.raises(CorruptData, match="retention"):
            await store.read_langgraph_checkpoint("t1", "", _lg_id(5))
        bundle = await store.read_langgraph_checkpoint("t1", "", _lg_id(4))
        assert bundle is not None and bundle.blobs["a"] == wholes[4]

    async def test_a_langgraph_delete_tombstone_hides_the_thread_up_to_its_floor(self, store: ColdStore) -> None:
        """After a ``langgraph-delete`` tombstone, checkpoints with an id (or parent id) up to its floor read None
        and are not listed (nor their writes); a new run after it (higher ids, no parent) is visible; seed
        checkpoint documents of the thread are unaffected.

        Fix: find the thread's highest tombstone floor, then keep ids > floor whose parent is None or > floor.
        """
        events = [_lg_event(_lg_row("t1", n, n - 1 if n > 1 else None), created_at=_at(n)) for n in range(1, 4)]
        events.append(_event(ArchiveTables.CHECKPOINTS, "t1", delete_payload(_lg_id(3)), _at(4), None))
        events.append(_lg_event(_lg_row("t1", 4, 3), created_at=_at(5)))  # a late child of the deleted run
        events.append(_lg_event(_lg_row("t1", 6, None), created_at=_at(6)))  # a new run
        events.append(_lg_event(_lg_row("t1", 7, 6), created_at=_at(7)))
        events.append(_lg_writes("t1", 7, "task", [(0, "a", b"kept")], created_at=_at(8)))
        events.append(checkpoint_event("t1", "seed", {"checkpoint_id": "seed"}, created_at=_at(1)))
        await store.write_events(events)
        assert await store.read_langgraph_checkpoint("t1", "", _lg_id(2)) is None
        assert await store.read_langgraph_checkpoint("t1", "", _lg_id(4)) is None
        assert [b.row.checkpoint_id for b in await store.list_langgraph_checkpoints("t1", None)] == [_lg_id(7), _lg_id(6)]
        newest = await store.read_langgraph_checkpoint("t1", "", None)
        assert newest is not None and newest.row.checkpoint_id == _lg_id(7)
        assert [w.value for w in newest.writes] == [("msgpack", b"kept")]
        await store.write_events([_event(ArchiveTables.CHECKPOINTS, "t1", delete_payload(_lg_id(9)), _at(9), None)])
        assert await store.read_langgraph_checkpoint("t1", "", None) is None
        assert await store.list_langgraph_checkpoints("t1", None) == []
        assert await store.read_checkpoint_document("t1", "seed") == {"checkpoint_id": "seed"}

    async def test_a_runs_tombstone_hides_the_checkpoints_of_those_runs_in_its_thread(self, store: ColdStore) -> None:
        """A ``langgraph-delete`` tombstone with ``runs`` (what ``adelete_for_runs`` archives per thread) hides
        the thread's checkpoints whose ``metadata["run_id"]`` it names, by id and in listings, not the thread's
        other runs nor the same run in another thread; several such tombstones add up.

        Fix: collect the ``runs`` of the thread's tombstones (contextkit.checkpoint_archive.deleted_runs) and pass
        them to newest_distinct next to the floor.
        """
        events = [
            _lg_event(_lg_row("t1", 1, None, run_id="r1"), created_at=_at(1)),
            _lg_event(_lg_row("t1", 2, 1, run_id="r1"), created_at=_at(2)),
            _lg_event(_lg_row("t1", 3, None, run_id="r2"), created_at=_at(3)),
            _lg_event(_lg_row("t1", 4, 3, run_id="r3"), created_at=_at(4)),
            _lg_event(_lg_row("t2", 5, None, run_id="r1"), created_at=_at(5)),
            _event(ArchiveTables.CHECKPOINTS, "t1", delete_payload(runs=["r1"]), _at(6), None),
        ]
        await store.write_events(events)
        assert await store.read_langgraph_checkpoint("t1", "", _lg_id(1)) is None
        assert await store.read_langgraph_checkpoint("t1", "", _lg_id(2)) is None
        assert [b.row.checkpoint_id for b in await store.list_langgraph_checkpoints("t1", None)] == [_lg_id(4), _lg_id(3)]
        assert [b.row.checkpoint_id for b in await store.list_langgraph_checkpoints("t1", "", limit=1)] == [_lg_id(4)]
        other = await store.read_langgraph_checkpoint("t2", "", None)
        assert other is not None and other.row.checkpoint_id == _lg_id(5)
        await store.write_events([_event(ArchiveTables.CHECKPOINTS, "t1", delete_payload(runs=["r3"]), _at(7), None)])
        newest = await store.read_langgraph_checkpoint("t1", "", None)
        assert newest is not None and newest.row.checkpoint_id == _lg_id(3)
        assert [b.row.checkpoint_id for b in await store.list_langgraph_checkpoints("t1", "")] == [_lg_id(3)]

    async def test_threads_of_runs_are_found_in_the_archive(self, store: ColdStore) -> None:
        """``langgraph_threads_of_runs`` names every thread with an archived LangGraph checkpoint of one of the
        runs, sorted and once each, whatever the namespace; not a thread whose checkpoints belong to other runs,
        nor seed checkpoint documents, nor for an empty list.

        Fix: select the distinct thread (key) of ``context_checkpoints`` rows of kind ``langgraph`` whose
        ``metadata.run_id`` is in the list.
        """
        events = [
            _lg_event(_lg_row("t2", 1, None, run_id="r1"), created_at=_at(1)),
            _lg_event(_lg_row("t2", 2, 1, run_id="r1"), created_at=_at(2)),
            _lg_event(_lg_row("t1", 3, None, ns="child:x", run_id="r2"), created_at=_at(3)),
            _lg_event(_lg_row("t3", 4, None, run_id="r3"), created_at=_at(4)),
            _lg_event(_lg_row("t4", 5, None), created_at=_at(5)),
            checkpoint_event("t5", "seed", {"checkpoint_id": "seed", "metadata": {"run_id": "r1"}}, created_at=_at(6)),
            _event(ArchiveTables.CHECKPOINTS, "t6", delete_payload(runs=["r1"]), _at(7), None),
        ]
        await store.write_events(events)
        assert await store.langgraph_threads_of_runs(["r1", "r2"]) == ["t1", "t2"]
        assert await store.langgraph_threads_of_runs(["r3"]) == ["t3"]
        assert await store.langgraph_threads_of_runs(["nope"]) == []
        assert await store.langgraph_threads_of_runs([]) == []

    async def test_missing_keys_read_none_or_empty(self, store: ColdStore) -> None:
        """Every read of a key never archived returns None (or [] for history) and counts 0; it never raises.

        Fix: return None / [] when the query finds no row.
        """
        assert await store.read_session("nope") is None
        assert await store.read_history("nope", 10) == []
        assert await store.read_history("nope", None, before_seq=5) == []
        assert await store.read_task_context("nope") is None
        assert await store.read_conversation_session("nope") is None
        assert await store.read_checkpoint_document("nope", None) is None
        assert await store.read_checkpoint_document("nope", "c1") is None
        for table in ARCHIVE_TABLES:
            assert await store.count_events(table, "nope") == 0
            assert await store.count_events(table) == 0

    # -- versions and deletes (contextkit.tiered.cold_rules) ----------------------------------------------------------
    async def test_the_highest_version_wins_whatever_the_clocks_say(self, store: ColdStore) -> None:
        """Per record the row with the highest version answers, even when its created_at is the oldest (clocks
        of several app processes disagree) and it arrives first: sessions (with ``version`` set on the result),
        task contexts, conversation session documents and seed checkpoint documents.

        Fix: store ArchiveEvent.version in a column and order each record's rows by (version, created_at, write
        order) descending (an index on (key, version) keeps it one lookup).
        """
        owner = "versioned"
        sessions = [replace(_session(owner, request_count=v), version=v) for v in (1, 2, 3)]
        heads = {v: EventHead("update", f"ev-{owner}-{v}", _at(100 - v)) for v in range(1, 10)}
        await store.write_events([core_events.session_event(sessions[2], heads[3])])
        await store.write_events([core_events.session_event(s, heads[s.version]) for s in sessions[:2]])
        got = await store.read_session(owner)
        assert got == sessions[2] and got is not None and got.version == 3
        await store.write_events(
            [
                core_events.task_context_event(owner, {"v": 5}, 5, heads[5]),
                core_events.task_context_event(owner, {"v": 4}, 4, heads[4]),
                core_events.conversation_session_event(owner, {"session_key": owner, "v": 7}, 7, heads[7]),
                core_events.conversation_session_event(owner, {"session_key": owner, "v": 6}, 6, heads[6]),
                core_events.checkpoint_document_event(owner, "c1", {"v": 9}, 9, heads[9]),
                core_events.checkpoint_document_event(owner, "c1", {"v": 8}, 8, heads[8]),
            ]
        )
        assert await store.read_task_context(owner) == {"v": 5}
        assert await store.read_conversation_session(owner) == {"session_key": owner, "v": 7}
        assert await store.read_checkpoint_document(owner, "c1") == {"v": 9}
        assert await store.read_checkpoint_document(owner, None) == {"v": 9}

    async def _owner_with_everything(self, store: ColdStore, owner: str) -> Session:
        """Archive versions 1-6 of every record kind of ``owner`` and 3 messages; returns the session (v2)."""
        created = replace(_session(owner), version=1)
        updated = replace(_session(owner, request_count=4), version=2)
        await store.write_events(
            [
                core_events.session_event(created, EventHead("create", f"{owner}-1", _at(1))),
                core_events.session_event(updated, EventHead("update", f"{owner}-2", _at(2))),
                core_events.task_context_event(owner, {"t": 3}, 3, EventHead("", f"{owner}-3", _at(3))),
                core_events.conversation_session_event(
                    owner, {"session_id": "parent", "session_key": owner}, 4, EventHead("", f"{owner}-4", _at(4))
                ),
                core_events.checkpoint_document_event(owner, "c1", {"c": 5}, 5, EventHead("", f"{owner}-5", _at(5))),
                core_events.writes_document_event(owner, "c1", "task", [[6]], 6, EventHead("", f"{owner}-6", _at(6))),
                *(message_event(owner, _message(seq), created_at=_at(seq)) for seq in (1, 2, 3)),
            ]
        )
        return updated

    async def test_read_owner_reports_the_archived_state_of_an_owner(self, store: ColdStore) -> None:
        """read_owner gives the highest version of any record of the owner (LangGraph rows aside), its stream's
        highest seq and its session / task context / conversation document at their newest versions; an owner
        never archived reads ``OwnerState(owner)``.

        Fix: one query per table (or one UNION ALL) for the max version and the newest row of each record;
        build the result with contextkit.tiered.cold_rules.build_owner_state.
        """
        owner = "full 🙂"
        session = await self._owner_with_everything(store, owner)
        await store.write_events([_lg_event(_lg_row(owner, 1))])
        state = await store.read_owner(owner)
        assert (state.owner, state.version, state.last_seq, state.deleted) == (owner, 6, 3, False)
        assert state.session == session and state.session is not None and state.session.version == 2
        assert state.task_context == Versioned(3, {"t": 3})
        assert state.conversation == Versioned(4, {"session_id": "parent", "session_key": owner})
        assert await store.read_owner("never") == OwnerState("never")

    async def test_an_owner_delete_hides_every_record_written_before_it(self, store: ColdStore) -> None:
        """A delete row (event_type "delete", version 7, last_seq 3, no session: any owner may be deleted) hides
        the owner's session, task context, conversation document, seed checkpoints and messages up to seq 3;
        read_owner says deleted, with version 7 and last_seq 3.

        Fix: find the owner's newest delete; hide rows of lower (version, created_at, write order) and messages
        with seq <= its payload's last_seq (contextkit.tiered.cold_rules.hides / hides_message).
        """
        owner = "doomed"
        await self._owner_with_everything(store, owner)
        await store.write_events([core_events.delete_event(owner, 7, 3, None, EventHead("delete", f"{owner}-7", _at(7)))])
        assert await store.read_session(owner) is None
        assert await store.read_task_context(owner) is None
        assert await store.read_conversation_session(owner) is None
        assert await store.read_checkpoint_document(owner, "c1") is None
        assert await store.read_checkpoint_document(owner, None) is None
        assert await store.read_history(owner, 10) == []
        assert await store.read_history(owner, None, before_seq=4) == []
        assert await store.read_owner(owner) == OwnerState(owner, version=7, last_seq=3, deleted=True)
        assert await store.count_events(ArchiveTables.SESSIONS, owner) == 3

    async def test_records_written_after_a_delete_are_visible_whatever_their_arrival_order(self, store: ColdStore) -> None:
        """Rows with a version above the delete's (a session created again, a message numbered past last_seq) are
        visible, also when they reach the archive before the delete row does; rows below stay hidden.

        Fix: compare versions, not arrival; hide messages by seq against the delete's last_seq only.
        """
        owner = "reborn"
        await self._owner_with_everything(store, owner)
        again = replace(_session(owner, user_id="second life"), version=8)
        await store.write_events(
            [
                core_events.session_event(again, EventHead("create", f"{owner}-8", _at(0))),
                message_event(owner, _message(4, "after"), created_at=_at(0)),
            ]
        )
        await store.write_events([core_events.delete_event(owner, 7, 3, None, EventHead("delete", f"{owner}-7", _at(50)))])
        got = await store.read_session(owner)
        assert got == again and got is not None and got.version == 8
        assert [m.content for m in await store.read_history(owner, None)] == ["after"]
        assert await store.read_task_context(owner) is None
        state = await store.read_owner(owner)
        assert (state.version, state.last_seq, state.deleted, state.session) == (8, 4, False, again)

    async def test_conversation_keys_of_finds_the_archived_conversations_of_a_session(self, store: ColdStore) -> None:
        """conversation_keys_of(session) lists, sorted, the keys whose newest conversation document names that
        session, leaving out those a later delete of their key hides and those whose newest document moved to
        another session.

        Fix: search the conversation sessions table by the document's session_id (an index on it, or the
        newest row per key), then drop keys whose newest delete is newer.
        """
        def doc(key: str, parent: str) -> dict[str, Any]:
            return {"session_id": parent, "session_key": key}

        events = [
            core_events.conversation_session_event("b:1", doc("b:1", "s1"), 1, EventHead("", "cv-1", _at(1))),
            core_events.conversation_session_event("a/2", doc("a/2", "s1"), 1, EventHead("", "cv-2", _at(1))),
            core_events.conversation_session_event("c", doc("c", "s2"), 1, EventHead("", "cv-3", _at(1))),
            core_events.conversation_session_event("gone", doc("gone", "s1"), 1, EventHead("", "cv-4", _at(1))),
            core_events.delete_event("gone", 2, 0, None, EventHead("delete", "cv-5", _at(2))),
            core_events.conversation_session_event("moved", doc("moved", "s1"), 1, EventHead("", "cv-6", _at(1))),
            core_events.conversation_session_event("moved", doc("moved", "s2"), 2, EventHead("", "cv-7", _at(0))),
        ]
        await store.write_events(events)
        assert await store.conversation_keys_of("s1") == ["a/2", "b:1"]
        assert await store.conversation_keys_of("s2") == ["c", "moved"]
        assert await store.conversation_keys_of("nobody") == []

    # -- batches and idempotency --------------------------------------------------------------------------------------
    def _mixed_batch(self, tag: str = "") -> list[ArchiveEvent]:
        conversation = _conversation_session(f"s1{tag}")
        return [
            session_event(_session(f"s1{tag}"), "create", created_at=_at(0)),
            message_event(f"s1{tag}", _message(1, id=f"m1{tag}"), created_at=_at(1)),
            message_event(f"s1{tag}", _message(2, "x" * 5000, id=f"m2{tag}"), created_at=_at(2)),
            task_context_event(f"s1{tag}", {"chat_id": f"s1{tag}", "metadata": {}}, created_at=_at(3)),
            checkpoint_event(f"s1{tag}", "c1", {"checkpoint_id": "c1", "data": {}}, created_at=_at(4)),
            writes_event(f"s1{tag}", "c1", "task-1", [["messages", ["test"]]], created_at=_at(5)),
            conversation_session_event(conversation, created_at=_at(6)),
            session_event(_session(f"s1{tag}", request_count=1), "update", created_at=_at(7)),
        ]

    async def test_a_batch_mixing_all_six_tables_is_stored_whole(self, store: ColdStore) -> None:
        """One write_events call with events for all six tables stores every one of them, each in its table.

        Fix: group the batch by table and write every group (in one transaction where the backend has them).
        """
        batch = self._mixed_batch()
        await store.write_events(batch)
        expected = {table: sum(1 for e in batch if e.table == table) for table in ARCHIVE_TABLES}
        for table, count in expected.items():
            assert count > 0
            assert await store.count_events(table) == count, table
        assert await store.read_session("s1") == _session("s1", request_count=1)
        assert [m.id for m in await store.read_history("s1", None)] == ["m1", "m2"]
        assert await store.read_task_context("s1") == {"chat_id": "s1", "metadata": {}}
        assert await store.read_checkpoint_document("s1", "c1") == {"checkpoint_id": "c1", "data": {}}
        assert await store.read_conversation_session(_conversation_session().session_key) is not None

    async def test_writing_the_same_batch_twice_changes_nothing(self, store: ColdStore) -> None:
        """write_events is idempotent on event_id: retrying a batch (whole, or a part of it inside a new batch)
        leaves the counts and the reads unchanged.

        Fix: make event_id unique per table and skip conflicts (INSERT ... ON CONFLICT (event_id) DO NOTHING).
        """
        batch = self._mixed_batch()
        await store.write_events(batch)
        counts = {table: await store.count_events(table) for table in ARCHIVE_TABLES}
        await store.write_events(batch)
        await store.write_events([*batch[3:], *self._mixed_batch("-new")[:1]])
        await store.write_events([batch[1], batch[1]])
        after = {table: await store.count_events(table) for table in ARCHIVE_TABLES}
        counts[ArchiveTables.SESSIONS] += 1
        assert after == counts
        assert [m.id for m in await store.read_history("s1", None)] == ["m1", "m2"]

    async def test_an_empty_batch_is_a_no_op(self, store: ColdStore) -> None:
        """write_events([]) returns without writing or raising.

        Fix: return early on an empty batch.
        """
        await store.write_events([])
        assert await store.count_events(ArchiveTables.SESSIONS) == 0

    async def test_unknown_table_raises_invalid_input_and_writes_nothing(self, store: ColdStore) -> None:
        """An event for a table that is not one of the six raises InvalidInput and nothing of its batch is stored;
        count_events of an unknown table raises InvalidInput too.

        Fix: validate every event's table before writing anything; translate the error to InvalidInput.
        """
        good = session_event(_session("s1"), "create")
        bad = ArchiveEvent(table="context_bogus", key="s1", payload={})
        with pytest.raises(InvalidInput):
            await store.write_events([good, bad])
        assert await store.count_events(ArchiveTables.SESSIONS) == 0
        with pytest.raises(InvalidInput):
            await store.count_events("context_bogus")
        with pytest.raises(InvalidInput):
            await store.count_events("context_sessions; DROP TABLE x")

    async def test_count_events_per_table_and_key(self, store: ColdStore) -> None:
        """count_events(table) counts the rows of a table; count_events(table, key) only those of that key.

        Fix: count on the table's key column (session_id, thread_id or session_key).
        """
        await store.write_events([message_event("a", _message(n)) for n in range(1, 4)])
        await store.write_events([message_event("b", _message(n)) for n in range(1, 3)])
        await store.write_events([session_event(_session("a"), "create"), session_event(_session("b"), "create")])
        assert await store.count_events(ArchiveTables.CONVERSATIONS) == 5
        assert await store.count_events(ArchiveTables.CONVERSATIONS, "a") == 3
        assert await store.count_events(ArchiveTables.CONVERSATIONS, "b") == 2
        assert await store.count_events(ArchiveTables.CONVERSATIONS, "c") == 0
        assert await store.count_events(ArchiveTables.SESSIONS, "a") == 1
        assert await store.count_events(ArchiveTables.TASK_CONTEXTS) == 0

    # -- hostile data ---------------------------------------------------------------------------------------------
    async def test_hostile_strings_round_trip_byte_for_byte(self, store: ColdStore) -> None:
        """SQL metacharacters, quotes, backslashes, escapes, unicode and emoji, used as keys, content, roles,
        metadata and document values, are stored and read back exactly (and never run as SQL).

        Fix: pass every value as a bound parameter (never format it into SQL) and keep text unnormalised.
        """
        batch: list[ArchiveEvent] = []
        for index, text in enumerate(HOSTILE_TEXTS):
            key = f"key {index} {text}"
            message = _message(1, text, metadata={text: text, "list": [text]}, id=f"id-{text}")
            batch += [
                message_event(key, message),
                session_event(_session(key, user_id=text or "u", metadata={"text": text})),
                task_context_event(key, {"text": text, text: [text]}),
                checkpoint_event(key, f"c-{text}", {"text": text}),
            ]
        await store.write_events(batch)
        for index, text in enumerate(HOSTILE_TEXTS):
            key = f"key {index} {text}"
            history = await store.read_history(key, None)
            assert len(history) == 1, f"history of {key!r} collided or was lost"
            assert history[0].content == text
            assert history[0].content.encode("utf-8") == text.encode("utf-8")
            assert history[0].metadata == {text: text, "list": [text]}
            assert history[0].id == f"id-{text}"
            session = await store.read_session(key)
            assert session is not None
            assert session.session_id == key
            assert session.metadata == {"text": text}
            assert await store.read_task_context(key) == {"text": text, text: [text]}
            assert await store.read_checkpoint_document(key, f"c-{text}") == {"text": text}
        assert await store.count_events(ArchiveTables.CONVERSATIONS) == len(HOSTILE_TEXTS)

    async def test_100_kb_content_round_trips(self, store: ColdStore) -> None:
        """A 100 KB message (multi-byte characters included) and a 1 MB document are stored and read back whole.

        Fix: use unbounded text/JSON columns; do not truncate.
        """
        content = ("large assistant answer with ünïcödé and 🙂 " * 3000)[: 100 * 1024]
        message = _message(1, content, role="assistant")
        document = {"blob": "y" * (1024 * 1024), "nested": {"content": content}}
        await store.write_events([message_event("s1", message), task_context_event("s1", document)])
        assert (await store.read_history("s1", 1))[0].content == content
        assert await store.read_task_context("s1") == document

    # -- isolation and persistence --------------------------------------------------------------------------------
    async def test_namespaces_are_isolated(self, store: ColdStore) -> None:
        """Two stores on different namespaces never see each other's archive, even for the same keys.

        Fix: put every table under the namespace (a schema, a database, a table prefix or a key column).
        """
        other = await self.new_store()
        await store.write_events([session_event(_session("s1", user_id="first"), "create"), message_event("s1", _message(1))])
        assert await other.read_session("s1") is None
        assert await other.read_history("s1", None) == []
        assert await other.count_events(ArchiveTables.SESSIONS) == 0
        await other.write_events([session_event(_session("s1", user_id="second"), "create")])
        first = await store.read_session("s1")
        assert first is not None
        assert first.user_id == "first"

    async def test_a_second_store_on_the_same_namespace_sees_the_archive(self, store: ColdStore) -> None:
        """A durable or shared store opened again on the same namespace (a restart, another process) reads what the
        first archived, and writing the same events through it still creates no duplicates. A store declaring
        neither keeps its archive private to the object (a second one starts empty).

        Fix: keep the archive in the server under the namespace; make open() safe to run again on existing
        storage (migrations recorded, CREATE ... IF NOT EXISTS).
        """
        batch = self._mixed_batch()
        await store.write_events(batch)
        settings = getattr(store, "settings", None)
        assert isinstance(settings, StoreSettings), "expose the StoreSettings the store was built with as .settings"
        second = await self.new_store(namespace=settings.namespace)
        if not ({Capability.DURABLE.value, Capability.SHARED.value} & set(store.capabilities)):
            # Declaring neither capability means the archive is private to the object: a second one is empty.
            assert await second.read_session("s1") is None
            assert await second.count_events(ArchiveTables.CONVERSATIONS) == 0
            return
        assert await second.read_session("s1") == _session("s1", request_count=1)
        assert [m.id for m in await second.read_history("s1", None)] == ["m1", "m2"]
        await second.write_events(batch)
        for table in ARCHIVE_TABLES:
            assert await second.count_events(table) == await store.count_events(table)
        assert await store.count_events(ArchiveTables.CONVERSATIONS) == 2
