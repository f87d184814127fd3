"""The composer and the domain API: :class:`ContextKit`.

``ContextKit.from_config(...)`` resolves the configuration, asks the plugin manager for the hot and cold tier
factories, and on ``open()`` (or ``async with``) connects them, falls back to the memory tier when the hot tier
is unreachable and ``fallback`` is on, and starts the archiver when a cold tier is configured.

Every public method validates its arguments first (so bad input raises :class:`~contextkit.errors.InvalidInput`
and nothing is written), then talks to the hot tier, then queues archive events for the cold tier without waiting
for it. Reads that miss in the hot tier fall back to the cold tier and rehydrate the hot tier.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from contextkit.archiver import Archiver, FileOutbox, MemoryOutbox, Outbox, message_event
from contextkit.config import KitConfig, load_config
from contextkit.errors import (
    BackendUnavailable,
    CapabilityNotSupported,
    ContextKitError,
    InvalidInput,
    LimitExceeded,
    NotFound,
)
from contextkit.plugins import PluginManager, StorageEvent, get_plugin_manager
from contextkit.records import (
    PARTICIPANT_TYPES,
    SESSION_STATUSES,
    SESSION_TYPES,
    AgentMessage,
    ArchiveEvent,
    ConversationParticipant,
    ConversationSession,
    Message,
    Session,
    TaskContext,
    new_event_id,
    to_iso,
    utcnow,
)
from contextkit.stores import ArchiveSpec, Capability, ColdStore, HotStore, SessionUpdate, StoreStats
from contextkit.validation import (
    check_content,
    check_id,
    check_json_document,
    check_limit,
    check_metadata,
    check_name,
    check_role,
)

if TYPE_CHECKING:
    from contextkit.langgraph import ContextKitSaver

__all__ = ["ContextKit"]

logger = logging.getLogger("contextkit")

T = TypeVar("T")

_UPDATABLE = {"status", "metadata", "user_id"}
_SESSION_TYPE_RULES: dict[str, tuple[str, str]] = {
    "user_to_mc": ("user", "master_controller"),
    "mc_to_agent": ("master_controller", "agent"),
    "agent_to_agent": ("agent", "agent"),
    "user_to_agent": ("user", "agent"),
}


def _plain(value: Any, depth: int = 0) -> Any:
    """Dataclasses (and nested ones) as dicts, so the seed's checkpoint data may hold them.

    Nesting deeper than 64 levels raises LimitExceeded here, before Python's recursion limit would.
    """
    if depth > 64:
        raise LimitExceeded("the value is nested deeper than 64 levels")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value), depth + 1)
    if isinstance(value, Mapping):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    return value


class _Perf:
    """Latency and hit-rate counters of the kit's own calls (for ``get_metrics``)."""

    __slots__ = ("calls", "errors", "hits", "misses", "total_time")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.total_time = 0.0
        self.hits = 0
        self.misses = 0


class ContextKit:
    """Context storage for an application: the seed's whole API over a hot tier and an optional cold tier.

    Build one with :meth:`from_config` and use it as an async context manager::

        async with ContextKit.from_config({"hot": "redis", "cold": "postgres"}) as kit:
            await kit.create_session("s1", user_id="u1")
    """

    def __init__(
        self,
        hot: HotStore,
        cold: ColdStore | None = None,
        *,
        config: KitConfig | None = None,
        plugins: PluginManager | None = None,
    ) -> None:
        self.config = config or KitConfig()
        self.plugins = plugins or get_plugin_manager()
        self._hot = hot
        self._cold = cold
        self._archiver: Archiver | None = None
        self._atomic_outbox = False
        self._opened = False
        self._closed = False
        self._degraded_reason: str | None = None
        self._perf = _Perf()
        self._compaction_locks: dict[str, asyncio.Lock] = {}
        self._open_lock: asyncio.Lock | None = None
        self.compaction_options: dict[str, Any] = {}

    # -- construction and lifecycle ------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | KitConfig | str | Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        plugins: PluginManager | None = None,
        **overrides: Any,
    ) -> ContextKit:
        """Build a kit from a mapping, a TOML file path, a :class:`KitConfig`, the environment and defaults.

        No I/O happens here; ``await kit.open()`` or ``async with kit`` connects. An unknown backend name raises
        :class:`~contextkit.errors.BackendNotFound` listing the installed ones.
        """
        resolved = load_config(config, env=env, **overrides)
        manager = plugins or get_plugin_manager()
        settings = resolved.store_settings()
        hot_info = manager.backends.get("hot", resolved.hot)
        hot = hot_info.factory(settings, resolved.hot_options)
        cold = None
        if resolved.cold:
            cold_info = manager.backends.get("cold", resolved.cold)
            cold = cold_info.factory(settings, resolved.cold_options)
        return cls(hot, cold, config=resolved, plugins=manager)

    @property
    def hot(self) -> HotStore:
        """The hot tier in use (the memory tier after a fallback)."""
        return self._hot

    @property
    def cold(self) -> ColdStore | None:
        """The cold tier, or None."""
        return self._cold

    @property
    def archiver(self) -> Archiver | None:
        """The archiver feeding the cold tier, or None without a cold tier."""
        return self._archiver

    @property
    def degraded(self) -> str | None:
        """Why the kit runs degraded (for example on the memory fallback), or None."""
        return self._degraded_reason

    async def open(self) -> ContextKit:
        """Connect the tiers and start the archiver; idempotent.

        The hot tier unreachable: with ``fallback`` on (the default) the kit continues on the memory tier, logs
        a warning and reports "degraded" health; with ``fallback = false`` it raises ``BackendUnavailable``. The
        cold tier unreachable: the kit starts anyway and the archiver keeps events until it comes back.
        """
        if self._closed:
            raise ContextKitError("this ContextKit was closed; build a new one")
        if self._opened:
            return self
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._opened:
                return self
            await self._open_hot()
            if self._cold is not None:
                await self._start_archiver()
            self._opened = True
        return self

    async def _open_hot(self) -> None:
        try:
            await self._hot.open()
        except BackendUnavailable as exc:
            if not self.config.fallback or self.config.hot == "memory":
                raise
            with_cause = f"{self.config.hot} hot tier unreachable at start ({exc}); using the memory tier"
            logger.warning("%s", with_cause)
            self._degraded_reason = with_cause
            with_memory = self.plugins.backends.get("hot", "memory")
            self._hot = with_memory.factory(self.config.store_settings(), {})
            await self._hot.open()

    async def _start_archiver(self) -> None:
        assert self._cold is not None
        cold_open = True
        try:
            await self._cold.open()
        except BackendUnavailable as exc:
            logger.warning("cold tier unreachable at start (%s); events wait in the outbox", exc)
            cold_open = False
        outbox: Outbox
        if self.config.archiver.outbox_path:
            outbox = FileOutbox(self.config.archiver.outbox_path, self.config.archiver.max_pending)
        elif Capability.OUTBOX in self._hot.capabilities:
            outbox = self._hot.outbox(max_pending=self.config.archiver.max_pending)  # type: ignore[attr-defined]
        else:
            outbox = MemoryOutbox(self.config.archiver.max_pending)
        self._archiver = Archiver(self._cold, outbox, self.config.archiver, cold_open=cold_open)
        # Appends write their archive events themselves only into the outbox this archiver drains.
        self._atomic_outbox = (
            not self.config.archiver.outbox_path and Capability.ATOMIC_OUTBOX in self._hot.capabilities
        )
        self._archiver.start()

    async def aclose(self, drain_timeout: float | None = None) -> None:
        """Drain the archiver (within ``drain_timeout``, pending events stay in a durable outbox), close the
        tiers; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._archiver is not None:
                await self._archiver.aclose(drain_timeout)
        finally:
            if self._cold is not None:
                await self._cold.aclose()
            await self._hot.aclose()

    async def __aenter__(self) -> ContextKit:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def describe(self) -> dict[str, Any]:
        """The composed tiers and settings, without secrets."""
        return {
            "config": self.config.describe(),
            "hot": self._hot.describe(),
            "cold": self._cold.describe() if self._cold is not None else None,
            "archiver": None if self._archiver is None else type(self._archiver.outbox).__name__,
            "degraded": self._degraded_reason,
        }

    def __repr__(self) -> str:
        cold = self._cold.name if self._cold is not None else None
        return f"<ContextKit hot={self._hot.name!r} cold={cold!r} namespace={self.config.namespace!r}>"

    def checkpointer(self, *, serde: Any = None) -> ContextKitSaver:
        """A LangGraph checkpointer (``BaseCheckpointSaver``) over the hot tier; needs ``contextkit[langgraph]``.

        With a cold tier, its checkpoints are archived and read back when the hot tier no longer has them (the
        kit must be open: the archiver starts with it).
        """
        if Capability.CHECKPOINTS not in self._hot.capabilities:
            raise CapabilityNotSupported(f"the {self._hot.name} hot tier does not store LangGraph checkpoints")
        from contextkit.langgraph import ContextKitSaver

        if self._cold is not None and self._archiver is None:
            self._ensure_open()
        return ContextKitSaver(self._hot, serde=serde, archive=self._archiver)  # type: ignore[arg-type]

    # -- plumbing ------------------------------------------------------------------------------------------------
    def _ensure_open(self) -> None:
        if not self._opened:
            if self._closed:
                raise ContextKitError("this ContextKit was closed")
            raise ContextKitError("the ContextKit is not open: use 'async with kit' or 'await kit.open()'")

    async def _timed(self, call: Callable[[], Any]) -> Any:
        self._ensure_open()
        start = time.perf_counter()
        self._perf.calls += 1
        try:
            return await call()
        except ContextKitError:
            self._perf.errors += 1
            raise
        finally:
            self._perf.total_time += time.perf_counter() - start

    def _check_room(self, count: int) -> None:
        if self._archiver is not None and not self._archiver.has_room(count):
            raise BackendUnavailable(
                "the archive outbox is full (the cold tier has been down too long); refusing the write so no "
                "event is lost"
            )

    async def _archive(self, *events: ArchiveEvent) -> None:
        if self._archiver is not None:
            await self._archiver.submit(events)

    def _emit(self, kind: str, key: str, **detail: Any) -> None:
        if self.plugins.has_observers:
            self.plugins.emit(StorageEvent(kind, key, detail))

    def _id(self, value: object, what: str) -> str:
        return check_id(value, what, self.config.limits)

    # -- sessions ------------------------------------------------------------------------------------------------
    async def create_session(
        self, session_id: str, user_id: str, metadata: Mapping[str, Any] | None = None
    ) -> Session:
        """Create (or reset) a session with status ``active`` and a task context, and archive a ``create`` event.

        Creating an id that exists replaces its record (counters restart); its history is kept.
        """
        sid = self._id(session_id, "session_id")
        uid = self._id(user_id, "user_id")
        meta = check_metadata(metadata, self.config.limits)
        self._check_room(2)

        async def run() -> Session:
            now = utcnow()
            session = Session(sid, uid, now, now, metadata=meta)
            context = TaskContext({"user_id": uid, "chat_id": sid, "metadata": meta})
            await self._hot.put_session(session)
            await self._hot.put_task_context(sid, context.to_dict())
            await self._archive(
                ArchiveEvent("context_sessions", sid, {"event_type": "create", "session": session.to_dict()}, now),
                ArchiveEvent("context_task_contexts", sid, {"context": context.to_dict()}, now),
            )
            self._emit("session.create", sid, user_id=uid)
            return session

        result: Session = await self._timed(run)
        return result

    async def get_session(self, session_id: str) -> Session | None:
        """The session, from the hot tier or (after expiry or a restart) from the cold tier; None if unknown."""
        sid = self._id(session_id, "session_id")

        async def run() -> Session | None:
            session = await self._hot.get_session(sid)
            if session is not None:
                self._perf.hits += 1
                return session
            self._perf.misses += 1
            if self._cold is None:
                return None
            archived = await self._read_cold(self._cold.read_session(sid))
            if archived is not None:
                await self._hot.put_session(archived)
            return archived

        result: Session | None = await self._timed(run)
        return result

    async def _read_cold(self, awaitable: Awaitable[T]) -> T | None:
        try:
            return await awaitable
        except BackendUnavailable as exc:
            logger.warning("cold tier read failed: %s", exc)
            return None

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
        return bool(await self._timed(lambda: self._apply_update(sid, update, "update")))

    def _check_updates(self, updates: Mapping[str, Any] | None) -> dict[str, Any]:
        if updates is None:
            return {}
        if not isinstance(updates, Mapping):
            raise InvalidInput(f"updates must be a mapping, got {type(updates).__name__}")
        unknown = set(updates) - _UPDATABLE
        if unknown:
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

    @staticmethod
    def _check_status(status: object) -> str:
        if status not in SESSION_STATUSES:
            raise InvalidInput(f"status must be one of {sorted(SESSION_STATUSES)}, got {status!r}")
        return str(status)

    async def _apply_update(self, sid: str, update: SessionUpdate, event_type: str) -> bool:
        session = await self._hot.update_session(sid, update)
        if session is None and self._cold is not None:
            archived = await self._read_cold(self._cold.read_session(sid))
            if archived is not None:
                await self._hot.put_session(archived)
                session = await self._hot.update_session(sid, update)
        if session is None:
            return False
        await self._archive(
            ArchiveEvent("context_sessions", sid, {"event_type": event_type, "session": session.to_dict()})
        )
        self._emit(f"session.{event_type}", sid)
        return True

    async def end_session(self, session_id: str, status: str = "completed") -> bool:
        """Set a final status (``completed`` by default, or ``failed`` / ``expired``) and archive an ``end``
        event. False if the session does not exist. Data is kept until it expires or is cleaned up."""
        sid = self._id(session_id, "session_id")
        final = self._check_status(status)
        self._check_room(1)
        update = SessionUpdate(activity=utcnow(), fields={"status": final})
        return bool(await self._timed(lambda: self._apply_update(sid, update, "end")))

    async def delete_session(self, session_id: str) -> bool:
        """Remove a session and every key family of it from the hot tier; True if it existed.

        The archive keeps its history, and records a ``delete`` event so read-through does not bring it back.
        """
        sid = self._id(session_id, "session_id")
        self._check_room(1)

        async def run() -> bool:
            session = await self._hot.get_session(sid)
            if self._archiver is not None:
                # Let the archive catch up with this session first: a message added after the delete continues
                # the archived numbering only if the archive already holds the messages written before it.
                # (Skipped while the cold tier is failing: a delete must not stall on an outage; numbering may
                # then restart for messages written after the delete.)
                if not self._archiver.consecutive_failures:
                    await self._archiver.flush(min(self.config.archiver.drain_timeout, self.config.timeout))
                if session is None and self._cold is not None:
                    # The hot copy expired: the delete must still be recorded, or read-through would revive it.
                    session = await self._read_cold(self._cold.read_session(sid))
            existed = await self._hot.delete_session(sid)
            if session is not None:
                # A "delete" event makes read-through treat the session as gone instead of bringing it back.
                await self._archive(
                    ArchiveEvent("context_sessions", sid, {"event_type": "delete", "session": session.to_dict()})
                )
            self._emit("session.delete", sid)
            return existed or session is not None

        return bool(await self._timed(run))

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
        """Remove sessions idle for more than ``max_idle_hours`` (every key family of each) and return how many.

        Each is archived as ``expired`` first, so the cold tier keeps it. ``limit`` bounds the work of one call.
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
            while limit is None or removed < limit:
                batch = 500 if limit is None else min(500, limit - removed)
                ids = await self._hot.idle_sessions(before, batch)
                if not ids:
                    break
                for sid in ids:
                    session = await self._hot.get_session(sid)
                    if session is not None and self._archiver is not None:
                        self._check_room(1)
                        expired = dataclasses.replace(session, status="expired")
                        await self._archive(
                            ArchiveEvent("context_sessions", sid, {"event_type": "expire", "session": expired.to_dict()})
                        )
                    await self._hot.delete_session(sid)
                    removed += 1
                if len(ids) < batch:
                    break
            if removed:
                self._emit("session.cleanup", "*", removed=removed)
            return removed

        result: int = await self._timed(run)
        return result

    # -- conversation history ------------------------------------------------------------------------------------
    async def add_message(
        self, session_id: str, role: str, content: str, metadata: Mapping[str, Any] | None = None
    ) -> Message:
        """Append a message to a session's history and return it with its id and sequence number."""
        sid = self._id(session_id, "session_id")
        message = Message(
            role=check_role(role, "role", self.config.limits),
            content=check_content(content, self.config.limits),
            timestamp=utcnow(),
            metadata=check_metadata(metadata, self.config.limits),
        )
        self._check_room(1)

        async def run() -> Message:
            # The append also moves the session's last_activity forward (HotStore.append_messages), and a store
            # with its own outbox writes the archive event in the same step: one round trip on Redis.
            if self._atomic_outbox:
                # The event is created with the message (message_event's created_at is its timestamp).
                event_id = new_event_id()
                spec = ArchiveSpec("context_conversations", (event_id,), (message.timestamp,))
                raw = await self._hot.append_messages(sid, [message], archive=spec)  # type: ignore[call-arg]
            else:
                raw = await self._hot.append_messages(sid, [message])
            stored = await self._continue_numbering(sid, raw)
            archiver = self._archiver
            if archiver is not None:
                first = stored[0]
                if self._atomic_outbox:
                    if raw[0].seq != 1:
                        archiver.notify(len(stored))
                    else:
                        # A new stream's first message is archived here, after _continue_numbering fixed its seq,
                        # under the event id the store was given.
                        await archiver.submit([message_event(sid, first, first.seq, event_id)])
                # An in-process outbox keeps the (frozen) record and builds its event off the hot path.
                elif not archiver.queue_message(sid, first, first.seq):
                    await archiver.submit([message_event(sid, first, first.seq)])
            self._emit("message.append", sid, seq=stored[0].seq, role=message.role)
            return stored[0]

        result: Message = await self._timed(run)
        return result

    async def _append(self, key: str, messages: list[Message]) -> list[Message]:
        return await self._continue_numbering(key, await self._hot.append_messages(key, messages))

    async def _continue_numbering(self, key: str, stored: list[Message]) -> list[Message]:
        if self._cold is None or stored[0].seq != 1:
            return stored
        # A new hot stream: if the archive already holds this stream (the hot copy expired or was cleaned up),
        # continue its numbering so the archive never holds two messages with the same seq.
        archived = await self._read_cold(self._cold.read_history(key, self.config.history_cap, None))
        if not archived:
            return stored
        offset = archived[-1].seq
        fresh = [m.with_seq(m.seq + offset) for m in await self._hot.read_history(key, None)]
        room = max(0, self.config.history_cap - len(fresh))
        await self._hot.replace_history(key, [*(archived[-room:] if room else []), *fresh])
        ids = {m.id for m in stored}
        return [m for m in fresh if m.id in ids]

    async def add_conversation_message(
        self, session_id: str, role: str, content: str, metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Append a message (the seed's name for :meth:`add_message`); True once stored."""
        await self.add_message(session_id, role, content, metadata)
        return True

    async def get_conversation_history(self, session_id: str, limit: int = 50) -> list[Message]:
        """The newest ``limit`` messages in chronological order (``limit=0``: every message kept hot).

        Messages the hot tier trimmed or lost are read from the cold tier when one is configured.
        """
        sid = self._id(session_id, "session_id")
        check_limit(limit, "limit", self.config.limits)
        result: list[Message] = await self._timed(lambda: self._history(sid, limit or None))
        return result

    async def _history(self, key: str, limit: int | None) -> list[Message]:
        messages = await self._hot.read_history(key, limit)
        # "All kept" (limit None) is answered by the hot tier alone unless it lost the stream entirely.
        complete = bool(messages) and (limit is None or len(messages) >= limit or messages[0].seq <= 1)
        if complete or self._cold is None:
            if messages:
                self._perf.hits += 1
            return messages
        self._perf.misses += 1
        if not messages:
            # The hot stream is gone (expired, deleted, restarted): rehydrate it with the newest archived messages.
            want = self.config.history_cap if limit is None else max(limit, self.config.history_cap)
            archived = await self._read_cold(self._cold.read_history(key, want, None))
            if not archived:
                return []
            if await self._hot.history_length(key) == 0:
                await self._hot.replace_history(key, archived[-self.config.history_cap :])
            return archived if limit is None else archived[-limit:]
        need = None if limit is None else limit - len(messages)
        older = await self._read_cold(self._cold.read_history(key, need, messages[0].seq))
        return [*(older or []), *messages]

    async def compress_conversation(
        self,
        session_id: str,
        strategy: str | None = None,
        config_override: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Compact a session's hot history with a registered strategy (``truncate`` built in).

        The strategy sees the *whole* kept history; the result replaces it atomically, and messages appended
        while the strategy ran are kept after it. Returns ``{success, strategy, original_count,
        compressed_count, compression_ratio, time_taken}`` (``success`` False with ``error`` on failure).
        """
        sid = self._id(session_id, "session_id")
        options = dict(self.compaction_options)
        if config_override is not None:
            if not isinstance(config_override, Mapping):
                raise InvalidInput("config_override must be a mapping")
            options.update(config_override)
        name = strategy or str(options.get("strategy", "truncate"))
        compactor = self.plugins.compactors.get(check_name(name, "strategy"))
        keep_recent = options.get("keep_recent", 10)
        check_limit(keep_recent, "keep_recent", self.config.limits)

        async def run() -> dict[str, Any]:
            started = time.perf_counter()
            lock = self._compaction_locks.setdefault(sid, asyncio.Lock())
            async with lock:
                original = await self._hot.read_history(sid, None)
                try:
                    compacted = list(await compactor(list(original), int(keep_recent), options))
                except Exception as exc:
                    return {
                        "success": False,
                        "strategy": name,
                        "error": f"{type(exc).__name__}: {exc}",
                        "original_count": len(original),
                        "time_taken": time.perf_counter() - started,
                    }
                last_seq = original[-1].seq if original else 0
                latest = await self._hot.read_history(sid, None)
                appended = [m for m in latest if m.seq > last_seq]
                await self._hot.replace_history(sid, [*compacted, *appended])
            self._emit("history.compact", sid, strategy=name, before=len(original), after=len(compacted))
            return {
                "success": True,
                "strategy": name,
                "original_count": len(original),
                "compressed_count": len(compacted),
                "compression_ratio": (len(compacted) / len(original)) if original else 1.0,
                "time_taken": time.perf_counter() - started,
            }

        result: dict[str, Any] = await self._timed(run)
        return result

    async def get_compressed_context(
        self, session_id: str, format: str = "messages", compress_first: bool = False
    ) -> Any:
        """The history as messages, as ``"[timestamp] role: content"`` lines (``string``) or as dicts (``dict``)."""
        if format not in ("messages", "string", "dict"):
            raise InvalidInput(f"format must be 'messages', 'string' or 'dict', got {format!r}")
        if compress_first:
            await self.compress_conversation(session_id)
        history = await self.get_conversation_history(session_id, limit=0)
        if format == "messages":
            return history
        if format == "dict":
            return [m.to_dict() for m in history]
        return "\n".join(f"[{to_iso(m.timestamp)}] {m.role}: {m.content}" for m in history)

    async def auto_compress_on_limit(self, session_id: str) -> dict[str, Any] | None:
        """Compact when the history holds more than ``auto_compress_threshold`` messages (option, default 100),
        keeping ``auto_compress_target`` (default 50); None when below the threshold."""
        sid = self._id(session_id, "session_id")
        threshold = int(self.compaction_options.get("auto_compress_threshold", 100))
        target = int(self.compaction_options.get("auto_compress_target", 50))
        length = await self._timed(lambda: self._hot.history_length(sid))
        if length <= threshold:
            return None
        return await self.compress_conversation(sid, config_override={"keep_recent": target})

    # -- task contexts -------------------------------------------------------------------------------------------
    async def store_task_context(self, session_id: str, context: TaskContext | Mapping[str, Any]) -> bool:
        """Store a session's task context (a :class:`TaskContext` or its dict); True once stored."""
        sid = self._id(session_id, "session_id")
        limits = self.config.limits
        if isinstance(context, TaskContext):
            raw: Mapping[str, Any] = context._data
        elif isinstance(context, Mapping):
            # Validate the caller's mapping before TaskContext copies it through json (which would raise raw
            # TypeError / RecursionError on bad values).
            check_json_document(
                context, "task context", max_bytes=limits.max_document_bytes, max_depth=limits.max_metadata_depth * 2
            )
            raw = TaskContext(context)._data
        else:
            raise InvalidInput(f"context must be a TaskContext or a mapping, got {type(context).__name__}")
        document = check_json_document(
            raw, "task context", max_bytes=limits.max_document_bytes, max_depth=limits.max_metadata_depth * 2
        )
        self._check_room(1)

        async def run() -> bool:
            await self._hot.put_task_context(sid, document)
            await self._archive(ArchiveEvent("context_task_contexts", sid, {"context": document}))
            self._emit("task_context.store", sid)
            return True

        return bool(await self._timed(run))

    async def get_task_context(self, session_id: str) -> TaskContext | None:
        """The session's task context (read through from the cold tier on a hot miss), or None."""
        sid = self._id(session_id, "session_id")

        async def run() -> TaskContext | None:
            document = await self._hot.get_task_context(sid)
            if document is None and self._cold is not None:
                document = await self._read_cold(self._cold.read_task_context(sid))
                if document is not None:
                    await self._hot.put_task_context(sid, document)
            if document is None:
                self._perf.misses += 1
                return None
            self._perf.hits += 1
            return TaskContext.from_dict(document)

        result: TaskContext | None = await self._timed(run)
        return result

    # -- seed checkpoints ----------------------------------------------------------------------------------------
    async def store_checkpoint(
        self,
        thread_id: str,
        checkpoint_id: str,
        checkpoint_data: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store a checkpoint document ``{checkpoint_id, thread_id, data, metadata, created_at}``; True once stored.

        For LangGraph graphs use :meth:`checkpointer` instead: it stores typed channel values.
        """
        tid = self._id(thread_id, "thread_id")
        cid = self._id(checkpoint_id, "checkpoint_id")
        limits = self.config.limits
        data = check_json_document(
            _plain(checkpoint_data), "checkpoint_data", max_bytes=limits.max_document_bytes, max_depth=64
        )
        meta = check_metadata(_plain(metadata), limits)
        self._check_room(1)
        document = {
            "checkpoint_id": cid,
            "thread_id": tid,
            "data": data,
            "metadata": meta,
            "created_at": to_iso(utcnow()),
        }

        async def run() -> bool:
            await self._hot.put_checkpoint_document(tid, cid, document)
            await self._archive(
                ArchiveEvent("context_checkpoints", tid, {"checkpoint_id": cid, "document": document})
            )
            self._emit("checkpoint.store", tid, checkpoint_id=cid)
            return True

        return bool(await self._timed(run))

    put_checkpoint = store_checkpoint

    async def get_checkpoint(self, thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any] | None:
        """A checkpoint document (the newest of the thread when ``checkpoint_id`` is None), or None."""
        tid = self._id(thread_id, "thread_id")
        cid = None if checkpoint_id is None else self._id(checkpoint_id, "checkpoint_id")

        async def run() -> dict[str, Any] | None:
            document = await self._hot.get_checkpoint_document(tid, cid)
            if document is None and self._cold is not None:
                document = await self._read_cold(self._cold.read_checkpoint_document(tid, cid))
            return document

        result: dict[str, Any] | None = await self._timed(run)
        return result

    async def list_checkpoints(self, thread_id: str, limit: int = 10) -> list[dict[str, Any]]:
        """Up to ``limit`` checkpoint documents of the thread, newest first."""
        tid = self._id(thread_id, "thread_id")
        check_limit(limit, "limit", self.config.limits)
        result: list[dict[str, Any]] = await self._timed(lambda: self._hot.list_checkpoint_documents(tid, limit))
        return result

    async def put_writes(
        self, thread_id: str, checkpoint_id: str, task_id: str, writes_data: Sequence[Any]
    ) -> bool:
        """Add a task's intermediate writes to a checkpoint (a second call adds, never replaces); True once stored."""
        tid = self._id(thread_id, "thread_id")
        cid = self._id(checkpoint_id, "checkpoint_id")
        task = self._id(task_id, "task_id")
        if isinstance(writes_data, (str, bytes)) or not isinstance(writes_data, Sequence):
            raise InvalidInput(f"writes_data must be a list of writes, got {type(writes_data).__name__}")
        limits = self.config.limits
        wrapped = check_json_document(
            {"writes": _plain(list(writes_data))}, "writes_data", max_bytes=limits.max_document_bytes, max_depth=64
        )
        writes = wrapped["writes"]
        self._check_room(1)

        async def run() -> bool:
            await self._hot.put_writes_document(tid, cid, task, writes)
            await self._archive(
                ArchiveEvent(
                    "context_checkpoint_writes", tid, {"checkpoint_id": cid, "task_id": task, "writes": writes}
                )
            )
            self._emit("checkpoint.writes", tid, checkpoint_id=cid, task_id=task)
            return True

        return bool(await self._timed(run))

    async def get_writes(self, thread_id: str, checkpoint_id: str) -> list[tuple[Any, ...]]:
        """The writes of a checkpoint, in the order they were put, each as a tuple."""
        tid = self._id(thread_id, "thread_id")
        cid = self._id(checkpoint_id, "checkpoint_id")
        pairs = await self._timed(lambda: self._hot.get_writes_documents(tid, cid))
        return [tuple(w) if isinstance(w, list) else (w,) for _task, w in pairs]

    # -- multi-agent conversation sessions -----------------------------------------------------------------------
    def _participants(self, participants: object) -> tuple[ConversationParticipant, ...]:
        if isinstance(participants, (str, bytes, Mapping)) or not isinstance(participants, Sequence):
            raise InvalidInput("participants must be a list of {id, type, role, metadata} mappings")
        result = []
        for raw in participants:
            p = raw if isinstance(raw, ConversationParticipant) else ConversationParticipant.from_dict(raw)
            pid = self._id(p.participant_id, "participant id")
            if p.participant_type not in PARTICIPANT_TYPES:
                raise InvalidInput(
                    f"unknown participant type {p.participant_type!r}; expected one of {sorted(PARTICIPANT_TYPES)}"
                )
            role = p.participant_role
            if p.participant_type == "agent" and not role:
                raise InvalidInput(f"agent participant {pid!r} needs a role")
            if role is not None:
                role = check_role(role, "participant role", self.config.limits)
            result.append(ConversationParticipant(pid, p.participant_type, role, check_metadata(p.metadata)))
        return tuple(result)

    async def create_conversation_session(
        self,
        session_id: str,
        participants: Sequence[Mapping[str, Any] | ConversationParticipant],
        session_type: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a multi-participant conversation session and return its unambiguous session key.

        ``session_type`` is ``user_to_mc``, ``mc_to_agent``, ``agent_to_agent`` or ``user_to_agent``; the
        participants must match it (for example a user and an agent for ``user_to_agent``).
        """
        sid = self._id(session_id, "session_id")
        if session_type not in SESSION_TYPES:
            raise InvalidInput(f"unknown session type {session_type!r}; expected one of {sorted(SESSION_TYPES)}")
        members = self._participants(participants)
        needed = _SESSION_TYPE_RULES[session_type]
        kinds = sorted(p.participant_type for p in members)
        if kinds != sorted(needed):
            raise InvalidInput(
                f"a {session_type} session needs participants of types {list(needed)}, got {kinds}"
            )
        if len({p.participant_id for p in members}) != len(members):
            raise InvalidInput("participant ids must be distinct")
        now = utcnow()
        conversation = ConversationSession(sid, members, session_type, now, now, check_metadata(metadata))
        key = conversation.session_key
        document = conversation.to_dict()
        self._check_room(1)

        async def run() -> str:
            await self._hot.put_conversation_session(key, document)
            await self._archive(ArchiveEvent("context_conversation_sessions", key, {"session": document}))
            self._emit("conversation_session.create", key, session_type=session_type)
            return key

        result: str = await self._timed(run)
        return result

    async def get_conversation_session(self, session_key: str) -> ConversationSession | None:
        """The conversation session stored under ``session_key`` (read through from the cold tier), or None."""
        key = self._id(session_key, "session_key")

        async def run() -> ConversationSession | None:
            document = await self._hot.get_conversation_session(key)
            if document is None and self._cold is not None:
                document = await self._read_cold(self._cold.read_conversation_session(key))
                if document is not None:
                    await self._hot.put_conversation_session(key, document)
            return None if document is None else ConversationSession.from_dict(document)

        result: ConversationSession | None = await self._timed(run)
        return result

    async def add_agent_communication_message(
        self,
        session_key: str,
        sender_id: str,
        sender_type: str,
        sender_role: str | None,
        recipient_id: str | None = None,
        recipient_type: str | None = None,
        recipient_role: str | None = None,
        content: str | None = None,
        message_type: str = "communication",
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Add a message between participants of a conversation session; True once stored.

        The sender must be a participant. ``message_type`` is one of the ten well-known types or a well-formed
        custom one (``analysis_result``). Raises :class:`~contextkit.errors.NotFound` for an unknown session key.
        """
        key = self._id(session_key, "session_key")
        sender = self._id(sender_id, "sender_id")
        if sender_type not in PARTICIPANT_TYPES:
            raise InvalidInput(f"unknown sender type {sender_type!r}; expected one of {sorted(PARTICIPANT_TYPES)}")
        if recipient_type is not None and recipient_type not in PARTICIPANT_TYPES:
            raise InvalidInput(
                f"unknown recipient type {recipient_type!r}; expected one of {sorted(PARTICIPANT_TYPES)}"
            )
        if content is None:
            raise InvalidInput("content is required")
        limits = self.config.limits
        message = AgentMessage(
            session_key=key,
            sender_id=sender,
            sender_type=sender_type,
            sender_role=None if sender_role is None else check_role(sender_role, "sender_role", limits),
            content=check_content(content, limits),
            message_type=check_name(message_type, "message_type"),
            recipient_id=None if recipient_id is None else self._id(recipient_id, "recipient_id"),
            recipient_type=recipient_type,
            recipient_role=None if recipient_role is None else check_role(recipient_role, "recipient_role", limits),
            metadata=check_metadata(metadata, limits),
        )
        if not message.content.strip():
            raise InvalidInput("content must not be empty")
        self._check_room(2)

        async def run() -> bool:
            conversation = await self.get_conversation_session(key)
            if conversation is None:
                raise NotFound(f"no conversation session with key {key!r}; create it with create_conversation_session")
            if sender not in {p.participant_id for p in conversation.participants}:
                raise InvalidInput(f"sender {sender!r} is not a participant of conversation {key!r}")
            stored = await self._append(key, [message.to_message()])
            touched = dataclasses.replace(conversation, last_activity=message.timestamp)
            await self._hot.put_conversation_session(key, touched.to_dict())
            if conversation.session_type == "user_to_mc":
                await self._hot.update_session(conversation.session_id, SessionUpdate(activity=message.timestamp))
            await self._archive(
                ArchiveEvent("context_conversations", key, {"message": stored[0].to_dict()}),
                ArchiveEvent("context_conversation_sessions", key, {"session": touched.to_dict()}),
            )
            self._emit("agent_message.append", key, message_type=message.message_type)
            return True

        return bool(await self._timed(run))

    async def get_agent_conversation_history(
        self, session_key: str, limit: int = 50, message_types: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` agent messages (of ``message_types`` when given) in chronological order, as dicts.

        The type filter applies before the limit, so ``limit`` matching messages come back when they exist.
        """
        key = self._id(session_key, "session_key")
        check_limit(limit, "limit", self.config.limits)
        wanted = None
        if message_types is not None:
            if isinstance(message_types, str):
                raise InvalidInput("message_types must be a list of message types")
            wanted = {check_name(t, "message type") for t in message_types}

        async def run() -> list[dict[str, Any]]:
            messages = await self._history(key, None if wanted else (limit or None))
            rows = [_agent_row(key, m) for m in messages]
            if wanted is not None:
                rows = [r for r in rows if r["message_type"] in wanted]
            return rows[-limit:] if limit else rows

        result: list[dict[str, Any]] = await self._timed(run)
        return result

    # -- health and metrics --------------------------------------------------------------------------------------
    async def health_check(self) -> dict[str, Any]:
        """``{status, storage_backend, active_sessions, total_messages, issues, hot, cold, archiver}``.

        ``status`` is ``healthy``, ``degraded`` (memory fallback, cold tier down, archive backlog with errors)
        or ``unhealthy`` (the hot tier fails). Never raises; never shows secrets.
        """
        issues: list[str] = []
        hot = await self._hot.health()
        status = "healthy"
        if hot.get("status") not in ("healthy", "ok"):
            status = "unhealthy"
            issues.append(f"hot tier {self._hot.name} is {hot.get('status')}: {hot.get('error', '')}".strip())
        if self._degraded_reason:
            status = "degraded" if status == "healthy" else status
            issues.append(self._degraded_reason)
        cold = None
        archiver = None
        if self._cold is not None:
            cold = await self._cold.health()
            if cold.get("status") not in ("healthy", "ok"):
                status = "degraded" if status == "healthy" else status
                issues.append(f"cold tier {self._cold.name} is {cold.get('status')}; events wait in the outbox")
        if self._archiver is not None:
            archiver = await self._archiver.metrics()
            if archiver["consecutive_failures"]:
                status = "degraded" if status == "healthy" else status
                issues.append(f"archiver failing: {archiver['last_error']}")
            if archiver["dead_letters"]:
                status = "degraded" if status == "healthy" else status
                issues.append(f"{archiver['dead_letters']} archive event(s) refused by the cold tier (kit.archiver.dead_letters)")
        stats = StoreStats()
        if status != "unhealthy":
            try:
                stats = await self._hot.stats()
            except ContextKitError as exc:
                issues.append(f"stats unavailable: {exc}")
        return {
            "status": status,
            "storage_backend": self._hot.name,
            "redis_connected": self._hot.name == "redis" and hot.get("status") == "healthy",
            "active_sessions": stats.active_sessions,
            "total_messages": stats.messages,
            "issues": issues,
            "hot": hot,
            "cold": cold,
            "archiver": archiver,
            "timestamp": to_iso(utcnow()),
        }

    async def get_metrics(self) -> dict[str, Any]:
        """Counts shared by every process on the same hot tier, plus this kit's latency and hit rate.

        ``memory_usage`` is a fraction of the tier's memory limit (0.0 when it has none); ``memory_bytes`` the
        bytes used when known.
        """
        self._ensure_open()
        stats = await self._hot.stats()
        hot_health = await self._hot.health()
        limit = hot_health.get("memory_limit_bytes") or 0
        used = stats.memory_bytes if stats.memory_bytes >= 0 else int(hot_health.get("memory_bytes", -1))
        perf = self._perf
        lookups = perf.hits + perf.misses
        return {
            "total_sessions": stats.sessions,
            "active_sessions": stats.active_sessions,
            "total_messages": stats.messages,
            "total_checkpoints": stats.checkpoints,
            "memory_usage": (used / limit) if limit and used >= 0 else 0.0,
            "memory_bytes": used,
            "storage_backend": self._hot.name,
            "storage_performance": {
                "avg_response_time": (perf.total_time / perf.calls) if perf.calls else 0.0,
                "cache_hit_rate": (perf.hits / lookups) if lookups else 1.0,
                "operations": perf.calls,
                "errors": perf.errors,
            },
            "archiver": await self._archiver.metrics() if self._archiver is not None else None,
            "timestamp": to_iso(utcnow()),
        }


def _agent_row(key: str, message: Message) -> dict[str, Any]:
    meta = dict(message.metadata)
    row = {
        "message_id": meta.pop("message_id", message.id),
        "session_key": key,
        "seq": message.seq,
        "sender_id": meta.pop("sender_id", None),
        "sender_type": meta.pop("sender_type", None),
        "sender_role": meta.pop("sender_role", None),
        "recipient_id": meta.pop("recipient_id", None),
        "recipient_type": meta.pop("recipient_type", None),
        "recipient_role": meta.pop("recipient_role", None),
        "message_type": meta.pop("message_type", "communication"),
        "role": message.role,
        "content": message.content,
        "timestamp": to_iso(message.timestamp),
    }
    row["metadata"] = meta
    return row

