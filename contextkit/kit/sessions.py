"""Sessions: create, read, update, end, delete, list and clean up (the :class:`SessionsAPI` mixin of the kit)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from contextkit.errors import InvalidInput
from contextkit.kit.base import KitBase
from contextkit.records import SESSION_STATUSES, Session, TaskContext, utcnow
from contextkit.stores import SessionUpdate
from contextkit.validation import check_limit, check_metadata, check_role

logger = logging.getLogger("contextkit")

__all__ = ["SessionsAPI"]

_UPDATABLE = {"status", "metadata", "user_id"}


class SessionsAPI(KitBase):
    """The session calls of :class:`~contextkit.kit.ContextKit`."""

    async def create_session(
        self, session_id: str, user_id: str, metadata: Mapping[str, Any] | None = None
    ) -> Session:
        """Create (or reset) a session with status ``active`` and a task context, and archive a ``create`` event.

        Creating an id that exists replaces its record (counters restart); its history is kept. A deleted id may
        be created again: nothing of its former life comes back.
        """
        sid = self._id(session_id, "session_id")
        uid = self._id(user_id, "user_id")
        meta = check_metadata(metadata, self.config.limits)
        self._check_room(2)

        async def run() -> Session:
            now = utcnow()
            session = Session(sid, uid, now, now, metadata=meta)
            context = TaskContext({"user_id": uid, "chat_id": sid, "metadata": meta}).to_dict()
            tiered = self.tiered
            stored = await tiered.call(
                lambda: self._hot.put_session(session, task_context=context, archive=tiered.head("create"))
            )
            tiered.written(2)
            self._emit("session.create", sid, user_id=uid)
            return stored

        return await self._timed(run)

    async def get_session(self, session_id: str) -> Session | None:
        """The session, from the hot tier or (after expiry or a restart) from the archive; None if unknown or
        deleted."""
        sid = self._id(session_id, "session_id")
        return await self._timed(lambda: self._lookup(lambda: self.tiered.call(lambda: self._hot.get_session(sid))))

    async def update_session(
        self,
        session_id: str,
        updates: Mapping[str, Any] | None = None,
        increment_requests: bool = False,
        add_processing_time: float = 0.0,
        mark_error: bool = False,
    ) -> bool:
        """Update a session atomically: replace ``updates`` fields (``status``, ``metadata``, ``user_id``), add to
        its counters, move ``last_activity`` to now. False if the session does not exist."""
        sid = self._id(session_id, "session_id")
        fields = self._check_updates(updates)
        if isinstance(add_processing_time, bool) or not isinstance(add_processing_time, (int, float)):
            raise InvalidInput(f"add_processing_time must be a number, got {type(add_processing_time).__name__}")
        if add_processing_time < 0 or add_processing_time != add_processing_time or add_processing_time == float("inf"):
            raise InvalidInput(f"add_processing_time must be a finite number >= 0, got {add_processing_time!r}")
        for flag, name in ((increment_requests, "increment_requests"), (mark_error, "mark_error")):
            if not isinstance(flag, bool):
                raise InvalidInput(f"{name} must be a bool, got {type(flag).__name__}")
        self._check_room(1)
        update = SessionUpdate(
            activity=utcnow(),
            requests=1 if increment_requests else 0,
            errors=1 if mark_error else 0,
            processing_time=float(add_processing_time),
            fields=fields,
        )
        return await self._timed(lambda: self._apply_update(sid, update, "update"))

    def _check_updates(self, updates: Mapping[str, Any] | None) -> dict[str, Any]:
        if updates is None:
            return {}
        if not isinstance(updates, Mapping):
            raise InvalidInput(f"updates must be a mapping, got {type(updates).__name__}")
        unknown = set(updates) - _UPDATABLE
        if unknown and self._seed_leniency:
            logger.debug("update_session ignores key(s) it cannot update: %s", sorted(map(str, unknown)))
            updates = {k: v for k, v in updates.items() if k in _UPDATABLE}
        elif unknown:
            raise InvalidInput(
                f"cannot update {', '.join(sorted(map(str, unknown)))}: updatable fields are {sorted(_UPDATABLE)}"
            )
        fields: dict[str, Any] = {}
        if "status" in updates:
            fields["status"] = self._check_status(updates["status"])
        if "metadata" in updates:
            fields["metadata"] = check_metadata(updates["metadata"], self.config.limits)
        if "user_id" in updates:
            fields["user_id"] = self._id(updates["user_id"], "user_id")
        return fields

    def _check_status(self, status: object) -> str:
        if self._seed_leniency and isinstance(status, str):
            # The original stored any status text; it still has to be a well-formed short label.
            return check_role(status, "status", self.config.limits)
        if status not in SESSION_STATUSES:
            raise InvalidInput(f"status must be one of {sorted(SESSION_STATUSES)}, got {status!r}")
        return str(status)

    async def _apply_update(self, sid: str, update: SessionUpdate, event_type: str) -> bool:
        tiered = self.tiered
        session = await tiered.call(lambda: self._hot.update_session(sid, update, archive=tiered.head(event_type)))
        if session is None:
            return False
        tiered.written(1)
        self._emit(f"session.{event_type}", sid)
        return True

    async def end_session(self, session_id: str, status: str = "completed") -> bool:
        """Set a final status (``completed`` by default, or ``failed`` / ``expired``) and archive an ``end``
        event. False if the session does not exist. Data is kept until it expires or is cleaned up."""
        sid = self._id(session_id, "session_id")
        final = self._check_status(status)
        self._check_room(1)
        update = SessionUpdate(activity=utcnow(), fields={"status": final})
        return await self._timed(lambda: self._apply_update(sid, update, "end"))

    async def delete_session(self, session_id: str) -> bool:
        """Remove a session and every key family of it (history, task context, seed checkpoints, the conversation
        sessions registered under it); True if it existed, in the hot tier or in the archive.

        The hot tier keeps a tombstone and the archive records a ``delete`` event, so nothing of it comes back
        through read-through, whether the delete is still waiting in the outbox or archived long ago. A message
        appended to the id later continues its numbering; ``create_session`` on it starts a new session.
        """
        sid = self._id(session_id, "session_id")
        self._check_room(1)

        async def run() -> bool:
            existed = await self.tiered.delete_owner(sid)
            self.tiered.written(1)
            self._emit("session.delete", sid)
            return existed

        return await self._timed(run)

    async def list_all_sessions(self) -> list[Session]:
        """Every session of the hot tier (use :meth:`iter_sessions` for large stores)."""
        return [s async for s in self.iter_sessions()]

    async def iter_sessions(self, page_size: int = 500) -> AsyncIterator[Session]:
        """Iterate over every session of the hot tier, a page at a time."""
        self._ensure_open()
        cursor: str | None = None
        while True:
            page, cursor = await self._hot.scan_sessions(cursor, page_size)
            for session in page:
                yield session
            if cursor is None:
                return

    async def cleanup_expired_sessions(self, max_idle_hours: float = 24, *, limit: int | None = None) -> int:
        """Remove from the hot tier the sessions idle for more than ``max_idle_hours`` (every key family of each)
        and return how many.

        With a cold tier each is archived as ``expire`` (status ``expired``) first and then forgotten by the hot
        tier, as if its TTL had passed, once the archive holds the expire event: the archive keeps it, and a later
        read brings it back with that status. When the archive does not take the events within the tiering
        ``consult_timeout``, cleanup stops there (logged) and the rest stay in the hot tier for a later call.
        ``limit`` bounds the work of one call.
        """
        if (
            isinstance(max_idle_hours, bool)
            or not isinstance(max_idle_hours, (int, float))
            or not 0 <= max_idle_hours <= 1_000_000
        ):
            raise InvalidInput(f"max_idle_hours must be a finite number >= 0, got {max_idle_hours!r}")
        if limit is not None:
            check_limit(limit, "limit", self.config.limits)

        async def run() -> int:
            before = utcnow() - timedelta(hours=float(max_idle_hours))
            removed = 0
            tiered = self.tiered
            while limit is None or removed < limit:
                batch = 500 if limit is None else min(500, limit - removed)
                ids = await self._hot.idle_sessions(before, batch)
                if not ids:
                    break
                if tiered.archiving:
                    for sid in ids:
                        self._check_room(1)
                        await self._archive_expiry(sid, before)
                    # The hot tier forgets a session only once its expire event is in the archive: a read right
                    # after asks the archive, which must answer with that event (and its version), not the state
                    # before it.
                    if not await tiered.archived_until(utcnow() + timedelta(microseconds=1)):
                        logger.warning(
                            "cleanup stopped after %d session(s): the archive did not take the expire events within "
                            "%g s (%s); the idle sessions stay in the hot tier until a later cleanup",
                            removed, tiered.consult_timeout, tiered.archiver_error or "the archiver is behind",
                        )
                        break
                for sid in ids:
                    await self._hot.delete_session(sid, evict=True)
                    removed += 1
                if len(ids) < batch:
                    break
            if removed:
                self._emit("session.cleanup", "*", removed=removed)
            return removed

        return await self._timed(run)

    async def _archive_expiry(self, sid: str, at: datetime) -> None:
        """Archive an idle session as ``expire`` (status ``expired``) before the hot tier forgets it."""
        tiered = self.tiered
        expire = SessionUpdate(activity=at, fields={"status": "expired"})
        if await tiered.call(lambda: self._hot.update_session(sid, expire, archive=tiered.head("expire"))):
            tiered.written(1)
