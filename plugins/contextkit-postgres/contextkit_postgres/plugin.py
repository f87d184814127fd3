"""The hook implementations of contextkit-postgres, and nothing else.

contextkit imports this module through the entry point ``postgres`` in group ``contextkit`` and calls the hooks:
they register the cold tier ``postgres`` and read the backend's environment variables. Neither imports asyncpg:
each store's module is imported by its factory (:func:`contextkit.plugins.store_factory`) when a kit is built with
it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contextkit import hookimpl
from contextkit.plugins import EnvOptions, store_factory
from contextkit_postgres.options import PostgresOptions

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = ["contextkit_env_options", "contextkit_register_backends"]


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the cold tier ``postgres``."""
    registry.add_cold(
        "postgres",
        store_factory("contextkit_postgres.cold:PostgresColdStore"),
        description="PostgreSQL archive of the six context tables (asyncpg)",
        aliases=("pg", "postgresql"),
        # [compat] physical_names = "aiecs": the original ContextEngine's tables in the public schema
        aiecs_options={"schema": "public"},
    )


@hookimpl
def contextkit_env_options(env: Mapping[str, str]) -> EnvOptions:
    """The options the environment sets: ``CONTEXT_PG_URL`` > ``POSTGRES_URL`` and ``CONTEXT_PG_DATABASE``
    (the seed selects the tier with ``CONTEXT_PERMANENT_BACKEND=postgres``)."""
    return PostgresOptions.from_env(env)
