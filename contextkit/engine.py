"""Kept importable for code written against earlier contextkit versions: the facade lives in
:mod:`contextkit.compat` now (``from contextkit.compat import ContextEngine``)."""

from contextkit.compat import (
    CompressionConfig,
    ContextEngine,
    ConversationMessage,
    SessionMetrics,
    TaskContext,
    close_context_engine,
    close_redis_client,
    get_context_engine,
    initialize_context_engine,
    initialize_redis_client,
    is_context_engine_initialized,
    reset_context_engine,
)

__all__ = [
    "CompressionConfig",
    "ContextEngine",
    "ConversationMessage",
    "SessionMetrics",
    "TaskContext",
    "close_context_engine",
    "close_redis_client",
    "get_context_engine",
    "initialize_context_engine",
    "initialize_redis_client",
    "is_context_engine_initialized",
    "reset_context_engine",
]
