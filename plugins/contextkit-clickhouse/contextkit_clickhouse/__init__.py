"""contextkit-clickhouse: the ClickHouse cold (archive) tier of contextkit.

The store is :class:`~contextkit_clickhouse.cold.ClickHouseColdStore`; the schema and migrations are in
:mod:`contextkit_clickhouse.schema` and ``migrations/*.sql``. The hook implementations (the ``clickhouse`` cold
backend, alias ``ch``) are in :mod:`contextkit_clickhouse.plugin`.
"""

from __future__ import annotations

from contextkit_clickhouse.cold import ClickHouseColdStore, ClickHouseOptions, parse_options
from contextkit_clickhouse.plugin import create_cold_store

__all__ = ["ClickHouseColdStore", "ClickHouseOptions", "create_cold_store", "parse_options"]
