"""Test support: finding or starting the servers a test needs, and failing loudly in CI when one is missing.

Nothing here is part of contextkit's runtime API, and nothing outside tests, benchmarks and conformance runs
imports it. It needs the ``testing`` extra (``scripts/install testing``, or ``pip install "contextkit[testing]"``:
pytest, testcontainers) and, per launcher, a server on PATH or a wheel:

* this module: the lookup order and the "skip locally, fail in CI" rule (:func:`missing_service`), free ports;
* :mod:`contextkit.testing.services.postgres_server`: a private PostgreSQL cluster (``initdb`` / ``pg_ctl``);
* :mod:`contextkit.testing.services.redis_servers`: a redis-server and a 3-master Redis Cluster (``redis-server``,
  ``redis-cli``);
* :mod:`contextkit.testing.services.clickhouse_server`: a ClickHouse HTTP server from the ``chdb-core`` wheel (the
  ``testing`` extra of contextkit-clickhouse), or testcontainers;
* :mod:`contextkit.testing.services.tls`: a throw-away CA and certificates (the ``openssl`` tool).

A service fixture looks for a server in this order: a URL in ``CONTEXTKIT_TEST_<NAME>_URL``; a local server
binary it starts itself on a free loopback port; testcontainers when Docker is reachable. When none is found
the test is skipped with the reason, except when ``CONTEXTKIT_REQUIRE_SERVICES=1`` (CI sets it): then it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from typing import NoReturn

import pytest

__all__ = [
    "docker_available",
    "env_url",
    "free_port",
    "machine_redis_url",
    "missing_service",
    "services_required",
    "wait_for_port",
]


def services_required() -> bool:
    """True when a missing service must fail the test instead of skipping it (``CONTEXTKIT_REQUIRE_SERVICES=1``)."""
    return os.environ.get("CONTEXTKIT_REQUIRE_SERVICES", "").lower() in {"1", "true", "yes", "on"}


def missing_service(name: str, reason: str) -> NoReturn:
    """Skip (or, when services are required, fail) because service ``name`` is not available."""
    message = f"{name} is not available: {reason}"
    if services_required():
        pytest.fail(message + " (CONTEXTKIT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)  # reached only when services are not required (CI requires them: fails above)


def env_url(name: str) -> str | None:
    """The URL given in ``CONTEXTKIT_TEST_<NAME>_URL``, if any."""
    value = os.environ.get(f"CONTEXTKIT_TEST_{name.upper()}_URL", "").strip()
    return value or None


def machine_redis_url(default: str = "redis://127.0.0.1:6379/0") -> str:
    """The Redis tests share under their own namespaces: ``CONTEXTKIT_TEST_REDIS_URL``, else ``default``; a
    missing service (:func:`missing_service`) when nothing answers there (a ``unix://`` URL: when its socket file
    is missing)."""
    from urllib.parse import urlsplit

    url = env_url("redis") or default
    parts = urlsplit(url)
    if parts.scheme == "unix":
        if not os.path.exists(parts.path):
            missing_service("redis", f"no socket at {parts.path}")
        return url
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2.0):
            pass
    except OSError as exc:
        missing_service("redis", f"nothing answers at {parts.hostname}:{parts.port}: {exc}")
    return url


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> bool:
    """Poll until something accepts connections on ``host:port``; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def docker_available() -> bool:
    """True when a Docker engine answers (testcontainers can start containers)."""
    if shutil.which("docker") is None:
        return False
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False
