"""Sessions: ``update_session`` (sequential, and concurrent writers) and "append a message + read the last 50", per
hot tier, side by side with raw redis-py doing the same commands on the same server (issue 3's floor).

The raw floor is what a hand-written client would send for the same guarantees, in one atomic round trip each:
``MULTI HINCRBY HINCRBYFLOAT HSET EXPIRE EXEC`` for an update; ``MULTI INCR RPUSH LTRIM HSET EXPIRE EXEC`` then
``LRANGE -50 -1`` (JSON encoded and decoded, like any client storing dicts) for append + read. The bar: contextkit
on Redis within 1.5x of it. Every subject is open at once and the subjects alternate in chunks (see
:func:`benchmarks.measure.time_interleaved`), so load drifting on a shared machine hits them alike.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from functools import partial
from typing import Any

from benchmarks.context import BenchContext, Unavailable
from benchmarks.groups.history import fill_history
from benchmarks.measure import Timing, time_concurrent, time_interleaved
from benchmarks.report import Row, Target

__all__ = ["run"]

GROUP = "sessions"
UPDATE = "update_session"
CONCURRENT = "update_session, concurrent writers"
APPEND_READ = "append + last-50 read"
RAW = "raw redis-py"
CASES = (UPDATE, CONCURRENT, APPEND_READ)
CONTENT = "hello, this is a message of a typical chat turn " * 4
ROUNDS = 3


class _Subject:
    """The three operations of one subject: ``update(session)``, ``append_read(i)``, and its session ids."""

    def __init__(self, update: Callable[[str], Awaitable[object]], append_read: Callable[[int], Awaitable[object]]):
        self.update = update
        self.append_read = append_read


async def run(ctx: BenchContext) -> None:
    """Open the raw client and every kit, prepare their data, then run each case over all of them."""
    subjects: dict[str, _Subject] = {}
    async with contextlib.AsyncExitStack() as stack:
        try:
            subjects[RAW] = await _raw(ctx, stack)
        except Exception as exc:
            ctx.skip_rest(GROUP, CASES, RAW, exc)
        for tier in ctx.tiers:
            name = f"contextkit {tier}"
            try:
                subjects[name] = await _contextkit(ctx, stack, tier)
            except Exception as exc:
                ctx.skip_rest(GROUP, CASES, name, exc)

        ctx.progress(f"sessions: {UPDATE}")
        updates = {name: partial(_update_one, s) for name, s in subjects.items()}
        _record(ctx, UPDATE, await time_interleaved(updates, ctx.sizes, rounds=ROUNDS), "median")

        ctx.progress(f"sessions: {CONCURRENT}")
        concurrent: dict[str, Timing | BaseException] = {name: Timing() for name in subjects}
        per_worker = max(2, ctx.sizes.iterations // 4 // ROUNDS)
        for _ in range(ROUNDS):
            for name, subject in subjects.items():
                timing = concurrent[name]
                if isinstance(timing, Timing):
                    try:
                        timing.extend(await time_concurrent(partial(_update_writer, subject), ctx.sizes,
                                                            per_worker=per_worker))
                    except Exception as exc:
                        concurrent[name] = exc
        _record(ctx, CONCURRENT, concurrent, "throughput")

        ctx.progress(f"sessions: {APPEND_READ}")
        chats = {name: s.append_read for name, s in subjects.items()}
        _record(ctx, APPEND_READ, await time_interleaved(chats, ctx.sizes, rounds=ROUNDS), "median")
    for case, metric in ((UPDATE, "median"), (CONCURRENT, "throughput"), (APPEND_READ, "median")):
        ctx.report.expect(Target(GROUP, f"redis: {case} within 1.5x of raw redis-py", row=f"{case} / contextkit redis",
                                 against=(f"{case} / {RAW}",), max_ratio=1.5, metric=metric, source="issue 3"))  # type: ignore[arg-type]


async def _update_one(subject: _Subject, i: int) -> object:
    return await subject.update("s-seq")


async def _update_writer(subject: _Subject, w: int, i: int) -> object:
    return await subject.update(f"s-w{w}")


def _record(ctx: BenchContext, case: str, results: dict[str, Timing | BaseException], metric: str) -> None:
    notes = {
        (UPDATE, RAW): "MULTI 4 cmds",
        (APPEND_READ, RAW): "MULTI 5 cmds + LRANGE",
    }
    for name, timing in results.items():
        if isinstance(timing, BaseException):
            ctx.skip_rest(GROUP, (case,), name, timing)
            continue
        note = notes.get((case, name), "")
        if case == CONCURRENT:
            note = f"{ctx.sizes.concurrency} writers, 1 session each"
        ctx.report.add(Row(GROUP, case, name, timing, baseline=f"{case} / {RAW}", metric=metric, note=note))  # type: ignore[arg-type]


async def _contextkit(ctx: BenchContext, stack: contextlib.AsyncExitStack, tier: str) -> _Subject:
    kit = await stack.enter_async_context(ctx.kit(tier))
    await kit.create_session("s-seq", user_id="bench")
    for w in range(ctx.sizes.concurrency):
        await kit.create_session(f"s-w{w}", user_id="bench")
    await kit.create_session("s-chat", user_id="bench")
    await fill_history(kit.hot, "s-chat", 100)

    async def update(sid: str) -> None:
        if not await kit.update_session(sid, increment_requests=True, add_processing_time=0.5):
            raise RuntimeError(f"{tier}: update_session({sid!r}) found no session")

    async def append_read(i: int) -> None:
        await kit.add_conversation_message("s-chat", "user", CONTENT, {"turn": i})
        await kit.get_conversation_history("s-chat", limit=50)

    return _Subject(update, append_read)


async def _raw(ctx: BenchContext, stack: contextlib.AsyncExitStack) -> _Subject:
    if ctx.services.redis_url is None:
        raise Unavailable(ctx.services.redis_problem or "no Redis")
    import redis.asyncio as aioredis

    client: Any = aioredis.from_url(ctx.services.redis_url, max_connections=64)
    stack.push_async_callback(client.aclose)
    prefix = f"{ctx.services.prefix}:rawsessions"
    ttl = 86_400

    async def update(sid: str) -> None:
        key = f"{prefix}:{{{sid}}}:session"
        pipe = client.pipeline(transaction=True)
        pipe.hincrby(key, "request_count", 1)
        pipe.hincrbyfloat(key, "total_processing_time", 0.5)
        pipe.hset(key, "last_activity", str(time.time()))
        pipe.expire(key, ttl)
        await pipe.execute()

    history = f"{prefix}:{{s-chat}}:history"
    seq_key = f"{prefix}:{{s-chat}}:seq"
    session_key = f"{prefix}:{{s-chat}}:session"
    for n in range(100):
        await client.rpush(history, json.dumps({"role": "user", "content": f"m{n}", "seq": n + 1}))

    async def append_read(i: int) -> None:
        message = {
            "id": uuid.uuid4().hex,
            "role": "user",
            "content": CONTENT,
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "metadata": {"turn": i},
        }
        pipe = client.pipeline(transaction=True)
        pipe.incr(seq_key)
        pipe.rpush(history, json.dumps(message))
        pipe.ltrim(history, -1000, -1)
        pipe.hset(session_key, "last_activity", str(time.time()))
        pipe.expire(history, ttl)
        await pipe.execute()
        [json.loads(item) for item in await client.lrange(history, -50, -1)]

    return _Subject(update, append_read)
