"""The stateful reference model (contextkit.testing.model) on the Redis hot tier, plain and Cluster, and its
LangGraph checkpointer.

Random sequences of every HotStore operation with hostile ids (``:``, ``{``, ``}``, ``*``, spaces, unicode, the
namespace itself) and JSON documents with big integers and full-precision floats, each result compared with a
plain-Python model; the checkpointer is compared with LangGraph's InMemorySaver. Each run of a machine writes
under its own namespace and removes it at the end.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest
from hypothesis import settings

from contextkit.stores import HotStore, StoreSettings
from contextkit.testing.model import MODEL_SETTINGS, run_checkpointer_model, run_hot_store_model
from contextkit.testing.services.redis_servers import RedisClusterServers
from contextkit_redis import RedisHotStore

# Fewer runs than the default: this package's suite also runs the conformance suites on two servers.
_BOUNDED = settings(MODEL_SETTINGS, max_examples=30)


def _factory(url: str, prefix: str):  # type: ignore[no-untyped-def]
    async def make(settings: StoreSettings) -> HotStore:
        store = RedisHotStore(replace(settings, namespace=f"{prefix}-{settings.namespace}"), {"url": url})
        await store.open()
        return store

    return make


async def _drop(store: HotStore) -> None:
    assert isinstance(store, RedisHotStore)
    await store.drop_namespace()


@pytest.mark.redis
def test_redis_hot_store_matches_the_reference_model(redis_url: str, run_prefix: str) -> None:
    """Every HotStore operation on Redis agrees with the model: trimming, seqs, hostile ids, JSON documents."""
    run_hot_store_model(_factory(redis_url, run_prefix), cleanup=_drop, run_settings=_BOUNDED)


@pytest.mark.redis
@pytest.mark.cluster
def test_redis_cluster_hot_store_matches_the_reference_model(redis_cluster: RedisClusterServers, run_prefix: str) -> None:
    """The same model on a 3-master Redis Cluster: every operation stays within its slot and agrees."""
    run_hot_store_model(
        _factory(redis_cluster.url, run_prefix), cleanup=_drop, run_settings=settings(MODEL_SETTINGS, max_examples=15)
    )


@pytest.mark.redis
@pytest.mark.skipif(importlib.util.find_spec("langgraph") is None, reason="langgraph is not installed")
def test_redis_checkpointer_agrees_with_inmemorysaver(redis_url: str, run_prefix: str) -> None:
    """ContextKitSaver over Redis returns what LangGraph's InMemorySaver returns for the same calls."""
    run_checkpointer_model(_factory(redis_url, run_prefix), cleanup=_drop, run_settings=_BOUNDED)
