"""The hook implementations of contextkit-redis, and nothing else.

contextkit imports this module through the entry point ``redis`` in group ``contextkit`` and calls the hooks: they
register the hot tier ``redis`` and read the backend's environment variables. Neither imports redis-py: each
store's module is imported by its factory (:func:`contextkit.plugins.store_factory`) when a kit is built with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contextkit import hookimpl
from contextkit.plugins import EnvOptions, store_factory
from contextkit_redis.options import RedisOptions

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = ["contextkit_env_options", "contextkit_register_backends"]


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the hot tier ``redis``."""
    registry.add_hot(
        "redis",
        store_factory("contextkit_redis.hot:RedisHotStore"),
        description="Redis hot tier: plain Redis 6/7 or Redis Cluster (hash-tagged keys, Lua scripts, per-session TTLs)",
        schemes=("rediss", "unix"),
    )


@hookimpl
def contextkit_env_options(env: Mapping[str, str]) -> EnvOptions:
    """The options the environment sets: ``REDIS_URL``, ``REDIS_HOST`` / ``REDIS_PORT`` / ``REDIS_DB`` /
    ``REDIS_PASSWORD`` and ``REDIS_REQUIRE_NOEVICTION``; a URL or host selects the redis hot tier."""
    return RedisOptions.from_env(env)
