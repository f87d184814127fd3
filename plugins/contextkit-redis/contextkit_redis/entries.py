"""Records as the Redis tier keeps them: the session hash, and the archive events of the outbox stream.

A write script XADDs its archive event in the same atomic step as the write, so the entry holds what only the
script knows (the version it assigned, the session as it is after an update) in one of these shapes, each turned
back into exactly the event :mod:`contextkit.tiered.events` builds:

* ``e`` (+ ``v``): the event's JSON (``ArchiveEvent.to_dict``) built before the call, and the version the script
  assigned (messages carry their seq in the JSON and no ``v``);
* ``s`` + the session hash fields: a session's create / update (``s`` is the head: event id, time and type);
* ``d`` + ``v`` + ``q`` (+ the session hash fields when a session was removed): an owner's delete (``d`` is the
  head: event id, time and owner key; ``v`` its version; ``q`` the stream's highest seq).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from contextkit.codec import archive_json, archive_loads
from contextkit.errors import CorruptData
from contextkit.records import ArchiveEvent, Session, from_iso, to_iso
from contextkit.stores import EventHead
from contextkit.tiered.events import delete_event, session_event

__all__ = ["decode_entry", "event_head", "session_from_hash", "text", "versionless_event"]


def text(value: Any) -> str:
    """``value`` as text (replies are bytes on the store's own client)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def as_hash(raw: Any) -> dict[str, str]:
    """A hash reply (a mapping, or a flat field/value list) as ``{field: value}`` text."""
    if isinstance(raw, Mapping):
        return {text(k): text(v) for k, v in raw.items()}
    items = list(raw)
    return {text(items[i]): text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def session_from_hash(fields: Mapping[str, str]) -> Session:
    """The session a session hash holds (``version`` included; 0 for a hash written before versions)."""
    try:
        metadata = archive_loads(fields["metadata"])
        if not isinstance(metadata, dict):
            raise TypeError("metadata is not an object")
        return Session(
            session_id=fields["session_id"],
            user_id=fields["user_id"],
            created_at=from_iso(fields["created_at"]),
            last_activity=from_iso(fields["last_activity"]),
            request_count=int(fields["request_count"]),
            error_count=int(fields["error_count"]),
            total_processing_time=float(fields["total_processing_time"]),
            status=fields["status"],
            metadata=metadata,
            version=int(fields.get("version", "0")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptData(f"stored session is malformed: {exc!r}") from exc


def event_head(head: EventHead, key: str | None = None) -> str:
    """The JSON head of an ``s`` or ``d`` entry."""
    data = {"event_id": head.event_id, "created_at": to_iso(head.created_at), "event_type": head.event_type}
    if key is not None:
        data["key"] = key
    return archive_json(data)


def versionless_event(event: ArchiveEvent) -> str:
    """The JSON of ``event`` for an ``e`` entry whose version the script adds (``v``)."""
    return archive_json(event.to_dict())


def decode_entry(fields: Mapping[str, str]) -> ArchiveEvent:
    """The archive event an outbox entry stands for (see the module docstring)."""
    try:
        if "e" in fields:
            event = ArchiveEvent.from_dict(archive_loads(fields["e"]))
            version = fields.get("v")
            return event if version is None else replace(event, version=int(version))
        if "s" in fields:
            head = archive_loads(fields["s"])
            session = session_from_hash(fields)
            return session_event(session, EventHead(head["event_type"], head["event_id"], from_iso(head["created_at"])))
        if "d" in fields:
            head = archive_loads(fields["d"])
            removed = session_from_hash(fields) if "session_id" in fields else None
            return delete_event(
                head["key"],
                int(fields["v"]),
                int(fields["q"]),
                removed,
                EventHead("delete", head["event_id"], from_iso(head["created_at"])),
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptData(f"an outbox entry is not an archive event: {exc!r}") from exc
    raise CorruptData(f"an outbox entry has none of the fields e, s, d: {sorted(fields)[:10]}")
