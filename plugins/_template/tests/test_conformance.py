"""contextkit's hot tier conformance suite, run against ExampleHotStore.

Every test of ``HotStoreSuite`` states the contract it checks and how to fix a failure. Point
``CONTEXTKIT_TEST_EXAMPLE_URL`` at a server of yours; without it the suite is skipped (or fails, when
``CONTEXTKIT_REQUIRE_SERVICES=1``, as CI should set).
"""

from __future__ import annotations

from contextkit.stores import HotStore, StoreSettings
from contextkit.testing.hot import HotStoreSuite
from contextkit.testing.services import env_url, missing_service

from contextkit_example import ExampleHotStore


class TestExampleHotStore(HotStoreSuite):
    """The whole hot tier contract; the suite skips what ``capabilities`` does not declare."""

    async def make_store(self, settings: StoreSettings) -> HotStore:
        """An opened store; the suite gives each one a fresh namespace and closes it after the test."""
        url = env_url("example")
        if url is None:
            missing_service("example", "set CONTEXTKIT_TEST_EXAMPLE_URL to a server the tests may write to")
        store = ExampleHotStore.from_options(settings, {"url": url})
        await store.open()
        return store

    async def cleanup_store(self, store: HotStore) -> None:
        """Delete what the test wrote under its namespace (the suite calls this before closing the store)."""
        # e.g. await store.drop_namespace(), a method of your own that removes every key of settings.namespace
