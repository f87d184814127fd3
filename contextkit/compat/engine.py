"""The ``ContextEngine`` facade and the process-wide singleton functions, behaving as the original does.

Code written against the original ContextEngine (AIECS) runs with only its imports changed::

    from contextkit.compat import ContextEngine, CompressionConfig, ConversationMessage, TaskContext
    from contextkit.compat import initialize_context_engine, get_context_engine, close_context_engine

The facade is a thin layer over :class:`~contextkit.kit.ContextKit`: every call goes through the kit (the same
validation limits, tiers, archive and read-through); the facade only converts what goes in and out to the
original's shapes and switches on the original's leniencies:

- records: sessions (:class:`~contextkit.compat.SessionMetrics`) read as attributes and as the original's dicts,
  timestamps are naive UTC, history entries are :class:`~contextkit.compat.ConversationMessage`, task contexts
  are :class:`~contextkit.compat.TaskContext` (changeable in place), agent history rows keep ``message_type``,
  ``sender_*``, ``recipient_*`` and ``message_id`` in their ``metadata``;
- ``update_session`` ignores keys it cannot update and stores any status text; ``add_agent_communication_message``
  accepts a key nobody created and a sender who is not a participant;
- compression: ``compress_conversation`` never raises (``{"success": False, "error": ...}``), takes a
  ``CompressionConfig`` as ``config_override``, and reads ``engine.compression_config`` / ``engine.llm_client``
  at each call, so assigning them takes effect;
- configuration: a bare ``ContextEngine()`` reads the hot-tier variables only (as the original, whose cold tier
  came from ``initialize_context_engine()``); ``initialize_context_engine()`` also reads
  ``CONTEXT_PERMANENT_BACKEND`` / ``CLICKHOUSE_ENABLED``, and an unknown backend there (``mysql``) is logged and
  the engine runs without an archive, as the original did.

The native ``ContextKit`` API stays strict: aware datetimes, validated updates, typed errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from contextkit.compat.records import CompressionConfig, ConversationMessage, SessionMetrics, TaskContext
from contextkit.config import KitConfig, load_config
from contextkit.encoding import to_json_value
from contextkit.errors import ContextKitError
from contextkit.kit import ContextKit
from contextkit.plugins import PluginManager, get_plugin_manager
from contextkit.records import TaskContext as KitTaskContext
from contextkit.stores import ColdStore

__all__ = [
    "ContextEngine",
    "close_context_engine",
    "close_redis_client",
    "get_context_engine",
    "initialize_context_engine",
    "initialize_redis_client",
    "is_context_engine_initialized",
    "reset_context_engine",
]

logger = logging.getLogger("contextkit.compat")

# The original's cold-tier variables: only initialize_context_engine() reads them (through its backend factory).
_COLD_VARIABLES = ("CONTEXT_PERMANENT_BACKEND", "CLICKHOUSE_ENABLED")
_OFF = {"none", "off", "false", "disabled", "0", ""}
_KNOWN_COLD = {"clickhouse", "ch", "postgres", "postgresql", "pg"}
# Agent message fields the original kept in each history row's metadata.
_AGENT_FIELDS = (
    "message_id",
    "message_type",
    "sender_id",
    "sender_type",
    "sender_role",
    "recipient_id",
    "recipient_type",
    "recipient_role",
)


def _seed_environment(env: Mapping[str, str], *, read_cold: bool) -> dict[str, str]:
    """The environment as the original read it: without its cold-tier variables for a bare engine; with an
    unknown ``CONTEXT_PERMANENT_BACKEND`` logged and dropped (no archive) for the singleton."""
    result = dict(env)
    if not read_cold:
        for name in _COLD_VARIABLES:
            result.pop(name, None)
        return result
    explicit = result.get("CONTEXT_PERMANENT_BACKEND", "").strip().lower()
    if explicit and explicit not in _OFF and explicit not in _KNOWN_COLD:
        logger.warning(
            "unknown CONTEXT_PERMANENT_BACKEND=%r; running without an archive (use postgres, clickhouse or none)",
            explicit,
        )
        result["CONTEXT_PERMANENT_BACKEND"] = "none"
    return result


def _seed_config(
    config: Mapping[str, Any] | KitConfig | str | os.PathLike[str] | None, env: Mapping[str, str], plugins: PluginManager
) -> KitConfig:
    if isinstance(config, KitConfig):
        return config
    if isinstance(config, (str, os.PathLike)):  # a TOML file says which tiers: no default to Redis
        return load_config(config, env=env, defaults={"fallback": True})
    # The seed fell back to memory when Redis was unreachable; a file, the environment or an argument may still
    # turn that off (fallback = false).
    defaults: dict[str, Any] = {"fallback": True}
    if "redis" in plugins.backends.names("hot"):
        # The seed always tried Redis first (REDIS_URL, else the Redis plugin's default 127.0.0.1:6379 db 0): the
        # lowest layer, so a contextkit.toml, CONTEXTKIT_HOT or an argument that picks another
        # hot tier wins, and REDIS_HOST / REDIS_PORT are not hidden behind a default URL.
        defaults["hot"] = "redis"
    return load_config(dict(config or {}), env=env, defaults=defaults)


def _config_options(config: Any) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    raise TypeError(f"compression_config must be a CompressionConfig or a mapping, got {type(config).__name__}")


class ContextEngine(ContextKit):
    """The original's ContextEngine: same constructor, attributes and methods, over contextkit's tiers.

    Call ``await engine.initialize()`` before use (it returns False when it fell back to the memory tier) and
    ``await engine.close()`` at the end. ``redis_client`` is the live Redis client, or None on the memory tier.
    ``compression_config``, ``llm_client`` and ``embeddings`` (a LangChain ``Embeddings`` for the ``semantic``
    strategy) may be assigned at any time.
    """

    _seed_leniency = True

    def __init__(
        self,
        use_existing_redis: bool = True,
        compression_config: CompressionConfig | None = None,
        llm_client: Any = None,
        permanent_backend: ColdStore | None = None,
        compression_policy: Any = None,
        compress_on_append: bool = False,
        compression_summary_role: str | None = None,
        hook_executor: Any = None,
        progress_emitter: Any = None,
        *,
        embeddings: Any = None,
        config: Mapping[str, Any] | KitConfig | str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        plugins: PluginManager | None = None,
        read_cold_env: bool = False,
    ) -> None:
        manager = plugins or get_plugin_manager()
        environ = _seed_environment(os.environ if env is None else env, read_cold=read_cold_env)
        resolved = _seed_config(config, environ, manager)
        settings = resolved.store_settings()
        hot = manager.backends.get("hot", resolved.hot).build(settings, resolved.hot_options, resolved.env_variables.get("hot"))
        cold = permanent_backend
        if cold is None and resolved.cold:
            cold_info = manager.backends.get("cold", resolved.cold)
            cold = cold_info.build(settings, resolved.cold_options, resolved.env_variables.get("cold"))
        super().__init__(hot, cold, config=resolved, plugins=manager)
        self.use_existing_redis = use_existing_redis
        self.compression_config: CompressionConfig | Mapping[str, Any] = compression_config or CompressionConfig()
        self.llm_client = llm_client
        self.embeddings = embeddings
        self.compression_policy = compression_policy
        self.compress_on_append = compress_on_append
        self.compression_summary_role = compression_summary_role
        self.hook_executor = hook_executor
        self.progress_emitter = progress_emitter

    # -- compaction options: read from the current settings at each call ------------------------------------------
    @property
    def compaction_options(self) -> dict[str, Any]:
        """The compaction options of the next call: ``compression_config`` as it is now, ``llm_client``,
        ``embeddings`` and ``compression_summary_role``, then any options assigned here."""
        options = _config_options(self.compression_config)
        options["llm_client"] = self.llm_client
        options["embeddings"] = self.embeddings
        if self.compression_summary_role:
            options["summary_role"] = self.compression_summary_role
        options.update(self.__dict__.get("_extra_compaction_options", {}))
        return options

    @compaction_options.setter
    def compaction_options(self, value: Mapping[str, Any]) -> None:
        self.__dict__["_extra_compaction_options"] = dict(value)

    # -- the original's attributes -------------------------------------------------------------------------------
    @property
    def session_ttl(self) -> int:
        """Seconds a session lives after its last activity (86,400 by default)."""
        return int(self.config.session_ttl)

    @property
    def checkpoint_ttl(self) -> int:
        """Seconds a checkpoint thread lives after its last write (604,800 by default)."""
        return int(self.config.checkpoint_ttl)

    @property
    def conversation_limit(self) -> int:
        """Most messages kept per history in the hot tier (1,000 by default)."""
        return self.config.history_cap

    @property
    def redis_client(self) -> Any:
        """The live ``redis.asyncio`` client of the Redis tier, or None on any other tier (or before initialize)."""
        if not self._opened or self.hot.name != "redis":
            return None
        return getattr(self.hot, "client", None)

    @property
    def _redis_client_wrapper(self) -> None:
        """Always None: the original's private Redis wrapper, which its own test fixtures probe before cleanup;
        contextkit's Redis tier owns its client (use :attr:`redis_client`)."""
        return None

    async def initialize(self) -> bool:
        """Connect; True when the configured hot tier is in use, False after falling back to memory."""
        await self.open()
        return self.degraded is None

    async def close(self) -> None:
        """Drain the archiver and close the tiers (idempotent)."""
        await self.aclose()

    # -- sessions ------------------------------------------------------------------------------------------------
    async def create_session(  # type: ignore[override]
        self, session_id: str, user_id: str, metadata: Mapping[str, Any] | None = None
    ) -> SessionMetrics:
        """Create (or reset) a session; the result reads as attributes and as the original's dict."""
        return SessionMetrics.from_session(await super().create_session(session_id, user_id, metadata))

    async def get_session(self, session_id: str) -> SessionMetrics | None:  # type: ignore[override]
        """The session (attributes and the original's dict keys), or None."""
        session = await super().get_session(session_id)
        return None if session is None else SessionMetrics.from_session(session)

    async def list_all_sessions(self) -> list[SessionMetrics]:  # type: ignore[override]
        """Every session of the hot tier."""
        return [SessionMetrics.from_session(s) async for s in self.iter_sessions()]

    # -- history -------------------------------------------------------------------------------------------------
    async def add_conversation_message(
        self,
        session_id: str,
        role: str,
        content: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        strategy: str | Sequence[str] | None = None,
    ) -> bool:
        """Append a message; with ``compress_on_append`` on, compact afterwards (``strategy`` overrides the
        configured one). True once stored."""
        await self.add_message(session_id, role, content, metadata)
        if self.compress_on_append:
            await self.compress_on_append_if_needed(session_id, strategy=strategy)
        return True

    async def get_conversation_history(  # type: ignore[override]
        self, session_id: str, limit: int = 50
    ) -> list[ConversationMessage]:
        """The newest ``limit`` messages in chronological order (``limit=0``: all), as ConversationMessage."""
        return [ConversationMessage.from_message(m) for m in await super().get_conversation_history(session_id, limit)]

    async def compress_conversation(
        self,
        session_id: str,
        strategy: str | None = None,
        config_override: CompressionConfig | Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Compact the history as the original did, never raising: ``{"success": True, "strategy",
        "original_count", "compressed_count", "compression_ratio" (fraction removed), "time_taken"}``, or
        ``{"success": False, "error": ...}`` (unknown strategy, no LLM for ``summarize``, nothing to compress, ...).

        Unlike the original, every kept message is compacted (it read only 50 and deleted the rest).
        """
        name = strategy
        try:
            # The original used an override config *instead of* the engine's; the llm client stays the engine's.
            override = None if config_override is None else _config_options(config_override)
            name = strategy or str((override or self.compaction_options).get("strategy", "truncate"))
            result = await super().compress_conversation(session_id, name, override)
        except (ContextKitError, TypeError) as exc:
            return {"success": False, "error": str(exc), "strategy": name, "time_taken": 0.0}
        if result.get("success") and result.get("original_count") == 0:
            return {"success": False, "error": "No messages to compress", "original_count": 0, "compressed_count": 0}
        if not result.get("success"):
            result.setdefault("compressed_count", result.get("original_count", 0))
        return result

    async def compress_on_append_if_needed(
        self, session_id: str, *, strategy: str | Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        """Compact when ``compress_on_append`` is on and the history exceeds ``max_messages``; else None.

        ``strategy`` is a strategy name, or a sequence of names run one after the other (``hybrid``).
        """
        if not self.compress_on_append:
            return None
        sid = self._id(session_id, "session_id")
        length = await self._timed(lambda: self.tiered.call(lambda: self._hot.history_length(sid)))
        if length <= int(self.compaction_options.get("max_messages", 50)):
            return None
        if strategy is not None and not isinstance(strategy, str):
            return await self.compress_conversation(
                session_id, "hybrid", {**self.compaction_options, "hybrid_strategies": list(strategy)}
            )
        return await self.compress_conversation(session_id, strategy=strategy)

    # -- task contexts -------------------------------------------------------------------------------------------
    async def store_task_context(self, session_id: str, context: KitTaskContext | Mapping[str, Any]) -> bool:
        """Store the task context as it is now (changes made in place included); True once stored.

        A resource JSON cannot hold (a client, a file handle) is stored as ``{"type": <its type name>}``: the
        original did not store resources at all.
        """
        if isinstance(context, KitTaskContext):
            document = dict(context._data)
            resources = document.get("resources")
            if isinstance(resources, Mapping) and resources:
                document["resources"] = {name: _resource(name, value) for name, value in resources.items()}
            context = document
        return await super().store_task_context(session_id, context)

    async def get_task_context(self, session_id: str) -> TaskContext | None:
        """The session's task context (changeable in place), or None."""
        stored = await super().get_task_context(session_id)
        return None if stored is None else TaskContext(stored._data)

    # -- agent conversations -------------------------------------------------------------------------------------
    async def get_agent_conversation_history(
        self, session_key: str, limit: int = 50, message_types: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Agent messages as dicts; ``message_type``, ``sender_*``, ``recipient_*`` and ``message_id`` are in each
        row's ``metadata`` (where the original kept them) as well as at the top level. Timestamps are naive UTC."""
        rows = await super().get_agent_conversation_history(session_key, limit, message_types)
        for row in rows:
            row["metadata"] = {**row["metadata"], **{name: row.get(name) for name in _AGENT_FIELDS}}
            row["timestamp"] = row["timestamp"].replace("+00:00", "")
        return rows

    # -- metrics -------------------------------------------------------------------------------------------------
    async def health_check(self) -> dict[str, Any]:
        """The kit's health plus the original's ``redis_connected``: the Redis hot tier in use and answering (the
        native kit reports each tier under ``hot`` / ``cold`` instead, naming no backend)."""
        health = await super().health_check()
        hot = health.get("hot") or {}
        health["redis_connected"] = health.get("storage_backend") == "redis" and hot.get("status") in ("healthy", "degraded")
        return health

    async def get_metrics(self) -> dict[str, Any]:
        """The kit's metrics plus the original's ``redis_connected``."""
        metrics = await super().get_metrics()
        metrics["redis_connected"] = self.redis_client is not None
        return metrics


def _resource(name: str, value: Any) -> Any:
    try:
        return to_json_value(value, f"resources.{name}")
    except ContextKitError:
        logger.debug("task context resource %r (%s) stored as its type name", name, type(value).__name__)
        return {"type": type(value).__name__}


_engine: ContextEngine | None = None
_engine_lock: asyncio.Lock | None = None


async def initialize_context_engine(
    use_existing_redis: bool | Mapping[str, Any] | KitConfig | None = True,
    config: Mapping[str, Any] | KitConfig | None = None,
    **kwargs: Any,
) -> ContextEngine:
    """Build, initialize and remember the process-wide engine (idempotent: returns the existing one).

    The first parameter is the original's ``use_existing_redis`` (a mapping or :class:`KitConfig` there is taken
    as ``config``, as earlier contextkit versions accepted). Unlike a bare ``ContextEngine()``, this reads the
    original's cold-tier variables ``CONTEXT_PERMANENT_BACKEND`` / ``CLICKHOUSE_ENABLED``.
    """
    global _engine, _engine_lock
    if not isinstance(use_existing_redis, bool) and use_existing_redis is not None:
        config, use_existing_redis = use_existing_redis, True
    if _engine is not None:
        return _engine
    if _engine_lock is None:
        _engine_lock = asyncio.Lock()
    async with _engine_lock:
        if _engine is None:
            kwargs.setdefault("read_cold_env", True)
            engine = ContextEngine(bool(use_existing_redis), config=config, **kwargs)
            await engine.initialize()
            _engine = engine
    return _engine


def get_context_engine() -> ContextEngine | None:
    """The process-wide engine, or None before :func:`initialize_context_engine`."""
    return _engine


def is_context_engine_initialized() -> bool:
    """True once :func:`initialize_context_engine` succeeded and until :func:`close_context_engine`."""
    return _engine is not None


async def close_context_engine() -> None:
    """Close and forget the process-wide engine (idempotent)."""
    global _engine
    engine, _engine = _engine, None
    if engine is not None:
        await engine.close()


def reset_context_engine() -> None:
    """Forget the process-wide engine without closing it (tests; after a fork)."""
    global _engine, _engine_lock
    _engine = None
    _engine_lock = None


async def initialize_redis_client() -> None:
    """Kept for the original's startup code: contextkit's Redis tier owns its client, so there is nothing to do."""


async def close_redis_client() -> None:
    """Kept for the original's shutdown code: the engine closes the clients it owns."""
