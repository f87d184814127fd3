"""The engine scenarios with ClickHouse as the cold tier: every write also goes through the archiver into
ClickHouse, and reads that miss in the memory hot tier are answered from it."""

from typing import Any

import pytest

from contextkit.kit import ContextKit
from contextkit.testing.engine import EngineSuite


class TestClickHouseArchiveEngine(EngineSuite):
    @pytest.fixture(autouse=True)
    def _url(self, store_url: str) -> None:
        self.url = store_url

    def kit_config(self) -> dict[str, Any]:
        return {"hot": "memory", "cold": {"backend": "clickhouse", "url": self.url}}

    async def cleanup_kit(self, kit: ContextKit) -> None:
        await super().cleanup_kit(kit)
        if kit.archiver is not None:
            await kit.archiver.flush(10)
        drop = getattr(kit.cold, "drop_tables", None)
        if drop is not None:
            await drop()
