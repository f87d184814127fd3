"""contextkit-sqlite: a durable hot tier, a cold tier and LangGraph checkpoint storage in one local SQLite file.

Registered under the name ``sqlite`` for both tiers (``hot = "sqlite"``, ``cold = "sqlite"``). Options:
``path`` (default ``./contextkit.sqlite3``) or ``url`` (``sqlite:///path``), ``busy_timeout`` (seconds),
``sweep_interval`` and ``sweep_batch`` (the expiry sweep of the hot tier).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contextkit import hookimpl
from contextkit.stores import StoreSettings
from contextkit_sqlite.cold import SqliteColdStore
from contextkit_sqlite.database import DEFAULT_PATH, SqliteOptions, parse_options
from contextkit_sqlite.hot import SqliteHotStore

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = [
    "DEFAULT_PATH",
    "SqliteColdStore",
    "SqliteHotStore",
    "SqliteOptions",
    "contextkit_register_backends",
    "hot_store",
    "cold_store",
    "parse_options",
]
__version__ = "0.1.0"


def hot_store(settings: StoreSettings, options: Mapping[str, Any]) -> SqliteHotStore:
    """Build (without I/O) the sqlite hot tier; ``open()`` creates the file."""
    return SqliteHotStore(settings, options)


def cold_store(settings: StoreSettings, options: Mapping[str, Any]) -> SqliteColdStore:
    """Build (without I/O) the sqlite cold tier; ``open()`` creates the file."""
    return SqliteColdStore(settings, options)


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the ``sqlite`` hot and cold tiers."""
    registry.add_hot("sqlite", hot_store, description="durable hot tier in a local SQLite file (WAL)")
    registry.add_cold("sqlite", cold_store, description="archive tables in a local SQLite file")
