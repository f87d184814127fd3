"""The names of the archive's six tables and of the column each looks its records up by.

Every cold backend stores :class:`~contextkit.records.ArchiveEvent` rows in these tables (physical names add a
backend's own prefix or schema, see :mod:`contextkit.naming`); take the names from here rather than spelling them
again, so a table is named in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "CHECKPOINTS",
    "CHECKPOINT_WRITES",
    "CONVERSATIONS",
    "CONVERSATION_SESSIONS",
    "KEY_COLUMNS",
    "SESSIONS",
    "TASK_CONTEXTS",
]

#: Session snapshots and every owner's deletes (key: the owner id).
SESSIONS = "context_sessions"
#: Messages of every stream (key: the stream key).
CONVERSATIONS = "context_conversations"
#: Task context documents (key: the session id).
TASK_CONTEXTS = "context_task_contexts"
#: Seed checkpoint documents and LangGraph checkpoints (key: the thread id).
CHECKPOINTS = "context_checkpoints"
#: Seed checkpoint writes and LangGraph pending writes (key: the thread id).
CHECKPOINT_WRITES = "context_checkpoint_writes"
#: Conversation session documents (key: the conversation session key).
CONVERSATION_SESSIONS = "context_conversation_sessions"

#: The lookup-key column of each archive table (``ArchiveEvent.key`` goes there), in the order of
#: :data:`contextkit.records.ARCHIVE_TABLES`.
KEY_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        SESSIONS: "session_id",
        CONVERSATIONS: "session_id",
        TASK_CONTEXTS: "session_id",
        CHECKPOINTS: "thread_id",
        CHECKPOINT_WRITES: "thread_id",
        CONVERSATION_SESSIONS: "session_key",
    }
)
