"""contextkit-clickhouse: the ClickHouse cold (archive) tier of contextkit.

This package registers the ``clickhouse`` cold backend (alias ``ch``) through the ``contextkit`` entry point. The
store itself is :class:`~contextkit_clickhouse.cold.ClickHouseColdStore`; the schema and migrations are in
:mod:`contextkit_clickhouse.schema` and ``migrations/*.sql``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contextkit.hookspecs import hookimpl
from contextkit.stores import StoreSettings
from contextkit_clickhouse.cold import ClickHouseColdStore, ClickHouseOptions, parse_options

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = ["ClickHouseColdStore", "ClickHouseOptions", "create_cold_store", "parse_options"]


def create_cold_store(settings: StoreSettings, options: Mapping[str, Any]) -> ClickHouseColdStore:
    """Build a ClickHouse cold store from the composer's settings and options (validates, does no I/O).

    Options: ``url`` (``http://user:pass@host:port/database``) or ``host`` / ``port`` / ``username`` /
    ``password`` / ``database`` / ``secure``; ``cluster``, ``ttl_days``, ``table_prefix``, ``compress``,
    ``ddl_timeout``; ``client`` (an open clickhouse-connect async client, used as is and never closed).
    """
    return ClickHouseColdStore(settings, options)


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the ``clickhouse`` cold tier (alias ``ch``)."""
    registry.add_cold(
        "clickhouse",
        create_cold_store,
        description="ClickHouse archive (ReplacingMergeTree, batched inserts, clickhouse-connect async)",
        aliases=("ch",),
        schemes=("clickhouses",),
    )
