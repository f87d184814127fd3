"""Versions and deletes in the ClickHouse archive (migration 002): what the conformance suite cannot see from
outside: an archive from before versions existed upgraded in place, the stored rows of an owner's delete,
reads that do not wait for merges, and the tie-breaker of rows that share a version and a time."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from contextkit.errors import SerializationError
from contextkit.records import ArchiveEvent, Message, Session
from contextkit.stores import EventHead, OwnerState, Versioned
from contextkit.tiered import events as core_events
from contextkit_clickhouse import ClickHouseColdStore
from contextkit_clickhouse.schema import TABLE_COLUMNS, load_migrations, migrations_table_ddl

pytestmark = pytest.mark.clickhouse

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def message(seq: int, content: str = "") -> Message:
    return Message("user", content or f"message {seq}", at(seq), {"n": seq}, id=f"m-{seq}", seq=seq)


async def legacy_store(store: ClickHouseColdStore) -> ClickHouseColdStore:
    """A second store on fresh tables shaped as before migration 002 (001 applied and recorded, nothing else)."""
    old = ClickHouseColdStore(replace(store.settings, namespace=store.settings.namespace + "_old"), {"url": store.options.target})
    old._client = store._require_client()  # share the connection; migrate() is not called
    old._external_client = old._client
    client = old._require_client()
    await client.command(migrations_table_ddl(old.target))
    for statement in load_migrations()[0].statements(old.target):
        await client.command(statement)
    migration = load_migrations()[0]
    await client.insert(
        old.target.table("schema_migrations"),
        [[1, migration.name, migration.checksum, T0]],
        column_names=["version", "name", "checksum", "applied_at"],
    )
    return old


async def rows(store: ClickHouseColdStore, sql: str) -> list[tuple[object, ...]]:
    result = await store._require_client().query(sql)
    return [tuple(row) for row in result.result_rows]


async def test_open_creates_every_column_the_store_writes(store: ClickHouseColdStore) -> None:
    """After open() each table has exactly the columns (and types) write_events sends: 001's plus 002's."""
    for table, columns in TABLE_COLUMNS.items():
        described = await rows(store, f"DESCRIBE TABLE {store.target.table(table)}")
        assert [(name, kind) for name, kind, *_ in described] == list(columns), table


async def test_an_archive_from_before_versions_upgrades_in_place_and_reads_as_before(store: ClickHouseColdStore) -> None:
    """Rows written by the 001 schema (no version column, a delete carrying its session and no last_seq) are kept
    by migration 002 and read as version 0: the newest created_at still wins among them, the old delete still
    hides the session but hides no message; a row written since versions exist is newer than every one of them,
    whatever its created_at."""
    old = await legacy_store(store)
    try:
        sessions, conversations = old.target.table("context_sessions"), old.target.table("context_conversations")
        client = old._require_client()
        created, first = Session("s", "u", T0, T0), Session("s", "u", T0, at(1), request_count=1)
        await client.insert(
            sessions,
            [
                ["s", "u", "create", json.dumps(created.to_dict()), at(0), "e0"],
                ["s", "u", "update", json.dumps(first.to_dict()), at(1), "e1"],
            ],
            column_names=["session_id", "user_id", "event_type", "payload", "created_at", "event_id"],
        )
        await client.insert(
            conversations,
            [["s", seq, f"m-{seq}", "user", f"old {seq}", "{}", at(seq), at(seq), f"c{seq}"] for seq in (1, 2)],
            column_names=[c for c, _ in TABLE_COLUMNS["context_conversations"] if c != "version"],
        )
        await client.insert(
            old.target.table("context_task_contexts"),
            [["s", '{"old": true}', at(1), "t1"]],
            column_names=["session_id", "context_data", "created_at", "event_id"],
        )
        assert await old.migrate() == [2, 3]
        assert (await old.read_session("s")) == first
        assert (await old.read_session("s")).version == 0  # type: ignore[union-attr]
        assert [m.content for m in await old.read_history("s", None)] == ["old 1", "old 2"]
        assert await old.read_owner("s") == OwnerState(
            "s", version=0, last_seq=2, session=first, task_context=Versioned(0, {"old": True})
        )

        # a delete as the kit wrote it before versions existed: its session, no last_seq
        await client.insert(
            sessions,
            [["s", "u", "delete", json.dumps(first.to_dict()), at(5), "e5"]],
            column_names=["session_id", "user_id", "event_type", "payload", "created_at", "event_id"],
        )
        assert await old.read_session("s") is None
        assert await old.read_task_context("s") is None
        assert [m.content for m in await old.read_history("s", None)] == ["old 1", "old 2"]
        state = await old.read_owner("s")
        assert (state.version, state.last_seq, state.deleted, state.session) == (0, 2, True, None)

        # versioned rows win over every legacy row, even with an older created_at
        again = replace(Session("s", "u2", T0, T0), version=1)
        await old.write_events(
            [
                core_events.session_event(again, EventHead("create", "v1", at(-100))),
                core_events.task_context_event("s", {"new": True}, 2, EventHead("", "v2", at(-100))),
            ]
        )
        got = await old.read_session("s")
        assert got == again and got is not None and got.version == 1
        assert await old.read_task_context("s") == {"new": True}
        assert (await old.read_owner("s")).version == 2
    finally:
        await old.drop_tables()


async def test_an_owner_delete_is_stored_with_its_version_and_last_seq(store: ClickHouseColdStore) -> None:
    """A delete of an owner with no session (a conversation session key, say) is a row of context_sessions with an
    empty user_id, payload ``null``, its version and last_seq; a delete that removed a session keeps the session's
    user and JSON."""
    session = replace(Session("s", "alice", T0, T0), version=3)
    await store.write_events(
        [
            core_events.delete_event("conv:key", 4, 17, None, EventHead("delete", "d1", at(1))),
            core_events.delete_event("s", 5, 2, session, EventHead("delete", "d2", at(2))),
        ]
    )
    found = await rows(
        store,
        f"SELECT session_id, user_id, event_type, payload, version, last_seq FROM {store.target.table('context_sessions')} "
        "ORDER BY session_id",
    )
    assert found[0] == ("conv:key", "", "delete", "null", 4, 17)
    assert found[1][:3] == ("s", "alice", "delete")
    assert Session.from_dict(json.loads(found[1][3])) == session
    assert found[1][4:] == (5, 2)
    assert await store.read_owner("conv:key") == OwnerState("conv:key", version=4, last_seq=17, deleted=True)


@pytest.mark.parametrize(
    "event",
    [
        ArchiveEvent("context_task_contexts", "s", {"context": {}}, version=-1),
        ArchiveEvent("context_sessions", "s", {"event_type": "delete", "session": None, "last_seq": -3}, version=2),
        ArchiveEvent("context_sessions", "s", {"event_type": "delete", "session": None, "last_seq": True}, version=2),
        ArchiveEvent("context_sessions", "s", {"event_type": "delete", "session": None, "last_seq": "9"}, version=2),
        ArchiveEvent("context_sessions", "s", {"event_type": "update", "session": None}, version=2),
    ],
)
async def test_a_bad_version_or_last_seq_is_refused_before_anything_is_written(
    store: ClickHouseColdStore, event: ArchiveEvent
) -> None:
    """A negative version, a last_seq that is not a whole number >= 0, or a non-delete without a session raises
    SerializationError (the archiver sets the event aside) and nothing of the batch is stored."""
    good = core_events.task_context_event("s", {"ok": 1}, 1, EventHead())
    with pytest.raises(SerializationError):
        await store.write_events([good, event])
    assert await store.count_events("context_task_contexts") == 0
    assert await store.count_events("context_sessions") == 0


async def test_reads_give_the_same_answers_before_and_after_merges(store: ClickHouseColdStore) -> None:
    """Reads never use FINAL: with every versioned row and delete written three times (unmerged duplicates), each
    read answers as it does after OPTIMIZE ... FINAL collapsed them."""
    owner = "dup"
    v1, v3 = (replace(Session(owner, "u", T0, at(n), request_count=n), version=n) for n in (1, 3))
    batch = [
        core_events.session_event(v1, EventHead("create", "s1", at(1))),
        core_events.task_context_event(owner, {"v": 2}, 2, EventHead("", "t2", at(2))),
        core_events.session_event(v3, EventHead("update", "s3", at(3))),
        *(core_events.message_event(owner, message(seq), seq, f"m{seq}") for seq in range(1, 6)),
        core_events.delete_event(owner, 4, 3, v3, EventHead("delete", "d4", at(4))),
        core_events.conversation_session_event("k", {"session_id": owner, "session_key": "k"}, 5, EventHead("", "c5", at(5))),
        core_events.checkpoint_document_event(owner, "c1", {"v": 6}, 6, EventHead("", "cp6", at(6))),
    ]

    async def answers() -> tuple[object, ...]:
        return (
            await store.read_session(owner),
            [m.seq for m in await store.read_history(owner, None)],
            await store.read_task_context(owner),
            await store.read_checkpoint_document(owner, None),
            await store.read_owner(owner),
            await store.conversation_keys_of(owner),
            await store.count_events("context_sessions"),
        )

    for _ in range(3):
        await store.write_events(batch)
    before = await answers()
    assert before[:4] == (None, [4, 5], None, {"v": 6})
    assert before[4] == OwnerState(owner, version=6, last_seq=5, deleted=True)
    assert before[5:] == (["k"], 3)
    client = store._require_client()
    for table in ("context_sessions", "context_conversations", "context_task_contexts", "context_checkpoints"):
        await client.command(f"OPTIMIZE TABLE {store.target.table(table)} FINAL")
    assert await answers() == before


async def test_a_legacy_delete_at_the_same_time_as_a_record_hides_it(store: ClickHouseColdStore) -> None:
    """Rows archived before versions existed may share their created_at to the microsecond. The tie-breaker is fixed
    per row: among sessions rows the old rule (later last_activity, higher counters, later lifecycle step), and a
    delete ranks above a tied row of another table, so it hides it."""
    session = Session("s", "u", T0, at(1), request_count=2)
    await store.write_events(
        [
            ArchiveEvent("context_task_contexts", "s", {"context": {"x": 1}}, created_at=at(1)),
            ArchiveEvent("context_sessions", "s", {"event_type": "update", "session": session.to_dict()}, created_at=at(1)),
            ArchiveEvent("context_sessions", "s", {"event_type": "delete", "session": session.to_dict()}, created_at=at(1)),
        ]
    )
    assert await store.read_session("s") is None
    assert await store.read_task_context("s") is None
    assert (await store.read_owner("s")).deleted


async def test_conversation_keys_of_takes_any_text_as_a_parameter(store: ClickHouseColdStore) -> None:
    """Session ids and keys with quotes, backslashes and placeholders are bound parameters, never SQL."""
    parent = "p' OR '1'='1 {session:String} \\"
    events = [
        core_events.conversation_session_event(key, {"session_id": parent, "session_key": key}, 1, EventHead())
        for key in ("k'1", "k\\2", "{key:String}")
    ]
    events.append(core_events.conversation_session_event("other", {"session_id": "p", "session_key": "other"}, 1, EventHead()))
    await store.write_events(events)
    assert await store.conversation_keys_of(parent) == sorted(["k'1", "k\\2", "{key:String}"])
    assert await store.conversation_keys_of("p") == ["other"]


async def test_conversation_keys_of_uses_the_skip_index_of_migration_003(store: ClickHouseColdStore) -> None:
    """The query conversation_keys_of sends filters on the exact expression migration 003 indexes, so ClickHouse
    skips granules with the bloom filter instead of reading every document (EXPLAIN names the index)."""
    await store.write_events(
        [core_events.conversation_session_event("k", {"session_id": "s", "session_key": "k"}, 1, EventHead())]
    )
    client = store._require_client()
    sent: list[str] = []
    query = client.query

    async def spy(sql: str, parameters: object = None, **kwargs: object) -> object:
        sent.append(sql)
        return await query(sql, parameters=parameters, **kwargs)

    client.query = spy
    try:
        assert await store.conversation_keys_of("s") == ["k"]
    finally:
        client.query = query
    explained = await client.query(f"EXPLAIN indexes = 1 {sent[-1]}", parameters={"session": "s"})
    plan = "\n".join(str(row[0]) for row in explained.result_rows)
    assert "conversation_session_id" in plan
