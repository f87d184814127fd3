"""Big events never stall the archive (issue 15, item 2 of its list; "Big events" of the brief), on real PostgreSQL.

A LangGraph-like state of about 10 MB is stored at each of 12 steps while another session chats (1,000 small
messages in all, written between the steps). With batches bounded by bytes (``[archiver] batch_bytes``) each big
state is written alone, with a timeout scaled to its size, so nothing times out and is retried whole; the small
messages written after step k reach the archive before the state of step k+2 does (never behind more than one big
write), by order of completion, not by wall-clock thresholds. The drain time, its ratio to raw inserts of the
same rows and the peak RSS are measured by ``benchmarks/big_events.py``, not asserted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.records import ArchiveEvent

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

STEPS = 12
SMALL = 1000
THREAD = "graph-thread"
CHAT = "chat-session"


def langgraph_like_state(step: int, size: int = 10_000_000) -> dict[str, Any]:
    """A state about ``size`` bytes of JSON: a list of messages (as LangGraph's MessagesState keeps them) and a
    few channels, different at each step."""
    body = 4_800
    count = size // (body + 200)
    return {
        "v": 1,
        "step": step,
        "channel_values": {
            "messages": [
                {"type": "ai" if i % 2 else "human", "id": f"m-{step}-{i}", "content": f"{step}:{i} " + "x" * body}
                for i in range(count)
            ],
            "plan": [f"task {i}" for i in range(50)],
        },
        "channel_versions": {"messages": step + 1, "plan": 1},
    }


async def test_big_states_do_not_hold_small_messages_back(pg_target: Any) -> None:
    config = {"hot": "memory", "cold": pg_target.kit_cold(), "timeout": 15.0, "history_cap": SMALL + 10}
    kit = await ContextKit.from_config(config, env={}).open()
    completed: list[list[ArchiveEvent]] = []
    try:
        archiver = kit.archiver
        assert archiver is not None and kit.cold is not None
        write_events = kit.cold.write_events

        async def recording(events: Sequence[ArchiveEvent]) -> None:
            await write_events(events)
            completed.append(list(events))

        kit.cold.write_events = recording  # type: ignore[method-assign]
        per_step = SMALL // STEPS + 1
        written_after: dict[int, list[str]] = {}
        sent = 0
        for step in range(STEPS):
            await kit.store_checkpoint(THREAD, f"step-{step:02d}", langgraph_like_state(step))
            ids = []
            for _ in range(min(per_step, SMALL - sent)):
                message = await kit.add_message(CHAT, "user", f"small {sent}")
                ids.append(message.id)
                sent += 1
            written_after[step] = ids
        assert sent == SMALL
        assert await archiver.flush(600)

        metrics = await archiver.metrics()
        assert metrics["failures"] == 0, metrics["last_error"]  # no timeout, no retried batch
        assert metrics["dead_letters"] == 0 and metrics["queue_depth"] == 0

        # Where each event's batch completed, in completion order.
        done_at: dict[str, int] = {}
        big_done_at: dict[int, int] = {}
        for position, batch in enumerate(completed):
            bigs = [e for e in batch if e.table == "context_checkpoints"]
            # A big state is written alone: batch_bytes (8 MiB) is below its size.
            assert not bigs or len(batch) == 1
            for event in bigs:
                big_done_at[int(str(event.payload["checkpoint_id"]).split("-")[1])] = position
            for event in batch:
                if event.table == "context_conversations":
                    done_at[event.payload["message"]["id"]] = position
        assert sorted(big_done_at) == list(range(STEPS))
        for step, ids in written_after.items():
            assert all(message_id in done_at for message_id in ids)
            if step + 2 < STEPS:
                # Written after state k: archived before state k+2 (behind at most one big write, state k+1).
                assert max(done_at[i] for i in ids) < big_done_at[step + 2]

        # Everything is in the archive: the 12 states (whole) and the 1,000 messages in order.
        history = await kit.cold.read_history(CHAT, None)
        assert [m.content for m in history] == [f"small {i}" for i in range(SMALL)]
        rows = await pg_target.fetch(
            f"SELECT checkpoint_id, length(data::text) FROM {pg_target.table('context_checkpoints')} "
            f"WHERE thread_id = '{THREAD}' ORDER BY checkpoint_id"
        )
        assert [r[0] for r in rows] == [f"step-{k:02d}" for k in range(STEPS)]
        assert all(r[1] > 9_000_000 for r in rows)
    finally:
        left = await kit.aclose()
    assert left == 0
