"""The archive's reading rules, stated once for every cold tier: which row of a record wins, what a delete hides.

A cold tier stores events as rows; a *record* (a session, a task context, a conversation session document, a seed
checkpoint document) may have many. The row that answers is the one with the highest :func:`row_order`:
``(version, created_at, write order)``. Versions come from the hot tier (see :mod:`contextkit.tiered`), so among
rows written since versions exist the hot tier's order decides and clocks never do; version-0 rows (archived
before) fall back to their event time, as they always did.

An owner's delete (a ``context_sessions`` row whose ``event_type`` is ``delete``, see
:func:`contextkit.tiered.events.delete_event`) hides each row of the same key with a lower :func:`row_order`, and
each message of the key's stream with ``seq <= last_seq``. SQL backends express the same rules in their queries;
the memory and SQLite archives call these functions, and the cold conformance suite checks them on every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from contextkit.records import Session
from contextkit.stores import OwnerState, Versioned

__all__ = ["DeleteMark", "RowOrder", "build_owner_state", "delete_mark", "hides", "hides_message", "row_order"]

RowOrder = tuple[int, datetime, Any]
"""``(version, created_at, write order)``: the larger row of a record wins."""


def row_order(version: int, created_at: datetime, order: Any) -> RowOrder:
    """The order of a row among the rows of its record (``order``: the backend's write order, or any tie-breaker
    that is fixed per row, such as the event id)."""
    return (int(version), created_at, order)


@dataclass(frozen=True, slots=True)
class DeleteMark:
    """The newest delete of an owner: its row order and the stream seq it hides up to."""

    order: RowOrder
    last_seq: int


def delete_mark(version: int, created_at: datetime, order: Any, payload: Mapping[str, Any]) -> DeleteMark:
    """The mark of a delete row (an old delete without ``last_seq`` hides no message: the archive then kept the
    history of a deleted session readable)."""
    raw = payload.get("last_seq")
    last_seq = raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
    return DeleteMark(row_order(version, created_at, order), last_seq)


def hides(mark: DeleteMark | None, order: RowOrder) -> bool:
    """True when the delete ``mark`` hides a row of order ``order`` of the same key."""
    return mark is not None and order < mark.order


def hides_message(mark: DeleteMark | None, seq: int) -> bool:
    """True when the delete ``mark`` hides the message numbered ``seq`` of the key's stream."""
    return mark is not None and seq <= mark.last_seq


def build_owner_state(
    owner: str,
    *,
    version: int,
    last_seq: int,
    mark: DeleteMark | None,
    session: tuple[RowOrder, Session] | None,
    task_context: tuple[RowOrder, Mapping[str, Any]] | None,
    conversation: tuple[RowOrder, Mapping[str, Any]] | None,
) -> OwnerState:
    """An :class:`~contextkit.stores.OwnerState` from what a backend read of an owner.

    :param version: the highest version of any row of the owner (deletes included, LangGraph rows excluded).
    :param last_seq: the highest seq of the owner's archived messages.
    :param mark: the owner's newest delete, if any.
    :param session: the newest session row that is not a delete (its order and the session), if any; a session
        row older than ``mark`` is dropped here, as are the other records.
    """

    def visible(row: tuple[RowOrder, Any] | None) -> tuple[RowOrder, Any] | None:
        return None if row is None or hides(mark, row[0]) else row

    live_session = visible(session)
    live_task = visible(task_context)
    live_conversation = visible(conversation)
    restored = None
    if live_session is not None:
        order, record = live_session
        restored = record if record.version == order[0] else replace(record, version=order[0])
    return OwnerState(
        owner,
        version=max(version, 0 if mark is None else mark.order[0]),
        last_seq=max(last_seq, 0 if mark is None else mark.last_seq),
        deleted=mark is not None and live_session is None and live_task is None and live_conversation is None,
        session=restored,
        task_context=None if live_task is None else Versioned(live_task[0][0], dict(live_task[1])),
        conversation=None if live_conversation is None else Versioned(live_conversation[0][0], dict(live_conversation[1])),
    )
