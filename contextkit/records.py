"""The records contextkit stores: typed, immutable, JSON round-trippable.

``Session`` (the seed's SessionMetrics plus metadata), ``Message`` (a conversation message with a stable id and a
per-stream sequence number), ``TaskContext``, ``ConversationParticipant`` / ``ConversationSession`` /
``AgentMessage`` for multi-agent sessions, and ``ArchiveEvent``, the unit the cold tier stores.

Every record has ``to_dict()`` (plain JSON values, ISO-8601 UTC timestamps) and ``from_dict()``; backends store
those dicts, so a record reads back equal to what was written.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import quote

from contextkit.backend.tables import KEY_COLUMNS
from contextkit.errors import CorruptData, InvalidInput, SerializationError

__all__ = [
    "AGENT_MESSAGE_TYPES",
    "ARCHIVE_TABLES",
    "PARTICIPANT_TYPES",
    "SESSION_STATUSES",
    "SESSION_TYPES",
    "AgentMessage",
    "ArchiveEvent",
    "ContextUpdate",
    "ConversationParticipant",
    "ConversationSession",
    "Message",
    "Session",
    "TaskContext",
    "conversation_session_key",
    "from_iso",
    "new_event_id",
    "new_id",
    "to_iso",
    "utcnow",
]

SessionStatus = Literal["active", "completed", "failed", "expired"]
SESSION_STATUSES: frozenset[str] = frozenset({"active", "completed", "failed", "expired"})
PARTICIPANT_TYPES: frozenset[str] = frozenset({"user", "master_controller", "agent"})
SESSION_TYPES: frozenset[str] = frozenset({"user_to_mc", "mc_to_agent", "agent_to_agent", "user_to_agent"})
AGENT_MESSAGE_TYPES: frozenset[str] = frozenset(
    {
        "task_assignment",
        "result_report",
        "collaboration_request",
        "feedback",
        "communication",
        "status_update",
        "error_report",
        "task_completion",
        "progress_update",
        "clarification_request",
    }
)
ArchiveTable = Literal[
    "context_sessions",
    "context_conversations",
    "context_task_contexts",
    "context_checkpoints",
    "context_checkpoint_writes",
    "context_conversation_sessions",
]
ARCHIVE_TABLES: tuple[str, ...] = tuple(KEY_COLUMNS)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (never naive)."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A new random identifier (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


def to_iso(value: datetime) -> str:
    """ISO-8601 text of an aware datetime, normalised to UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def from_iso(value: str | datetime) -> datetime:
    """Parse ISO-8601 text (naive values are taken as UTC) into an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"not an ISO-8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


@dataclass(frozen=True, slots=True)
class Session:
    """A user session with its metrics (the seed's SessionMetrics, plus its metadata).

    ``status`` is one of ``active``, ``completed``, ``failed``, ``expired``. Counters only grow, through
    atomic backend operations; ``last_activity`` only moves forward.

    ``version`` is the version the hot tier gave the session's last change (it grows with every change of its
    owner, inside the same atomic step; 0 for a session no tier stored yet). It orders the session's archived
    snapshots; it is not part of :meth:`to_dict` (the archive keeps it in a column of its own) and does not take
    part in equality.
    """

    session_id: str
    user_id: str
    created_at: datetime
    last_activity: datetime
    request_count: int = 0
    error_count: int = 0
    total_processing_time: float = 0.0
    status: str = "active"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    version: int = field(default=0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (timestamps as ISO-8601 UTC text)."""
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "created_at": to_iso(self.created_at),
            "last_activity": to_iso(self.last_activity),
            "request_count": self.request_count,
            "error_count": self.error_count,
            "total_processing_time": self.total_processing_time,
            "status": self.status,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Session:
        """Rebuild a session from :meth:`to_dict` output (or the seed's SessionMetrics dict); raises
        :class:`~contextkit.errors.CorruptData` when a field is missing or malformed."""
        try:
            return cls(
                session_id=str(data["session_id"]),
                user_id=str(data["user_id"]),
                created_at=from_iso(data["created_at"]),
                last_activity=from_iso(data["last_activity"]),
                request_count=int(data.get("request_count", 0)),
                error_count=int(data.get("error_count", 0)),
                total_processing_time=float(data.get("total_processing_time", 0.0)),
                status=str(data.get("status", "active")),
                metadata=dict(data.get("metadata") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptData(f"stored session is malformed: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Message:
    """A conversation message.

    ``id`` is stable for the life of the message (also in the cold tier); ``seq`` is its 1-based position in its
    stream (a session's history or an agent conversation), assigned atomically by the hot tier on append.
    """

    role: str
    content: str
    timestamp: datetime
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "id": self.id,
            "seq": self.seq,
            "role": self.role,
            "content": self.content,
            "timestamp": to_iso(self.timestamp),
            "metadata": dict(self.metadata or {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """Rebuild a message from :meth:`to_dict` output (or the seed's ConversationMessage dict); raises
        :class:`~contextkit.errors.CorruptData` when a field is missing or malformed."""
        try:
            return cls(
                id=str(data.get("id") or new_id()),
                seq=int(data.get("seq", 0)),
                role=str(data["role"]),
                content=str(data["content"]),
                timestamp=from_iso(data["timestamp"]),
                metadata=dict(data.get("metadata") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptData(f"stored message is malformed: {exc!r}") from exc

    def with_seq(self, seq: int) -> Message:
        """A copy carrying the sequence number the store assigned."""
        return replace(self, seq=seq)


@dataclass(frozen=True, slots=True)
class ContextUpdate:
    """One entry of a task context's history (the seed's ContextUpdate)."""

    timestamp: float
    update_type: str
    data: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "timestamp": self.timestamp,
            "update_type": self.update_type,
            "data": self.data,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContextUpdate:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            timestamp=float(data.get("timestamp", 0.0)),
            update_type=str(data.get("update_type", "")),
            data=data.get("data"),
            metadata=dict(data.get("metadata") or {}),
        )


_TASK_FIELDS = (
    "user_id",
    "chat_id",
    "metadata",
    "start_time",
    "resources",
    "context_history",
    "file_tracker",
    "model_tracker",
    "metadata_toggles",
)


class TaskContext:
    """A task context: one JSON document per session that round-trips everything the seed's TaskContext holds.

    Built like the seed's: ``TaskContext({"user_id": "u1", "chat_id": "s1", "metadata": {...}})``. Unlike the
    seed, building one touches no file system, and a store/get round trip keeps ``file_tracker``,
    ``model_tracker``, ``metadata_toggles``, ``resources`` and every metadata key. Instances are immutable; the
    ``with_*`` methods return updated copies.
    """

    __slots__ = ("_data",)
    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any] | None = None, task_dir: str | None = None) -> None:
        source = dict(data or {})
        doc: dict[str, Any] = {
            "user_id": str(source.get("user_id", "anonymous")),
            "chat_id": str(source.get("chat_id", "none")),
            "metadata": dict(source.get("metadata") or {}),
            "start_time": float(source.get("start_time", time.time())),
            "resources": dict(source.get("resources") or {}),
            "context_history": [
                u.to_dict() if isinstance(u, ContextUpdate) else dict(u) for u in source.get("context_history") or []
            ],
            "file_tracker": dict(source.get("file_tracker") or {}),
            "model_tracker": list(source.get("model_tracker") or []),
            "metadata_toggles": dict(source.get("metadata_toggles") or {}),
        }
        for key, value in source.items():
            if key not in doc:
                doc[key] = value
        if task_dir is not None:
            doc["task_dir"] = task_dir
        object.__setattr__(self, "_data", doc)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"TaskContext is immutable; use a with_* method to derive an updated copy ({name})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskContext) and other._data == self._data

    def __hash__(self) -> int:
        return hash(repr(sorted(self._data)))

    def __repr__(self) -> str:
        return f"TaskContext(user_id={self.user_id!r}, chat_id={self.chat_id!r})"

    @property
    def user_id(self) -> str:
        """The user this task belongs to (``anonymous`` by default)."""
        return str(self._data["user_id"])

    @property
    def chat_id(self) -> str:
        """The chat (session) id (``none`` by default)."""
        return str(self._data["chat_id"])

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of the full metadata, toggled-off keys included."""
        return dict(self._data["metadata"])

    @property
    def start_time(self) -> float:
        """Epoch seconds when the task context was first built."""
        return float(self._data["start_time"])

    @property
    def resources(self) -> dict[str, Any]:
        """Resource descriptions attached to the task."""
        return dict(self._data["resources"])

    @property
    def context_history(self) -> list[ContextUpdate]:
        """Context updates, oldest first."""
        return [ContextUpdate.from_dict(u) for u in self._data["context_history"]]

    @property
    def file_tracker(self) -> dict[str, Any]:
        """Files the task touched: ``{path: {operation, source, timestamp, state}}``."""
        return dict(self._data["file_tracker"])

    @property
    def model_tracker(self) -> list[dict[str, Any]]:
        """Models the task used: ``[{model_id, provider_id, mode, timestamp}]``."""
        return [dict(m) for m in self._data["model_tracker"]]

    @property
    def metadata_toggles(self) -> dict[str, bool]:
        """Per-key switches; a key toggled off is hidden from :meth:`get_active_metadata`."""
        return dict(self._data["metadata_toggles"])

    @property
    def mode(self) -> str | None:
        """The task mode, read from metadata (``mode``), as the seed's examples print it."""
        value = self._data["metadata"].get("mode")
        return None if value is None else str(value)

    @property
    def service(self) -> str | None:
        """The service handling the task, read from metadata (``service``)."""
        value = self._data["metadata"].get("service")
        return None if value is None else str(value)

    def get_active_metadata(self) -> dict[str, Any]:
        """Metadata without the keys toggled off."""
        toggles = self._data["metadata_toggles"]
        return {k: v for k, v in self._data["metadata"].items() if toggles.get(k, True)}

    def with_context_update(
        self, update_type: str, data: Any, metadata: Mapping[str, Any] | None = None
    ) -> TaskContext:
        """A copy with one more entry in :attr:`context_history`."""
        doc = self.to_dict()
        doc["context_history"].append(
            ContextUpdate(time.time(), update_type, data, dict(metadata or {})).to_dict()
        )
        return TaskContext(doc)

    def with_metadata(self, **values: Any) -> TaskContext:
        """A copy whose metadata has ``values`` merged in."""
        doc = self.to_dict()
        doc["metadata"].update(values)
        return TaskContext(doc)

    def with_file_operation(self, path: str, operation: str, source: str = "task") -> TaskContext:
        """A copy that records a file operation in :attr:`file_tracker`."""
        doc = self.to_dict()
        doc["file_tracker"][path] = {"operation": operation, "source": source, "timestamp": time.time(), "state": {}}
        return TaskContext(doc)

    def with_model_usage(self, model_id: str, provider_id: str, mode: str = "chat") -> TaskContext:
        """A copy that records a model call in :attr:`model_tracker`."""
        doc = self.to_dict()
        doc["model_tracker"].append(
            {"model_id": model_id, "provider_id": provider_id, "mode": mode, "timestamp": time.time()}
        )
        return TaskContext(doc)

    def to_dict(self) -> dict[str, Any]:
        """The whole document as plain JSON values (a deep copy; datetimes, dataclasses, sets and the other
        values :func:`contextkit.encoding.to_json_value` knows are converted)."""
        from contextkit.encoding import to_json_value

        copied: dict[str, Any] = to_json_value(self._data, "task context")
        return copied

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskContext:
        """Rebuild from :meth:`to_dict` output."""
        return cls(data)


@dataclass(frozen=True, slots=True)
class ConversationParticipant:
    """A participant of a multi-agent conversation session.

    ``participant_type`` is ``user``, ``master_controller`` or ``agent``; agents need a ``participant_role``.
    """

    participant_id: str
    participant_type: str
    participant_role: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The seed's participant dict: ``{id, type, role, metadata}``."""
        return {
            "id": self.participant_id,
            "type": self.participant_type,
            "role": self.participant_role,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationParticipant:
        """Build from the seed's participant dict (``id``/``type``/``role``/``metadata``) or this record's field names."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a participant must be a mapping, got {type(data).__name__}")
        ident = data.get("id", data.get("participant_id"))
        kind = data.get("type", data.get("participant_type"))
        role = data.get("role", data.get("participant_role"))
        return cls(
            participant_id=ident,  # validated by the kit before use
            participant_type=kind,
            participant_role=role,
            metadata=data.get("metadata") or {},
        )


def conversation_session_key(
    session_id: str, session_type: str, participants: Sequence[ConversationParticipant]
) -> str:
    """The storage key of a conversation session.

    ``user_to_mc`` sessions share the session's own history, so their key is ``session_id`` (as in the seed).
    Other types get ``<type>/<session id>/<participant id>...`` with every component percent-encoded, so two
    different sessions never share a key (the seed's ``{sid}_mc_to_{role}`` collided on roles and on ``_``).
    ``agent_to_agent`` keys list the two agents in sorted order: A talking to B is the same conversation as B
    talking to A.
    """
    if session_type == "user_to_mc":
        return session_id
    members = [p.participant_id for p in participants if p.participant_type != "user" or session_type == "user_to_agent"]
    if session_type == "agent_to_agent":
        members = sorted(members)
    parts = [session_type, session_id, *members]
    return "/".join(quote(part, safe="") for part in parts)


@dataclass(frozen=True, slots=True)
class ConversationSession:
    """A multi-participant conversation session: one of four types, with its derived :attr:`session_key`."""

    session_id: str
    participants: tuple[ConversationParticipant, ...]
    session_type: str
    created_at: datetime
    last_activity: datetime
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def session_key(self) -> str:
        """The unambiguous key this session's messages are stored under."""
        return conversation_session_key(self.session_id, self.session_type, self.participants)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (with the derived ``session_key``)."""
        return {
            "session_id": self.session_id,
            "session_key": self.session_key,
            "participants": [p.to_dict() for p in self.participants],
            "session_type": self.session_type,
            "created_at": to_iso(self.created_at),
            "last_activity": to_iso(self.last_activity),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationSession:
        """Rebuild from :meth:`to_dict` output."""
        try:
            return cls(
                session_id=str(data["session_id"]),
                participants=tuple(ConversationParticipant.from_dict(p) for p in data["participants"]),
                session_type=str(data["session_type"]),
                created_at=from_iso(data["created_at"]),
                last_activity=from_iso(data["last_activity"]),
                metadata=dict(data.get("metadata") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptData(f"stored conversation session is malformed: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """A message between participants of a conversation session (the seed's AgentCommunicationMessage).

    ``message_type`` is one of :data:`AGENT_MESSAGE_TYPES` or a well-formed custom type such as
    ``analysis_result``.
    """

    session_key: str
    sender_id: str
    sender_type: str
    sender_role: str | None
    content: str
    message_type: str = "communication"
    recipient_id: str | None = None
    recipient_type: str | None = None
    recipient_role: str | None = None
    timestamp: datetime = field(default_factory=utcnow)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    message_id: str = field(default_factory=new_id)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        data = asdict(self)
        data["timestamp"] = to_iso(self.timestamp)
        data["metadata"] = dict(self.metadata)
        return data

    def to_message(self) -> Message:
        """The conversation message this agent message is stored as (role ``{sender_type}_{sender_role}``)."""
        meta = dict(self.metadata)
        meta.update(
            {
                "message_id": self.message_id,
                "message_type": self.message_type,
                "sender_id": self.sender_id,
                "sender_type": self.sender_type,
                "sender_role": self.sender_role,
                "recipient_id": self.recipient_id,
                "recipient_type": self.recipient_type,
                "recipient_role": self.recipient_role,
            }
        )
        role = f"{self.sender_type}_{self.sender_role}" if self.sender_role else self.sender_type
        return Message(role=role, content=self.content, timestamp=self.timestamp, metadata=meta, id=self.message_id)


_event_prefix = os.urandom(8).hex()
_event_counter = itertools.count()


def _reseed_event_ids() -> None:
    global _event_prefix, _event_counter
    _event_prefix = os.urandom(8).hex()
    _event_counter = itertools.count()


if hasattr(os, "register_at_fork"):
    # A forked child draws a prefix of its own, so parent and child never hand out the same id.
    os.register_at_fork(after_in_child=_reseed_event_ids)


def new_event_id() -> str:
    """A new archive event id: 32 hex digits, 16 random ones drawn once per process, then a counter.

    Unique like :func:`new_id` (a 64-bit random prefix per process, a counter a process never repeats; ``next`` on
    it is atomic under the GIL, so threads never draw the same number) at a fraction of the cost of ``uuid4``,
    which reads the OS's random source for every id: an event id is drawn on the hot path of archived writes. Ids of
    one process sort in creation order, which keeps the cold tiers' unique ``event_id`` indexes appending at their
    right edge.
    """
    return f"{_event_prefix}{next(_event_counter):016x}"


@dataclass(frozen=True, slots=True)
class ArchiveEvent:
    """One record for the cold tier: an append to one of the six archive tables.

    ``event_id`` makes cold writes idempotent: writing the same event twice leaves one row. ``key`` is the
    table's lookup key (session id, thread id or conversation session key). ``payload`` holds the table's
    columns as plain JSON; see :mod:`contextkit.stores` for the payload of each table. ``version`` is the version
    the hot tier gave the write, inside the atomic step that made it (see :mod:`contextkit.tiered`): per record,
    the archive keeps the highest one; 0 for events that carry none (messages, whose ``seq`` orders them, and
    events archived before versions existed).
    """

    table: str
    key: str
    payload: Mapping[str, Any]
    created_at: datetime = field(default_factory=utcnow)
    event_id: str = field(default_factory=new_event_id)
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (used by outboxes); ``version`` is left out when 0."""
        data: dict[str, Any] = {
            "event_id": self.event_id,
            "table": self.table,
            "key": self.key,
            "created_at": to_iso(self.created_at),
            "payload": dict(self.payload),
        }
        if self.version:
            data["version"] = self.version
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchiveEvent:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            event_id=str(data["event_id"]),
            table=str(data["table"]),
            key=str(data["key"]),
            created_at=from_iso(data["created_at"]),
            payload=dict(data["payload"]),
            version=int(data.get("version") or 0),
        )
