"""contextkit-clickhouse: the ClickHouse cold (archive) tier of contextkit, registered as ``clickhouse``.

* :class:`~contextkit_clickhouse.cold.ClickHouseColdStore` - the store (alias ``ch``); the schema and migrations
  are in :mod:`contextkit_clickhouse.schema` and ``migrations/*.sql``.
* :class:`~contextkit_clickhouse.options.ClickHouseOptions` - its options, checked by
  :func:`~contextkit_clickhouse.options.parse_options`.

The hooks are in :mod:`contextkit_clickhouse.plugin`. Importing this package does not import clickhouse-connect:
the names above load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextkit_clickhouse.cold import ClickHouseColdStore
    from contextkit_clickhouse.options import ClickHouseOptions, parse_options

__all__ = ["ClickHouseColdStore", "ClickHouseOptions", "parse_options"]
__version__ = "0.1.0"

# Each public name and its module, imported on first use of the name: a store's module imports the driver, which
# registering the plugin or reading its options must not.
_EXPORTS = {
    "ClickHouseColdStore": "contextkit_clickhouse.cold",
    "ClickHouseOptions": "contextkit_clickhouse.options",
    "parse_options": "contextkit_clickhouse.options",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
