"""Compaction of one session is serialized by a per-session lock that lives only while it is held or awaited."""

import asyncio

from contextkit import ContextKit
from contextkit.kit.history import KeyedLocks


async def test_a_keyed_lock_excludes_holders_of_the_same_key_and_is_dropped_after_the_last() -> None:
    locks = KeyedLocks()
    inside: list[str] = []
    overlaps: list[str] = []

    async def hold(key: str, tag: str) -> None:
        async with locks.hold(key):
            if any(other.startswith(key) for other in inside):
                overlaps.append(tag)
            inside.append(f"{key}/{tag}")
            await asyncio.sleep(0.01)
            inside.remove(f"{key}/{tag}")

    await asyncio.gather(*(hold(key, str(n)) for key in ("a", "b") for n in range(5)))
    assert overlaps == []
    assert len(locks) == 0


async def test_a_lock_released_by_a_failing_holder_is_dropped_too() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("a"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert len(locks) == 0


async def test_compressing_many_sessions_keeps_no_lock_per_session() -> None:
    async with ContextKit.from_config({"hot": "memory"}, env={}) as kit:
        for n in range(20):
            for i in range(5):
                await kit.add_message(f"s{n}", "user", f"m{i}")
        results = await asyncio.gather(
            *(kit.compress_conversation(f"s{n % 20}", "truncate", {"keep_recent": 2}) for n in range(40))
        )
        assert all(r["success"] for r in results)
        assert [len(await kit.get_conversation_history(f"s{n}")) for n in range(20)] == [2] * 20
        assert len(kit._compaction_locks) == 0
