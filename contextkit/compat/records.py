"""The records the :class:`~contextkit.compat.ContextEngine` facade hands out, shaped as the original's.

They are the kit's records with the original's conventions on top:

- :class:`SessionMetrics` is the dict the original returned (``s["status"]``, ``json.dumps(s)``) with the seed's
  attributes on top (``s.status``, ``s.last_activity`` as a naive UTC datetime, as the original's
  ``datetime.utcnow()``).
- :class:`ConversationMessage` is a :class:`~contextkit.records.Message` with a naive UTC timestamp; it may be
  built with ``metadata=None`` as the original allowed.
- :class:`TaskContext` can be changed in place (``ctx.metadata["k"] = v``, ``add_context_update``,
  ``add_resource``, ``track_file_operation``, ``track_model_usage``); ``store_task_context`` stores what it holds.
- :class:`CompressionConfig` is the original's compression settings.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from contextkit import records
from contextkit.records import ContextUpdate, Message, Session

__all__ = ["CompressionConfig", "ContextUpdate", "ConversationMessage", "SessionMetrics", "TaskContext", "naive_utc"]


def naive_utc(value: datetime) -> datetime:
    """``value`` as a naive datetime in UTC (the original's convention: ``datetime.utcnow()``)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


class SessionMetrics(dict[str, Any]):
    """A session as the facade returns it: the original's dict (``s["status"]``, ``json.dumps(s)``, ``dict(s)``:
    its ``to_dict()`` form, timestamps as naive ISO-8601 UTC text) with the seed's attributes on top
    (``s.status``, ``s.last_activity`` as a naive UTC datetime, ``s.metadata``).

    It is a copy: changing it changes nothing stored (use ``update_session``).
    """

    __slots__ = ()

    @classmethod
    def from_session(cls, session: Session) -> SessionMetrics:
        """The facade's view of a kit session."""
        data = session.to_dict()
        data["created_at"] = naive_utc(session.created_at).isoformat()
        data["last_activity"] = naive_utc(session.last_activity).isoformat()
        return cls(data)

    @property
    def session_id(self) -> str:
        """The session id."""
        return str(self["session_id"])

    @property
    def user_id(self) -> str:
        """The user the session belongs to."""
        return str(self["user_id"])

    @property
    def created_at(self) -> datetime:
        """When the session was created (naive UTC)."""
        return naive_utc(datetime.fromisoformat(self["created_at"]))

    @property
    def last_activity(self) -> datetime:
        """The session's last activity (naive UTC)."""
        return naive_utc(datetime.fromisoformat(self["last_activity"]))

    @property
    def request_count(self) -> int:
        """Requests counted by ``update_session(increment_requests=True)``."""
        return int(self["request_count"])

    @property
    def error_count(self) -> int:
        """Errors counted by ``update_session(mark_error=True)``."""
        return int(self["error_count"])

    @property
    def total_processing_time(self) -> float:
        """Seconds added by ``update_session(add_processing_time=...)``."""
        return float(self["total_processing_time"])

    @property
    def status(self) -> str:
        """``active``, ``completed``, ``failed``, ``expired`` or any status the application set."""
        return str(self["status"])

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata given at creation or by ``update_session``."""
        value: dict[str, Any] = self.get("metadata") or {}
        return value

    def to_dict(self) -> dict[str, Any]:
        """A plain dict copy (the original's ``SessionMetrics.to_dict()``)."""
        return dict(self)


@dataclass(frozen=True, slots=True)
class ConversationMessage(Message):
    """A conversation message as the facade returns it (naive UTC timestamp)."""

    @classmethod
    def from_message(cls, message: Message) -> ConversationMessage:
        """The facade's view of a kit message."""
        return cls(
            role=message.role,
            content=message.content,
            timestamp=naive_utc(message.timestamp),
            metadata=dict(message.metadata or {}),
            id=message.id,
            seq=message.seq,
        )


_LIVE_FIELDS = ("metadata", "resources", "file_tracker", "model_tracker", "metadata_toggles")
_SETTABLE = {"user_id", "chat_id", "start_time", *_LIVE_FIELDS}


class TaskContext(records.TaskContext):
    """A task context that can be changed in place, as the original's could.

    ``metadata``, ``resources``, ``file_tracker``, ``model_tracker`` and ``metadata_toggles`` are the live
    containers (changing them changes the context); ``add_context_update``, ``add_resource``,
    ``track_file_operation`` and ``track_model_usage`` record as the original did. Pass it to
    ``store_task_context`` to store what it holds; values beyond JSON are converted on store
    (:mod:`contextkit.encoding`).
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _SETTABLE:
            raise AttributeError(f"TaskContext has no settable attribute {name!r} (settable: {sorted(_SETTABLE)})")
        self._data[name] = value

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata itself (changes are stored by the next ``store_task_context``)."""
        live: dict[str, Any] = self._data["metadata"]
        return live

    @property
    def resources(self) -> dict[str, Any]:
        """The resources attached to the task (live)."""
        live: dict[str, Any] = self._data["resources"]
        return live

    @property
    def file_tracker(self) -> dict[str, Any]:
        """Files the task touched (live)."""
        live: dict[str, Any] = self._data["file_tracker"]
        return live

    @property
    def model_tracker(self) -> list[dict[str, Any]]:
        """Models the task used (live)."""
        live: list[dict[str, Any]] = self._data["model_tracker"]
        return live

    @property
    def metadata_toggles(self) -> dict[str, bool]:
        """Per-key switches (live)."""
        live: dict[str, bool] = self._data["metadata_toggles"]
        return live

    def add_context_update(self, update_type: str, data: Any, metadata: Mapping[str, Any] | None = None) -> None:
        """Append an entry to :attr:`context_history`."""
        self._data["context_history"].append(ContextUpdate(time.time(), update_type, data, dict(metadata or {})).to_dict())

    def add_resource(self, name: str, resource: Any) -> None:
        """Attach a resource and record a ``resource`` update (a resource JSON cannot hold is stored as its type
        name: the original did not store resources at all)."""
        self._data["resources"][name] = resource
        self.add_context_update("resource", {"name": name}, {"type": type(resource).__name__})

    def track_file_operation(self, file_path: str, operation: str, source: str = "task") -> None:
        """Record a file operation in :attr:`file_tracker` and as a ``file_operation`` update."""
        self._data["file_tracker"][file_path] = {
            "operation": operation,
            "source": source,
            "timestamp": time.time(),
            "state": "active",
        }
        self.add_context_update("file_operation", {"path": file_path, "operation": operation}, {"source": source})

    def track_model_usage(self, model_id: str, provider_id: str, mode: str) -> None:
        """Record a model call in :attr:`model_tracker` (not twice in a row) and as a ``model_usage`` update."""
        entry = {"model_id": model_id, "provider_id": provider_id, "mode": mode, "timestamp": time.time()}
        tracker = self._data["model_tracker"]
        last = tracker[-1] if tracker else None
        if last is None or {k: v for k, v in last.items() if k != "timestamp"} != {
            k: v for k, v in entry.items() if k != "timestamp"
        }:
            tracker.append(entry)
            self.add_context_update("model_usage", dict(entry))


@dataclass
class CompressionConfig:
    """The original's compression settings; ``strategy`` names a registered compaction strategy
    (``truncate``, ``summarize``, ``semantic``, ``hybrid``)."""

    strategy: str = "truncate"
    max_messages: int = 50
    keep_recent: int = 10
    summary_prompt_template: str | None = None
    summary_max_tokens: int = 500
    include_summary_in_history: bool = True
    similarity_threshold: float = 0.95
    embedding_model: str = "text-embedding-ada-002"
    hybrid_strategies: list[str] = field(default_factory=lambda: ["truncate", "summarize"])
    auto_compress_enabled: bool = False
    auto_compress_threshold: int = 100
    auto_compress_target: int = 50
    compression_timeout: float = 30.0
