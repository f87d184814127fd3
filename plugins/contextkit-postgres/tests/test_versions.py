"""Versions and deletes in PostgreSQL's own terms: the columns each write path stores, refused values, one round
trip for read_owner, and an index lookup (never a table scan) for every read of the tiering rules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from contextkit.errors import SerializationError
from contextkit.records import ArchiveEvent, Message, Session
from contextkit.stores import EventHead, OwnerState, StoreSettings
from contextkit.testing.cold import message_event
from contextkit.tiered import events
from contextkit_postgres.cold import PostgresColdStore

pytestmark = pytest.mark.postgres

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _owner_events(owner: str) -> list[ArchiveEvent]:
    """One event of each kind of ``owner`` with versions 1-6, a message, and two deletes (with and without a
    session) at versions 7 and 8."""
    session = Session(owner, "user-1", T0, T0, version=1)
    return [
        events.session_event(session, EventHead("create", f"{owner}-1", _at(1))),
        events.task_context_event(owner, {"t": 2}, 2, EventHead("", f"{owner}-2", _at(2))),
        events.conversation_session_event(
            owner, {"session_id": "p", "session_key": owner}, 3, EventHead("", f"{owner}-3", _at(3))
        ),
        events.checkpoint_document_event(owner, "c1", {"c": 4}, 4, EventHead("", f"{owner}-4", _at(4))),
        events.writes_document_event(owner, "c1", "task", [[5]], 5, EventHead("", f"{owner}-5", _at(5))),
        events.message_event(owner, Message("user", "hi", _at(6), id=f"{owner}-m1"), 1, f"{owner}-6"),
        events.delete_event(owner, 7, 1, session, EventHead("delete", f"{owner}-7", _at(7))),
        events.delete_event(owner, 8, 1, None, EventHead("delete", f"{owner}-8", _at(8))),
    ]


async def _stored(url: str, schema: str, owner: str) -> dict[str, tuple[Any, ...]]:
    """``{event_id: (table, version)}`` of the owner's rows, plus the delete rows' ``(user_id, payload, last_seq)``."""
    conn = await asyncpg.connect(url, timeout=15)
    try:
        found: dict[str, tuple[Any, ...]] = {}
        for table, key in (
            ("context_sessions", "session_id"),
            ("context_conversations", "session_id"),
            ("context_task_contexts", "session_id"),
            ("context_checkpoints", "thread_id"),
            ("context_checkpoint_writes", "thread_id"),
            ("context_conversation_sessions", "session_key"),
        ):
            for row in await conn.fetch(f'SELECT event_id, version FROM "{schema}".{table} WHERE {key} = $1', owner):
                found[row[0]] = (table, row[1])
        for row in await conn.fetch(
            f'SELECT event_id, user_id, payload::text, last_seq FROM "{schema}".context_sessions WHERE session_id = $1',
            owner,
        ):
            found[f"{row[0]} delete"] = (row[1], None if row[2] is None else json.loads(row[2]), row[3])
        return found
    finally:
        await conn.close()


@pytest.fixture
async def handed_in_pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool the application owns: the store always writes through its staging tables."""
    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.mark.parametrize("path", ["copy", "staging", "handed-in pool"])
async def test_versions_and_delete_rows_are_stored_on_every_write_path(
    path: str,
    pg_stores: Callable[..., PostgresColdStore],
    new_settings: Callable[..., StoreSettings],
    postgres_url: str,
    handed_in_pool: asyncpg.Pool,
) -> None:
    """Each row keeps its event's version; a delete keeps last_seq, and one without a session stores user_id and
    payload NULL. "copy": a fresh batch goes straight into the tables; "staging": a batch holding a stored event
    (a retry) is merged through the TEMP tables; "handed-in pool": always the staging tables."""
    options = {"pool": handed_in_pool} if path == "handed-in pool" else {}
    store = pg_stores(new_settings(), **options)
    await store.open()
    batch = _owner_events("o 🙂")
    if path == "staging":
        await store.write_events(batch[:1])
    await store.write_events(batch)
    stored = await _stored(postgres_url, store.schema, "o 🙂")
    assert {k: v for k, v in stored.items() if not k.endswith(" delete")} == {
        e.event_id: (e.table, e.version) for e in batch
    }
    session = batch[0].payload["session"]
    assert stored["o 🙂-1 delete"] == ("user-1", session, None)
    assert stored["o 🙂-7 delete"] == ("user-1", session, 1)
    assert stored["o 🙂-8 delete"] == (None, None, 1)
    assert await store.read_owner("o 🙂") == OwnerState("o 🙂", version=8, last_seq=1, deleted=True)


@pytest.mark.parametrize(
    ("version", "payload"),
    [
        (-1, None),
        (2**63, None),
        (True, None),
        (7, {"event_type": "delete", "session": None, "last_seq": "3"}),
        (7, {"event_type": "delete", "session": None, "last_seq": -1}),
        (7, {"event_type": "update", "session": None}),
    ],
)
async def test_a_malformed_version_or_delete_is_refused_and_nothing_is_written(
    version: Any,
    payload: dict[str, Any] | None,
    pg_stores: Callable[..., PostgresColdStore],
    new_settings: Callable[..., StoreSettings],
) -> None:
    """A version that is no BIGINT >= 0, a delete's last_seq that is no such integer, and a session event other
    than a delete without a session raise SerializationError (the archiver sets the event aside); the batch's
    other events are not written."""
    store = pg_stores(new_settings())
    await store.open()
    good = message_event("s1", Message("user", "kept out", T0, seq=1))
    bad = ArchiveEvent("context_sessions", "s1", payload or {"event_type": "update", "session": _session_dict()}, T0)
    bad = replace(bad, version=version)
    for batch in ([good, bad], [bad, good]):
        with pytest.raises(SerializationError):
            await store.write_events(batch)
    assert await store.count_events("context_sessions") == 0
    assert await store.count_events("context_conversations") == 0


def _session_dict() -> dict[str, Any]:
    return Session("s1", "u1", T0, T0).to_dict()


async def test_read_owner_sends_one_statement_and_nothing_else(
    pg_stores: Callable[..., PostgresColdStore], new_settings: Callable[..., StoreSettings]
) -> None:
    """read_owner is one statement on the wire, and handing the connection back to the store's pool sends no
    reset query: the hot path pays one round trip per owner it does not know."""
    store = pg_stores(new_settings(), min_size=1, max_size=1)
    await store.open()
    await store.write_events(_owner_events("o"))
    await store.read_owner("o")  # asyncpg prepares the statement once per connection
    queries: list[str] = []
    async with store.pool.acquire() as conn:
        conn.add_query_logger(lambda record: queries.append(record.query))
    try:
        state = await store.read_owner("o")
        assert await store.read_owner("never") == OwnerState("never")
    finally:
        async with store.pool.acquire() as conn:
            conn._query_loggers.clear()  # asyncpg keeps loggers as wrapped callbacks: no public way to find ours
    assert state.deleted and state.version == 8
    assert len(queries) == 2, queries


async def test_every_tiering_read_is_an_index_lookup(
    pg_stores: Callable[..., PostgresColdStore], new_settings: Callable[..., StoreSettings], postgres_url: str
) -> None:
    """Each read statement (read_owner, the record reads, the history page, conversation_keys_of) has a plan made
    of index lookups read in index order: no sequential scan and no sort, so its cost follows the owner, not the
    archive. (On tables this small the planner would rightly prefer scans: the plan is asked for with them
    disabled, so a scan or a sort in it means no index serves the statement.)"""
    store = pg_stores(new_settings())
    await store.open()
    batch: list[ArchiveEvent] = []
    for n in range(300):
        owner = f"owner-{n}"
        batch += _owner_events(owner)
        batch += [message_event(owner, Message("user", "x", T0, id=f"{n}-{seq}", seq=seq)) for seq in range(2, 12)]
        batch += [
            events.checkpoint_document_event(owner, f"c{c}", {"c": c}, 10 + c, EventHead("", f"{owner}-c{c}", _at(10 + c)))
            for c in range(2, 12)
        ]
        key = f"conversation-{n}"
        batch.append(events.conversation_session_event(key, {"session_id": f"p{n % 100}", "session_key": key}, 1, EventHead()))
    await store.write_events(batch)
    statements = store._sql
    calls = {
        "read_owner": (statements.owner, ("owner-7",)),
        "read_session": (statements.session, ("owner-7",)),
        "read_history": (statements.history, ("owner-7", 2**62, 0, 58)),
        "read_task_context": (statements.task_context, ("owner-7",)),
        "read_conversation_session": (statements.conversation, ("owner-7",)),
        "conversation_keys_of": (statements.conversation_keys, ("p7",)),
        "read_checkpoint_document": (statements.checkpoint, ("owner-7", "c1")),
        "read_checkpoint_document(None)": (statements.thread_checkpoint, ("owner-7",)),
    }
    conn = await asyncpg.connect(postgres_url, timeout=15)
    try:
        await conn.execute(f'ANALYZE "{store.schema}".context_sessions, "{store.schema}".context_conversations, '
                           f'"{store.schema}".context_task_contexts, "{store.schema}".context_checkpoints, '
                           f'"{store.schema}".context_checkpoint_writes, "{store.schema}".context_conversation_sessions')
        await conn.execute("SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off")
        for name, (sql, args) in calls.items():
            plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args))
            assert "Seq Scan" not in plan and "Sort" not in plan, f"{name} is not served by an index:\n{plan}"
    finally:
        await conn.close()
