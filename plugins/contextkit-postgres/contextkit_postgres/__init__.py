"""contextkit-postgres: the PostgreSQL cold tier (an archive on asyncpg), registered as ``postgres``.

* :class:`~contextkit_postgres.cold.PostgresColdStore` - the store (aliases ``pg`` and ``postgresql``).
* :class:`~contextkit_postgres.options.PostgresOptions` - its options, checked by
  :func:`~contextkit_postgres.options.parse_options`.

The hooks are in :mod:`contextkit_postgres.plugin`. Importing this package does not import asyncpg: the names
above load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextkit_postgres.cold import PostgresColdStore
    from contextkit_postgres.options import PostgresOptions, parse_options

__all__ = ["PostgresColdStore", "PostgresOptions", "parse_options"]
__version__ = "0.1.0"

# Each public name and its module, imported on first use of the name: a store's module imports the driver, which
# registering the plugin or reading its options must not.
_EXPORTS = {
    "PostgresColdStore": "contextkit_postgres.cold",
    "PostgresOptions": "contextkit_postgres.options",
    "parse_options": "contextkit_postgres.options",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
