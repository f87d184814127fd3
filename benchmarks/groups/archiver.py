"""Archiver: rows/s into PostgreSQL and ClickHouse through contextkit's archiver, next to the raw bulk insert of the
same rows (asyncpg COPY, clickhouse-connect insert) into a table of the same shape; and the hot-path latency of
``add_conversation_message`` with the cold tier on versus off.

Drain: N conversation events (what ``add_conversation_message`` queues) are submitted at once and the clock stops
when ``archiver.flush()`` returns (every row committed); the raw insert and the drain take turns, 3 timed batches
each after a warm-up batch. End to end: N ``add_conversation_message`` calls, then
``flush()``. Bars (issue 8): PostgreSQL drain >= 0.75x raw COPY; ClickHouse >= 50,000 messages/s; cold-on hot-path
latency <= 1.10x cold-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from benchmarks.context import BenchContext, Unavailable
from benchmarks.environment import clickhouse_client
from benchmarks.groups.raw import CH_COLUMNS, COPY_COLUMNS, clickhouse_table_sql, postgres_table_sql
from benchmarks.measure import Timing, time_interleaved, time_once
from benchmarks.report import Row, Target
from contextkit import ContextKit
from contextkit.records import ArchiveEvent, Message, utcnow

__all__ = ["run"]

GROUP = "archiver"
HOT_PATH = "add_conversation_message"
CONTENT = "a chat message of a typical length, archived for analytics and time travel " * 3


def _messages(session_id: str, count: int) -> list[tuple[ArchiveEvent, Message]]:
    now = utcnow()
    out = []
    for i in range(count):
        message = Message(role="user" if i % 2 else "assistant", content=CONTENT, timestamp=now, metadata={"i": i},
                          seq=i + 1)
        out.append((ArchiveEvent("context_conversations", session_id, {"message": message.to_dict()}), message))
    return out


async def run(ctx: BenchContext) -> None:
    """Drain and end-to-end throughput per cold tier, its raw floor, then the hot-path latency."""
    for cold in ("postgres", "clickhouse"):
        await _throughput(ctx, cold)
    await _hot_path(ctx)


def _drain_case(ctx: BenchContext) -> str:
    return f"drain {ctx.sizes.rows:,} messages"


#: Timed drains per subject; the raw insert and contextkit's drain alternate (raw, contextkit, raw, ...).
DRAIN_ROUNDS = 3

# A drain subject: prepare() builds a batch untimed, run(batch) writes it and returns the rows written.
Prepare = Callable[[], Any]
RunBatch = Callable[[Any], Awaitable[int]]


async def _alternate(subjects: dict[str, tuple[Prepare, RunBatch]], rounds: int) -> dict[str, Timing | BaseException]:
    """Time each subject's batch write ``rounds`` times, the subjects taking turns (the drift of a shared machine's
    load then lands on each alike; run one after the other, a raw COPY varied 132k-181k rows/s between runs)."""
    results: dict[str, Timing | BaseException] = {name: Timing() for name in subjects}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, (prepare, run_batch) in subjects.items():
            timing = results[name]
            if not isinstance(timing, Timing):
                continue
            try:
                batch = prepare()
                t0 = clock()
                done = await run_batch(batch)
                elapsed = clock() - t0
            except Exception as exc:
                results[name] = exc
                continue
            timing.samples_ns.append(elapsed / max(done, 1))
            timing.ops += done
            timing.wall_ns += elapsed
    return results


async def _throughput(ctx: BenchContext, cold: str) -> None:
    rows = ctx.sizes.rows
    drain, end_to_end = _drain_case(ctx), f"write + drain {rows:,} messages"
    subject = f"contextkit -> {cold}"
    raw_subject = "asyncpg COPY (same rows)" if cold == "postgres" else "clickhouse-connect insert (same rows)"
    async with contextlib.AsyncExitStack() as stack:
        subjects: dict[str, tuple[Prepare, RunBatch]] = {}
        try:
            raw = _raw_postgres(ctx) if cold == "postgres" else _raw_clickhouse(ctx)
            subjects[raw_subject] = await stack.enter_async_context(raw)
        except Exception as exc:
            ctx.skip_rest(GROUP, (drain,), raw_subject, exc)
        try:
            kit = await stack.enter_async_context(ctx.kit("memory", cold, archiver={"batch_size": 5000}))
            archiver = kit.archiver
            assert archiver is not None and kit.cold is not None
            await archiver.flush(timeout=60.0)

            def prepare_events() -> list[ArchiveEvent]:
                return [event for event, _ in _messages(ctx.unique("drain"), rows)]

            async def drain_once(events: list[ArchiveEvent]) -> int:
                await archiver.submit(events)
                if not await archiver.flush(timeout=300.0):
                    raise RuntimeError(f"the archiver did not drain into {cold} within 300 s: {archiver.last_error}")
                return len(events)

            subjects[subject] = (prepare_events, drain_once)
        except Exception as exc:
            ctx.skip_rest(GROUP, (drain, end_to_end), subject, exc)
            kit = None
        ctx.progress(f"archiver: drain into {cold}, alternating with the raw insert")
        for name, (prepare, run_batch) in subjects.items():
            try:
                await run_batch(prepare())  # warm-up: connections, prepared statements, the cold tier's migrations
            except Exception as exc:
                ctx.skip_rest(GROUP, (drain,), name, exc)
        subjects = {name: pair for name, pair in subjects.items() if ctx.report.find(GROUP, f"{drain} / {name}") is None}
        results = await _alternate(subjects, DRAIN_ROUNDS)
        for name, timing in results.items():
            if isinstance(timing, BaseException):
                ctx.skip_rest(GROUP, (drain,), name, timing)
                continue
            note = "batch_size 5000" if name == subject else ("same columns and indexes" if cold == "postgres"
                                                                else "same columns, one insert")
            ctx.report.add(Row(GROUP, drain, name, timing, baseline=f"{drain} / {raw_subject}", metric="throughput",
                               note=note))
        if kit is not None and ctx.report.find(GROUP, f"{drain} / {subject}") is not None:
            try:
                await _end_to_end(ctx, kit, cold, end_to_end, subject, f"{drain} / {raw_subject}")
            except Exception as exc:
                ctx.skip_rest(GROUP, (end_to_end,), subject, exc)
    if cold == "postgres":
        ctx.report.expect(Target(GROUP, "PostgreSQL drain >= 0.75x raw COPY", row=f"{drain} / {subject}",
                                 against=(f"{drain} / {raw_subject}",), max_ratio=1 / 0.75, metric="throughput",
                                 source="issue 8"))
    else:
        ctx.report.expect(Target(GROUP, "ClickHouse >= 50,000 messages/s (absolute)", row=f"{drain} / {subject}",
                                 min_rate=50_000, metric="throughput", source="issue 8"))


async def _end_to_end(ctx: BenchContext, kit: ContextKit, cold: str, case: str, subject: str, baseline: str) -> None:
    rows = ctx.sizes.rows
    archiver = kit.archiver
    assert archiver is not None and kit.cold is not None
    ctx.progress(f"archiver: write + drain into {cold}")
    sid = ctx.unique("e2e")
    await kit.create_session(sid, user_id="bench")
    await archiver.flush(timeout=60.0)

    async def write_and_drain() -> int:
        for i in range(rows):
            await kit.add_conversation_message(sid, "user", CONTENT, {"i": i})
        if not await archiver.flush(timeout=300.0):
            raise RuntimeError(f"the archiver did not drain into {cold} within 300 s: {archiver.last_error}")
        return rows

    timing = await time_once(write_and_drain, pause_gc=False)
    ctx.report.add(Row(GROUP, case, subject, timing, baseline=baseline, metric="throughput", note="memory hot tier"))
    stored = await kit.cold.count_events("context_conversations", sid)
    if stored < rows:
        raise RuntimeError(f"{cold} holds {stored} of {rows} messages after flush")


@contextlib.asynccontextmanager
async def _raw_postgres(ctx: BenchContext) -> AsyncIterator[tuple[Prepare, RunBatch]]:
    if ctx.services.postgres_url is None:
        raise Unavailable(ctx.services.postgres_problem or "no PostgreSQL")
    import asyncpg

    schema = f"{ctx.services.schema}_arch_raw"
    conn = await asyncpg.connect(ctx.services.postgres_url)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(postgres_table_sql(schema))

        def prepare() -> list[tuple[Any, ...]]:
            return _copy_rows(ctx.unique("raw"), ctx.sizes.rows)

        async def copy(records: list[tuple[Any, ...]]) -> int:
            await conn.copy_records_to_table("conversations", schema_name=schema, records=records, columns=COPY_COLUMNS)
            return len(records)

        yield prepare, copy
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def _copy_rows(session_id: str, count: int) -> list[tuple[Any, ...]]:
    return [
        (event.event_id, session_id, m.role, m.content, json.dumps(dict(m.metadata)), m.seq, m.id, m.timestamp)
        for event, m in _messages(session_id, count)
    ]


@contextlib.asynccontextmanager
async def _raw_clickhouse(ctx: BenchContext) -> AsyncIterator[tuple[Prepare, RunBatch]]:
    if ctx.services.clickhouse_url is None:
        raise Unavailable(ctx.services.clickhouse_problem or "no ClickHouse")
    database = f"{ctx.services.schema}_arch_raw"
    client = await asyncio.to_thread(clickhouse_client, ctx.services.clickhouse_url)
    try:
        await asyncio.to_thread(client.command, f"CREATE DATABASE IF NOT EXISTS {database}")
        await asyncio.to_thread(client.command, clickhouse_table_sql(database))

        def prepare() -> list[list[Any]]:
            sid = ctx.unique("raw")
            return [[sid, m.seq, m.id, m.role, m.content, json.dumps(dict(m.metadata)), m.timestamp,
                     event.created_at, event.event_id] for event, m in _messages(sid, ctx.sizes.rows)]

        async def insert(rows: list[list[Any]]) -> int:
            await asyncio.to_thread(client.insert, f"{database}.conversations", rows, column_names=CH_COLUMNS)
            return len(rows)

        yield prepare, insert
    finally:
        await asyncio.to_thread(client.command, f"DROP DATABASE IF EXISTS {database}")
        client.close()


async def _append(kit: ContextKit, sid: str, i: int) -> object:
    return await kit.add_conversation_message(sid, "user", CONTENT)


async def _hot_path(ctx: BenchContext) -> None:
    """add_conversation_message latency on the memory and Redis hot tiers with cold off / PostgreSQL / ClickHouse.

    The three kits of a hot tier are open together and alternate in chunks; after each chunk of a cold-on kit its
    archiver is drained untimed, so every chunk starts from an empty outbox and pays for the archiving it causes.
    """
    for hot in [t for t in ("memory", "redis") if t in ctx.tiers]:
        base = f"{HOT_PATH} / {hot}, cold off"
        ops: dict[str, Any] = {}
        drains: dict[str, Any] = {}
        async with contextlib.AsyncExitStack() as stack:
            for cold in (None, "postgres", "clickhouse"):
                subject = f"{hot}, cold {cold or 'off'}"
                try:
                    kit = await stack.enter_async_context(ctx.kit(hot, cold))
                    sid = ctx.unique("hot")
                    await kit.create_session(sid, user_id="bench")
                    ops[subject] = partial(_append, kit, sid)
                    if kit.archiver is not None:
                        drains[subject] = partial(_drain, kit.archiver)
                except Exception as exc:
                    ctx.skip_rest(GROUP, (HOT_PATH,), subject, exc)
                if cold is not None:
                    ctx.report.expect(Target(GROUP, f"{subject}: hot-path latency <= 1.10x cold off",
                                             row=f"{HOT_PATH} / {subject}", against=(base,), max_ratio=1.10,
                                             source="issue 8"))
            ctx.progress(f"archiver: hot path on {hot}, cold off / on")
            results = await time_interleaved(ops, ctx.sizes, after_chunk=drains)
            for subject, timing in results.items():
                if isinstance(timing, BaseException):
                    ctx.skip_rest(GROUP, (HOT_PATH,), subject, timing)
                else:
                    ctx.report.add(Row(GROUP, HOT_PATH, subject, timing, baseline=base))


async def _drain(archiver: Any) -> None:
    if not await archiver.flush(timeout=120.0):
        raise RuntimeError(f"the archiver did not drain: {archiver.last_error}")
