"""contextkit-sqlite: a durable hot tier, a cold tier and LangGraph checkpoint storage in one local SQLite file.

Registered under the name ``sqlite`` for both tiers (``hot = "sqlite"``, ``cold = "sqlite"``) by
:mod:`contextkit_sqlite.plugin`. Options: ``path`` (default ``./contextkit.sqlite3``) or ``url``
(``sqlite:///path``), ``busy_timeout`` (seconds), ``sweep_interval`` and ``sweep_batch`` (the expiry sweep of the
hot tier).
"""

from __future__ import annotations

from contextkit_sqlite.cold import SqliteColdStore
from contextkit_sqlite.database import DEFAULT_PATH, SqliteOptions, parse_options
from contextkit_sqlite.hot import SqliteHotStore
from contextkit_sqlite.plugin import cold_store, hot_store

__all__ = ["DEFAULT_PATH", "SqliteColdStore", "SqliteHotStore", "SqliteOptions", "cold_store", "hot_store", "parse_options"]
__version__ = "0.1.0"
