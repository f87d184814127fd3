"""Kit bugs the model-based tests found, one regression test each (memory hot tier, memory cold tier).

Both were open bugs when the model found them and are fixed: ``delete_session`` records the delete even when the
hot copy expired, and lets the archive catch up before deleting so later messages continue its numbering.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from contextkit import ContextKit


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    """The memory hot tier's clock: moving it past the TTLs makes the hot tier lose everything."""
    return _Clock()


@pytest.fixture
async def kit(clock: _Clock) -> AsyncIterator[ContextKit]:
    """ContextKit on the memory hot tier (with a settable clock) and the memory cold tier."""
    config = {"hot": "memory", "cold": "memory", "history_cap": 5, "memory": {"clock": clock}}
    async with ContextKit.from_config(config, env={}) as kit:
        yield kit


async def test_deleting_a_session_the_hot_tier_lost_keeps_it_deleted(kit: ContextKit, clock: _Clock) -> None:
    """A session whose hot copy expired, then deleted, is gone for good: get_session returns None."""
    await kit.create_session("s1", "u1")
    assert kit.archiver is not None and await kit.archiver.flush(5.0)
    clock.now += 10 * 86_400 * 365
    await kit.delete_session("s1")
    assert await kit.archiver.flush(5.0)
    assert await kit.get_session("s1") is None


async def test_a_message_added_right_after_a_delete_never_reuses_an_archived_seq(kit: ContextKit) -> None:
    """Messages added before and after a delete, without waiting for the archiver, get distinct seqs in the archive;
    the deleted ones stay hidden, the new one continues the numbering."""
    await kit.create_session("s1", "u1")
    for i in range(3):
        await kit.add_message("s1", "user", f"before {i}")
    await kit.delete_session("s1")
    after = await kit.add_message("s1", "user", "after")
    assert after.seq == 4
    assert kit.archiver is not None and await kit.archiver.flush(5.0)
    assert kit.cold is not None
    assert await kit.cold.count_events("context_conversations", "s1") == 4
    assert [(m.seq, m.content) for m in await kit.cold.read_history("s1", None)] == [(4, "after")]
    assert [m.content for m in await kit.get_conversation_history("s1")] == ["after"]
