"""Typed errors on the Redis tier's decode and counter paths (issue 15, item 7).

Stored JSON holding an integer over Python's int-string digit limit (written by another client, or by a process
with a higher limit) reads as CorruptData (stored data, not the caller's input), never a plain ValueError. A
session hash whose total was left at ``2e+308`` by the HINCRBYFLOAT of an older version (long double: finite for
Redis, infinite for every reader) is still updatable for its other counters, and refuses a processing time
without applying anything. The counter checks themselves run on every tier in the hot suite.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest

from contextkit.errors import CorruptData, InvalidInput, SerializationError
from contextkit.stores import SessionUpdate, StoreSettings
from contextkit.testing.hot import make_session
from contextkit_redis import RedisHotStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LONG = "9" * 5000


@pytest.fixture
async def store(redis_url: str, run_prefix: str) -> AsyncIterator[RedisHotStore]:
    store = RedisHotStore(StoreSettings(namespace=f"{run_prefix}-typed-{uuid.uuid4().hex[:8]}"), {"url": redis_url})
    await store.open()
    try:
        yield store
    finally:
        await store.drop_namespace()
        await store.aclose()


async def test_stored_json_with_an_integer_over_the_digit_limit_reads_as_corrupt_data(
    store: RedisHotStore,
) -> None:
    await store.put_session(make_session("s1"))
    await store.put_task_context("s1", {"ok": 1})
    owner = store.keys.owner("s1")
    await store.client.hset(owner.session, "metadata", '{"n":' + LONG + "}")
    await store.client.set(owner.task, '{"n":[-' + LONG + "]}")
    with pytest.raises(CorruptData) as raised:
        await store.get_session("s1")
    assert not isinstance(raised.value, InvalidInput)  # nothing the caller passed was wrong
    with pytest.raises(CorruptData):
        await store.get_task_context("s1")


async def test_a_total_left_at_2e308_still_takes_other_counters_and_refuses_more_time(store: RedisHotStore) -> None:
    await store.put_session(make_session("s1", request_count=1))
    await store.client.hset(store.keys.owner("s1").session, "total_processing_time", "2e+308")
    updated = await store.update_session("s1", SessionUpdate(T0, requests=1))
    assert updated is not None and updated.request_count == 2 and math.isinf(updated.total_processing_time)
    with pytest.raises(SerializationError, match="total_processing_time"):
        await store.update_session("s1", SessionUpdate(T0, requests=1, processing_time=1.0))
    after = await store.get_session("s1")
    assert after is not None and after.request_count == 2 and after.version == updated.version
