"""The facade under test on the memory tier and on the machine's Redis (each test in a namespace of its own,
dropped afterwards)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from contextkit.compat import ContextEngine
from contextkit.testing.services import missing_service

REDIS_URL = os.environ.get("CONTEXTKIT_TEST_REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0"


def _redis_reachable() -> bool:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(params=["memory", "redis"])
def tier_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The kit configuration of one tier, with a namespace of its own (fallback off: a Redis run is on Redis)."""
    namespace = f"ckcompat-{uuid.uuid4().hex[:10]}"
    if request.param == "redis":
        if not _redis_reachable():
            missing_service("redis", f"nothing answers at {REDIS_URL}")
        return {"hot": "redis", "redis": {"url": REDIS_URL}, "namespace": namespace, "fallback": False}
    return {"hot": "memory", "namespace": namespace, "fallback": False}


@pytest.fixture
async def make_engine(tier_config: dict[str, Any]) -> AsyncIterator[Any]:
    """Build opened facades on the test's tier and namespace (keyword arguments go to ContextEngine)."""
    engines: list[ContextEngine] = []

    async def make(**kwargs: Any) -> ContextEngine:
        engine = ContextEngine(config=tier_config, env={}, **kwargs)
        await engine.initialize()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        drop = getattr(engine.hot, "drop_namespace", None)
        if drop is not None and not engine._closed:
            await drop()
        await engine.close()


@pytest.fixture
async def engine(make_engine: Any) -> ContextEngine:
    """An opened facade with default settings."""
    result: ContextEngine = await make_engine()
    return result
