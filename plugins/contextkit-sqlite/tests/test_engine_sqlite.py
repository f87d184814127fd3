"""The engine scenarios (contextkit.testing.engine) through the whole kit on SQLite, hot and cold tiers in one file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contextkit.testing.engine import EngineSuite


class TestSqliteEngineWithSqliteArchive(EngineSuite):
    """The sqlite hot tier archiving into the sqlite cold tables of the same file: every seed scenario, through
    the archiver too (the memory engine suite covers the kit without a cold tier)."""

    @pytest.fixture(autouse=True)
    def _database_file(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'kit.sqlite3'}"

    def kit_config(self) -> dict[str, Any]:
        return {"hot": {"backend": "sqlite", "url": self.url}, "cold": {"backend": "sqlite", "url": self.url}}
