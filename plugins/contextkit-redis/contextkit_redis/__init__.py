"""contextkit-redis: the Redis hot tier (plain Redis 6/7 and Redis Cluster through redis.asyncio).

The store is :class:`contextkit_redis.hot.RedisHotStore`; its options are described in the package README and
validated by :class:`contextkit_redis.connection.RedisOptions`. The hook implementations are in
:mod:`contextkit_redis.plugin`.
"""

from __future__ import annotations

from contextkit_redis.hot import RedisHotStore
from contextkit_redis.plugin import create_store

__all__ = ["RedisHotStore", "create_store"]
