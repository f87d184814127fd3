"""Kit bugs the model-based tests found, one regression test each (memory hot tier, memory cold tier).

Both were open bugs when the model found them and are fixed: ``delete_session`` records the delete even when the
hot copy expired, and lets the archive catch up before deleting so later messages continue its numbering.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

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


@pytest.mark.parametrize("hot", ["memory", "sqlite"])
async def test_a_kit_used_after_close_says_it_was_closed(hot: str, tmp_path: Path) -> None:
    """Every call on a closed kit raises ContextKitError "this ContextKit was closed", whatever the tier. The
    kit stayed marked open after close: a call reached the closed tier, which answered from its memory (memory
    tier: a session "read" from a closed kit) or raised BackendUnavailable, an outage to any retry logic."""
    from contextkit.errors import BackendUnavailable, ContextKitError

    config: dict[str, object] = {"hot": hot}
    if hot == "sqlite":
        config["sqlite"] = {"path": str(tmp_path / "closed.sqlite3")}
    kit = ContextKit.from_config(config, env={})
    async with kit:
        await kit.create_session("s1", "u1")
        await kit.add_conversation_message("s1", "user", "hello")
    calls = [
        lambda: kit.get_session("s1"),
        lambda: kit.create_session("s2", "u1"),
        lambda: kit.add_conversation_message("s1", "user", "after close"),
        lambda: kit.get_conversation_history("s1", 10),
        lambda: kit.delete_session("s1"),
        lambda: kit.get_metrics(),
    ]
    for call in calls:
        with pytest.raises(ContextKitError, match="this ContextKit was closed") as info:
            await call()
        assert not isinstance(info.value, BackendUnavailable)
    async with ContextKit.from_config(config, env={}) as again:
        # nothing the closed kit was asked for reached the tier
        assert await again.get_session("s2") is None
        assert [m.content for m in await again.get_conversation_history("s1", 10)] == ([] if hot == "memory" else ["hello"])
