"""What is particular to the SQLite tiers' tiering: the migration of existing files, one transaction for a write and
its event, a session family that expires whole (no meta outlives a record), the update event spelled from the
stored row, the delete events, declared restores (what the hot suite's restore test leaves out: a copy ahead of the
archive, a delete the copy never saw, a backup copied in by another connection), and the indexes the tiering
statements walk."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contextkit.archiver import FileOutbox
from contextkit.codec import archive_loads
from contextkit.errors import BackendUnavailable, InvalidInput, OwnerUnknown
from contextkit.records import ArchiveEvent, Message, Session, utcnow
from contextkit.stores import ArchiveSpec, EventHead, OwnerState, SessionUpdate, StoreSettings, Versioned
from contextkit.testing.hot import HOSTILE_IDS
from contextkit.tiered.events import delete_event, session_event
from contextkit_sqlite import SqliteColdStore, SqliteHotStore
from contextkit_sqlite.database import SqliteDatabase, dumps, parse_options, to_micros
from contextkit_sqlite.rows import session_event_head, session_event_row
from contextkit_sqlite.schema import COLD_MIGRATIONS, HOT_MIGRATIONS
from contextkit_sqlite.testing import copy_database

_T0 = utcnow().replace(microsecond=250_001) - timedelta(hours=1)


def _settings(namespace: str | None = None, **fields: Any) -> StoreSettings:
    return StoreSettings(namespace=namespace or f"t-{uuid.uuid4().hex[:8]}", **fields)


def _session(session_id: str, **fields: Any) -> Session:
    return Session(session_id, fields.pop("user_id", "u"), _T0, _T0, **fields)


def _message(content: str, **fields: Any) -> Message:
    return Message("user", content, _T0, **fields)


def _spec(count: int) -> ArchiveSpec:
    prefix = uuid.uuid4().hex
    return ArchiveSpec("context_conversations", tuple(f"{prefix}-{i}" for i in range(count)), (_T0,) * count)


@pytest.fixture
async def archived(tmp_path: Path) -> AsyncIterator[SqliteHotStore]:
    store = SqliteHotStore(_settings(archived=True), {"path": str(tmp_path / "hot.sqlite3")})
    await store.open()
    yield store
    await store.aclose()


# -- migrating a file written before versions existed -----------------------------------------------------------
async def _version_one_file(path: Path, namespace: str) -> None:
    """A file with the first hot and cold schemas and data as the stores of that version wrote it."""
    for migrations in (HOT_MIGRATIONS[:1], COLD_MIGRATIONS[:1]):
        db = SqliteDatabase(parse_options({"path": str(path)}, 5.0), migrations)
        await db.open()
        await db.close()
    now, later = to_micros(_T0), utcnow().timestamp() + 3600
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO ck_sessions VALUES (?, 's', 'u', ?, ?, 4, 0, 0.5, 'active', '{\"k\":\"v\"}', ?)",
            (namespace, now, now, later),
        )
        conn.execute("INSERT INTO ck_streams VALUES (?, 's', 7, 2, ?)", (namespace, later))
        for pos, seq in ((1, 6), (2, 7)):
            conn.execute(
                "INSERT INTO ck_messages VALUES (?, 's', ?, ?, ?, 'user', ?, ?, '{}')",
                (namespace, pos, seq, f"id{seq}", f"m{seq}", now),
            )
        conn.execute("INSERT INTO ck_task_contexts VALUES (?, 's', '{\"t\":1}', ?)", (namespace, later))
        conn.execute(
            "INSERT INTO ck_conversation_sessions VALUES (?, 'k', 's', '{\"session_id\":\"s\",\"session_key\":\"k\"}', ?)",
            (namespace, later),
        )
        old = session_event(_session("s", request_count=9), EventHead("update", "old-1", _T0))
        conn.execute(
            "INSERT INTO context_sessions (namespace, event_id, key, created_at, payload, user_id, event_type) "
            "VALUES (?, 'old-1', 's', ?, ?, 'u', 'update')",
            (namespace, now, dumps(dict(old.payload))),
        )
        conn.execute(
            "INSERT INTO context_conversation_sessions (namespace, event_id, key, created_at, payload) "
            "VALUES (?, 'old-2', 'k', ?, ?)",
            (namespace, now, dumps({"session": {"session_id": "s", "session_key": "k"}})),
        )


async def test_a_file_of_the_first_schema_is_migrated_and_its_owners_stay_known(tmp_path: Path) -> None:
    """Opening a file written before versions existed migrates it: every owner holding data gets its meta (so an
    archived store knows it and raises no OwnerUnknown), the stream's seq counter moves into it (the next message
    is 8), versions start at 1 above the archive's version-0 rows, and the archive's old rows read back, lose to a
    versioned row whatever its time, and are found by conversation_keys_of."""
    path, namespace = tmp_path / "old.sqlite3", "old-app"
    await _version_one_file(path, namespace)
    hot = SqliteHotStore(_settings(namespace, archived=True), {"path": str(path)})
    cold = SqliteColdStore(_settings(namespace), {"path": str(path)})
    await hot.open()
    await cold.open()
    try:
        session = await hot.get_session("s")
        assert session is not None and (session.request_count, session.version) == (4, 0)
        assert await hot.history_bounds("s") == (6, 7)
        assert await hot.get_task_context("s") == {"t": 1}
        assert await hot.get_conversation_session("k") == {"session_id": "s", "session_key": "k"}
        [message] = await hot.append_messages("s", [_message("m8")], archive=_spec(1))
        assert message.seq == 8
        updated = await hot.update_session("s", SessionUpdate(activity=_T0, requests=1), archive=EventHead("update"))
        assert updated is not None and (updated.request_count, updated.version) == (5, 1)
        with closing(sqlite3.connect(path)) as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(ck_streams)")]
            epochs = conn.execute("SELECT DISTINCT epoch FROM ck_owners").fetchall()
            restores = conn.execute("SELECT COUNT(*) FROM ck_restores").fetchone()[0]
        assert "last_seq" not in columns
        # hot version 3: every meta at epoch 0, no restore declared, so no owner is stale
        assert (epochs, restores) == ([(0,)], 0)

        archived = await cold.read_session("s")
        assert archived is not None and (archived.request_count, archived.version) == (9, 0)
        newer = replace(_session("s", request_count=10), version=1)
        await cold.write_events([session_event(newer, EventHead("update", "new-1", _T0 - timedelta(days=1)))])
        archived = await cold.read_session("s")
        assert archived is not None and (archived.request_count, archived.version) == (10, 1)
        assert await cold.conversation_keys_of("s") == ["k"]
        assert (await cold.read_owner("s")).version == 1
    finally:
        await hot.aclose()
        await cold.aclose()


# -- one transaction for a write and its event ------------------------------------------------------------------
async def test_a_write_whose_event_cannot_be_stored_writes_nothing(archived: SqliteHotStore) -> None:
    """While the outbox table refuses inserts (a trigger aborts them), every write kind raises BackendUnavailable
    and leaves nothing behind: no record, no version taken, no seq taken. Once it accepts them again, the next
    writes take the versions and seqs the failed ones would have taken."""
    owner = "atomic"
    await archived.restore_owner(OwnerState(owner))
    await archived.put_session(_session(owner), archive=EventHead("create"))
    outbox = archived.outbox()
    await outbox.ack([e.event_id for e in await outbox.peek(10)])
    path = archived.options.path
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON {archived.outbox_table} BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    head = EventHead("update")
    writes: list[Callable[[], Awaitable[Any]]] = [
        lambda: archived.put_session(_session(owner, request_count=50), task_context={"t": 0}, archive=head),
        lambda: archived.update_session(owner, SessionUpdate(activity=_T0, requests=1), archive=head),
        lambda: archived.append_messages(owner, [_message("lost")], archive=_spec(1)),
        lambda: archived.put_task_context(owner, {"t": 1}, archive=head),
        lambda: archived.put_conversation_session(owner, {"session_id": owner}, archive=head),
        lambda: archived.put_checkpoint_document(owner, "c1", {"c": 1}, archive=head),
        lambda: archived.put_writes_document(owner, "c1", "task", [1], archive=head),
        lambda: archived.delete_session(owner, archive=EventHead("delete")),
    ]
    for write in writes:
        with pytest.raises(BackendUnavailable, match="refused"):
            await write()
    session = await archived.get_session(owner)
    assert session is not None and (session.request_count, session.version) == (0, 1)
    assert await archived.read_history(owner, None) == []
    assert await archived.get_task_context(owner) is None
    assert await archived.get_conversation_session(owner) is None
    assert await archived.get_checkpoint_document(owner, None) is None
    assert await outbox.depth() == 0
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER refuse")
    updated = await archived.update_session(owner, SessionUpdate(activity=_T0, requests=1), archive=head)
    assert updated is not None and updated.version == 2
    [message] = await archived.append_messages(owner, [_message("kept")], archive=_spec(1))
    assert message.seq == 1
    assert await outbox.depth() == 2
    await outbox.aclose()


# -- a session family expires whole -------------------------------------------------------------------------------
async def test_a_write_to_any_record_of_a_family_keeps_the_whole_family_and_no_meta_outlives_it(tmp_path: Path) -> None:
    """With a 2 s session TTL: a task context written 1.2 s after the session keeps the session (and a
    conversation session registered under it, and its stream) alive past the session's own two seconds; once
    the whole family is idle for a TTL, every call on its owners raises OwnerUnknown (their metas went with
    their records, so the archive is asked instead of an empty answer). The margins are 0.8 s either way."""
    store = SqliteHotStore(_settings(archived=True, session_ttl=2.0), {"path": str(tmp_path / "ttl.sqlite3")})
    await store.open()
    try:
        for owner in ("s", "s/agent"):
            await store.restore_owner(OwnerState(owner))
        await store.put_session(_session("s"), archive=EventHead("create"))
        await store.put_conversation_session("s/agent", {"session_id": "s"}, archive=EventHead())
        await store.append_messages("s/agent", [_message("hello")], archive=_spec(1))
        await asyncio.sleep(1.2)
        await store.put_task_context("s", {"t": 1}, archive=EventHead())
        await asyncio.sleep(1.2)
        assert await store.get_session("s") is not None
        assert await store.get_conversation_session("s/agent") == {"session_id": "s"}
        assert [m.content for m in await store.read_history("s/agent", None)] == ["hello"]
        await asyncio.sleep(2.0)
        for call in (
            lambda: store.get_session("s"),
            lambda: store.get_task_context("s"),
            lambda: store.get_conversation_session("s/agent"),
            lambda: store.read_history("s/agent", None),
        ):
            with pytest.raises(OwnerUnknown):
                await call()
    finally:
        await store.aclose()


# -- the update event, spelled from the stored row ----------------------------------------------------------------
@pytest.mark.parametrize("text", [*HOSTILE_IDS, 'quote " back \\ slash', "\u2028 line sep", "🙂 日本語"])
def test_the_update_event_is_the_one_session_event_builds(text: str) -> None:
    """The update's event, completed from the stored columns in the transaction, means exactly the event
    contextkit.tiered.events.session_event builds for that session (hostile strings, unicode, large and float
    numbers, an infinite total)."""
    session = Session(
        f"id {text}",
        f"user {text}",
        _T0,
        _T0 + timedelta(seconds=1, microseconds=7),
        request_count=2**62,
        error_count=3,
        total_processing_time=0.1 + 0.2,
        status="completed",
        metadata={text: [text, 1.5, 2**70, None, {"deep": text}]},
        version=41,
    )
    head = EventHead("end", f"ev {text}", _T0)
    record = (
        session.session_id,
        session.user_id,
        to_micros(session.created_at),
        to_micros(session.last_activity),
        session.request_count,
        session.error_count,
        session.total_processing_time,
        session.status,
        dumps(dict(session.metadata)),
        session.version,
    )
    row = session_event_row(session_event_head(session.session_id, head), record)
    assert row[:2] == (head.event_id, head.created_at.isoformat())
    assert ArchiveEvent.from_dict(archive_loads(row[2])).to_dict() == session_event(session, head).to_dict()
    infinite = (*record[:6], float("inf"), *record[7:])
    body = archive_loads(session_event_row(session_event_head(session.session_id, head), infinite)[2])
    assert body["payload"]["session"]["total_processing_time"] == float("inf")


# -- deletes -----------------------------------------------------------------------------------------------------------
async def test_the_delete_event_of_each_removed_owner_is_written_with_the_delete(archived: SqliteHotStore) -> None:
    """A delete writes one event per removed owner (the session's with the session it removed, each conversation
    session's without), under versions above everything of each owner, in the delete's transaction; the
    tombstones answer reads, and a delete of a tombstone writes nothing."""
    await archived.restore_owner(OwnerState("s", version=10, last_seq=4))
    await archived.restore_owner(OwnerState("s:c", version=3))
    stored = await archived.put_session(_session("s"), archive=EventHead("create"))
    await archived.put_conversation_session("s:c", {"session_id": "s"}, archive=EventHead())
    outbox = archived.outbox()
    await outbox.ack([e.event_id for e in await outbox.peek(10)])
    head = EventHead("delete", "del-1", _T0)
    assert await archived.delete_session("s", archive=head) is True
    events = {e.key: e for e in await outbox.peek(10)}
    assert events["s"].to_dict() == delete_event("s", 12, 4, stored, head).to_dict()
    assert (events["s:c"].version, events["s:c"].payload) == (5, {"event_type": "delete", "session": None, "last_seq": 0})
    await outbox.ack([e.event_id for e in events.values()])
    assert await archived.get_session("s") is None and await archived.get_conversation_session("s:c") is None
    assert await archived.delete_session("s", archive=EventHead("delete")) is False
    assert await outbox.depth() == 0
    await outbox.aclose()


# -- declared restores ----------------------------------------------------------------------------------------------
async def _stale(call: Awaitable[Any]) -> None:
    with pytest.raises(OwnerUnknown) as raised:
        await call
    assert raised.value.stale is True


async def test_reconciling_keeps_what_the_copy_holds_newer_than_the_archive(archived: SqliteHotStore) -> None:
    """A stale owner whose copy is ahead of the archive (writes not archived yet when the backup was taken and
    the outbox lost with it) keeps its records and stream: only what the archive holds newer replaces them."""
    await archived.restore_owner(OwnerState("s"))
    await archived.put_session(_session("s", request_count=3), archive=EventHead("create"))
    await archived.update_session("s", SessionUpdate(activity=_T0, requests=1), archive=EventHead("update"))
    await archived.append_messages("s", [_message("kept")], archive=_spec(1))
    await archived.mark_restored()
    older = replace(_session("s", request_count=3), version=1)
    await archived.restore_owner(OwnerState("s", version=1, session=older, history=()))
    session = await archived.get_session("s")
    assert session is not None and (session.request_count, session.version) == (4, 2)
    assert [m.content for m in await archived.read_history("s", 10)] == ["kept"]


async def test_a_delete_the_copy_never_saw_is_applied_by_the_reconcile(archived: SqliteHotStore) -> None:
    """When the archive's newest write of a stale owner is a delete above the copy's versions, the reconcile
    removes what the copy holds and leaves a tombstone: reads answer nothing, a new session continues the
    versions above the delete and a new message the numbering."""
    await archived.restore_owner(OwnerState("s"))
    await archived.put_session(_session("s"), task_context={"t": 1}, archive=EventHead("create"))
    await archived.append_messages("s", [_message("gone")], archive=_spec(1))
    await archived.mark_restored()
    await archived.restore_owner(OwnerState("s", version=5, last_seq=3, deleted=True))
    assert await archived.get_session("s") is None
    assert await archived.get_task_context("s") is None
    assert await archived.read_history("s", 10) == []
    stored = await archived.put_session(_session("s"), archive=EventHead("create"))
    assert stored.version == 6
    [message] = await archived.append_messages("s", [_message("new")], archive=_spec(1))
    assert message.seq == 4


async def test_a_backup_restored_by_another_store_reaches_the_open_one_with_its_epoch(tmp_path: Path) -> None:
    """mark_restored(backup) from another connection (another process, the CLI) copies the backup into the file
    with the new epoch in the same step: the store that stayed open reads the backup's rows and finds its owners
    stale at once. A backup that is not a contextkit hot file, or is the file itself, is refused with InvalidInput
    and the file is left as it was."""
    path, backup = tmp_path / "hot.sqlite3", tmp_path / "backup.sqlite3"
    settings = _settings(archived=True)
    live = SqliteHotStore(settings, {"path": str(path)})
    operator = SqliteHotStore(settings, {"path": str(path)})
    await live.open()
    await operator.open()
    try:
        await live.restore_owner(OwnerState("s"))
        await live.append_messages("s", [_message("m1")], archive=_spec(1))
        copy_database(path, backup)
        await live.append_messages("s", [_message("m2")], archive=_spec(1))
        plain = tmp_path / "plain.sqlite3"
        with closing(sqlite3.connect(plain)) as conn:
            conn.execute("CREATE TABLE t (x)")
        for bad, needle in ((plain, "not a contextkit SQLite hot file"), (path, "is the hot file itself")):
            with pytest.raises(InvalidInput, match=needle):
                await operator.mark_restored(str(bad))
        assert [m.content for m in await live.read_history("s", 10)] == ["m1", "m2"]
        assert await operator.mark_restored(str(backup)) == 1
        await _stale(live.read_history("s", 10))
        await live.restore_owner(OwnerState("s", last_seq=2, history=(_message("m1", seq=1), _message("m2", seq=2))))
        [message] = await live.append_messages("s", [_message("m3")], archive=_spec(1))
        assert message.seq == 3
    finally:
        await live.aclose()
        await operator.aclose()


async def test_a_store_without_a_cold_tier_ignores_a_declared_restore(tmp_path: Path) -> None:
    """Without a cold tier there is no archive to reconcile with: a declared restore changes nothing a caller sees."""
    store = SqliteHotStore(_settings(), {"path": str(tmp_path / "plain.sqlite3")})
    await store.open()
    try:
        await store.put_session(_session("s"))
        assert (await store.health())["restore_epoch"] == 0
        assert await store.mark_restored() == 1
        assert (await store.health())["restore_epoch"] == 1
        assert await store.get_session("s") is not None
        [message] = await store.append_messages("s", [_message("m")])
        assert message.seq == 1
    finally:
        await store.aclose()


# -- the indexes the tiering statements walk ----------------------------------------------------------------------
async def _traced(db: SqliteDatabase) -> list[str]:
    """Start recording every statement ``db``'s connection runs (with its parameters expanded)."""
    seen: list[str] = []
    await db.run(lambda conn: conn.set_trace_callback(seen.append))
    return seen


def _plans(path: Path, statements: list[str]) -> dict[str, str]:
    """The query plan of each recorded data statement (transaction control, DDL and pragmas left out)."""
    plans = {}
    with sqlite3.connect(path) as conn:
        for sql in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
                continue
            plans[sql] = " | ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
    return plans


async def test_every_statement_of_the_tiering_paths_is_an_index_lookup(tmp_path: Path) -> None:
    """Every statement the hot tier runs for restores, writes of each kind, deletes and reads, and every statement
    the cold tier runs for read_owner, the reads of each record, histories and conversation_keys_of, searches an
    index for its key: none scans a table, and none walks a namespace's expiry index (what SQLite picks, without
    statistics, for "session_id = ? AND expires_at > ?" unless told otherwise), so their cost does not grow with
    the number of owners.

    Fix: give the statement the index it needs (INDEXED BY, or a term SQLite can use)."""
    path = tmp_path / "plans.sqlite3"
    hot = SqliteHotStore(_settings(archived=True), {"path": str(path)})
    cold = SqliteColdStore(_settings(), {"path": str(path)})
    await hot.open()
    await cold.open()
    try:
        statements = await _traced(hot._db)
        await hot.restore_owner(OwnerState("s", version=2, session=replace(_session("s"), version=2)))
        await hot.restore_owner(OwnerState("s:c"))
        await hot.put_session(_session("s"), task_context={"t": 0}, archive=EventHead("create"))
        await hot.update_session("s", SessionUpdate(activity=_T0, requests=1), archive=EventHead("update"))
        await hot.put_conversation_session("s:c", {"session_id": "s"}, archive=EventHead())
        await hot.append_messages("s:c", [_message("a")], archive=_spec(1))
        await hot.append_messages("s", [_message("b")], archive=_spec(1))
        await hot.put_task_context("s", {"t": 1}, archive=EventHead())
        await hot.put_checkpoint_document("s", "c1", {"c": 1}, archive=EventHead())
        await hot.put_writes_document("s", "c1", "task", [1], archive=EventHead())
        await hot.backfill_history("s", [_message("older", seq=0)])
        await hot.list_conversation_sessions("s")
        await hot.read_history("s", 10)
        await hot.history_bounds("s")
        await hot.get_checkpoint_document("s", None)
        await hot.mark_restored()
        state = OwnerState(
            "s", version=20, last_seq=9, session=replace(_session("s"), version=19),
            task_context=Versioned(20, {"t": 2}), history=(_message("tail", seq=9),),
        )
        await hot.restore_owner(state)
        await hot.mark_restored()
        await hot.restore_owner(OwnerState("s", version=30, last_seq=9, deleted=True))
        await hot.restore_owner(OwnerState("s:c", version=5, last_seq=1))
        await hot.delete_session("s", archive=EventHead("delete"))
        cold_statements = await _traced(cold._db)
        events = [
            session_event(replace(_session("s"), version=1), EventHead("create", "e1", _T0)),
            delete_event("s", 2, 0, None, EventHead("delete", "e2", _T0)),
        ]
        await cold.write_events(events)
        await cold.read_owner("s")
        await cold.read_session("s")
        await cold.read_task_context("s")
        await cold.read_conversation_session("s")
        await cold.read_checkpoint_document("s", None)
        await cold.read_checkpoint_document("s", "c1")
        await cold.read_history("s", 10, 5)
        await cold.conversation_keys_of("s")
    finally:
        await hot.aclose()
        await cold.aclose()
    plans = _plans(path, [*statements, *cold_statements])
    assert len(plans) > 60
    walks = [
        (sql, plan)
        for sql, plan in plans.items()
        # The sweep walks the expiry indexes on purpose; a scan of a one-row subquery or of no table is no walk.
        if "expires_at <=" not in sql and (re.search(r"SCAN (?!CONSTANT ROW|\(subquery)", plan) or "_expiry" in plan)
    ]
    assert walks == []


async def test_the_outbox_of_an_archived_store_holds_one_event_per_write_in_commit_order(archived: SqliteHotStore) -> None:
    """Concurrent writes of one owner from one process: the outbox holds one event per acknowledged write, and in
    outbox order the versions grow (the order the transactions committed), so the archive can trust them."""
    owner = "ordered"
    await archived.restore_owner(OwnerState(owner))
    await archived.put_session(_session(owner), archive=EventHead("create"))

    async def bump(i: int) -> None:
        if i % 3 == 0:
            await archived.put_task_context(owner, {"i": i}, archive=EventHead())
        else:
            assert await archived.update_session(owner, SessionUpdate(activity=_T0, requests=1), archive=EventHead("update"))

    await asyncio.gather(*(bump(i) for i in range(60)))
    outbox: FileOutbox = archived.outbox()
    events = await outbox.peek(1000)
    await outbox.aclose()
    versions = [e.version for e in events]
    assert versions == list(range(1, 62))
    session = await archived.get_session(owner)
    assert session is not None and session.request_count == 40


async def test_drop_namespace_empties_its_namespace_only(tmp_path: Path) -> None:
    """drop_namespace deletes every row of the store's namespace (records, owners, tombstones, checkpoints, the
    outbox's events), after which an archived store knows none of its owners; another namespace in the file keeps
    everything."""
    path = str(tmp_path / "two.sqlite3")
    mine = SqliteHotStore(_settings("app", archived=True), {"path": path})
    other = SqliteHotStore(_settings("app2", archived=True), {"path": path})
    await mine.open()
    await other.open()
    try:
        for store in (mine, other):
            await store.restore_owner(OwnerState("s"))
            await store.put_session(_session("s"), task_context={"t": 1}, archive=EventHead("create"))
            await store.append_messages("s", [_message("m")], archive=_spec(1))
            await store.put_checkpoint_document("s", "c1", {"c": 1}, archive=EventHead())
        assert await mine.drop_namespace() > 0
        with pytest.raises(OwnerUnknown):
            await mine.get_session("s")
        outbox = mine.outbox()
        assert await outbox.depth() == 0
        await outbox.aclose()
        assert await other.get_session("s") is not None
        assert [m.content for m in await other.read_history("s", None)] == ["m"]
        outbox = other.outbox()
        assert await outbox.depth() == 4
        await outbox.aclose()
    finally:
        await mine.aclose()
        await other.aclose()
