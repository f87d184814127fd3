"""contextkit: context storage for AI applications, with hot and cold tiers as plugins.

``ContextKit`` is the API; ``ContextEngine`` and the ``*_context_engine`` functions (:mod:`contextkit.compat`)
behave as the original ContextEngine does.
Backends are plugins (entry-point group ``contextkit``); ``contextkit.hookimpl`` marks a plugin's hooks.
"""

from contextkit.compat import (
    CompressionConfig,
    ContextEngine,
    ConversationMessage,
    SessionMetrics,
    close_context_engine,
    get_context_engine,
    initialize_context_engine,
    is_context_engine_initialized,
    reset_context_engine,
)
from contextkit.config import KitConfig, load_config
from contextkit.errors import (
    BackendNotFound,
    BackendUnavailable,
    CapabilityNotSupported,
    ConfigError,
    ContextKitError,
    CorruptData,
    InvalidInput,
    LimitExceeded,
    NotFound,
    SerializationError,
)
from contextkit.hookspecs import hookimpl
from contextkit.kit import ContextKit
from contextkit.records import (
    AgentMessage,
    ArchiveEvent,
    ContextUpdate,
    ConversationParticipant,
    ConversationSession,
    Message,
    Session,
    TaskContext,
)
from contextkit.stores import Capability, ColdStore, HotStore, StoreSettings
from contextkit.validation import Limits

__all__ = [
    "AgentMessage",
    "ArchiveEvent",
    "BackendNotFound",
    "BackendUnavailable",
    "Capability",
    "CapabilityNotSupported",
    "ColdStore",
    "CompressionConfig",
    "ConfigError",
    "ContextEngine",
    "ContextKit",
    "ContextKitError",
    "ContextUpdate",
    "ConversationMessage",
    "ConversationParticipant",
    "ConversationSession",
    "CorruptData",
    "HotStore",
    "InvalidInput",
    "KitConfig",
    "LimitExceeded",
    "Limits",
    "Message",
    "NotFound",
    "SerializationError",
    "Session",
    "SessionMetrics",
    "StoreSettings",
    "TaskContext",
    "close_context_engine",
    "get_context_engine",
    "hookimpl",
    "initialize_context_engine",
    "is_context_engine_initialized",
    "load_config",
    "reset_context_engine",
]
__version__ = "0.1.0"
