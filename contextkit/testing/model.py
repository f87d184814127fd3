"""Stateful model-based tests: hypothesis state machines that drive a tier, the kit or the LangGraph checkpointer
through random sequences of operations and compare every result with a plain-Python reference model.

Three machines, each built for a given backend by a factory, and a ``run_*`` helper that runs one as a test:

* :func:`hot_store_machine` / :func:`run_hot_store_model`: any :class:`~contextkit.stores.HotStore`. Sessions
  (put, get, update with counters, status and metadata, delete), history streams (append batches, reads with
  random limits, length and bounds, replace), task contexts, conversation sessions, seed checkpoint documents and
  writes, ``scan_sessions``, ``idle_sessions`` and ``stats``. Ids come from a hostile alphabet (``:``, ``{``,
  ``}``, ``*``, spaces, unicode, a 1,500-character id, the store's own namespace); documents hold control
  characters, NUL, big integers and full-precision floats. The history cap is small so trimming happens often.
* :func:`kit_machine` / :func:`run_kit_model`: :class:`~contextkit.ContextKit` on the memory hot tier, with or
  without the memory cold tier: sessions, messages, history reads, compression, cleanup and, with a cold tier,
  the loss of the whole hot tier (its clock jumps past every TTL) followed by read-through.
* :func:`checkpointer_machine` / :func:`run_checkpointer_model`: :class:`contextkit.langgraph.ContextKitSaver`
  against LangGraph's ``InMemorySaver`` as the reference: the same ``aput`` / ``aput_writes`` / ``aget_tuple`` /
  ``alist`` / ``adelete_thread`` calls on both, the same observable results.

A backend runs the hot tier model with a few lines (the factory returns an *opened* store for the settings it
is given; each run of the machine gets a fresh namespace and its own event loop)::

    from contextkit.testing.model import run_hot_store_model

    def test_my_store_matches_the_model(server_url):
        async def make(settings):
            store = MyHotStore(settings, {"url": server_url})
            await store.open()
            return store

        run_hot_store_model(make, cleanup=lambda store: store.drop_namespace())

The machines are bounded (:data:`MODEL_SETTINGS`: 50 examples of at most 30 steps, no deadline; override with
``CONTEXTKIT_MODEL_EXAMPLES`` / ``CONTEXTKIT_MODEL_STEPS``; ``CONTEXTKIT_MODEL_DERANDOMIZE=1`` fixes the seed).
On a failure hypothesis shrinks the sequence and prints the steps, and (``print_blob=True``) a
``@reproduce_failure`` line that replays it exactly. Only test code imports this module (it needs hypothesis).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from contextkit.errors import InvalidInput
from contextkit.records import SESSION_STATUSES, ConversationParticipant, Message, Session, conversation_session_key
from contextkit.stores import HotStore, SessionUpdate, StoreSettings
from contextkit.validation import check_id

__all__ = [
    "HOSTILE_ALPHABET",
    "LONG_ID",
    "MODEL_SETTINGS",
    "checkpointer_machine",
    "hostile_ids",
    "hot_store_machine",
    "json_documents",
    "kit_machine",
    "run_checkpointer_model",
    "run_hot_store_model",
    "run_kit_model",
]

StoreFactory = Callable[[StoreSettings], Awaitable[HotStore]]
Cleanup = Callable[[HotStore], Awaitable[Any]]

#: Characters that break naive key building or SQL: separators, glob and hash-tag characters, quotes, spaces,
#: percent escapes, combining marks and characters outside the BMP. ("/" is left out: conversation keys use it.)
HOSTILE_ALPHABET = ":{}*?[]% \\'\"`;-_.#|=@~aAé\u0301日本🙂ß\u2028"
#: An id far longer than any key prefix (1,500 characters, multi-byte).
LONG_ID = ("ключ-🙂-キー:{x}*" * 120)[:1500]
# Stands for "the store's own namespace" in the id pool; each machine maps it to its namespace.
_NAMESPACE = "\x00namespace"
_POOL = ("s", "a:b", "a:b:c", "{x}", "*", "has space", "é", "🙂", "sessions", "'; DROP TABLE x; --", LONG_ID, _NAMESPACE)


def _usable(value: str) -> bool:
    try:
        check_id(value)
    except InvalidInput:
        return False
    return True


def hostile_ids() -> st.SearchStrategy[str]:
    """Ids valid for :func:`contextkit.validation.check_id`: mostly from a small pool (so operations meet the same
    ids again), sometimes fresh text over :data:`HOSTILE_ALPHABET`."""
    fresh = st.text(alphabet=HOSTILE_ALPHABET, min_size=1, max_size=10).filter(_usable)
    return st.one_of(st.sampled_from(_POOL), st.sampled_from(_POOL), fresh)


def _any_text(max_size: int = 12) -> st.SearchStrategy[str]:
    # Every code point but surrogates and NUL (which the kit refuses, as PostgreSQL cannot store it): control
    # characters, line separators, emoji; plus the hostile alphabet.
    anything = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=max_size)
    return st.one_of(anything, st.text(alphabet=HOSTILE_ALPHABET + "\n\r\t\x7f\x1b", max_size=max_size))


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _any_text(),
)


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any JSON value (finite floats, 64-bit integers, hostile strings), nested a few levels."""
    return st.recursive(
        _JSON_SCALARS,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_any_text(6), inner, max_size=3)),
        max_leaves=max_leaves,
    )


def json_documents(max_leaves: int = 8) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object (metadata, a task context or a checkpoint document)."""
    return st.dictionaries(_any_text(6), json_values(max_leaves), max_size=4)


_INSTANTS = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(timezone.utc)
)
_PROCESSING_TIMES = st.sampled_from([0.0, 0.1, 0.25, 1.5, 7.0])


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


#: The bounds every machine runs with: few examples, short sequences, no deadline (real servers vary), and the
#: reproducing blob printed on failure.
MODEL_SETTINGS = settings(
    max_examples=_env_int("CONTEXTKIT_MODEL_EXAMPLES", 50),
    stateful_step_count=_env_int("CONTEXTKIT_MODEL_STEPS", 30),
    deadline=None,
    print_blob=True,
    # CI may want the same sequences on every run (CONTEXTKIT_MODEL_DERANDOMIZE=1); locally each run explores new ones.
    derandomize=os.environ.get("CONTEXTKIT_MODEL_DERANDOMIZE", "") == "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


class _LoopMachine(RuleBasedStateMachine):
    """A state machine that owns an event loop: async calls run to completion on it, one step at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Awaitable[Any]) -> Any:
        """Run ``awaitable`` on the machine's loop and return its result."""

        async def wrapped() -> Any:
            return await awaitable

        return self.loop.run_until_complete(wrapped())

    def close_loop(self) -> None:
        """Cancel what is left on the loop and close it."""
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _assert_session(got: Session | None, want: Session | None, what: str) -> None:
    if want is None:
        assert got is None, f"{what}: expected no session, got {got!r}"
        return
    assert got is not None, f"{what}: expected {want!r}, got None"
    # Counters are summed by the server (HINCRBYFLOAT, SQL); the float total may differ in the last bits.
    assert _close(got.total_processing_time, want.total_processing_time), (
        f"{what}: total_processing_time {got.total_processing_time!r} != {want.total_processing_time!r}"
    )
    got_rest = replace(got, total_processing_time=0.0, metadata={})
    want_rest = replace(want, total_processing_time=0.0, metadata={})
    assert got_rest == want_rest, f"{what}: {got_rest!r} != {want_rest!r}"
    assert dict(got.metadata) == dict(want.metadata), f"{what}: metadata {got.metadata!r} != {want.metadata!r}"


# ---------------------------------------------------------------------------------------------------------------
# The hot tier
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Stream:
    messages: list[Message] = field(default_factory=list)
    last_seq: int = 0


@dataclass
class HotModel:
    """The reference: what a :class:`~contextkit.stores.HotStore` holds, in plain dicts and lists."""

    history_cap: int
    sessions: dict[str, Session] = field(default_factory=dict)
    streams: dict[str, _Stream] = field(default_factory=dict)
    task_contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    conversation_owner: dict[str, str] = field(default_factory=dict)
    documents: dict[str, OrderedDict[str, dict[str, Any]]] = field(default_factory=dict)
    writes: dict[tuple[str, str], list[tuple[str, Any]]] = field(default_factory=dict)

    def append(self, key: str, messages: Sequence[Message]) -> list[Message]:
        """Assign seqs, append and trim the oldest beyond the cap; the messages as stored."""
        stream = self.streams.setdefault(key, _Stream())
        stored = []
        for message in messages:
            stream.last_seq += 1
            stored.append(message.with_seq(stream.last_seq))
        stream.messages.extend(stored)
        del stream.messages[: max(0, len(stream.messages) - self.history_cap)]
        session = self.sessions.get(key)
        if session is not None and stored:
            # Appending to a session's own stream is activity of that session (never moving backward).
            newest = max(m.timestamp for m in stored)
            self.sessions[key] = replace(session, last_activity=max(session.last_activity, newest))
        return stored

    def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Keep exactly ``messages``; the seq counter never goes down."""
        previous = self.streams.get(key)
        last = previous.last_seq if previous else 0
        self.streams[key] = _Stream(list(messages), max([last, *(m.seq for m in messages)]))

    def read(self, key: str, limit: int | None) -> list[Message]:
        """The newest ``limit`` kept messages, oldest first."""
        kept = self.streams[key].messages if key in self.streams else []
        return list(kept) if limit is None else kept[-limit:] if limit else []

    def bounds(self, key: str) -> tuple[int, int]:
        """``(first kept seq or 0, highest seq)``; ``(0, 0)`` for a stream never written."""
        stream = self.streams.get(key)
        if stream is None:
            return (0, 0)
        return (stream.messages[0].seq if stream.messages else 0, stream.last_seq)

    def delete(self, session_id: str) -> bool:
        """Remove every key family of ``session_id``; True if the record existed."""
        existed = self.sessions.pop(session_id, None) is not None
        self.streams.pop(session_id, None)
        self.task_contexts.pop(session_id, None)
        for key in [k for k, owner in self.conversation_owner.items() if owner == session_id]:
            del self.conversation_owner[key]
            self.conversations.pop(key, None)
            self.streams.pop(key, None)
        self.documents.pop(session_id, None)
        for pair in [p for p in self.writes if p[0] == session_id]:
            del self.writes[pair]
        return existed


def _messages(max_size: int) -> st.SearchStrategy[list[Message]]:
    message = st.builds(
        Message,
        role=st.sampled_from(["user", "assistant", "system", "agent_planner", "tool:{x}"]),
        content=st.one_of(_any_text(40), st.just(""), st.just("x" * 3000)),
        timestamp=_INSTANTS,
        metadata=json_documents(4),
        id=st.uuids().map(lambda u: u.hex),
    )
    return st.lists(message, min_size=0, max_size=max_size)


_SESSION_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(sorted(SESSION_STATUSES)),
        "user_id": hostile_ids(),
        "metadata": json_documents(),
    },
)
_AGENTS = st.sampled_from(["agent", "a:1", "{agent}", "🙂 agent"])
_CHECKPOINT_IDS = st.sampled_from(["cp1", "cp:2", "{cp}", "*", "cp 🙂"])
_TASK_IDS = st.sampled_from(["task", "task:1", "{t}"])


class HotStoreModel(_LoopMachine):
    """Drives a :class:`~contextkit.stores.HotStore` and compares each result with :class:`HotModel`.

    Subclasses (built by :func:`hot_store_machine`) set ``store_factory``, ``cleanup`` and ``history_cap``.
    """

    store_factory: StoreFactory
    cleanup: Cleanup | None = None
    history_cap: int = 4
    namespace_prefix: str = "ckmodel"

    def __init__(self) -> None:
        super().__init__()
        self.namespace = f"{self.namespace_prefix}-{uuid.uuid4().hex[:12]}"
        self.settings = StoreSettings(namespace=self.namespace, history_cap=self.history_cap)
        self.model = HotModel(self.history_cap)
        self.used: set[str] = set()
        self.store: HotStore = self.run(type(self).store_factory(self.settings))

    def teardown(self) -> None:
        """Remove what the run wrote, close the store, then the loop."""
        try:
            if self.cleanup is not None:
                self.run(type(self).cleanup(self.store))  # type: ignore[misc]
        finally:
            try:
                self.run(self.store.aclose())
            finally:
                self.close_loop()

    def _id(self, value: str) -> str:
        return self.namespace if value == _NAMESPACE else value

    def _known_id(self, data: st.DataObject, label: str = "id") -> str:
        """Mostly an id used before (so reads and deletes meet data, and reads after a delete meet its absence),
        else a new one."""
        if self.used and data.draw(st.integers(0, 3), label=f"{label} was used") > 0:
            return str(data.draw(st.sampled_from(sorted(self.used)), label=label))
        value = self._id(data.draw(hostile_ids(), label=label))
        self.used.add(value)
        return value

    def _stream_key(self, data: st.DataObject) -> str:
        keys = sorted(self.model.conversation_owner)
        use_conversation = data.draw(st.booleans(), label="conversation stream")
        if keys and use_conversation:
            return str(data.draw(st.sampled_from(keys), label="key"))
        return self._known_id(data, "key")

    # -- sessions ---------------------------------------------------------------------------------------------
    @rule(
        data=st.data(),
        user_id=hostile_ids(),
        times=st.tuples(_INSTANTS, _INSTANTS),
        requests=st.integers(0, 10**6),
        errors=st.integers(0, 100),
        processing=st.floats(min_value=0, max_value=1e6),
        status=st.sampled_from(sorted(SESSION_STATUSES)),
        metadata=json_documents(),
    )
    def put_session(
        self,
        data: st.DataObject,
        user_id: str,
        times: tuple[datetime, datetime],
        requests: int,
        errors: int,
        processing: float,
        status: str,
        metadata: dict[str, Any],
    ) -> None:
        """put_session stores the record whole; the next get reads it back equal."""
        sid = self._known_id(data)
        created, activity = sorted(times)
        session = Session(sid, self._id(user_id), created, activity, requests, errors, processing, status, metadata)
        self.run(self.store.put_session(session))
        self.model.sessions[sid] = session

    @rule(data=st.data())
    def get_session(self, data: st.DataObject) -> None:
        """get_session returns the modelled record, or None."""
        sid = self._known_id(data)
        _assert_session(self.run(self.store.get_session(sid)), self.model.sessions.get(sid), f"get_session({sid!r})")

    @rule(
        data=st.data(),
        activity=_INSTANTS,
        requests=st.integers(0, 3),
        errors=st.integers(0, 2),
        processing=_PROCESSING_TIMES,
        fields=_SESSION_FIELDS,
    )
    def update_session(
        self, data: st.DataObject, activity: datetime, requests: int, errors: int, processing: float, fields: dict[str, Any]
    ) -> None:
        """Counters add, fields are replaced whole, last_activity moves forward only; None for a missing id."""
        sid = self._known_id(data)
        if "user_id" in fields:
            fields = {**fields, "user_id": self._id(fields["user_id"])}
        update = SessionUpdate(activity, requests, errors, processing, fields)
        got = self.run(self.store.update_session(sid, update))
        before = self.model.sessions.get(sid)
        want = None
        if before is not None:
            want = replace(
                before,
                request_count=before.request_count + requests,
                error_count=before.error_count + errors,
                total_processing_time=before.total_processing_time + processing,
                last_activity=max(before.last_activity, activity),
                **fields,
            )
            self.model.sessions[sid] = want
        _assert_session(got, want, f"update_session({sid!r})")

    @rule(data=st.data())
    def delete_session(self, data: st.DataObject) -> None:
        """delete_session removes every key family and says whether the record existed."""
        sid = self._known_id(data)
        conversations = [k for k, owner in self.model.conversation_owner.items() if owner == sid]
        got = self.run(self.store.delete_session(sid))
        want = self.model.delete(sid)
        assert got is want, f"delete_session({sid!r}) returned {got!r}, the record {'existed' if want else 'did not'}"
        self._check_id(sid)
        for key in conversations:
            assert self.run(self.store.get_conversation_session(key)) is None, f"{key!r} survived delete_session"
            assert self.run(self.store.read_history(key, None)) == [], f"the stream {key!r} survived delete_session"

    def _check_id(self, sid: str) -> None:
        """Every family of ``sid`` agrees with the model."""
        model = self.model
        _assert_session(self.run(self.store.get_session(sid)), model.sessions.get(sid), f"get_session({sid!r})")
        got_task = self.run(self.store.get_task_context(sid))
        assert got_task == model.task_contexts.get(sid), f"get_task_context({sid!r}) = {got_task!r}"
        history = self.run(self.store.read_history(sid, None))
        assert history == model.read(sid, None), f"read_history({sid!r}) = seqs {[m.seq for m in history]}"
        assert self.run(self.store.history_bounds(sid)) == model.bounds(sid), f"history_bounds({sid!r})"
        documents = model.documents.get(sid, OrderedDict())
        listed = self.run(self.store.list_checkpoint_documents(sid, 100))
        assert listed == list(reversed(documents.values())), f"list_checkpoint_documents({sid!r}) = {listed!r}"
        for (thread, cid), writes in model.writes.items():
            if thread == sid:
                got_writes = [tuple(p) for p in self.run(self.store.get_writes_documents(sid, cid))]
                assert got_writes == writes, f"get_writes_documents({sid!r}, {cid!r}) = {got_writes!r}"

    @rule(data=st.data())
    def list_conversation_sessions(self, data: st.DataObject) -> None:
        """list_conversation_sessions(sid) is every conversation registered under sid, sorted by key."""
        sid = self._known_id(data)
        got = self.run(self.store.list_conversation_sessions(sid))
        want = sorted((k, d) for k, d in self.model.conversations.items() if self.model.conversation_owner[k] == sid)
        assert [tuple(pair) for pair in got] == want, f"list_conversation_sessions({sid!r}) = {got!r}"

    @rule(count=st.integers(1, 5))
    def scan_checkpoint_threads(self, count: int) -> None:
        """Paging scan_checkpoint_threads returns every thread holding documents or writes exactly once."""
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(10_000):
            page, cursor = self.run(self.store.scan_checkpoint_threads(cursor, count))
            seen.extend(page)
            if cursor is None:
                break
        want = {t for t, docs in self.model.documents.items() if docs} | {t for t, _ in self.model.writes}
        assert sorted(seen) == sorted(want), f"scan_checkpoint_threads returned {sorted(seen)!r}"

    @rule(data=st.data())
    def read_checkpoint_thread(self, data: st.DataObject) -> None:
        """read_checkpoint_thread is the documents in order of first insertion and the writes by checkpoint id."""
        tid = self._known_id(data, "thread")
        documents, writes = self.run(self.store.read_checkpoint_thread(tid))
        want_documents = list(self.model.documents.get(tid, OrderedDict()).items())
        want_writes = sorted((cid, w) for (t, cid), w in self.model.writes.items() if t == tid)
        assert [tuple(d) for d in documents] == want_documents, f"read_checkpoint_thread({tid!r}) documents {documents!r}"
        got_writes = [(cid, [tuple(p) for p in pairs]) for cid, pairs in writes]
        assert got_writes == want_writes, f"read_checkpoint_thread({tid!r}) writes {got_writes!r}"

    @rule()
    def check_every_id(self) -> None:
        """Every id used so far (deleted ones included) reads back exactly as the model holds it."""
        for sid in sorted(self.used):
            self._check_id(sid)
        for key, document in self.model.conversations.items():
            assert self.run(self.store.get_conversation_session(key)) == document, f"get_conversation_session({key!r})"
            assert self.run(self.store.read_history(key, None)) == self.model.read(key, None), f"read_history({key!r})"

    @rule(count=st.integers(1, 7))
    def scan_sessions(self, count: int) -> None:
        """Paging through scan_sessions returns every session exactly once, equal to the model."""
        seen: list[Session] = []
        cursor: str | None = None
        for _ in range(10_000):
            page, cursor = self.run(self.store.scan_sessions(cursor, count))
            seen.extend(page)
            if cursor is None:
                break
        ids = [s.session_id for s in seen]
        assert sorted(ids) == sorted(self.model.sessions), f"scan returned {sorted(ids)!r}"
        for session in seen:
            _assert_session(session, self.model.sessions[session.session_id], "scan_sessions")

    @rule(before=_INSTANTS, limit=st.integers(1, 6))
    def idle_sessions(self, before: datetime, limit: int) -> None:
        """idle_sessions lists sessions idle before ``before``, oldest first, at most ``limit``."""
        got = self.run(self.store.idle_sessions(before, limit))
        idle = {sid for sid, s in self.model.sessions.items() if s.last_activity < before}
        assert len(got) == len(set(got)) == min(limit, len(idle)), f"idle_sessions returned {got!r} of {sorted(idle)!r}"
        assert set(got) <= idle, f"idle_sessions returned active sessions: {set(got) - idle!r}"
        stamps = [self.model.sessions[sid].last_activity for sid in got]
        assert stamps == sorted(stamps), "idle_sessions is not oldest first"
        if got:  # nothing left out is older than the newest returned
            assert all(self.model.sessions[sid].last_activity >= stamps[-1] for sid in idle - set(got))

    @rule()
    def stats(self) -> None:
        """stats counts sessions exactly; active sessions, messages and checkpoints exactly or -1."""
        got = self.run(self.store.stats())
        model = self.model
        assert got.sessions == len(model.sessions), f"stats.sessions {got.sessions} != {len(model.sessions)}"
        active = sum(1 for s in model.sessions.values() if s.status == "active")
        messages = sum(len(s.messages) for s in model.streams.values())
        checkpoints = sum(len(d) for d in model.documents.values())
        assert got.active_sessions in (active, -1), f"stats.active_sessions {got.active_sessions} != {active}"
        assert got.messages in (messages, -1), f"stats.messages {got.messages} != {messages}"
        assert got.checkpoints in (checkpoints, -1), f"stats.checkpoints {got.checkpoints} != {checkpoints}"

    # -- history ----------------------------------------------------------------------------------------------
    @rule(data=st.data(), messages=_messages(6))
    def append_messages(self, data: st.DataObject, messages: list[Message]) -> None:
        """Appends get consecutive seqs after the stream's last one; the stream keeps its newest ``cap``."""
        key = self._stream_key(data)
        got = self.run(self.store.append_messages(key, messages))
        want = self.model.append(key, messages)
        assert got == want, f"append_messages({key!r}) returned {got!r}, expected {want!r}"

    @rule(data=st.data(), limit=st.one_of(st.none(), st.integers(1, 8)))
    def read_history(self, data: st.DataObject, limit: int | None) -> None:
        """read_history is the newest ``limit`` in order; length and bounds agree with the model."""
        key = self._stream_key(data)
        got = self.run(self.store.read_history(key, limit))
        want = self.model.read(key, limit)
        assert got == want, (
            f"read_history({key!r}, {limit}) returned seqs {[m.seq for m in got]}, expected {[m.seq for m in want]}"
        )
        length = self.run(self.store.history_length(key))
        assert length == len(self.model.read(key, None)), f"history_length({key!r}) = {length}"
        bounds = self.run(self.store.history_bounds(key))
        assert bounds == self.model.bounds(key), f"history_bounds({key!r}) = {bounds}, expected {self.model.bounds(key)}"

    @rule(data=st.data(), messages=_messages(4), start=st.integers(1, 12), keep=st.integers(0, 4))
    def replace_history(self, data: st.DataObject, messages: list[Message], start: int, keep: int) -> None:
        """replace_history keeps exactly what it is given (a summary and the newest kept messages, as compaction
        does); later appends continue after the highest seq ever assigned."""
        key = self._stream_key(data)
        kept = self.model.read(key, None)[-keep:] if keep else []
        room = max(0, min(len(messages), self.history_cap - len(kept)))
        first = kept[0].seq if kept else start + 10
        summary = [m.with_seq(max(1, first - room + i)) for i, m in enumerate(messages[:room])]
        summary = [m for m in summary if m.seq < first] if kept else summary
        new = [*summary, *kept]
        assume(all(a.seq < b.seq for a, b in itertools.pairwise(new)))
        self.run(self.store.replace_history(key, new))
        self.model.replace_history(key, new)

    # -- documents --------------------------------------------------------------------------------------------
    @rule(data=st.data(), document=json_documents())
    def put_task_context(self, data: st.DataObject, document: dict[str, Any]) -> None:
        """A task context is replaced whole."""
        sid = self._known_id(data)
        self.run(self.store.put_task_context(sid, document))
        self.model.task_contexts[sid] = document

    @rule(data=st.data())
    def get_task_context(self, data: st.DataObject) -> None:
        """A task context reads back equal, or None."""
        sid = self._known_id(data)
        got = self.run(self.store.get_task_context(sid))
        assert got == self.model.task_contexts.get(sid), f"get_task_context({sid!r}) = {got!r}"

    @rule(data=st.data(), agent=_AGENTS, metadata=json_documents(4))
    def put_conversation_session(self, data: st.DataObject, agent: str, metadata: dict[str, Any]) -> None:
        """A conversation session document is stored under its key, registered under its session."""
        sid = self._known_id(data)
        participants = (
            ConversationParticipant("mc", "master_controller"),
            ConversationParticipant(agent, "agent", "worker"),
        )
        key = conversation_session_key(sid, "mc_to_agent", participants)
        document = {
            "session_id": sid,
            "session_key": key,
            "session_type": "mc_to_agent",
            "participants": [p.to_dict() for p in participants],
            "metadata": metadata,
        }
        self.run(self.store.put_conversation_session(key, document))
        self.model.conversations[key] = document
        self.model.conversation_owner[key] = sid

    @precondition(lambda self: bool(self.model.conversations))
    @rule(data=st.data())
    def get_conversation_session(self, data: st.DataObject) -> None:
        """A conversation session reads back equal (None once its session was deleted)."""
        key = data.draw(st.sampled_from(sorted(self.model.conversations)))
        got = self.run(self.store.get_conversation_session(key))
        assert got == self.model.conversations[key], f"get_conversation_session({key!r}) = {got!r}"

    @rule(data=st.data(), cid=_CHECKPOINT_IDS, document=json_documents())
    def put_checkpoint_document(self, data: st.DataObject, cid: str, document: dict[str, Any]) -> None:
        """A checkpoint document is stored, replacing an existing one in its place."""
        tid = self._known_id(data, "thread")
        self.run(self.store.put_checkpoint_document(tid, cid, document))
        self.model.documents.setdefault(tid, OrderedDict())[cid] = document

    @rule(data=st.data(), cid=st.one_of(st.none(), _CHECKPOINT_IDS), limit=st.integers(1, 6))
    def read_checkpoint_documents(self, data: st.DataObject, cid: str | None, limit: int) -> None:
        """get(None) is the newest inserted; list is newest inserted first, up to ``limit``."""
        tid = self._known_id(data, "thread")
        documents = self.model.documents.get(tid, OrderedDict())
        newest = documents[next(reversed(documents))] if documents else None
        want = newest if cid is None else documents.get(cid)
        got = self.run(self.store.get_checkpoint_document(tid, cid))
        assert got == want, f"get_checkpoint_document({tid!r}, {cid!r}) = {got!r}"
        listed = self.run(self.store.list_checkpoint_documents(tid, limit))
        assert listed == list(reversed(documents.values()))[:limit], f"list_checkpoint_documents({tid!r}) = {listed!r}"

    @rule(data=st.data(), cid=_CHECKPOINT_IDS, task=_TASK_IDS, writes=st.lists(json_values(4), min_size=1, max_size=3))
    def put_writes_document(self, data: st.DataObject, cid: str, task: str, writes: list[Any]) -> None:
        """Writes of a task are appended, never replaced."""
        tid = self._known_id(data, "thread")
        self.run(self.store.put_writes_document(tid, cid, task, writes))
        self.model.writes.setdefault((tid, cid), []).extend((task, w) for w in writes)

    @rule(data=st.data(), cid=_CHECKPOINT_IDS)
    def get_writes_documents(self, data: st.DataObject, cid: str) -> None:
        """Writes read back in put order."""
        tid = self._known_id(data, "thread")
        got = [tuple(pair) for pair in self.run(self.store.get_writes_documents(tid, cid))]
        assert got == self.model.writes.get((tid, cid), []), f"get_writes_documents({tid!r}, {cid!r}) = {got!r}"


def hot_store_machine(
    store_factory: StoreFactory,
    *,
    cleanup: Cleanup | None = None,
    history_cap: int = 4,
    namespace_prefix: str = "ckmodel",
) -> type[HotStoreModel]:
    """A :class:`HotStoreModel` subclass for a backend.

    :param store_factory: ``async (settings) -> store``: build and open a store for ``settings`` (each run of
        the machine passes a fresh namespace).
    :param cleanup: ``async (store) -> None``, called before the store is closed (remove the namespace).
    :param history_cap: the cap the stores are built with (small, so trimming happens).
    :param namespace_prefix: prefix of the namespaces (visible in a server if a cleanup fails).
    """
    attributes: dict[str, Any] = {
        "store_factory": staticmethod(store_factory),
        "cleanup": None if cleanup is None else staticmethod(cleanup),
        "history_cap": history_cap,
        "namespace_prefix": namespace_prefix,
    }
    return type("HotStoreModelFor", (HotStoreModel,), attributes)


def run_hot_store_model(
    store_factory: StoreFactory,
    *,
    cleanup: Cleanup | None = None,
    history_cap: int = 4,
    run_settings: settings | None = None,
) -> None:
    """Run the hot tier model against the stores ``store_factory`` builds (see :func:`hot_store_machine`);
    raises on the first difference, after printing the shrunk steps and the reproducing blob."""
    machine = hot_store_machine(store_factory, cleanup=cleanup, history_cap=history_cap)
    run_state_machine_as_test(machine, settings=run_settings or MODEL_SETTINGS)


# ---------------------------------------------------------------------------------------------------------------
# The kit
# ---------------------------------------------------------------------------------------------------------------


class ManualClock:
    """Epoch seconds that move only when told (the memory hot tier's ``clock`` option)."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


@dataclass
class _KitSession:
    user_id: str
    status: str = "active"
    requests: int = 0
    errors: int = 0
    processing: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _KitStream:
    hot: list[tuple[int, str, str]] = field(default_factory=list)  # kept in the hot tier: (seq, role, content)
    archived: list[tuple[int, str, str]] = field(default_factory=list)  # every message not deleted (cold tier)
    hot_seq: int = 0  # the highest seq the stream ever had (a delete keeps it; 0: a new stream)


_KIT_POOL = ("s", "a:b", "{x}", "*", "has space", "🙂", "'; --", LONG_ID)
_KIT_IDS = st.sampled_from(_KIT_POOL)


class KitModel(_LoopMachine):
    """Drives :class:`~contextkit.ContextKit` on the memory hot tier (and the memory cold tier when ``with_cold``)
    and compares each result with a model of the seed API's semantics and of the tiering invariants.

    With a cold tier every write is flushed to it before the next step (so the model never depends on how fast
    the archiver runs), history reads return the newest messages not deleted (older ones through read-through),
    a ``lose_hot_tier`` step expires the whole hot tier, and the first call on an id the hot tier lost restores
    it from the archive (its session, and the newest ``history_cap`` messages of its stream) before it runs. A
    delete is for good: neither the session nor its messages come back, and the stream's numbering continues.
    """

    with_cold: bool = False
    history_cap: int = 5

    def __init__(self) -> None:
        super().__init__()
        from contextkit.kit import ContextKit

        self.clock = ManualClock()
        config: dict[str, Any] = {
            "hot": "memory",
            "cold": "memory" if self.with_cold else None,
            "history_cap": self.history_cap,
            "namespace": f"ckkit-{uuid.uuid4().hex[:8]}",
            "memory": {"clock": self.clock},
            # The model flushes after every write; a short batching window keeps that flush quick.
            "archiver": {"flush_interval": 0.001},
        }
        self.kit = ContextKit.from_config(config, env={})
        self.run(self.kit.open())
        self.sessions: dict[str, _KitSession] = {}
        self.in_hot: set[str] = set()  # sessions whose record is in the hot tier right now
        self.streams: dict[str, _KitStream] = {}
        self.known: set[str] = set()  # ids the hot tier knows (with a cold tier: the others are restored first)

    def teardown(self) -> None:
        """Close the kit and the loop."""
        try:
            self.run(self.kit.aclose())
        finally:
            self.close_loop()

    def _settle(self) -> None:
        if self.kit.archiver is not None:
            assert self.run(self.kit.archiver.flush(10.0)), "the archiver did not drain within 10 s"

    def _touch(self, sid: str) -> None:
        """What the first call on ``sid`` after a hot loss does first: restore it from the archive."""
        if not self.with_cold or sid in self.known:
            return
        self.known.add(sid)
        if sid in self.sessions:
            self.in_hot.add(sid)
        stream = self.streams.get(sid)
        if stream is not None:
            stream.hot = stream.archived[-self.history_cap :]

    def _check_session(self, sid: str, got: Session | None) -> None:
        want = self.sessions.get(sid)
        if want is None:
            assert got is None, f"get_session({sid!r}) returned {got!r} for a session that does not exist"
            return
        assert got is not None, f"get_session({sid!r}) returned None"
        seen = (got.user_id, got.status, got.request_count, got.error_count, dict(got.metadata))
        expected = (want.user_id, want.status, want.requests, want.errors, want.metadata)
        assert seen == expected, f"get_session({sid!r}): {seen!r} != {expected!r}"
        assert _close(got.total_processing_time, want.processing)

    @rule(sid=_KIT_IDS, uid=_KIT_IDS, metadata=json_documents(4))
    def create_session(self, sid: str, uid: str, metadata: dict[str, Any]) -> None:
        """create_session (re)starts the record as active with zero counters; history is kept."""
        session = self.run(self.kit.create_session(sid, uid, metadata))
        self._touch(sid)
        assert (session.session_id, session.user_id, session.status, dict(session.metadata)) == (sid, uid, "active", metadata)
        self.sessions[sid] = _KitSession(uid, metadata=metadata)
        self.in_hot.add(sid)
        self._settle()
        self._read_session(sid)

    @rule(sid=_KIT_IDS)
    def get_session(self, sid: str) -> None:
        """get_session returns the modelled record (read through from the cold tier after a hot loss)."""
        self._read_session(sid)

    def _read_session(self, sid: str) -> None:
        got = self.run(self.kit.get_session(sid))
        self._touch(sid)
        self._check_session(sid, got)

    @rule()
    def read_everything(self) -> None:
        """Every id's session and history (newest few, and all kept) agree with the model."""
        for sid in _KIT_POOL:
            self._read_session(sid)
            self._read_history(sid, self.history_cap + 2)
            self._read_history(sid, 0)

    @rule(
        sid=_KIT_IDS,
        fields=st.fixed_dictionaries(
            {}, optional={"status": st.sampled_from(sorted(SESSION_STATUSES)), "metadata": json_documents(4)}
        ),
        requests=st.booleans(),
        error=st.booleans(),
        processing=_PROCESSING_TIMES,
    )
    def update_session(self, sid: str, fields: dict[str, Any], requests: bool, error: bool, processing: float) -> None:
        """update_session applies the change and returns True, or False for an unknown session."""
        got = self.run(self.kit.update_session(sid, fields, requests, processing, error))
        self._touch(sid)
        want = self.sessions.get(sid)
        assert got is (want is not None), f"update_session({sid!r}) returned {got!r}"
        if want is not None:
            want.requests += int(requests)
            want.errors += int(error)
            want.processing += processing
            want.status = fields.get("status", want.status)
            want.metadata = fields.get("metadata", want.metadata)
        self._settle()
        self._read_session(sid)

    @rule(sid=_KIT_IDS, status=st.sampled_from(["completed", "failed", "expired"]))
    def end_session(self, sid: str, status: str) -> None:
        """end_session sets the final status; False for an unknown session."""
        got = self.run(self.kit.end_session(sid, status))
        self._touch(sid)
        want = self.sessions.get(sid)
        assert got is (want is not None), f"end_session({sid!r}) returned {got!r}"
        if want is not None:
            want.status = status
        self._settle()
        self._read_session(sid)

    @rule(sid=_KIT_IDS)
    def delete_session(self, sid: str) -> None:
        """delete_session removes the session and its history for good (also from read-through, also when only the
        archive still held it); a later message continues the numbering."""
        got = self.run(self.kit.delete_session(sid))
        self._touch(sid)
        assert got is (sid in self.sessions), f"delete_session({sid!r}) returned {got!r}"
        self.sessions.pop(sid, None)
        self.in_hot.discard(sid)
        stream = self.streams.get(sid)
        if stream is not None:
            if self.with_cold:
                stream.hot, stream.archived = [], []
            else:
                del self.streams[sid]
        self._settle()

    @rule(sid=_KIT_IDS, count=st.integers(1, 8))
    def add_messages(self, sid: str, count: int) -> None:
        """Several messages in a row (so streams outgrow the cap and the archive serves the older ones)."""
        for index in range(count):
            self.add_message(sid, "user", f"message {index} of {count}")

    @rule(sid=_KIT_IDS, role=st.sampled_from(["user", "assistant", "system"]), content=_any_text(30).filter(str.strip))
    def add_message(self, sid: str, role: str, content: str) -> None:
        """add_message returns the next seq of the stream (continuing the archive's numbering after a hot loss or a
        delete); the hot tier keeps the newest ``history_cap``."""
        message = self.run(self.kit.add_message(sid, role, content))
        self._touch(sid)
        stream = self.streams.setdefault(sid, _KitStream())
        entry = (stream.hot_seq + 1, role, content)
        stream.hot = [*stream.hot, entry][-self.history_cap :]
        stream.hot_seq = entry[0]
        stream.archived.append(entry)
        stored = (message.seq, message.role, message.content)
        assert stored == entry, f"add_message({sid!r}) stored {stored!r}, expected {entry!r}"
        self._settle()

    @rule(sid=_KIT_IDS, limit=st.integers(0, 12))
    def get_history(self, sid: str, limit: int) -> None:
        """The newest ``limit`` messages in order (0: all the hot tier keeps); with a cold tier, older and lost
        messages come from the archive."""
        self._read_history(sid, limit)

    def _read_history(self, sid: str, limit: int) -> None:
        got = [(m.seq, m.role, m.content) for m in self.run(self.kit.get_conversation_history(sid, limit))]
        self._touch(sid)
        stream = self.streams.get(sid, _KitStream())
        if not limit:
            want = stream.hot
        elif not self.with_cold:
            want = stream.hot[-limit:]
        else:
            want = stream.archived[-limit:]
        assert got == want, f"get_conversation_history({sid!r}, {limit}) = {got!r}, expected {want!r}"
        if self.with_cold and limit:
            # read-through refilled the hot stream with what it read, while it had room
            room = self.history_cap - len(stream.hot)
            first = stream.hot[0][0] if stream.hot else stream.hot_seq + 1
            older = [m for m in want if m[0] < first]
            if room > 0 and older:
                stream.hot = [*older[-room:], *stream.hot]

    @rule(sid=_KIT_IDS, keep=st.integers(0, 6))
    def compress(self, sid: str, keep: int) -> None:
        """compress_conversation (truncate) keeps the newest ``keep`` hot messages; the archive keeps all."""
        result = self.run(self.kit.compress_conversation(sid, "truncate", {"keep_recent": keep}))
        self._touch(sid)
        stream = self.streams.setdefault(sid, _KitStream())
        assert result["success"] is True, result
        assert result["original_count"] == len(stream.hot), result
        stream.hot = stream.hot[-keep:] if keep else []
        assert result["compressed_count"] == len(stream.hot), result

    @rule(everything=st.booleans())
    def cleanup(self, everything: bool) -> None:
        """cleanup_expired_sessions(0) removes every session from the hot tier (archived as expired, then
        forgotten as if expired); with a day of idle time allowed it removes none."""
        removed = self.run(self.kit.cleanup_expired_sessions(0 if everything else 24))
        if not everything:
            assert removed == 0
            return
        assert removed == len(self.in_hot), f"cleanup removed {removed}, {len(self.in_hot)} sessions were hot"
        for sid in self.in_hot:
            if self.with_cold:
                self.sessions[sid].status = "expired"
                self.known.discard(sid)
                if sid in self.streams:
                    self.streams[sid].hot = []
            else:
                del self.sessions[sid]
                self.streams.pop(sid, None)
        self.in_hot.clear()
        self._settle()

    @precondition(lambda self: self.with_cold)
    @rule()
    def lose_hot_tier(self) -> None:
        """Every hot key expires at once (the clock jumps past every TTL); reads must come back from the archive."""
        self._settle()
        self.clock.advance(10 * 365 * 86_400.0)
        self.in_hot.clear()
        self.known.clear()
        for stream in self.streams.values():
            stream.hot = []

    @invariant()
    def listed_sessions_are_the_hot_ones(self) -> None:
        """list_all_sessions lists exactly the sessions the hot tier holds."""
        listed = sorted(s.session_id for s in self.run(self.kit.list_all_sessions()))
        assert listed == sorted(self.in_hot), f"list_all_sessions = {listed!r}, expected {sorted(self.in_hot)!r}"


def kit_machine(*, with_cold: bool, history_cap: int = 5) -> type[KitModel]:
    """A :class:`KitModel` subclass: memory hot tier, plus the memory cold tier when ``with_cold``."""
    return type("KitModelFor", (KitModel,), {"with_cold": with_cold, "history_cap": history_cap})


def run_kit_model(*, with_cold: bool, history_cap: int = 5, run_settings: settings | None = None) -> None:
    """Run the kit model (see :func:`kit_machine`)."""
    run_state_machine_as_test(kit_machine(with_cold=with_cold, history_cap=history_cap), settings=run_settings or MODEL_SETTINGS)


# ---------------------------------------------------------------------------------------------------------------
# The LangGraph checkpointer
# ---------------------------------------------------------------------------------------------------------------

_THREADS = st.sampled_from(["t", "t:1", "{t}", "t 🙂", "*"])
_NAMESPACES = st.sampled_from(["", "child:1", "child|2"])
_CHANNELS = ("messages", "count", "{weird}:channel")


class CheckpointerModel(_LoopMachine):
    """Drives a :class:`contextkit.langgraph.ContextKitSaver` and LangGraph's ``InMemorySaver`` with the same
    calls and compares what they return.

    Subclasses set ``store_factory`` (``async (settings) -> opened store with the checkpoints capability``)
    and optionally ``cleanup``.
    """

    store_factory: StoreFactory
    cleanup: Cleanup | None = None

    def __init__(self) -> None:
        super().__init__()
        from langgraph.checkpoint.memory import InMemorySaver

        from contextkit.langgraph import ContextKitSaver

        settings_ = StoreSettings(namespace=f"ckcp-{uuid.uuid4().hex[:12]}")
        self.store = self.run(type(self).store_factory(settings_))
        self.saver = ContextKitSaver(self.store, loop=self.loop)
        self.reference = InMemorySaver()
        # (thread, ns) -> ids put so far, oldest first; and the channel state a next checkpoint starts from.
        self.checkpoints: dict[tuple[str, str], list[str]] = {}
        self.channels: dict[tuple[str, str], tuple[dict[str, Any], dict[str, str]]] = {}
        self.counter = 0

    def teardown(self) -> None:
        """Remove what the run wrote, close the store, then the loop."""
        try:
            if self.cleanup is not None:
                self.run(type(self).cleanup(self.store))  # type: ignore[misc]
        finally:
            try:
                self.run(self.store.aclose())
            finally:
                self.close_loop()

    def _next_id(self) -> str:
        from langgraph.checkpoint.base.id import uuid6

        self.counter += 1
        return str(uuid6(clock_seq=self.counter))

    @rule(
        thread=_THREADS,
        ns=_NAMESPACES,
        updates=st.dictionaries(st.sampled_from(_CHANNELS), json_values(4), max_size=3),
        metadata=st.dictionaries(st.sampled_from(["source", "step", "k:{x}", "run_id"]), _any_text(8), max_size=3),
        fork=st.booleans(),
    )
    def put(self, thread: str, ns: str, updates: dict[str, Any], metadata: dict[str, Any], fork: bool) -> None:
        """aput on both savers: a checkpoint whose updated channels get new versions (and blobs)."""
        from langgraph.checkpoint.base import empty_checkpoint

        key = (thread, ns)
        previous = self.checkpoints.get(key, [])
        parent = previous[0] if fork and previous else (previous[-1] if previous else None)
        values, versions = self.channels.get(key, ({}, {}))
        values, versions = dict(values), dict(versions)
        new_versions = {}
        for channel, value in updates.items():
            number = int(versions.get(channel, "0").split(".")[0]) + 1
            versions[channel] = new_versions[channel] = f"{number:032}.{self.counter:016}"
            values[channel] = value
        checkpoint = empty_checkpoint()
        checkpoint["id"] = self._next_id()
        checkpoint["channel_values"] = dict(values)
        checkpoint["channel_versions"] = dict(versions)
        config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
        if parent is not None:
            config["configurable"]["checkpoint_id"] = parent
        got = self.run(self.saver.aput(config, checkpoint, dict(metadata), new_versions))  # type: ignore[arg-type]
        want = self.run(self.reference.aput(config, checkpoint, dict(metadata), new_versions))  # type: ignore[arg-type]
        assert got == want, f"aput returned {got!r}, InMemorySaver {want!r}"
        self.checkpoints.setdefault(key, []).append(checkpoint["id"])
        self.channels[key] = (values, versions)

    @precondition(lambda self: any(self.checkpoints.values()))
    @rule(
        data=st.data(),
        writes=st.one_of(
            st.lists(st.tuples(st.sampled_from(["messages", "count"]), json_values(3)), min_size=1, max_size=3),
            # Special channels are written alone (each once per call): LangGraph's savers differ on special
            # channels mixed with regular ones (InMemorySaver upserts them, the SQL savers insert-if-absent).
            st.lists(
                st.tuples(st.sampled_from(["__error__", "__interrupt__"]), json_values(3)),
                min_size=1,
                max_size=2,
                unique_by=lambda w: w[0],
            ),
        ),
        task=st.sampled_from(["task-1", "task:2", "{task}"]),
    )
    def put_writes(self, data: st.DataObject, writes: list[tuple[str, Any]], task: str) -> None:
        """aput_writes on both savers, for a checkpoint that exists."""
        key = data.draw(st.sampled_from(sorted(k for k, ids in self.checkpoints.items() if ids)))
        checkpoint_id = data.draw(st.sampled_from(self.checkpoints[key]))
        config = {"configurable": {"thread_id": key[0], "checkpoint_ns": key[1], "checkpoint_id": checkpoint_id}}
        self.run(self.saver.aput_writes(config, writes, task))  # type: ignore[arg-type]
        self.run(self.reference.aput_writes(config, writes, task))  # type: ignore[arg-type]

    @staticmethod
    def _comparable(tuple_: Any) -> Any:
        if tuple_ is None:
            return None
        checkpoint = dict(tuple_.checkpoint)
        writes = sorted(tuple_.pending_writes, key=repr)
        return (tuple_.config, checkpoint, dict(tuple_.metadata), tuple_.parent_config, writes)

    @rule(thread=_THREADS, ns=_NAMESPACES, data=st.data())
    def get_tuple(self, thread: str, ns: str, data: st.DataObject) -> None:
        """aget_tuple agrees with InMemorySaver: the newest checkpoint or a given one, its values and writes."""
        configurable: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
        known = self.checkpoints.get((thread, ns), [])
        by_id = data.draw(st.booleans(), label="by id")
        if known and by_id:
            configurable["checkpoint_id"] = data.draw(st.sampled_from(known))
        config = {"configurable": configurable}
        got = self._comparable(self.run(self.saver.aget_tuple(config)))  # type: ignore[arg-type]
        want = self._comparable(self.run(self.reference.aget_tuple(config)))  # type: ignore[arg-type]
        assert got == want, f"aget_tuple({configurable!r}):\n  contextkit {got!r}\n  reference  {want!r}"

    @rule(
        thread=st.one_of(st.none(), _THREADS),
        ns=_NAMESPACES,
        limit=st.one_of(st.none(), st.integers(1, 4)),
        filter_=st.one_of(st.none(), st.dictionaries(st.sampled_from(["source", "k:{x}"]), _any_text(8), max_size=1)),
    )
    def list_checkpoints(
        self, thread: str | None, ns: str, limit: int | None, filter_: dict[str, Any] | None
    ) -> None:
        """alist agrees with InMemorySaver: the same checkpoints, newest first within a thread and namespace."""
        # The order across threads and namespaces is not part of the contract (InMemorySaver goes namespace by
        # namespace, contextkit by checkpoint id): those listings are compared as sets, without a limit.
        scoped = thread is not None and limit is not None
        configurable: dict[str, Any] = {"thread_id": thread} if thread is not None else {}
        if scoped:
            configurable["checkpoint_ns"] = ns
        config = {"configurable": configurable} if configurable else None

        async def collect(saver: Any) -> list[tuple[str, str, str]]:
            return [
                (t.config["configurable"]["thread_id"], t.config["configurable"]["checkpoint_ns"], t.checkpoint["id"])
                async for t in saver.alist(config, filter=filter_, limit=limit if scoped else None)
            ]

        got = self.run(collect(self.saver))
        want = self.run(collect(self.reference))
        where = f"alist({configurable!r}, filter={filter_!r}, limit={limit if scoped else None})"
        if scoped:
            assert got == want, f"{where}: {got!r} != {want!r}"
        else:
            assert sorted(got) == sorted(want), f"{where}: {got!r} != {want!r}"
            per_ns: dict[tuple[str, str], list[str]] = {}
            for thread_id, namespace, cid in got:
                per_ns.setdefault((thread_id, namespace), []).append(cid)
            assert all(ids == sorted(ids, reverse=True) for ids in per_ns.values()), f"{where} is not newest first"

    @rule(thread=_THREADS)
    def delete_thread(self, thread: str) -> None:
        """adelete_thread removes the thread from both savers."""
        self.run(self.saver.adelete_thread(thread))
        self.run(self.reference.adelete_thread(thread))
        for key in [k for k in self.checkpoints if k[0] == thread]:
            del self.checkpoints[key]
            self.channels.pop(key, None)


def checkpointer_machine(store_factory: StoreFactory, *, cleanup: Cleanup | None = None) -> type[CheckpointerModel]:
    """A :class:`CheckpointerModel` subclass for stores ``store_factory`` builds (memory tier: the default)."""
    attributes: dict[str, Any] = {
        "store_factory": staticmethod(store_factory),
        "cleanup": None if cleanup is None else staticmethod(cleanup),
    }
    return type("CheckpointerModelFor", (CheckpointerModel,), attributes)


def run_checkpointer_model(
    store_factory: StoreFactory, *, cleanup: Cleanup | None = None, run_settings: settings | None = None
) -> None:
    """Run the checkpointer model (see :func:`checkpointer_machine`)."""
    run_state_machine_as_test(checkpointer_machine(store_factory, cleanup=cleanup), settings=run_settings or MODEL_SETTINGS)

