"""The hot tier conformance suite on plain Redis (the machine's server) and on a 3-master Redis Cluster."""

from __future__ import annotations

import pytest

from contextkit.plugins import get_plugin_manager
from contextkit.stores import HotStore, StoreSettings
from contextkit.testing.hot import HotStoreSuite
from contextkit.testing.services.redis_servers import RedisClusterServers
from contextkit_redis import RedisHotStore


class _RedisSuite(HotStoreSuite):
    url: str

    async def make_store(self, settings: StoreSettings) -> HotStore:
        """Built through the registered factory, as the composer does, then opened."""
        factory = get_plugin_manager().backends.get("hot", "redis").factory
        store: HotStore = factory(settings, {"url": self.url, "max_connections": 20})
        await store.open()
        return store

    async def cleanup_store(self, store: HotStore) -> None:
        """Remove the test's namespace (SCAN MATCH prefix* + UNLINK), never anything else."""
        assert isinstance(store, RedisHotStore)
        if store._connected is not None:
            await store.drop_namespace()


@pytest.mark.redis
class TestRedisHotStore(_RedisSuite):
    """Every HotStore contract on plain Redis."""

    @pytest.fixture(autouse=True)
    def _target(self, redis_url: str, run_prefix: str) -> None:
        self.url = redis_url
        self.namespace_prefix = run_prefix

    async def test_the_store_is_not_in_cluster_mode(self, store: HotStore) -> None:
        """A plain server is detected as such."""
        assert store.describe()["cluster"] is False
        assert "cluster" not in store.capabilities


@pytest.mark.redis
@pytest.mark.cluster
class TestRedisClusterHotStore(_RedisSuite):
    """Every HotStore contract on a 3-master Redis Cluster, reached through the URL of one node."""

    @pytest.fixture(autouse=True)
    def _target(self, redis_cluster: RedisClusterServers, run_prefix: str) -> None:
        self.url = redis_cluster.url
        self.namespace_prefix = run_prefix

    async def test_a_url_to_one_node_is_detected_as_a_cluster(self, store: HotStore) -> None:
        """cluster="auto" (the default) asks INFO cluster and switches to RedisCluster."""
        assert store.describe()["cluster"] is True
        assert "cluster" in store.capabilities
        health = await store.health()
        assert health["cluster_state"] == "ok"
        assert health["cluster_nodes"] == 3
