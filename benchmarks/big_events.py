"""Big events through the archive: 12 LangGraph-like states of about 10 MB and 1,000 small messages of another
session, memory hot tier -> PostgreSQL (issue 15). Prints, from one run:

* the kit's drain: from the first write until the archive holds everything, and after the last write;
* the same rows inserted raw with asyncpg (one transaction, ``INSERT ... ::jsonb``: the floor), and the ratio;
* where the small messages were when the last big state reached the archive (all of them archived before it);
* the process's peak RSS before and after (``ru_maxrss``).

Run: ``python -m benchmarks.big_events [--url postgresql://postgres@127.0.0.1:5432/test] [--steps 12]
[--size 10000000] [--small 1000]``. It uses a schema of its own (dropped at the end). Not a test: nothing is
asserted on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from contextkit import ContextKit
from contextkit.records import ArchiveEvent


def _state(step: int, size: int) -> dict[str, Any]:
    body = 4_800
    return {
        "v": 1,
        "step": step,
        "channel_values": {
            "messages": [
                {"type": "ai" if i % 2 else "human", "id": f"m-{step}-{i}", "content": f"{step}:{i} " + "x" * body}
                for i in range(size // (body + 200))
            ],
            "plan": [f"task {i}" for i in range(50)],
        },
        "channel_versions": {"messages": step + 1, "plan": 1},
    }


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _kit_run(url: str, schema: str, states: list[dict[str, Any]], small: int) -> dict[str, Any]:
    config = {"hot": "memory", "cold": {"backend": "postgres", "url": url, "schema": schema}, "timeout": 15.0,
              "history_cap": small + 10}
    kit = await ContextKit.from_config(config, env={}).open()
    order: list[str] = []
    try:
        assert kit.archiver is not None and kit.cold is not None
        write_events = kit.cold.write_events

        async def recording(events: Sequence[ArchiveEvent]) -> None:
            await write_events(events)
            order.extend("B" if e.table == "context_checkpoints" else "s" for e in events)

        kit.cold.write_events = recording  # type: ignore[method-assign]
        per_step = small // len(states) + 1
        sent = 0
        started = time.perf_counter()
        for step, state in enumerate(states):
            await kit.store_checkpoint("graph", f"step-{step:02d}", state)
            for _ in range(min(per_step, small - sent)):
                await kit.add_message("chat", "user", f"small {sent}")
                sent += 1
        written = time.perf_counter()
        assert await kit.archiver.flush(900)
        drained = time.perf_counter()
        metrics = await kit.archiver.metrics()
    finally:
        await kit.aclose()
    last_big = len(order) - 1 - order[::-1].index("B")
    return {
        "total_s": drained - started,
        "after_writes_s": drained - written,
        "writes_s": written - started,
        "failures": metrics["failures"],
        "batches": metrics["batches"],
        "small_after_last_big": order[last_big + 1:].count("s"),
    }


async def _raw_run(url: str, schema: str, states: list[dict[str, Any]], small: int) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'CREATE TABLE "{schema}".big (thread_id text, checkpoint_id text, data jsonb)')
        await conn.execute(f'CREATE TABLE "{schema}".small (session_id text, seq int, message jsonb)')
        started = time.perf_counter()
        texts = [json.dumps(state) for state in states]
        messages = [json.dumps({"role": "user", "content": f"small {i}", "seq": i + 1}) for i in range(small)]
        async with conn.transaction():
            await conn.executemany(
                f'INSERT INTO "{schema}".big VALUES ($1, $2, $3::jsonb)',
                [("graph", f"step-{k:02d}", text) for k, text in enumerate(texts)],
            )
            await conn.executemany(
                f'INSERT INTO "{schema}".small VALUES ($1, $2, $3::jsonb)',
                [("chat", i + 1, text) for i, text in enumerate(messages)],
            )
        return time.perf_counter() - started
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def main(url: str, steps: int, size: int, small: int) -> None:
    baseline = _rss_mb()
    states = [_state(step, size) for step in range(steps)]
    built = _rss_mb()
    schema = f"bench_big_{uuid.uuid4().hex[:8]}"
    raw = await _raw_run(url, schema + "_raw", states, small)
    try:
        kit = await _kit_run(url, schema, states, small)
    finally:
        conn = await asyncpg.connect(url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    mb = sum(len(json.dumps(s)) for s in states) / 1e6
    print(f"{steps} states of {mb / steps:.1f} MB ({mb:.0f} MB) + {small} small messages, memory hot tier -> PostgreSQL")
    print(f"  raw asyncpg inserts (one transaction): {raw:.2f} s")
    print(f"  kit: writes {kit['writes_s']:.2f} s, drain after the last write {kit['after_writes_s']:.2f} s, "
          f"first write to archived {kit['total_s']:.2f} s = {kit['total_s'] / raw:.2f}x raw")
    print(f"  batches {kit['batches']}, failed writes {kit['failures']}; small messages archived after the last "
          f"big state: {kit['small_after_last_big']} (the {small - (steps - 1) * (small // steps + 1)} written after it)")
    print(f"  peak RSS: {baseline:.0f} MB at start, {built:.0f} MB with the states built, {_rss_mb():.0f} MB at the end")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.steps, args.size, args.small))
