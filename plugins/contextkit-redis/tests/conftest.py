"""Redis servers for the contextkit-redis tests.

* ``redis_url``: the machine's Redis (``CONTEXTKIT_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``); tests
  only write under their own namespaces and remove them.
* ``redis_cluster``: a 3-master Redis Cluster started for the session on free loopback ports, stopped at the end.
* ``private_redis``: a redis-server of this module alone (for checks over the whole keyspace).
* ``run_prefix``: a namespace prefix unique to this test run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from contextkit.testing.services import missing_service
from contextkit.testing.services.redis_servers import RedisClusterServers, RedisServer, private_redis_server, redis_binaries

DEFAULT_URL = "redis://127.0.0.1:6379/0"
RUN_PREFIX = f"ckredis-{uuid.uuid4().hex[:8]}"


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return os.path.exists(parts.path)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """Namespace prefix of every store this test run creates."""
    return RUN_PREFIX


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the shared Redis the tests may write to under their own namespaces."""
    url = os.environ.get("CONTEXTKIT_TEST_REDIS_URL", "").strip() or DEFAULT_URL
    if not _reachable(url):
        missing_service("redis", f"nothing answers at {urlsplit(url).hostname}:{urlsplit(url).port}")
    return url


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
