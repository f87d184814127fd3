"""The cold-tier conformance suite on the in-process cold tier."""

from contextkit.stores import ColdStore, StoreSettings
from contextkit.testing.cold import ColdStoreSuite
from contextkit_memory.cold import MemoryColdStore


class TestMemoryColdStore(ColdStoreSuite):
    async def make_store(self, settings: StoreSettings) -> ColdStore:
        store = MemoryColdStore(settings)
        await store.open()
        return store
