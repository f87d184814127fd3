"""The hook implementations of contextkit-sqlite, and nothing else.

contextkit imports this module through the entry point ``sqlite`` in group ``contextkit`` and calls the hooks:
they register the hot tier ``sqlite`` and the cold tier ``sqlite`` and read the backend's environment variables.
Neither imports aiosqlite: each store's module is imported by its factory
(:func:`contextkit.plugins.store_factory`) when a kit is built with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contextkit import hookimpl
from contextkit.plugins import EnvOptions, store_factory
from contextkit_sqlite.options import SqliteOptions

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = ["contextkit_env_options", "contextkit_register_backends"]


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the hot tier ``sqlite`` and the cold tier ``sqlite``."""
    registry.add_hot(
        "sqlite",
        store_factory("contextkit_sqlite.hot:SqliteHotStore"),
        description="durable hot tier in a local SQLite file (WAL)",
    )
    registry.add_cold(
        "sqlite",
        store_factory("contextkit_sqlite.cold:SqliteColdStore"),
        description="archive tables in a local SQLite file",
    )


@hookimpl
def contextkit_env_options(env: Mapping[str, str]) -> EnvOptions:
    """The options the environment sets: none (the sqlite tiers read no variable of their own)."""
    return SqliteOptions.from_env(env)
