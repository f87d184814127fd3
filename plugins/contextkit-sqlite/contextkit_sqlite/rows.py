"""How the SQLite hot tier's records map to rows: sessions and messages as ``ck_*`` columns, and the outbox rows
of the writes' archive events.

A hot write puts its archive event into the namespace's outbox table in its own transaction (see
:mod:`contextkit_sqlite.hot`). Each event is the one :mod:`contextkit.tiered.events` builds; its JSON is made
here *before* the transaction wherever the write does not decide it, so the transaction only completes it: with
the version it assigns (:func:`unversioned_event` / :func:`versioned_row`), with the seq of a message
(:func:`message_parts`), or, for an update, from the columns the update left (:func:`session_event_row`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from contextkit.archiver import message_event_heads
from contextkit.codec import archive_json
from contextkit.errors import SerializationError
from contextkit.records import ArchiveEvent, Message, Session, to_iso
from contextkit.stores import ArchiveSpec, EventHead
from contextkit.tiered.events import session_event
from contextkit_sqlite.database import dumps, from_micros, loads, to_micros

__all__ = [
    "SESSION_COLUMNS",
    "MessageParts",
    "OutboxRow",
    "Unversioned",
    "encode_messages",
    "event_json",
    "message_from_record",
    "message_parts",
    "outbox_row",
    "session_event_head",
    "session_event_row",
    "session_from_record",
    "session_params",
    "unversioned_event",
    "versioned_row",
]

#: The ``ck_sessions`` columns of a session record, in the order :func:`session_from_record` reads them.
SESSION_COLUMNS = (
    "session_id, user_id, created_at, last_activity, request_count, error_count, total_processing_time, status, "
    "metadata, version"
)
#: An outbox row: (event id, created_at column, JSON body).
OutboxRow = tuple[str, str, str]
#: An event whose JSON was built before the transaction: (event id, created_at column, JSON without its closing
#: brace), closed in the transaction with the version it assigns.
Unversioned = tuple[str, str, str]
#: A message event built before the transaction: (event id, created_at column, JSON head, message JSON after
#: its seq), completed in the transaction with the seq it assigns.
MessageParts = tuple[str, str, str, str]


def session_from_record(record: Sequence[Any]) -> Session:
    """The session of a ``ck_sessions`` record read as :data:`SESSION_COLUMNS`."""
    return Session(
        session_id=record[0],
        user_id=record[1],
        created_at=from_micros(record[2]),
        last_activity=from_micros(record[3]),
        request_count=record[4],
        error_count=record[5],
        total_processing_time=record[6],
        status=record[7],
        metadata=loads(record[8]),
        version=record[9],
    )


def session_params(session: Session) -> tuple[Any, ...]:
    """The ``ck_sessions`` columns of ``session`` from ``session_id`` to ``metadata`` (no version)."""
    return (
        session.session_id,
        session.user_id,
        to_micros(session.created_at),
        to_micros(session.last_activity),
        session.request_count,
        session.error_count,
        float(session.total_processing_time),
        session.status,
        dumps(dict(session.metadata)),
    )


def message_from_record(record: Sequence[Any]) -> Message:
    """The message of a ``ck_messages`` record read as ``seq, id, role, content, timestamp, metadata``."""
    seq, ident, role, content, timestamp, metadata = record
    return Message(role=role, content=content, timestamp=from_micros(timestamp), metadata=loads(metadata), id=ident, seq=seq)


def encode_messages(messages: Sequence[Message]) -> list[tuple[Any, ...]]:
    """``(id, role, content, timestamp, metadata)`` of each message, as stored."""
    return [(m.id, m.role, m.content, to_micros(m.timestamp), dumps(dict(m.metadata))) for m in messages]


def event_json(event: ArchiveEvent) -> str:
    """The JSON of an event as the outboxes store it; :class:`SerializationError` when it cannot be written."""
    try:
        # NaN is written as the other outboxes write it: a value the cold tier refuses is set aside there.
        return archive_json(event.to_dict(), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"archive event {event.event_id} cannot be stored as JSON: {exc}") from exc


def unversioned_event(event: ArchiveEvent) -> Unversioned:
    """The JSON of ``event`` (built with version 0, which ``to_dict`` leaves out) up to its closing brace."""
    return event.event_id, event.created_at.isoformat(), event_json(replace(event, version=0))[:-1]


def versioned_row(part: Unversioned, version: int) -> OutboxRow:
    """The outbox row of an event built before the transaction, closed with the version the write took."""
    event_id, created_at, text = part
    return event_id, created_at, f'{text},"version":{version}}}'


def outbox_row(event: ArchiveEvent) -> OutboxRow:
    """The outbox row of an event built whole (in the transaction, where its payload is only known there)."""
    return event.event_id, event.created_at.isoformat(), event_json(event)


def session_event_head(session_id: str, head: EventHead) -> tuple[str, str, str]:
    """(event id, created_at column, JSON up to the session's ``user_id`` value) of the ``context_sessions`` event
    of an update of ``session_id``, built before the transaction (see :func:`session_event_row`)."""
    event = session_event(Session(session_id, "", head.created_at, head.created_at), head)
    data = event.to_dict()
    payload = data.pop("payload")
    try:
        text = archive_json(data)[:-1]
        start = (
            f'{text},"payload":{{"event_type":{archive_json(payload["event_type"])},'
            f'"session":{{"session_id":{archive_json(session_id)},"user_id":'
        )
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"archive event {event.event_id} cannot be stored as JSON: {exc}") from exc
    return event.event_id, event.created_at.isoformat(), start


def session_event_row(head: tuple[str, str, str], record: Sequence[Any]) -> OutboxRow:
    """The outbox row of ``session_event(session_from_record(record), head)`` (:mod:`contextkit.tiered.events`) for a session
    row as an update left it, spelled from the stored columns: the metadata goes in as the JSON text it is
    stored as, so the write lock is not held while it is decoded and encoded again (the tests compare the result
    with the event ``session_event`` builds)."""
    event_id, created_at, start = head
    _, user_id, created, last_activity, requests, errors, processing, status, metadata, version = record
    try:
        body = (
            f'{start}{archive_json(user_id)},"created_at":"{to_iso(from_micros(created))}",'
            f'"last_activity":"{to_iso(from_micros(last_activity))}","request_count":{int(requests)},'
            f'"error_count":{int(errors)},"total_processing_time":{archive_json(float(processing), allow_nan=True)},'
            f'"status":{archive_json(status)},"metadata":{metadata}}}}},"version":{int(version)}}}'
        )
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"archive event {event_id} cannot be stored as JSON: {exc}") from exc
    return event_id, created_at, body


def message_parts(key: str, messages: Sequence[Message], archive: ArchiveSpec) -> list[MessageParts]:
    """(event id, created_at column, JSON head, message JSON after its seq) of each message's archive event: the
    write transaction completes each with the seq it assigns (see :func:`message_event_heads`)."""
    heads = message_event_heads(key, archive, len(messages))
    parts = []
    for message, head, event_id, created_at in zip(messages, heads, archive.event_ids, archive.created_at, strict=True):
        data = message.to_dict()
        del data["seq"]
        try:
            rest = archive_json(data, allow_nan=True)[1:]
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"archive event {event_id} cannot be stored as JSON: {exc}") from exc
        parts.append((event_id, created_at.isoformat(), head, rest))
    return parts
