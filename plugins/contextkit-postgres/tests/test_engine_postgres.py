"""The engine scenarios with PostgreSQL as the cold tier: every write also goes through the archiver into
PostgreSQL, and reads that miss in the memory hot tier are answered from it."""

from typing import Any

import pytest

from contextkit.kit import ContextKit
from contextkit.testing.engine import EngineSuite


class TestPostgresArchiveEngine(EngineSuite):
    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url

    def kit_config(self) -> dict[str, Any]:
        return {"hot": "memory", "cold": {"backend": "postgres", "url": self.url}}

    async def cleanup_kit(self, kit: ContextKit) -> None:
        await super().cleanup_kit(kit)
        if kit.archiver is not None:
            await kit.archiver.flush(10)
        drop = getattr(kit.cold, "drop_schema", None)
        if drop is not None:
            await drop()
