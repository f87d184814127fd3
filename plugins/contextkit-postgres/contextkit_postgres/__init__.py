"""contextkit-postgres: the PostgreSQL cold tier (an archive on asyncpg), registered as ``postgres``.

The store lives in :mod:`contextkit_postgres.cold`, the hook implementations in :mod:`contextkit_postgres.plugin`;
the store is imported when first used, so importing this package does not import asyncpg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contextkit_postgres.plugin import create_cold_store

if TYPE_CHECKING:
    from contextkit_postgres.cold import PostgresColdStore

__all__ = ["PostgresColdStore", "create_cold_store"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "PostgresColdStore":
        from contextkit_postgres.cold import PostgresColdStore

        return PostgresColdStore
    raise AttributeError(f"module 'contextkit_postgres' has no attribute {name!r}")
