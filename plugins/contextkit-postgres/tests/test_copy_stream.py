"""COPY records built while COPY streams them: an event refused after rows were already sent still leaves nothing
written, a retried batch reuses the rows it built, and rows hold what the events hold."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from contextkit.errors import SerializationError
from contextkit.records import ArchiveEvent, Message, Session, utcnow
from contextkit.stores import StoreSettings
from contextkit.testing.cold import message_event, session_event
from contextkit_postgres.cold import PostgresColdStore, _CopyRows

pytestmark = pytest.mark.postgres

# ~1 KB per row: 2,000 rows are several of asyncpg's 512 KB COPY chunks, so the server has rows before the bad one.
_CONTENT = "x" * 1000


def _messages(key: str, count: int) -> list[ArchiveEvent]:
    now = utcnow()
    return [message_event(key, Message("user", _CONTENT, now, metadata={"i": i}, seq=i + 1)) for i in range(count)]


async def test_an_event_refused_after_rows_were_streamed_leaves_nothing_written(
    pg_stores: Callable[..., PostgresColdStore], new_settings: Callable[..., StoreSettings]
) -> None:
    store = pg_stores(new_settings())
    await store.open()
    now = utcnow()
    events = [session_event(Session("s1", "u1", now, now), "create"), *_messages("s1", 2000)]
    bad = ArchiveEvent("context_conversations", "s1", {"message": {"role": "user", "content": "no timestamp"}})
    for batch in ([*events[:1500], bad, *events[1500:]], [*events, bad]):
        with pytest.raises(SerializationError):
            await store.write_events(batch)
        assert await store.count_events("context_conversations") == 0
        assert await store.count_events("context_sessions") == 0
    await store.write_events(events)
    assert await store.count_events("context_conversations", "s1") == 2000
    history = await store.read_history("s1", 3)
    assert [(m.seq, m.metadata) for m in history] == [(1998, {"i": 1997}), (1999, {"i": 1998}), (2000, {"i": 1999})]


async def test_a_one_table_batch_refused_mid_copy_leaves_nothing_and_the_store_goes_on(
    pg_stores: Callable[..., PostgresColdStore], new_settings: Callable[..., StoreSettings]
) -> None:
    """A batch of one table is one COPY without a transaction: the refused event aborts it (CopyFail)."""
    store = pg_stores(new_settings())
    await store.open()
    events = _messages("s1", 4000)  # > 512 KB: the server has received chunks before the bad event
    bad = ArchiveEvent("context_conversations", "s1", {"message": {"role": "user", "content": "no timestamp"}})
    with pytest.raises(SerializationError):
        await store.write_events([*events[:3000], bad, *events[3000:]])
    assert await store.count_events("context_conversations") == 0
    await store.write_events(events)
    assert await store.count_events("context_conversations", "s1") == 4000


async def test_a_batch_holding_stored_events_is_merged_once(
    pg_stores: Callable[..., PostgresColdStore], new_settings: Callable[..., StoreSettings]
) -> None:
    store = pg_stores(new_settings())
    await store.open()
    events = _messages("s1", 1200)
    await store.write_events(events[:700])
    await store.write_events(events)  # the direct COPY fails on the stored ids, then the staging merge runs
    await store.write_events(events)
    assert await store.count_events("context_conversations", "s1") == 1200
    assert [m.seq for m in await store.read_history("s1", None)] == list(range(1, 1201))


def test_copy_rows_are_built_once_and_replayed_in_order() -> None:
    events = _messages("s1", 5)
    rows = _CopyRows("context_conversations", events)
    streamed = iter(rows)
    first = [next(streamed), next(streamed)]  # a COPY interrupted after two rows
    assert rows.complete() == [*first, *list(rows)[2:]]
    assert list(rows) == rows.rows and len(rows.rows) == 5
    assert [r[0] for r in rows.rows] == [e.event_id for e in events]
    row = rows.rows[0]
    message = events[0].payload["message"]
    assert row[3:8] == ("user", _CONTENT, '{"i":0}', 1, message["id"])
    assert row[8] == Message.from_dict(message).timestamp and row[2] == events[0].created_at


def test_copy_rows_raise_at_the_first_refused_event_and_report_it() -> None:
    events = _messages("s1", 3)
    bad = ArchiveEvent("context_conversations", "s1", {"message": {"role": "user", "content": "a\x00b", "timestamp": "x"}})
    rows = _CopyRows("context_conversations", [*events[:2], bad, events[2]])
    seen: list[tuple[object, ...]] = []
    with pytest.raises(SerializationError):  # raised inside the iteration: asyncpg aborts the COPY
        seen.extend(rows)
    assert len(seen) == 2
    with pytest.raises(SerializationError):
        rows.check()
    with pytest.raises(SerializationError):
        rows.complete()
