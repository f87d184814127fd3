"""Compatibility with the original ContextEngine (AIECS): the ``ContextEngine`` facade, its records and the
process-wide singleton functions.

Code written against the original runs with its imports changed to this package::

    # was: from aiecs.domain.context.context_engine import ContextEngine, CompressionConfig, ConversationMessage
    # was: from aiecs.domain.task.task_context import TaskContext
    # was: from aiecs.infrastructure.persistence import initialize_context_engine, get_context_engine
    from contextkit.compat import (
        CompressionConfig, ContextEngine, ConversationMessage, TaskContext,
        initialize_context_engine, get_context_engine, close_context_engine,
    )

See ``docs/migrating-from-aiecs.md`` for what changes, what stays and what contextkit fixes.
"""

from contextkit.compaction import LLMMessage
from contextkit.compat.engine import (
    ContextEngine,
    close_context_engine,
    close_redis_client,
    get_context_engine,
    initialize_context_engine,
    initialize_redis_client,
    is_context_engine_initialized,
    reset_context_engine,
)
from contextkit.compat.records import (
    CompressionConfig,
    ContextUpdate,
    ConversationMessage,
    SessionMetrics,
    TaskContext,
    naive_utc,
)

__all__ = [
    "CompressionConfig",
    "ContextEngine",
    "ContextUpdate",
    "ConversationMessage",
    "LLMMessage",
    "SessionMetrics",
    "TaskContext",
    "close_context_engine",
    "close_redis_client",
    "get_context_engine",
    "initialize_context_engine",
    "initialize_redis_client",
    "is_context_engine_initialized",
    "naive_utc",
    "reset_context_engine",
]
