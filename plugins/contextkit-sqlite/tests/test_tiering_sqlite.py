"""The tiering suite (contextkit.testing.tiering) on the SQLite hot tier archived by the SQLite cold tier: scenarios 1-4
with four OS processes sharing the hot file, which loses every row of the namespace on purpose
(:meth:`~contextkit_sqlite.SqliteHotStore.drop_namespace`), and scenario 5: an older backup of the hot file copied
back while the kit stays open, and the restore declared (``contextkit hot-restored``, see the README)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit_sqlite.testing import SqliteSnapshots


class TestSqliteSqliteTiering(SqliteSnapshots):
    """SQLite hot (its outbox in its file) + SQLite cold (another file), four worker processes."""

    processes = 4

    @pytest.fixture(autouse=True)
    def _files(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def config(self, namespace: str) -> dict[str, Any]:
        return {
            "hot": {"backend": "sqlite", "path": str(self.directory / "hot.sqlite3"), "busy_timeout": 20},
            "cold": {"backend": "sqlite", "path": str(self.directory / "cold.sqlite3"), "busy_timeout": 20},
            "archiver": {"flush_interval": 0.01},
        }

    async def lose_hot(self, kit: ContextKit) -> None:
        await kit.hot.drop_namespace()  # type: ignore[attr-defined]
