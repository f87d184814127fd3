"""The hostile input catalogue, through the public API.

Every input either raises a typed error from :mod:`contextkit.errors` and leaves storage exactly as it was (hot
tier, cold tier and outbox), or is stored and read back byte for byte, from the hot tier and, after the hot tier
lost it, from the cold tier. The catalogue: control characters, lone surrogates, NUL, NaN and infinity, deep
nesting, values over each (configurable) limit, ids that look like other keys or the namespace, SQL
metacharacters in every string field, and configuration values with injected options.

Each regression test of a bug this catalogue found says so in its docstring.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from contextkit import ContextKit
from contextkit.errors import (
    BackendNotFound,
    ConfigError,
    ContextKitError,
    InvalidInput,
    LimitExceeded,
    OwnerUnknown,
    SerializationError,
)
from contextkit.records import ARCHIVE_TABLES
from contextkit.testing.services import missing_service

Call = Callable[[ContextKit], Awaitable[Any]]

#: Printable text that breaks naive SQL, format strings, globs, key building or terminals.
SQL_AND_FRIENDS: tuple[str, ...] = (
    "'; DROP TABLE context_sessions; --",
    "Robert'); DELETE FROM context_conversations WHERE ('1'='1",
    '" OR "1"="1',
    "' OR 1=1 /*",
    "$1 $$dollar$$ ? :name %(name)s",
    "%s %d {0} {} {{}}",
    "a%_b*?[c]^$",
    "\\x00 \\n \\' \\\\",
    "'||(SELECT pg_sleep(5))||'",
    "` OR 1 --",
    "contextkit:session:s1",
    "{slot}:*",
    "E'\\\\x41' ; COPY x TO PROGRAM 'id'",
    "日本語 🙂 e\u0301 \u202eRTL\u202c \u200b zero\ufeffwidth",
)
#: Content and metadata values may also hold control characters (not NUL) and surrounding whitespace.
CONTROL_TEXT: tuple[str, ...] = (
    "line1\nline2\r\n\ttab",
    "\x01\x02\x1b[31mred\x1b[0m\x7f",
    "\u2028\u2029\x85",
    "  padded  ",
    "",
)

BAD_IDS: tuple[Any, ...] = (
    "",
    " ",
    " leading",
    "trailing ",
    "a\x00b",
    "a\x01b",
    "a\nb",
    "a\tb",
    "a\x1bb",
    "a\x7fb",
    "a\x85b",
    "a\u009fb",
    "a\ud800b",
    5,
    None,
    b"bytes",
)


def _deep(levels: int, leaf: Any = 1) -> dict[str, Any]:
    value: Any = leaf
    for _ in range(levels):
        value = {"a": value}
    return value  # type: ignore[no-any-return]


def _deep_list(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
async def kit() -> AsyncIterator[ContextKit]:
    """A kit on the memory hot tier with the memory cold tier (the default limits)."""
    async with ContextKit.from_config({"hot": "memory", "cold": "memory"}, env={}) as kit:
        yield kit


async def _snapshot(kit: ContextKit) -> dict[str, Any]:
    """Everything observable in both tiers (after the archiver drained)."""
    assert kit.archiver is not None and kit.cold is not None
    assert await kit.archiver.flush(5.0)
    stats = await kit.hot.stats()
    return {
        "sessions": sorted(json.dumps(s.to_dict(), sort_keys=True) for s in await kit.list_all_sessions()),
        "stats": (stats.sessions, stats.messages, stats.checkpoints),
        "history": [m.to_dict() for m in await kit.hot.read_history("s1", None)],
        "task": await kit.hot.get_task_context("s1"),
        "checkpoint": await kit.hot.list_checkpoint_documents("t1", 100),
        "writes": await kit.hot.get_writes_documents("t1", "c1"),
        "cold": {table: await kit.cold.count_events(table) for table in ARCHIVE_TABLES},
        "outbox": await kit.archiver.outbox.depth(),
    }


async def _seed(kit: ContextKit) -> None:
    await kit.create_session("s1", "u1", {"k": "v"})
    await kit.add_message("s1", "user", "hello")
    await kit.store_checkpoint("t1", "c1", {"x": 1})
    await kit.put_writes("t1", "c1", "task", [{"w": 1}])


async def _refused(kit: ContextKit, call: Call, error: type[BaseException]) -> None:
    """``call`` raises ``error`` (a ContextKitError) and nothing changes in either tier."""
    await _seed(kit)
    before = await _snapshot(kit)
    with pytest.raises(error) as raised:
        await call(kit)
    assert isinstance(raised.value, ContextKitError), f"{type(raised.value).__name__} is not a contextkit error"
    assert await _snapshot(kit) == before, "a refused call changed storage"


def _user_agent(user: str = "u", agent: str = "a") -> list[dict[str, Any]]:
    return [{"id": user, "type": "user"}, {"id": agent, "type": "agent", "role": "worker"}]


# Every public call that takes an id, with the id in each position.
ID_CALLS: dict[str, Callable[[Any], Call]] = {
    "create_session.session_id": lambda v: lambda k: k.create_session(v, "u1"),
    "create_session.user_id": lambda v: lambda k: k.create_session("s2", v),
    "get_session": lambda v: lambda k: k.get_session(v),
    "update_session": lambda v: lambda k: k.update_session(v, increment_requests=True),
    "update_session.user_id": lambda v: lambda k: k.update_session("s1", {"user_id": v}),
    "end_session": lambda v: lambda k: k.end_session(v),
    "delete_session": lambda v: lambda k: k.delete_session(v),
    "add_message": lambda v: lambda k: k.add_message(v, "user", "x"),
    "get_conversation_history": lambda v: lambda k: k.get_conversation_history(v),
    "compress_conversation": lambda v: lambda k: k.compress_conversation(v),
    "store_task_context": lambda v: lambda k: k.store_task_context(v, {"metadata": {}}),
    "store_checkpoint.thread_id": lambda v: lambda k: k.store_checkpoint(v, "c1", {"x": 1}),
    "store_checkpoint.checkpoint_id": lambda v: lambda k: k.store_checkpoint("t1", v, {"x": 1}),
    # (None is a valid checkpoint id there: "the newest")
    "get_checkpoint": lambda v: lambda k: k.get_checkpoint("t1", "" if v is None else v),
    "put_writes.task_id": lambda v: lambda k: k.put_writes("t1", "c1", v, [1]),
    "create_conversation_session.session_id": lambda v: lambda k: k.create_conversation_session(
        v, _user_agent(), "user_to_agent"
    ),
    "create_conversation_session.participant": lambda v: lambda k: k.create_conversation_session(
        "s1", _user_agent(agent=v), "user_to_agent"
    ),
    "add_agent_communication_message.sender_id": lambda v: lambda k: k.add_agent_communication_message(
        "user_to_agent/s1/u/a", v, "user", None, content="x"
    ),
}


@pytest.mark.parametrize("value", BAD_IDS, ids=repr)
@pytest.mark.parametrize("call", sorted(ID_CALLS))
async def test_a_malformed_id_is_refused_in_every_position_and_nothing_is_written(
    kit: ContextKit, call: str, value: Any
) -> None:
    """Empty, whitespace-padded, control characters (C0, DEL, C1), lone surrogates and non-str ids raise
    InvalidInput before anything is written."""
    await _refused(kit, ID_CALLS[call](value), InvalidInput)


BAD_CONTENT: dict[str, tuple[Any, type[BaseException]]] = {
    "lone surrogate": ("a\ud800b", InvalidInput),
    "NUL": ("a\x00b", InvalidInput),
    "bytes": (b"hello", InvalidInput),
    "None": (None, InvalidInput),
    "over 4 MiB": ("x" * (4 * 1024 * 1024 + 1), LimitExceeded),
    "over 4 MiB in multi-byte characters": ("🙂" * (1024 * 1024 + 1), LimitExceeded),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTENT))
async def test_bad_message_content_is_refused_and_nothing_is_written(kit: ContextKit, case: str) -> None:
    """Content that is not UTF-8 text, holds NUL, or is over max_message_bytes raises before any write, for
    session messages and agent messages alike."""
    content, error = BAD_CONTENT[case]
    await _refused(kit, lambda k: k.add_message("s1", "user", content), error)
    await _refused(kit, lambda k: k.add_agent_communication_message("s1", "u", "user", None, content=content), error)


BAD_METADATA: dict[str, tuple[Any, type[BaseException]]] = {
    "NaN": ({"x": math.nan}, SerializationError),
    "infinity": ({"x": math.inf}, SerializationError),
    "-infinity in a list": ({"x": [1, -math.inf]}, SerializationError),
    "NaN deep inside": (_deep(5, math.nan), SerializationError),
    "int key": ({1: "x"}, SerializationError),
    "tuple key": ({("a",): "x"}, SerializationError),
    "bytes in a set": ({"x": {b"a", b"b"}}, SerializationError),
    "bytes": ({"x": b"raw"}, SerializationError),
    "an object": ({"x": object()}, SerializationError),
    "NUL in a value": ({"x": "a\x00b"}, SerializationError),
    "NUL in a key": ({"a\x00b": 1}, SerializationError),
    "lone surrogate in a value": ({"x": "\ud800"}, SerializationError),
    "nested 33 levels": (_deep(33), LimitExceeded),
    "lists nested 40 levels": ({"x": _deep_list(40)}, LimitExceeded),
    "nested 100,000 levels": (_deep(100_000), LimitExceeded),
    "over 64 KiB": ({"x": "y" * (64 * 1024)}, LimitExceeded),
    "not a mapping": (["a", "list"], InvalidInput),
    "an integer over the int-string digit limit": ({"x": 10**5000}, SerializationError),
    "a negative one deep inside a list": ({"x": [1, _deep(3, -(10**4400))]}, SerializationError),
}

METADATA_CALLS: dict[str, Callable[[Any], Call]] = {
    "create_session": lambda m: lambda k: k.create_session("s2", "u", m),
    "update_session": lambda m: lambda k: k.update_session("s1", {"metadata": m}),
    "add_message": lambda m: lambda k: k.add_message("s1", "user", "x", m),
    "store_checkpoint.metadata": lambda m: lambda k: k.store_checkpoint("t1", "c2", {"x": 1}, m),
    "create_conversation_session": lambda m: lambda k: k.create_conversation_session("s1", _user_agent(), "user_to_agent", m),
    "participant metadata": lambda m: lambda k: k.create_conversation_session(
        "s1", [{"id": "u", "type": "user", "metadata": m}, {"id": "a", "type": "agent", "role": "r"}], "user_to_agent"
    ),
}


def _metadata_cases() -> list[Any]:
    cases = []
    for call in sorted(METADATA_CALLS):
        for case in sorted(BAD_METADATA):
            cases.append(pytest.param(call, case, id=f"{call}-{case}"))
    return cases


@pytest.mark.parametrize(("call", "case"), _metadata_cases())
async def test_bad_metadata_is_refused_everywhere_and_nothing_is_written(kit: ContextKit, call: str, case: str) -> None:
    """NaN/infinity, non-str keys, non-JSON values, NUL, lone surrogates, nesting over max_metadata_depth and size
    over max_metadata_bytes raise SerializationError / LimitExceeded before any write."""
    metadata, error = BAD_METADATA[case]
    await _refused(kit, METADATA_CALLS[call](metadata), error)


async def test_a_lone_surrogate_in_a_metadata_key_is_a_serialization_error(kit: ContextKit) -> None:
    """A metadata key holding a lone surrogate raises SerializationError like a value holding one."""
    await _refused(kit, lambda k: k.create_session("s2", "u", {"\ud800": 1}), SerializationError)


BAD_DOCUMENTS: dict[str, tuple[Call, type[BaseException]]] = {
    "checkpoint data NaN": (lambda k: k.store_checkpoint("t1", "c2", {"x": [math.nan]}), SerializationError),
    "checkpoint data not a mapping": (lambda k: k.store_checkpoint("t1", "c2", ["x"]), InvalidInput),
    "checkpoint data nested 65 levels": (lambda k: k.store_checkpoint("t1", "c2", _deep(65)), LimitExceeded),
    "writes with bytes in a set": (lambda k: k.put_writes("t1", "c1", "task", [{b"raw"}]), SerializationError),
    "writes with infinity": (lambda k: k.put_writes("t1", "c1", "task", [math.inf]), SerializationError),
    "writes as a str": (lambda k: k.put_writes("t1", "c1", "task", "abc"), InvalidInput),
    "task context NaN": (lambda k: k.store_task_context("s1", {"start_time": math.nan}), SerializationError),
    "task context not a mapping": (lambda k: k.store_task_context("s1", ["x"]), InvalidInput),
    "checkpoint data with a 5,000-digit integer": (lambda k: k.store_checkpoint("t1", "c2", {"n": 10**5000}), SerializationError),
    "writes with a 5,000-digit integer": (lambda k: k.put_writes("t1", "c1", "task", [10**5000]), SerializationError),
    "task context with a 5,000-digit integer": (lambda k: k.store_task_context("s1", {"n": [10**5000]}), SerializationError),
    "history limit over max_read": (lambda k: k.get_conversation_history("s1", 100_001), LimitExceeded),
    "history limit negative": (lambda k: k.get_conversation_history("s1", -1), InvalidInput),
    "history limit bool": (lambda k: k.get_conversation_history("s1", True), InvalidInput),
    "list_checkpoints over max_read": (lambda k: k.list_checkpoints("t1", 10**9), LimitExceeded),
    "unknown status": (lambda k: k.update_session("s1", {"status": "active'; --"}), InvalidInput),
    "unknown update field": (lambda k: k.update_session("s1", {"request_count": 10**9}), InvalidInput),
    "processing time NaN": (lambda k: k.update_session("s1", add_processing_time=math.nan), InvalidInput),
    "processing time infinite": (lambda k: k.update_session("s1", add_processing_time=math.inf), InvalidInput),
    "role with a newline": (lambda k: k.add_message("s1", "user\nsystem", "x"), InvalidInput),
    "role over 64 characters": (lambda k: k.add_message("s1", "r" * 65, "x"), LimitExceeded),
    "message type injection": (
        lambda k: k.add_agent_communication_message("s1", "u", "user", None, content="x", message_type="x'; --"),
        InvalidInput,
    ),
    "unknown compaction strategy": (lambda k: k.compress_conversation("s1", "no_such_strategy"), ContextKitError),
}


@pytest.mark.parametrize("case", sorted(BAD_DOCUMENTS))
async def test_bad_documents_and_arguments_are_refused_and_nothing_is_written(kit: ContextKit, case: str) -> None:
    """Checkpoint data, writes, task contexts, limits, statuses, roles and message types are validated before any
    write."""
    call, error = BAD_DOCUMENTS[case]
    await _refused(kit, call, error)


@pytest.mark.parametrize(
    "call",
    [
        lambda k: k.store_checkpoint("t1", "c2", _deep(100_000)),
        lambda k: k.store_checkpoint("t1", "c2", {"x": _deep_list(100_000)}),
        lambda k: k.put_writes("t1", "c1", "task", [_deep(100_000)]),
        lambda k: k.store_task_context("s1", {"metadata": _deep(100_000)}),
    ],
    ids=["checkpoint dict", "checkpoint list", "writes", "task context"],
)
async def test_documents_nested_100000_levels_are_a_limit_error(kit: ContextKit, call: Call) -> None:
    """A document nested far beyond any limit raises LimitExceeded (not RecursionError) and writes nothing."""
    await _refused(kit, call, LimitExceeded)


async def test_a_task_context_holding_an_object_is_a_serialization_error(kit: ContextKit) -> None:
    """A task context with a value JSON cannot hold raises SerializationError."""
    await _refused(kit, lambda k: k.store_task_context("s1", {"metadata": {"x": object()}}), SerializationError)


@pytest.mark.parametrize("hours", [math.nan, math.inf], ids=["nan", "inf"])
async def test_cleanup_with_a_non_finite_idle_time_is_invalid_input(kit: ContextKit, hours: float) -> None:
    """cleanup_expired_sessions(NaN or infinity) raises InvalidInput and removes nothing."""
    await _refused(kit, lambda k: k.cleanup_expired_sessions(hours), InvalidInput)


# -- stored and read back byte for byte ----------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _backends() -> list[str]:
    found = ["memory"]
    if importlib.util.find_spec("contextkit_sqlite") is not None:
        found.append("sqlite")
    return found


@pytest.fixture(params=_backends())
async def tiers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ContextKit]:
    """A kit with a hot and a cold tier of one backend (memory; SQLite, where SQL meets the strings)."""
    name = request.param
    options: dict[str, Any] = {"path": str(tmp_path / "ck.sqlite3")} if name == "sqlite" else {}
    config = {"hot": name, "cold": name, name: options, "namespace": f"ckhostile-{uuid.uuid4().hex[:8]}"}
    async with ContextKit.from_config(config, env={}) as kit:
        yield kit


async def _lose_hot(kit: ContextKit, *ids: str) -> None:
    """Make the hot tier forget ``ids`` (as expiry does) once the archive holds them."""
    assert kit.archiver is not None
    assert await kit.archiver.flush(5.0)
    for sid in ids:
        await kit.hot.delete_session(sid, evict=True)  # as if the hot copy expired


@pytest.mark.parametrize("text", SQL_AND_FRIENDS, ids=range(len(SQL_AND_FRIENDS)))
async def test_sql_metacharacters_round_trip_byte_for_byte_in_every_string_field(tiers: ContextKit, text: str) -> None:
    """A hostile string used as session id, user id, role, content, metadata key and value, task context,
    checkpoint id and data, writes, participant ids and roles, and agent message reads back identical from the hot
    tier, and from the cold tier once the hot tier lost it."""
    kit = tiers
    sid, uid, role = text, f"user {text}", text[:64].strip() or "r"
    metadata = {text: text, "nested": [text, {text: [text]}]}
    await kit.create_session(sid, uid, metadata)
    stored = await kit.add_message(sid, role, text, metadata)
    await kit.store_task_context(sid, {"user_id": uid, "chat_id": sid, "metadata": metadata, "resources": {text: text}})
    await kit.store_checkpoint(sid, text, {text: text}, metadata)
    await kit.put_writes(sid, text, text, [{text: text}])
    key = await kit.create_conversation_session(
        sid, [{"id": text, "type": "user", "metadata": metadata}, {"id": f"agent {text}", "type": "agent", "role": role}],
        "user_to_agent", metadata,
    )
    await kit.add_agent_communication_message(key, text, "user", None, content=text, metadata=metadata)

    async def check(after_loss: bool) -> None:
        session = await kit.get_session(sid)
        assert session is not None and (session.session_id, session.user_id) == (sid, uid)
        assert dict(session.metadata) == metadata
        [message] = await kit.get_conversation_history(sid, 10)
        assert (message.id, message.role, message.content, dict(message.metadata)) == (stored.id, role, text, metadata)
        context = await kit.get_task_context(sid)
        assert context is not None and context.metadata == metadata and context.resources == {text: text}
        checkpoint = await kit.get_checkpoint(sid, text)
        assert checkpoint is not None and checkpoint["data"] == {text: text} and checkpoint["metadata"] == metadata
        if not after_loss:  # writes are hot-tier only (LangGraph's own writes live in the checkpointer)
            assert await kit.get_writes(sid, text) == [({text: text},)]
        conversation = await kit.get_conversation_session(key)
        assert conversation is not None
        assert [p.participant_id for p in conversation.participants] == [text, f"agent {text}"]
        assert dict(conversation.participants[0].metadata) == metadata
        [row] = await kit.get_agent_conversation_history(key)
        assert (row["sender_id"], row["content"], row["metadata"]) == (text, text, metadata)

    await check(after_loss=False)
    await _lose_hot(kit, sid)
    with pytest.raises(OwnerUnknown):  # the hot tier forgot it: only the archive can answer
        await kit.hot.get_session(sid)
    await check(after_loss=True)


@pytest.mark.parametrize("text", CONTROL_TEXT, ids=range(len(CONTROL_TEXT)))
async def test_control_characters_in_content_and_metadata_round_trip(tiers: ContextKit, text: str) -> None:
    """Content and metadata keep newlines, tabs, escape sequences, DEL, C1 and line separators, and surrounding
    whitespace, exactly (ids refuse them, content does not)."""
    kit = tiers
    await kit.create_session("s1", "u1", {"k": text, text: "key"})
    stored = await kit.add_message("s1", "user", text, {"k": text})
    await _lose_hot(kit, "s1")
    session = await kit.get_session("s1")
    assert session is not None and dict(session.metadata) == {"k": text, text: "key"}
    [message] = await kit.get_conversation_history("s1")
    assert (message.content, dict(message.metadata), message.seq) == (text, {"k": text}, stored.seq)


async def test_ids_that_look_like_keys_or_the_namespace_stay_apart(kit: ContextKit) -> None:
    """Ids equal to the namespace, to another id's storage key, or with glob and hash-tag characters each keep
    their own session, history and task context; deleting one touches no other."""
    ns = kit.config.namespace
    ids = [ns, f"{ns}:s1", "s1", f"{ns}:session:s1", f"{ns}:{{s1}}:history", "history:s1", "s1:history", "*", "s*",
           "{s1}", f"{ns}:*", "a%3Ab", "a:b", "a/b"]
    for index, sid in enumerate(ids):
        await kit.create_session(sid, f"user-{index}")
        await kit.add_message(sid, "user", f"message-{index}")
    for doomed in ("*", ns, "s1"):
        assert await kit.delete_session(doomed) is True
    survivors = [sid for sid in ids if sid not in ("*", ns, "s1")]
    assert sorted(s.session_id for s in await kit.list_all_sessions()) == sorted(survivors)
    for index, sid in enumerate(ids):
        if sid in survivors:
            session = await kit.get_session(sid)
            assert session is not None and session.user_id == f"user-{index}"
            assert [m.content for m in await kit.get_conversation_history(sid)] == [f"message-{index}"]


# -- limits are configurable ---------------------------------------------------------------------------------

SMALL_LIMITS = {
    "max_id_length": 8,
    "max_role_length": 4,
    "max_message_bytes": 16,
    "max_metadata_bytes": 32,
    "max_metadata_depth": 2,
    "max_document_bytes": 256,
    "max_read": 5,
}


@pytest.fixture
async def small() -> AsyncIterator[ContextKit]:
    """A kit whose limits are set through the configuration's [limits] table."""
    async with ContextKit.from_config({"hot": "memory", "cold": "memory", "limits": SMALL_LIMITS}, env={}) as kit:
        yield kit


AT_AND_OVER: dict[str, tuple[Call, Call]] = {
    "max_id_length (characters, not bytes)": (
        lambda k: k.create_session("🙂" * 8, "u"),
        lambda k: k.create_session("s" * 9, "u"),
    ),
    "max_role_length": (lambda k: k.add_message("s1", "abcd", "x"), lambda k: k.add_message("s1", "abcde", "x")),
    "max_message_bytes (UTF-8 bytes)": (
        lambda k: k.add_message("s1", "user", "é" * 8),
        lambda k: k.add_message("s1", "user", "é" * 8 + "x"),
    ),
    "max_metadata_bytes": (
        lambda k: k.update_session("s1", {"metadata": {"k": "x" * 24}}),
        lambda k: k.update_session("s1", {"metadata": {"k": "x" * 25}}),
    ),
    "max_metadata_depth": (
        lambda k: k.create_session("s2", "u", {"a": {"b": 1}}),
        lambda k: k.create_session("s2", "u", {"a": {"b": [1]}}),
    ),
    "max_document_bytes": (
        lambda k: k.store_checkpoint("t1", "c2", {"k": "x" * 200}),
        lambda k: k.store_checkpoint("t1", "c2", {"k": "x" * 250}),
    ),
    "max_read": (lambda k: k.get_conversation_history("s1", 5), lambda k: k.get_conversation_history("s1", 6)),
}


@pytest.mark.parametrize("limit", sorted(AT_AND_OVER))
async def test_configured_limits_accept_the_limit_and_refuse_one_more(small: ContextKit, limit: str) -> None:
    """Each limit of the [limits] table applies: a value at the limit is accepted, one unit over raises
    LimitExceeded and writes nothing."""
    at, over = AT_AND_OVER[limit]
    await small.create_session("s1", "u1")
    await at(small)
    before = await small.hot.stats(), [s.to_dict() for s in await small.list_all_sessions()]
    with pytest.raises(LimitExceeded):
        await over(small)
    assert (await small.hot.stats(), [s.to_dict() for s in await small.list_all_sessions()]) == before


async def test_the_default_limits_apply_without_configuration(kit: ContextKit) -> None:
    """Without a [limits] table the documented defaults apply (2,048-character ids, 100,000 read limit)."""
    await kit.create_session("s" * 2048, "u")
    with pytest.raises(LimitExceeded):
        await kit.create_session("s" * 2049, "u")
    await kit.get_conversation_history("s1", 100_000)


# -- configuration with injected values ----------------------------------------------------------------------

BAD_CONFIGS: dict[str, dict[str, Any]] = {
    "namespace with a space": {"namespace": "app other"},
    "namespace with braces": {"namespace": "app{x}"},
    "namespace with a newline (TOML injection)": {"namespace": 'app"\nhot = "redis'},
    "namespace with a tab": {"namespace": "app\tx"},
    "namespace with a colon (another tenant's prefix)": {"namespace": "app:other"},
    "namespace with a glob": {"namespace": "app*"},
    "empty namespace": {"namespace": ""},
    "namespace not a str": {"namespace": 5},
    "unknown top-level key": {"namespace": "a", "password_command": "cat /etc/shadow"},
    "unknown limit": {"limits": {"max_everything": 1}},
    "limit as an expression": {"limits": {"max_read": "10**9"}},
    "negative limit": {"limits": {"max_id_length": -1}},
    "boolean limit": {"limits": {"max_read": True}},
    "NaN ttl": {"session_ttl": "nan"},
    "history cap with a command": {"history_cap": "10; rm -rf /"},
    "fallback not a bool": {"fallback": "yes please"},
    "unknown archiver option": {"archiver": {"exec": "x"}},
    "hot backend with an injected table": {"hot": "memory\n[redis]\nurl = 'redis://evil'"},
    "memory option with an injected value": {"memory": {"max_sessions": "1; DROP"}},
    "unknown memory option": {"memory": {"__class__": "x"}},
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_injected_configuration_values_are_config_errors(case: str) -> None:
    """Config values carrying separators, newlines, commands or unknown options raise ConfigError (building the
    kit does no I/O)."""
    with pytest.raises(ConfigError):
        ContextKit.from_config(BAD_CONFIGS[case], env={})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONTEXTKIT_HOT", "memory\n[redis]"),
        ("CONTEXTKIT_NAMESPACE", "app\nhot=redis"),
        ("CONTEXTKIT_HISTORY_CAP", "10; DROP TABLE x"),
        ("CONTEXTKIT_FALLBACK", "true\nfalse"),
        ("CONTEXT_PERMANENT_BACKEND", "postgres; DROP"),
    ],
)
def test_injected_environment_values_are_config_errors(variable: str, value: str) -> None:
    """Environment variables with injected text raise ConfigError (BackendNotFound for a backend name)."""
    with pytest.raises(ConfigError):
        ContextKit.from_config(None, env={variable: value})


def test_a_malformed_toml_file_is_a_config_error(tmp_path: Path) -> None:
    """A TOML file broken by an injected quote or newline raises ConfigError naming the file, not a TOML error."""
    path = tmp_path / "contextkit.toml"
    path.write_text('namespace = "app"\nhot = "memory" "\n[redis]\nurl = "redis://x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"contextkit\.toml"):
        ContextKit.from_config(path, env={})


def test_a_toml_string_holding_a_table_stays_a_string(tmp_path: Path) -> None:
    """A TOML multi-line string that contains ``[redis]`` text is a value, not a table: as a namespace it is
    refused; it never configures a backend."""
    path = tmp_path / "contextkit.toml"
    path.write_text('namespace = """app\n[redis]\nurl = "redis://evil"\n"""\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="namespace"):
        ContextKit.from_config(path, env={})


def test_an_unknown_backend_name_lists_what_is_installed() -> None:
    """A backend name with injected text is BackendNotFound, whose message lists installed backends and shows the
    name only quoted; a suggested install command names one of contextkit's own backends, never the input."""
    with pytest.raises(BackendNotFound) as raised:
        ContextKit.from_config({"hot": "memory;rm"}, env={})
    assert "memory" in raised.value.installed
    message = str(raised.value)
    assert "named 'memory;rm'" in message and "did you mean 'memory'?" in message
    assert message.count("memory;rm") == 1


@pytest.mark.parametrize("config", [{"history_cap": math.inf}, {"limits": {"max_id_length": math.inf}}], ids=["cap", "limit"])
def test_an_infinite_integer_setting_is_a_config_error(config: dict[str, Any]) -> None:
    """An integer setting of infinity raises ConfigError."""
    with pytest.raises(ConfigError):
        ContextKit.from_config(config, env={})


@pytest.mark.parametrize("namespace", ["app\x00x", "app\x1b[2J", "app\x7f", "n" * 100_000], ids=["nul", "esc", "del", "long"])
def test_a_namespace_with_control_characters_or_huge_length_is_a_config_error(namespace: str) -> None:
    """A namespace holding control characters, or longer than any key prefix should be, raises ConfigError."""
    with pytest.raises(ConfigError):
        ContextKit.from_config({"namespace": namespace}, env={})


# -- tenants sharing one server --------------------------------------------------------------------------------


def _redis_url() -> str | None:
    """The test Redis URL when the plugin is installed and something answers there, else None."""
    if importlib.util.find_spec("contextkit_redis") is None:
        return None
    url = os.environ.get("CONTEXTKIT_TEST_REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0"
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1.0):
            return url
    except OSError:
        return None


async def _tenants(config: dict[str, Any], base: str) -> tuple[ContextKit, ContextKit]:
    first = ContextKit.from_config({**config, "namespace": base}, env={})
    second = ContextKit.from_config({**config, "namespace": f"{base}.index"}, env={})
    await first.open()
    await second.open()
    return first, second


async def _check_tenants(first: ContextKit, second: ContextKit) -> None:
    # Ids in the second tenant spell the first tenant's index keys and session keys.
    ids = [f"#{i}" for i in range(16)] + ["{#0}", "s1", "#index"]
    for sid in ids:
        await first.create_session(sid, "first")
        await second.create_session(sid, "second")
        await second.add_message(sid, "user", "second")
    assert len(await first.list_all_sessions()) == len(ids)
    assert len(await second.list_all_sessions()) == len(ids)
    for sid in ids:
        a, b = await first.get_session(sid), await second.get_session(sid)
        assert a is not None and b is not None and (a.user_id, b.user_id) == ("first", "second")
        assert await first.get_conversation_history(sid) == []
    await first.delete_session("#3")
    assert await second.get_session("#3") is not None


@pytest.mark.redis
async def test_redis_tenants_whose_namespaces_prefix_each_other_stay_apart() -> None:
    """Namespace "X" and namespace "X.index" on one Redis, with ids that spell X's index keys, never see or delete
    each other's sessions and histories."""
    url = _redis_url()
    if url is None:
        missing_service("redis", "contextkit_redis or a Redis at 127.0.0.1:6379 is not available")
    base = f"ckhostile-{uuid.uuid4().hex[:8]}"
    first, second = await _tenants({"hot": "redis", "redis": {"url": url}}, base)
    try:
        await _check_tenants(first, second)
    finally:
        await second.hot.drop_namespace()  # type: ignore[attr-defined]
        await first.hot.drop_namespace()  # type: ignore[attr-defined]
        await first.aclose()
        await second.aclose()


@pytest.mark.redis
async def test_redis_drop_namespace_leaves_a_tenant_with_a_longer_namespace_alone() -> None:
    """drop_namespace() of "X" removes X's keys only, not those of namespace "X.index" (regression: namespaces
    used to allow ':', so "X:*" matched the keys of tenant "X:y")."""
    url = _redis_url()
    if url is None:
        missing_service("redis", "contextkit_redis or a Redis at 127.0.0.1:6379 is not available")
    base = f"ckhostile-{uuid.uuid4().hex[:8]}"
    first, second = await _tenants({"hot": "redis", "redis": {"url": url}}, base)
    try:
        await second.create_session("s1", "second")
        await first.create_session("s1", "first")
        await first.hot.drop_namespace()  # type: ignore[attr-defined]
        assert await second.get_session("s1") is not None
    finally:
        await second.hot.drop_namespace()  # type: ignore[attr-defined]
        await first.aclose()
        await second.aclose()


@pytest.mark.skipif(importlib.util.find_spec("contextkit_sqlite") is None, reason="contextkit_sqlite is not installed")
async def test_sqlite_tenants_in_one_file_stay_apart(tmp_path: Path) -> None:
    """Two namespaces in one SQLite file, one prefixing the other, never see each other's data."""
    first, second = await _tenants({"hot": "sqlite", "sqlite": {"path": str(tmp_path / "shared.sqlite3")}}, "app")
    try:
        await _check_tenants(first, second)
    finally:
        await first.aclose()
        await second.aclose()
