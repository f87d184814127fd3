"""Conversation history: append, read (through to the archive), compress (the :class:`HistoryAPI` mixin)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from contextkit.errors import InvalidInput
from contextkit.kit.base import KitBase
from contextkit.records import Message, to_iso, utcnow
from contextkit.validation import check_content, check_limit, check_metadata, check_name, check_role

__all__ = ["HistoryAPI", "KeyedLocks"]


class KeyedLocks:
    """One asyncio lock per key, kept only while a caller holds or waits for it (a lock per session ever seen
    would grow without bound)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of ``key`` for the ``async with`` block."""
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class HistoryAPI(KitBase):
    """The history calls of :class:`~contextkit.kit.ContextKit`."""

    compaction_options: dict[str, Any]
    _compaction_locks: KeyedLocks

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
        # _check_room(1) inline: the hottest archived write pays for every call on its way.
        has_room = self._has_room
        if has_room is not None and not has_room(1):
            self._refuse_full()

        async def run() -> Message:
            stored = await self._append(sid, message)
            self._emit("message.append", sid, seq=stored.seq, role=message.role)
            return stored

        return await self._timed(run)

    async def add_conversation_message(
        self, session_id: str, role: str, content: str, metadata: Mapping[str, Any] | None = None
    ) -> bool:
        """Append a message (the seed's name for :meth:`add_message`); True once stored."""
        await self.add_message(session_id, role, content, metadata)
        return True

    async def get_conversation_history(self, session_id: str, limit: int = 50) -> list[Message]:
        """The newest ``limit`` messages in chronological order (``limit=0``: every message kept hot).

        Messages the hot tier trimmed or lost are read from the archive when one is configured.
        """
        sid = self._id(session_id, "session_id")
        check_limit(limit, "limit", self.config.limits)
        return await self._timed(lambda: self._lookup(lambda: self.tiered.history(sid, limit or None)))

    async def compress_conversation(
        self,
        session_id: str,
        strategy: str | None = None,
        config_override: Mapping[str, Any] | Any | None = None,
    ) -> dict[str, Any]:
        """Compact a session's hot history with a registered strategy (``truncate``, ``summarize``,
        ``semantic``, ``hybrid`` built in; see :mod:`contextkit.compaction`).

        The strategy sees the *whole* kept history; the result replaces it atomically, and messages appended
        while the strategy ran are kept after it. ``config_override`` is a mapping of options or a dataclass
        such as :class:`~contextkit.compat.CompressionConfig`. Returns ``{success, strategy, original_count,
        compressed_count, compression_ratio, time_taken}``, where ``compression_ratio`` is the fraction of messages
        removed (``1 - compressed/original``: 0.75 when 20 become 5, as the original reported); ``success`` is
        False with ``error`` when the strategy failed (the history is then unchanged).
        """
        sid = self._id(session_id, "session_id")
        options = dict(self.compaction_options)
        if config_override is not None:
            options.update(_override_options(config_override))
        name = strategy or str(options.get("strategy", "truncate"))
        compactor = self.plugins.compactors.get(check_name(name, "strategy"))
        # A strategy that runs others (``hybrid``) finds them, third-party ones included, in the registry.
        options["compactors"] = self.plugins.compactors
        keep_recent = options.get("keep_recent", 10)
        check_limit(keep_recent, "keep_recent", self.config.limits)

        async def run() -> dict[str, Any]:
            started = time.perf_counter()
            tiered = self.tiered
            async with self._compaction_locks.hold(sid):
                original = await tiered.call(lambda: self._hot.read_history(sid, None))
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
                latest = await tiered.call(lambda: self._hot.read_history(sid, None))
                appended = [m for m in latest if m.seq > last_seq]
                await tiered.call(lambda: self._hot.replace_history(sid, [*compacted, *appended]))
            self._emit("history.compact", sid, strategy=name, before=len(original), after=len(compacted))
            return {
                "success": True,
                "strategy": name,
                "original_count": len(original),
                "compressed_count": len(compacted),
                "compression_ratio": (1.0 - len(compacted) / len(original)) if original else 0.0,
                "time_taken": time.perf_counter() - started,
            }

        return await self._timed(run)

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
        keeping ``auto_compress_target`` (default 50); None when below the threshold or when the option
        ``auto_compress_enabled`` is false."""
        sid = self._id(session_id, "session_id")
        if not self.compaction_options.get("auto_compress_enabled", True):
            return None
        threshold = int(self.compaction_options.get("auto_compress_threshold", 100))
        target = int(self.compaction_options.get("auto_compress_target", 50))
        length = await self._timed(lambda: self.tiered.call(lambda: self._hot.history_length(sid)))
        if length <= threshold:
            return None
        return await self.compress_conversation(sid, config_override={"keep_recent": target})


def _override_options(config_override: object) -> dict[str, Any]:
    """The options of a ``config_override``: a mapping, or a dataclass (the facade's CompressionConfig)."""
    if isinstance(config_override, Mapping):
        return dict(config_override)
    if dataclasses.is_dataclass(config_override) and not isinstance(config_override, type):
        return {f.name: getattr(config_override, f.name) for f in dataclasses.fields(config_override)}
    raise InvalidInput(f"config_override must be a mapping or a CompressionConfig, got {type(config_override).__name__}")
