"""Import a Redis dataset written by the original ContextEngine (AIECS) into any contextkit tier.

:class:`AiecsRedisSource` reads the original's Redis layout and offers it through the read methods of a hot tier
that :func:`contextkit.transfer.migrate` walks, so the import is the migration engine's: idempotent (a rerun
gives the same result), resumable from a state file, with progress reports, archiving every record when the
target kit has a cold tier. :func:`import_aiecs` (``kit.import_aiecs(...)``, ``contextkit migrate --from-aiecs
redis://...``) runs it.

The layout read (the original's code; its documentation described per-record keys, which are read too):

=====================================  =====================================================================
key                                    content
=====================================  =====================================================================
``sessions`` (hash) / ``session:{id}``  SessionMetrics JSON per session id
``task_contexts`` (hash) /             TaskContext.to_dict() JSON per session id
``context:{id}``
``conversation:{id or session key}``   a list of message JSON, newest first (LPUSH); agent messages carry their
                                       ids and sender/recipient in ``metadata``
``conversation_sessions`` (hash)       conversation session JSON per session key (the original's keys are kept,
                                       so code holding them reads the same history)
``checkpoints:{thread}`` (hash) /      checkpoint documents per checkpoint id
``checkpoint:{thread}:{checkpoint}``
``checkpoint_writes:{thread}`` (hash)  ``{checkpoint_id}:{task_id}`` -> ``{..., "writes": [...]}``
=====================================  =====================================================================

What the import repairs on the way: messages come back in chronological order (the original's LPUSH lists hold
the newest first; a history the original compressed mixes both orders, so messages are ordered by timestamp),
each message gets a stable id (the agent message id when it has one) and a sequence number, naive timestamps are
taken as UTC, and a session's metadata is its task context's (the original kept it there only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from contextkit.errors import BackendUnavailable, ConfigError, SerializationError
from contextkit.records import ConversationParticipant, ConversationSession, Message, Session, TaskContext, from_iso
from contextkit.validation import parse_input

if TYPE_CHECKING:
    from contextkit.kit import ContextKit
    from contextkit.transfer import MigrationProgress, TransferSummary

__all__ = ["AiecsRedisSource", "import_aiecs"]

logger = logging.getLogger("contextkit.compat")

_PAGE = 500


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _loads(raw: Any, what: str) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{what} in the AIECS dataset is not JSON: {exc}") from None


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class AiecsRedisSource:
    """The original's Redis dataset, read through the hot-tier reads :func:`contextkit.transfer.migrate` uses.

    :param url: ``redis://`` URL of the original's Redis (it used no key prefix: its keys are read as they are).
    :param client: a ``redis.asyncio`` client to use instead of ``url`` (left open on close).
    """

    name = "aiecs-redis"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, url: str | None = None, *, client: Any = None) -> None:
        if url is None and client is None:
            raise ConfigError("an AIECS source needs a redis:// URL or a client")
        self.url = url
        self._client = client
        self._owned = client is None
        self._sessions: list[str] = []
        self._threads: list[str] = []
        self._owners: set[str] = set()
        self._doc_checkpoints: dict[str, list[str]] = {}
        self._conversations: dict[str, list[str]] = {}

    # -- lifecycle -----------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and index the ids of the dataset (ids only; the records are read one unit at a time)."""
        if self._client is None:
            try:
                import redis.asyncio as redis
            except ImportError as exc:  # pragma: no cover - redis comes with contextkit-redis
                raise ConfigError("importing from AIECS needs redis-py: install contextkit[redis]") from exc
            self._client = redis.Redis.from_url(str(self.url))
        try:
            await self._index()
        except Exception as exc:
            if type(exc).__module__.startswith("redis"):
                raise BackendUnavailable(f"the AIECS Redis at {_masked(str(self.url))} cannot be read: {exc}") from exc
            raise

    async def aclose(self) -> None:
        """Close the client this source opened."""
        if self._owned and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> AiecsRedisSource:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def describe(self) -> dict[str, Any]:
        """What this source is (URL without password)."""
        return {"backend": self.name, "url": None if self.url is None else _masked(self.url)}

    async def _keys(self, pattern: str) -> list[str]:
        return sorted({_text(k) async for k in self._client.scan_iter(match=pattern, count=_PAGE)})

    async def _fields(self, key: str) -> list[str]:
        return sorted({_text(f) async for f, _ in self._client.hscan_iter(key, count=_PAGE)})

    async def _index(self) -> None:
        sessions = set(await self._fields("sessions"))
        sessions.update(k[len("session:") :] for k in await self._keys("session:*"))
        self._sessions = sorted(sessions)
        owners = set(await self._fields("task_contexts"))
        owners.update(k[len("context:") :] for k in await self._keys("context:*"))
        owners.update(k[len("conversation:") :] for k in await self._keys("conversation:*"))
        conversations: dict[str, list[str]] = {}
        for key, raw in [(_text(f), v) async for f, v in self._client.hscan_iter("conversation_sessions", count=_PAGE)]:
            owners.add(key)
            parent = _loads(raw, f"conversation session {key!r}").get("session_id")
            if isinstance(parent, str):
                conversations.setdefault(parent, []).append(key)
        self._conversations = {sid: sorted(keys) for sid, keys in conversations.items()}
        self._owners = owners
        threads = {k[len("checkpoints:") :] for k in await self._keys("checkpoints:*")}
        threads.update(k[len("checkpoint_writes:") :] for k in await self._keys("checkpoint_writes:*"))
        documents: dict[str, list[str]] = {}
        for key in await self._keys("checkpoint:*"):
            thread = key[len("checkpoint:") :].rpartition(":")[0]
            if thread:
                documents.setdefault(thread, []).append(key)
                threads.add(thread)
        self._doc_checkpoints = documents
        self._threads = sorted(threads)

    # -- the reads migrate() walks -------------------------------------------------------------------------------
    async def scan_sessions(self, cursor: str | None, count: int) -> tuple[list[Session], str | None]:
        """A page of sessions in id order."""
        start = int(cursor or 0)
        ids = self._sessions[start : start + count]
        page = [s for s in [await self.get_session(sid) for sid in ids] if s is not None]
        after = start + len(ids)
        return page, (str(after) if after < len(self._sessions) else None)

    async def scan_checkpoint_threads(self, cursor: str | None, count: int) -> tuple[list[str], str | None]:
        """A page of checkpoint thread ids."""
        start = int(cursor or 0)
        after = start + count
        return self._threads[start:after], (str(after) if after < len(self._threads) else None)

    async def iter_data_owners(self) -> AsyncIterator[str]:
        """Every id holding a history, task context or conversation session."""
        for owner in sorted(self._owners):
            yield owner

    async def get_session(self, session_id: str) -> Session | None:
        """The session, its metadata taken from its task context."""
        raw = await self._client.hget("sessions", session_id) or await self._client.get(f"session:{session_id}")
        if raw is None:
            return None
        data = _loads(raw, f"session {session_id!r}")
        context = await self.get_task_context(session_id)
        metadata = context.get("metadata", {}) if context else dict(data.get("metadata") or {})
        return parse_input(Session.from_dict, {**data, "metadata": metadata}, f"session {session_id!r} in the AIECS dataset")

    async def get_task_context(self, owner: str) -> dict[str, Any] | None:
        """The task context as contextkit's document (every field the original stored)."""
        raw = await self._client.hget("task_contexts", owner) or await self._client.get(f"context:{owner}")
        if raw is None:
            return None
        data = _loads(raw, f"task context {owner!r}")
        history = data.get("context_history") or []
        # The original stored no start time: the first update's, else the import's.
        start = next((u.get("timestamp") for u in history if isinstance(u, dict) and "timestamp" in u), None)
        data.setdefault("start_time", start if start is not None else time.time())
        return TaskContext(data).to_dict()

    async def read_history(self, owner: str, limit: int | None) -> list[Message]:
        """The stream in chronological order with stable ids and sequence numbers 1..n."""
        raws = await self._client.lrange(f"conversation:{owner}", 0, -1)
        entries = [_loads(r, f"a message of {owner!r}") for r in reversed(raws)]  # LPUSH: newest first
        # A history the original compressed holds an RPUSHed (chronological) block among LPUSHed messages: the
        # timestamps give the order (a stable sort keeps equal times in the reversed list's order).
        entries.sort(key=lambda e: from_iso(e["timestamp"]))
        messages: list[Message] = []
        seen: set[str] = set()
        for seq, entry in enumerate(entries, start=1):
            metadata = dict(entry.get("metadata") or {})
            ident = metadata.get("message_id")
            if not isinstance(ident, str) or not ident or ident in seen:
                digest = hashlib.sha256(
                    json.dumps([owner, seq, entry.get("timestamp"), entry.get("content")]).encode("utf-8")
                )
                ident = digest.hexdigest()[:32]
            seen.add(ident)
            message = parse_input(
                Message.from_dict, {**entry, "metadata": metadata, "id": ident, "seq": seq}, f"a message of {owner!r}"
            )
            messages.append(message)
        return messages if limit is None else messages[-limit:]

    def _conversation_document(self, key: str, data: dict[str, Any]) -> dict[str, Any]:
        participants = [ConversationParticipant.from_dict(p) for p in data.get("participants") or []]
        session = ConversationSession(
            session_id=str(data["session_id"]),
            participants=tuple(participants),
            session_type=str(data["session_type"]),
            created_at=from_iso(data["created_at"]),
            last_activity=from_iso(data.get("last_activity") or data["created_at"]),
            metadata=dict(data.get("metadata") or {}),
        )
        document = session.to_dict()
        document["session_key"] = key  # the original's key, under which its messages are
        return document

    async def get_conversation_session(self, key: str) -> dict[str, Any] | None:
        """The conversation session stored under the original's key."""
        raw = await self._client.hget("conversation_sessions", key)
        return None if raw is None else self._conversation_document(key, _loads(raw, f"conversation session {key!r}"))

    async def list_conversation_sessions(self, session_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The conversation sessions naming ``session_id``, by key."""
        result = []
        for key in self._conversations.get(session_id, []):
            document = await self.get_conversation_session(key)
            if document is not None:
                result.append((key, document))
        return result

    async def read_checkpoint_thread(
        self, thread_id: str
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, list[tuple[str, Any]]]]]:
        """The thread's checkpoint documents (oldest first by ``created_at``) and writes (by checkpoint id)."""
        documents: list[tuple[str, dict[str, Any]]] = []
        async for field, raw in self._client.hscan_iter(f"checkpoints:{thread_id}", count=_PAGE):
            documents.append((_text(field), _loads(raw, f"checkpoint {_text(field)!r} of {thread_id!r}")))
        for key in self._doc_checkpoints.get(thread_id, []):
            raw = await self._client.get(key)
            if raw is not None:
                documents.append((key.rpartition(":")[2], _loads(raw, f"checkpoint {key!r}")))
        documents.sort(key=lambda item: (str(item[1].get("created_at", "")), item[0]))
        writes: dict[str, list[tuple[str, str, Any]]] = {}
        async for field, raw in self._client.hscan_iter(f"checkpoint_writes:{thread_id}", count=_PAGE):
            payload = _loads(raw, f"checkpoint writes {_text(field)!r} of {thread_id!r}")
            checkpoint = str(payload.get("checkpoint_id") or _text(field).rpartition(":")[0])
            task = str(payload.get("task_id") or _text(field).rpartition(":")[2])
            created = str(payload.get("created_at", ""))
            for write in payload.get("writes") or []:
                writes.setdefault(checkpoint, []).append((created, task, write))
        grouped = [
            (cid, [(task, write) for _, task, write in sorted(items, key=lambda i: (i[0], i[1]))])
            for cid, items in sorted(writes.items())
        ]
        return documents, grouped


async def import_aiecs(
    target: ContextKit,
    source: str | AiecsRedisSource,
    *,
    state_path: str | os.PathLike[str] | None = None,
    restart: bool = False,
    on_progress: Callable[[MigrationProgress], None] | None = None,
    archive_timeout: float = 120.0,
) -> TransferSummary:
    """Import the original's Redis dataset at ``source`` (a ``redis://`` URL or a source) into ``target``.

    Idempotent and resumable (see :func:`contextkit.transfer.migrate`): with ``state_path``, a run that stopped
    resumes after the last recorded unit. ``target`` must be open; with a cold tier, every record is archived.
    """
    from contextkit.transfer import migrate

    reader = AiecsRedisSource(source) if isinstance(source, str) else source
    opened = isinstance(source, str)
    if opened:
        await reader.open()
    try:
        return await migrate(
            reader,  # type: ignore[arg-type]  # the reads migrate() uses, not a whole hot tier
            target,
            state_path=None if state_path is None else Path(state_path),
            restart=restart,
            on_progress=on_progress,
            archive_timeout=archive_timeout,
        )
    finally:
        if opened:
            await reader.aclose()
