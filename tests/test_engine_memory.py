"""The engine scenarios (contextkit.testing.engine) on the memory hot tier, with and without a memory cold tier."""

from typing import Any

from contextkit.testing.engine import EngineSuite


class TestMemoryEngine(EngineSuite):
    """The default composition: the memory hot tier alone."""

    def kit_config(self) -> dict[str, Any]:
        return {"hot": "memory"}


class TestMemoryEngineWithMemoryArchive(EngineSuite):
    """The memory hot tier with the in-process cold tier: every scenario also goes through the archiver."""

    def kit_config(self) -> dict[str, Any]:
        return {"hot": "memory", "cold": "memory"}
