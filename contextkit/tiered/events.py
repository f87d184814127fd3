"""The archive events of every write, built in one place.

Each hot store with ``atomic_outbox`` writes the event of a write into its outbox in the same atomic step as the
write, from what it stored and the version it assigned; the store's language may differ (a Lua script writes the
raw fields and the outbox reader finishes the event), but the event is always the one these functions build, so
every store archives the same rows. The payload of each table is described on
:class:`contextkit.stores.ColdStore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from contextkit.backend.tables import ArchiveTables
from contextkit.records import ArchiveEvent, Message, Session, new_event_id, to_iso
from contextkit.stores import EventHead

__all__ = [
    "checkpoint_document_event",
    "conversation_session_event",
    "delete_event",
    "message_event",
    "message_fields_event",
    "session_event",
    "task_context_event",
    "writes_document_event",
]


def session_event(session: Session, head: EventHead) -> ArchiveEvent:
    """The ``context_sessions`` event of a stored session (its ``version`` is the event's)."""
    payload = {"event_type": head.event_type or "update", "session": session.to_dict()}
    return ArchiveEvent(ArchiveTables.SESSIONS, session.session_id, payload, head.created_at, head.event_id, session.version)


def delete_event(owner: str, version: int, last_seq: int, session: Session | None, head: EventHead) -> ArchiveEvent:
    """The ``context_sessions`` event of an owner's delete: it hides every archived record of ``owner`` below
    ``version`` and every message of its stream up to ``last_seq``; ``session`` is the session it removed, if any."""
    payload = {
        "event_type": "delete",
        "session": None if session is None else session.to_dict(),
        "last_seq": last_seq,
    }
    return ArchiveEvent(ArchiveTables.SESSIONS, owner, payload, head.created_at, head.event_id, version)


def task_context_event(session_id: str, document: Mapping[str, Any], version: int, head: EventHead) -> ArchiveEvent:
    """The ``context_task_contexts`` event of a stored task context document."""
    return ArchiveEvent(
        ArchiveTables.TASK_CONTEXTS, session_id, {"context": dict(document)}, head.created_at, head.event_id, version
    )


def conversation_session_event(
    session_key: str, document: Mapping[str, Any], version: int, head: EventHead
) -> ArchiveEvent:
    """The ``context_conversation_sessions`` event of a stored conversation session document."""
    return ArchiveEvent(
        ArchiveTables.CONVERSATION_SESSIONS, session_key, {"session": dict(document)}, head.created_at, head.event_id, version
    )


def checkpoint_document_event(
    thread_id: str, checkpoint_id: str, document: Mapping[str, Any], version: int, head: EventHead
) -> ArchiveEvent:
    """The ``context_checkpoints`` event of a stored seed checkpoint document."""
    payload = {"checkpoint_id": checkpoint_id, "document": dict(document)}
    return ArchiveEvent(ArchiveTables.CHECKPOINTS, thread_id, payload, head.created_at, head.event_id, version)


def writes_document_event(
    thread_id: str, checkpoint_id: str, task_id: str, writes: Sequence[Any], version: int, head: EventHead
) -> ArchiveEvent:
    """The ``context_checkpoint_writes`` event of seed writes appended to a checkpoint."""
    payload = {"checkpoint_id": checkpoint_id, "task_id": task_id, "writes": list(writes)}
    return ArchiveEvent(ArchiveTables.CHECKPOINT_WRITES, thread_id, payload, head.created_at, head.event_id, version)


def message_event(
    key: str,
    message: Message,
    seq: int,
    event_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> ArchiveEvent:
    """The ``context_conversations`` event of ``message`` stored as number ``seq`` of stream ``key``: its payload
    is ``{"message": message.to_dict()}`` with that seq (and ``metadata``, a copy of the message's taken
    earlier, when given), created at ``created_at`` (by default when the message was: its timestamp). Its seq
    orders it; ``version`` stays 0."""
    return message_fields_event(
        key,
        seq,
        message.role,
        message.content,
        message.timestamp,
        message.id,
        dict(message.metadata) if metadata is None else metadata,
        event_id,
        created_at,
    )


def message_fields_event(
    key: str,
    seq: int,
    role: str,
    content: str,
    timestamp: datetime,
    message_id: str,
    metadata: dict[str, Any],
    event_id: str | None = None,
    created_at: datetime | None = None,
) -> ArchiveEvent:
    """:func:`message_event` of a message given by its fields (``metadata`` goes into the payload as it is): what
    the in-process outbox keeps of a queued message until it builds the event."""
    data = {
        "id": message_id,
        "seq": seq,
        "role": role,
        "content": content,
        "timestamp": to_iso(timestamp),
        "metadata": metadata,
    }
    return ArchiveEvent(ArchiveTables.CONVERSATIONS, key, {"message": data}, created_at or timestamp, event_id or new_event_id())
