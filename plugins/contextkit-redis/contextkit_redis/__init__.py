"""contextkit-redis: the Redis hot tier (plain Redis 6/7 and Redis Cluster through redis.asyncio).

* :class:`~contextkit_redis.hot.RedisHotStore` - the store (registered as the hot tier ``redis``).
* :class:`~contextkit_redis.options.RedisOptions` - its options (each one is described in the package README).

The hooks are in :mod:`contextkit_redis.plugin`. Importing this package does not import redis-py: the names
above load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextkit_redis.hot import RedisHotStore
    from contextkit_redis.options import RedisOptions

__all__ = ["RedisHotStore", "RedisOptions"]
__version__ = "0.1.0"

# Each public name and its module, imported on first use of the name: a store's module imports the driver, which
# registering the plugin or reading its options must not.
_EXPORTS = {
    "RedisHotStore": "contextkit_redis.hot",
    "RedisOptions": "contextkit_redis.options",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
