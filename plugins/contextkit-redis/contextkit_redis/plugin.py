"""contextkit-redis: the Redis hot tier (plain Redis 6/7 and Redis Cluster through redis.asyncio).

Registers the ``redis`` hot backend. The store is :class:`contextkit_redis.hot.RedisHotStore`; its options are
described in the package README and validated by :class:`contextkit_redis.connection.RedisOptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contextkit.hookspecs import hookimpl
from contextkit.stores import StoreSettings
from contextkit_redis.hot import RedisHotStore

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = ["RedisHotStore", "contextkit_register_backends", "create_store"]


def create_store(settings: StoreSettings, options: Mapping[str, Any]) -> RedisHotStore:
    """Build a Redis hot store from the tier options (no I/O; ``await store.open()`` connects)."""
    return RedisHotStore(settings, options)


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the ``redis`` hot tier."""
    registry.add_hot(
        "redis",
        create_store,
        description="Redis hot tier: plain Redis 6/7 or Redis Cluster (hash-tagged keys, Lua scripts, per-session TTLs)",
        schemes=("rediss", "unix"),
    )
