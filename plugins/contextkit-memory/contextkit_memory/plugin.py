"""The hook implementations of contextkit-memory, and nothing else.

contextkit imports this module through the entry point ``memory`` in group ``contextkit`` and calls the hooks:
they register the hot tier ``memory`` and the cold tier ``memory`` and read the backend's environment variables.
Neither imports a store's module: each store's module is imported by its factory
(:func:`contextkit.plugins.store_factory`) when a kit is built with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contextkit import hookimpl
from contextkit.plugins import EnvOptions, store_factory
from contextkit_memory.options import MemoryOptions

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = ["contextkit_env_options", "contextkit_register_backends"]


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the hot tier ``memory`` and the cold tier ``memory``."""
    registry.add_hot(
        "memory",
        store_factory("contextkit_memory.hot:MemoryHotStore"),
        description="in-process memory (default; data lives as long as the process)",
    )
    registry.add_cold(
        "memory",
        store_factory("contextkit_memory.cold:MemoryColdStore"),
        description="in-process archive for tests and demos (not durable)",
    )


@hookimpl
def contextkit_env_options(env: Mapping[str, str]) -> EnvOptions:
    """The options the environment sets: none (the memory tiers read no variable of their own)."""
    return MemoryOptions.from_env(env)
