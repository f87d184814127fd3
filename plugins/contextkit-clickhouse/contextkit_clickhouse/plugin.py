"""The hook implementations of contextkit-clickhouse, and nothing else.

contextkit imports this module through the entry point ``clickhouse`` in group ``contextkit`` and calls the hooks:
they register the cold tier ``clickhouse`` and read the backend's environment variables. Neither imports
clickhouse-connect: each store's module is imported by its factory (:func:`contextkit.plugins.store_factory`) when
a kit is built with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contextkit import hookimpl
from contextkit.plugins import EnvOptions, store_factory
from contextkit_clickhouse.options import ClickHouseOptions

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = ["contextkit_env_options", "contextkit_register_backends"]


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the cold tier ``clickhouse``."""
    registry.add_cold(
        "clickhouse",
        store_factory("contextkit_clickhouse.cold:ClickHouseColdStore"),
        description="ClickHouse archive (ReplacingMergeTree, batched inserts, clickhouse-connect async)",
        aliases=("ch",),
        schemes=("clickhouses",),
        # [compat] physical_names = "aiecs": the original ContextEngine's unprefixed context_* tables
        aiecs_options={"table_prefix": ""},
    )


@hookimpl
def contextkit_env_options(env: Mapping[str, str]) -> EnvOptions:
    """The options the environment sets: ``CLICKHOUSE_HOST`` / ``PORT`` / ``USER`` / ``PASSWORD`` /
    ``DATABASE``; ``CLICKHOUSE_ENABLED=true`` selects the tier when ``CONTEXT_PERMANENT_BACKEND`` is unset."""
    return ClickHouseOptions.from_env(env)
