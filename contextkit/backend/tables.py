"""The names of the archive's six tables and of the column each looks its records up by.

Every cold backend stores :class:`~contextkit.records.ArchiveEvent` rows in these tables (physical names add a
backend's own prefix or schema, see :mod:`contextkit.naming`); take the names from here rather than spelling them
again, so a table is named in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["KEY_COLUMNS", "ArchiveTables"]

class ArchiveTables:
    """The names of the archive's six tables (a namespace of constants: ``ArchiveTables.SESSIONS``)."""

    #: Session snapshots and every owner's deletes (key: the owner id).
    SESSIONS: Final = "context_sessions"
    #: Messages of every stream (key: the stream key).
    CONVERSATIONS: Final = "context_conversations"
    #: Task context documents (key: the session id).
    TASK_CONTEXTS: Final = "context_task_contexts"
    #: Seed checkpoint documents and LangGraph checkpoints (key: the thread id).
    CHECKPOINTS: Final = "context_checkpoints"
    #: Seed checkpoint writes and LangGraph pending writes (key: the thread id).
    CHECKPOINT_WRITES: Final = "context_checkpoint_writes"
    #: Conversation session documents (key: the conversation session key).
    CONVERSATION_SESSIONS: Final = "context_conversation_sessions"


#: The lookup-key column of each archive table (``ArchiveEvent.key`` goes there), in the order of
#: :data:`contextkit.records.ARCHIVE_TABLES`.
KEY_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        ArchiveTables.SESSIONS: "session_id",
        ArchiveTables.CONVERSATIONS: "session_id",
        ArchiveTables.TASK_CONTEXTS: "session_id",
        ArchiveTables.CHECKPOINTS: "thread_id",
        ArchiveTables.CHECKPOINT_WRITES: "thread_id",
        ArchiveTables.CONVERSATION_SESSIONS: "session_key",
    }
)
