"""contextkit-postgres: the PostgreSQL cold tier (an archive on asyncpg), registered as ``postgres``.

Select it with ``cold = "postgres"`` (aliases ``pg``, ``postgresql``), or the seed's
``CONTEXT_PERMANENT_BACKEND=postgres`` with ``CONTEXT_PG_URL`` / ``POSTGRES_URL`` / ``CONTEXT_PG_DATABASE``.
The store itself lives in :mod:`contextkit_postgres.cold`; it is imported when first built, so loading the
plugin does not import asyncpg.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contextkit.hookspecs import hookimpl
from contextkit.stores import StoreSettings

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry
    from contextkit_postgres.cold import PostgresColdStore

__all__ = ["contextkit_register_backends", "create_cold_store"]


def create_cold_store(settings: StoreSettings, options: Mapping[str, Any]) -> PostgresColdStore:
    """Build a :class:`~contextkit_postgres.cold.PostgresColdStore` (no I/O; ``await store.open()`` connects).

    :param settings: the tier settings (the namespace gives the schema name unless ``options["schema"]`` is set).
    :param options: ``url``, ``database``, ``schema``, ``min_size`` / ``max_size``, ``pool``, ``ssl``, ``host``,
        ``port``, ``user``, ``password``, ``statement_cache_size``, ``server_settings``.
    :raises ConfigError: an unknown option or a bad value.
    """
    from contextkit_postgres.cold import PostgresColdStore

    return PostgresColdStore(settings, options)


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the ``postgres`` cold tier (aliases ``pg`` and ``postgresql``)."""
    registry.add_cold(
        "postgres",
        create_cold_store,
        description="PostgreSQL archive of the six context tables (asyncpg)",
        aliases=("pg", "postgresql"),
    )

