"""Redis servers for the contextkit-redis tests.

* ``redis_url``: the machine's Redis (``CONTEXTKIT_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``); tests
  only write under their own namespaces and remove them.
* ``redis_cluster``: a 3-master Redis Cluster started for the session on free loopback ports, stopped at the end.
* ``private_redis``: a redis-server of this module alone (for checks over the whole keyspace).
* ``run_prefix``: a namespace prefix unique to this test run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from contextkit.testing.services import machine_redis_url, missing_service
from contextkit.testing.services.redis_servers import RedisClusterServers, RedisServer, private_redis_server, redis_binaries

DEFAULT_URL = "redis://127.0.0.1:6379/0"
RUN_PREFIX = f"ckredis-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """Namespace prefix of every store this test run creates."""
    return RUN_PREFIX


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the shared Redis the tests may write to under their own namespaces."""
    return machine_redis_url(DEFAULT_URL)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A 3-master Redis Cluster on loopback ports, for the whole session."""
    if redis_binaries() is None:
        missing_service("redis-cluster", "redis-server / redis-cli are not on PATH")
    cluster = RedisClusterServers(masters=3).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    """A redis-server only this module uses (its whole keyspace can be inspected)."""
    with private_redis_server() as server:
        yield server
