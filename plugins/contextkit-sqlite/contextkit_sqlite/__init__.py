"""contextkit-sqlite: a durable hot tier, a cold tier and LangGraph checkpoint storage in one local SQLite file.

* :class:`~contextkit_sqlite.hot.SqliteHotStore` and :class:`~contextkit_sqlite.cold.SqliteColdStore` - the
  stores, both registered as ``sqlite`` (``hot = "sqlite"``, ``cold = "sqlite"``).
* :class:`~contextkit_sqlite.options.SqliteOptions` - their options, checked by
  :func:`~contextkit_sqlite.options.parse_options`: ``path`` (default ``./contextkit.sqlite3``) or ``url``
  (``sqlite:///path``), ``busy_timeout`` (seconds), ``sweep_interval`` and ``sweep_batch``.

The hooks are in :mod:`contextkit_sqlite.plugin`. Importing this package does not import aiosqlite: the names
above load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextkit_sqlite.cold import SqliteColdStore
    from contextkit_sqlite.hot import SqliteHotStore
    from contextkit_sqlite.options import DEFAULT_PATH, SqliteOptions, parse_options

__all__ = ["DEFAULT_PATH", "SqliteColdStore", "SqliteHotStore", "SqliteOptions", "parse_options"]
__version__ = "0.1.0"

# Each public name and its module, imported on first use of the name: a store's module imports the driver, which
# registering the plugin or reading its options must not.
_EXPORTS = {
    "SqliteHotStore": "contextkit_sqlite.hot",
    "SqliteColdStore": "contextkit_sqlite.cold",
    "SqliteOptions": "contextkit_sqlite.options",
    "parse_options": "contextkit_sqlite.options",
    "DEFAULT_PATH": "contextkit_sqlite.options",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
