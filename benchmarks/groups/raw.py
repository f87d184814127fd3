"""Raw floors: what the drivers alone do on the same servers (redis-py SET/GET sequential and pipelined, asyncpg
COPY, clickhouse-connect insert). Other groups measure their own floors next to contextkit; these rows show the
servers' and drivers' ceiling on this machine."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any

from benchmarks.context import BenchContext
from benchmarks.environment import clickhouse_client
from benchmarks.measure import time_each, time_once
from benchmarks.report import Row

__all__ = ["PAYLOAD_BYTES", "conversation_rows", "run"]

GROUP = "raw"
PAYLOAD_BYTES = 1024
PIPELINE = 100


def conversation_rows(count: int, session_id: str = "raw-session") -> list[tuple[Any, ...]]:
    """``count`` rows shaped like the archive's conversation table (event id, session, role, content, metadata,
    seq, message id, sent at): the same data the archiver group writes through contextkit."""
    now = datetime.now(timezone.utc)
    content = "x" * 200
    return [
        (f"ev-{i}", session_id, "user" if i % 2 else "assistant", content, json.dumps({"i": i}), i + 1, f"m-{i}", now)
        for i in range(count)
    ]


async def run(ctx: BenchContext) -> None:
    """Every raw floor whose server is here."""
    await _redis(ctx)
    await _postgres(ctx)
    await _clickhouse(ctx)


async def _redis(ctx: BenchContext) -> None:
    subjects = ("redis-py SET", "redis-py GET", "redis-py SET pipelined", "redis-py GET pipelined")
    if ctx.services.redis_url is None:
        for subject in subjects:
            ctx.report.skip(GROUP, f"{PAYLOAD_BYTES} B value", subject, ctx.services.redis_problem or "no Redis")
        return
    import redis.asyncio as aioredis

    client = aioredis.from_url(ctx.services.redis_url)
    prefix = f"{ctx.services.prefix}:raw"
    payload = b"v" * PAYLOAD_BYTES
    case = f"{PAYLOAD_BYTES} B value"
    try:
        ctx.progress("raw: redis-py SET/GET")
        timing = await time_each(lambda i: client.set(f"{prefix}:{i % 1000}", payload), ctx.sizes)
        ctx.report.add(Row(GROUP, case, "redis-py SET", timing, baseline=f"{case} / redis-py SET"))
        timing = await time_each(lambda i: client.get(f"{prefix}:{i % 1000}"), ctx.sizes)
        ctx.report.add(Row(GROUP, case, "redis-py GET", timing, baseline=f"{case} / redis-py SET"))

        async def set_pipelined(i: int) -> None:
            pipe = client.pipeline(transaction=False)
            for j in range(PIPELINE):
                pipe.set(f"{prefix}:{j}", payload)
            await pipe.execute()

        async def get_pipelined(i: int) -> None:
            pipe = client.pipeline(transaction=False)
            for j in range(PIPELINE):
                pipe.get(f"{prefix}:{j}")
            await pipe.execute()

        count = max(5, ctx.sizes.iterations // 10)
        timing = await time_each(set_pipelined, ctx.sizes, iterations=count, ops_per_call=PIPELINE)
        ctx.report.add(Row(GROUP, case, "redis-py SET pipelined", timing, baseline=f"{case} / redis-py SET",
                           note=f"{PIPELINE} per round trip"))
        timing = await time_each(get_pipelined, ctx.sizes, iterations=count, ops_per_call=PIPELINE)
        ctx.report.add(Row(GROUP, case, "redis-py GET pipelined", timing, baseline=f"{case} / redis-py SET",
                           note=f"{PIPELINE} per round trip"))
    finally:
        await client.aclose()


async def _postgres(ctx: BenchContext) -> None:
    case = f"bulk insert {ctx.sizes.rows:,} rows"
    if ctx.services.postgres_url is None:
        ctx.report.skip(GROUP, case, "asyncpg COPY", ctx.services.postgres_problem or "no PostgreSQL")
        return
    import asyncpg

    ctx.progress("raw: asyncpg COPY")
    schema = f"{ctx.services.schema}_raw"
    conn = await asyncpg.connect(ctx.services.postgres_url)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(postgres_table_sql(schema))
        rows = conversation_rows(ctx.sizes.rows)

        async def copy() -> int:
            await conn.execute(f'TRUNCATE "{schema}".conversations')
            await conn.copy_records_to_table("conversations", schema_name=schema, records=rows, columns=COPY_COLUMNS)
            return len(rows)

        await copy()  # warm-up
        timing = await time_once(copy, repeats=3)
        ctx.report.add(Row(GROUP, case, "asyncpg COPY", timing, metric="throughput", note="per row"))
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


COPY_COLUMNS = ("event_id", "session_id", "role", "content", "metadata", "seq", "message_id", "sent_at")


def postgres_table_sql(schema: str) -> str:
    """DDL of a table with the columns and indexes of contextkit's PostgreSQL ``context_conversations``."""
    return f"""
        CREATE TABLE IF NOT EXISTS "{schema}".conversations (
            id BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL, role TEXT NOT NULL,
            content TEXT NOT NULL, metadata JSONB NOT NULL DEFAULT '{{}}', seq BIGINT NOT NULL,
            message_id TEXT NOT NULL, sent_at TIMESTAMPTZ NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
        CREATE INDEX IF NOT EXISTS conversations_session_seq ON "{schema}".conversations (session_id, seq, id);
        CREATE INDEX IF NOT EXISTS conversations_session_created ON "{schema}".conversations (session_id, created_at);
    """


async def _clickhouse(ctx: BenchContext) -> None:
    case = f"bulk insert {ctx.sizes.rows:,} rows"
    if ctx.services.clickhouse_url is None:
        ctx.report.skip(GROUP, case, "clickhouse-connect insert", ctx.services.clickhouse_problem or "no ClickHouse")
        return
    ctx.progress("raw: clickhouse-connect insert")
    database = f"{ctx.services.schema}_raw"
    url = ctx.services.clickhouse_url
    client = await asyncio.to_thread(clickhouse_client, url)
    try:
        await asyncio.to_thread(client.command, f"CREATE DATABASE IF NOT EXISTS {database}")
        await asyncio.to_thread(client.command, clickhouse_table_sql(database))
        rows = clickhouse_rows(ctx.sizes.rows)

        async def insert() -> int:
            await asyncio.to_thread(client.insert, f"{database}.conversations", rows, column_names=CH_COLUMNS)
            return len(rows)

        await insert()
        timing = await time_once(insert, repeats=3)
        ctx.report.add(Row(GROUP, case, "clickhouse-connect insert", timing, metric="throughput", note="per row"))
    finally:
        await asyncio.to_thread(client.command, f"DROP DATABASE IF EXISTS {database}")
        client.close()


CH_COLUMNS = ("session_id", "seq", "message_id", "role", "content", "metadata", "timestamp", "created_at", "event_id")


def clickhouse_table_sql(database: str) -> str:
    """DDL of a table shaped like contextkit's ClickHouse conversations table."""
    return f"""
        CREATE TABLE IF NOT EXISTS {database}.conversations (
            session_id String, seq UInt64, message_id String, role LowCardinality(String), content String,
            metadata String, timestamp DateTime64(6, 'UTC'), created_at DateTime64(6, 'UTC'), event_id String)
        ENGINE = ReplacingMergeTree ORDER BY (session_id, seq, event_id)
    """


def clickhouse_rows(count: int) -> list[list[Any]]:
    """The :func:`conversation_rows` data in the ClickHouse column order."""
    return [[sid, seq, mid, role, content, meta, ts, ts, ev] for ev, sid, role, content, meta, seq, mid, ts in
            conversation_rows(count)]
