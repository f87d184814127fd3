"""The seed-compatible facade: ``ContextEngine`` and the process-wide singleton functions.

Code written against the original ContextEngine runs with only its imports changed::

    from contextkit.engine import ContextEngine, initialize_context_engine, get_context_engine

``ContextEngine()`` takes the seed's constructor arguments, reads the seed's environment variables, prefers the
Redis hot tier when ``contextkit-redis`` is installed (falling back to memory with a warning when Redis is
unreachable, as the seed did: ``fallback`` defaults to true here, where ``ContextKit`` fails loudly), and selects
the cold tier from ``CONTEXT_PERMANENT_BACKEND`` / ``CLICKHOUSE_ENABLED``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from contextkit.config import KitConfig, load_config
from contextkit.kit import ContextKit
from contextkit.plugins import PluginManager, get_plugin_manager
from contextkit.stores import ColdStore

__all__ = [
    "CompressionConfig",
    "ContextEngine",
    "close_context_engine",
    "close_redis_client",
    "get_context_engine",
    "initialize_context_engine",
    "initialize_redis_client",
    "is_context_engine_initialized",
    "reset_context_engine",
]


@dataclass
class CompressionConfig:
    """The seed's compression settings; ``strategy`` names a registered compaction strategy."""

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


def _seed_config(config: Mapping[str, Any] | KitConfig | None, env: Mapping[str, str], plugins: PluginManager) -> KitConfig:
    if isinstance(config, KitConfig):
        return config
    explicit = dict(config or {})
    chooses_hot = "hot" in explicit or any(env.get(v, "").strip() for v in ("CONTEXTKIT_HOT", "REDIS_URL", "REDIS_HOST"))
    if not chooses_hot and "redis" in plugins.backends.names("hot"):
        # The seed always tried Redis first (REDIS_URL, default redis://localhost:6379/0).
        explicit["hot"] = "redis"
        explicit.setdefault("redis", {}).setdefault("url", "redis://localhost:6379/0")
    # The seed fell back to memory when Redis was unreachable; a file, the environment or an argument may still
    # turn that off (fallback = false).
    return load_config(explicit, env=env, defaults={"fallback": True})


class ContextEngine(ContextKit):
    """The seed's ContextEngine: same constructor, attributes and methods, over contextkit's tiers.

    Call ``await engine.initialize()`` before use (it returns False when it fell back to the memory tier) and
    ``await engine.close()`` at the end. ``redis_client`` is the live Redis client, or None on the memory tier.
    """

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
        config: Mapping[str, Any] | KitConfig | None = None,
        env: Mapping[str, str] | None = None,
        plugins: PluginManager | None = None,
    ) -> None:
        manager = plugins or get_plugin_manager()
        resolved = _seed_config(config, os.environ if env is None else env, manager)
        settings = resolved.store_settings()
        hot = manager.backends.get("hot", resolved.hot).factory(settings, resolved.hot_options)
        cold = permanent_backend
        if cold is None and resolved.cold:
            cold = manager.backends.get("cold", resolved.cold).factory(settings, resolved.cold_options)
        super().__init__(hot, cold, config=resolved, plugins=manager)
        self.use_existing_redis = use_existing_redis
        self.compression_config = compression_config or CompressionConfig()
        self.llm_client = llm_client
        self.compression_policy = compression_policy
        self.compress_on_append = compress_on_append
        self.compression_summary_role = compression_summary_role
        self.hook_executor = hook_executor
        self.progress_emitter = progress_emitter
        self.compaction_options = {**asdict(self.compression_config), "llm_client": llm_client}

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

    async def initialize(self) -> bool:
        """Connect; True when the configured hot tier is in use, False after falling back to memory."""
        await self.open()
        return self.degraded is None

    async def close(self) -> None:
        """Drain the archiver and close the tiers (idempotent)."""
        await self.aclose()

    async def compress_on_append_if_needed(self, session_id: str, *, strategy: str | None = None) -> dict[str, Any] | None:
        """Compact when ``compress_on_append`` is on and the history exceeds ``max_messages``; else None."""
        if not self.compress_on_append:
            return None
        length = await self.hot.history_length(session_id)
        if length <= self.compression_config.max_messages:
            return None
        return await self.compress_conversation(session_id, strategy=strategy)


_engine: ContextEngine | None = None
_engine_lock: asyncio.Lock | None = None


async def initialize_context_engine(
    config: Mapping[str, Any] | KitConfig | None = None, **kwargs: Any
) -> ContextEngine:
    """Build, initialize and remember the process-wide engine (idempotent: returns the existing one)."""
    global _engine, _engine_lock
    if _engine is not None:
        return _engine
    if _engine_lock is None:
        _engine_lock = asyncio.Lock()
    async with _engine_lock:
        if _engine is None:
            engine = ContextEngine(config=config, **kwargs)
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
    """Kept for seed compatibility: contextkit's Redis tier owns its client, so there is nothing to do."""


async def close_redis_client() -> None:
    """Kept for seed compatibility: the engine closes the clients it owns."""

