"""Closing a kit on Redis while another process holds the outbox's drain lease (a crashed one, whose lease has
not lapsed): the close leaves the events in the stream at once instead of waiting for the lease."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from contextkit import ContextKit
from contextkit.stores import StoreSettings
from contextkit_redis import RedisHotStore
from contextkit_redis.outbox import RedisStreamOutbox


@pytest.mark.redis
async def test_aclose_leaves_events_to_a_dead_lease_holder_without_waiting(redis_url: str) -> None:
    """A dead process's lease (an hour long here) would keep the stream from this kit until it lapses; ``aclose``
    does not wait for it (the drain timeout is an hour too: a wait would hang the test, not slow it), the events
    stay in Redis, and the next process drains them once the lease is gone."""
    namespace = f"ckredis-peer-{uuid.uuid4().hex[:10]}"
    config = {
        "hot": {"backend": "redis", "url": redis_url},
        "cold": "memory",
        "namespace": namespace,
        "archiver": {"drain_timeout": 3600.0},
    }
    probe = RedisHotStore(StoreSettings(namespace=namespace), {"url": redis_url})
    await probe.open()
    lease_key = f"{probe.keys.outbox_stream(0)}:lease"
    try:
        await probe.client.set(lease_key, "token-of-a-crashed-process", px=3_600_000)
        kit = await ContextKit.from_config(config, env={}).open()
        await kit.create_session("s1", "u1")
        await kit.add_conversation_message("s1", "user", "hello")
        assert kit.archiver is not None
        outbox = kit.archiver.outbox
        assert isinstance(outbox, RedisStreamOutbox) and await outbox.drained_elsewhere()
        waiting = await outbox.depth()
        assert waiting >= 2  # at least the session's event and the message's
        await asyncio.wait_for(kit.aclose(), timeout=120)  # a guard against a hang, not a timing assertion
        assert await probe.client.xlen(probe.keys.outbox_stream(0)) == waiting
        # The lease lapses (deleted here): the next process drains what the closed one left.
        await probe.client.delete(lease_key)
        async with ContextKit.from_config(config, env={}) as successor:
            assert successor.archiver is not None
            assert not await successor.archiver.outbox.drained_elsewhere()  # type: ignore[attr-defined]
            assert await successor.archiver.flush(60)
            assert successor.cold is not None
            assert await successor.cold.count_events("context_conversations", "s1") == 1
    finally:
        await probe.drop_namespace()
        await probe.aclose()
