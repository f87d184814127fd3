"""The hot tier conformance suite on the memory tier, built through the plugin registry."""

from __future__ import annotations

from contextkit.plugins import get_plugin_manager
from contextkit.stores import HotStore, StoreSettings
from contextkit.testing.hot import HotStoreSuite


class TestMemoryHotStore(HotStoreSuite):
    """Every HotStore contract, on the memory tier registered as hot ``memory``."""

    async def make_store(self, settings: StoreSettings) -> HotStore:
        """Build the store the way the composer does: through the registered factory, then open()."""
        factory = get_plugin_manager().backends.get("hot", "memory").factory
        store: HotStore = factory(settings, {})
        await store.open()
        return store
