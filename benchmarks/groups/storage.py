"""Storage: the bytes a chat thread leaves in each saver, and the time its turns take, ``MessagesState`` against
``DeltaChannel`` (issue 19).

The workload: one thread of ``N`` chat turns (100 at quick size, 100 and 1,000 at full) on a 1-node graph; each turn
sends a user question (~12 words) and the node answers with a ~80-word reply of varied, deterministic text (seeded
per turn, so every saver stores the same bytes). The same turns run twice per saver: with LangGraph's
``MessagesState`` (every checkpoint stores the whole list: O(turns^2) bytes) and with
``messages: Annotated[list, DeltaChannel(_messages_delta_reducer)]`` (LangGraph 1.2, beta: checkpoints store the
writes and a snapshot every 100 updates, and reads replay them through ``get_delta_channel_history``).

Each saver runs the thread three times (one run each at smoke size, and for 1,000 turns), the savers taking turns
round after round; the time rows hold every turn of every run, the bytes rows the first run's bytes (every run
stores the same thread). Every run gets fresh storage (its own contextkit namespace, SQLite file, PostgreSQL
schema, Redis key prefix), and the bytes the empty storage already took (a SQLite file's empty tables and indexes,
PostgreSQL's empty relations) are subtracted, so the figure is that thread's alone:

* Redis (contextkit, plainredis): the sum of ``MEMORY USAGE`` of the run's keys;
* SQLite (contextkit, AsyncSqliteSaver): the file's used pages, ``(page_count - freelist_count) * page_size``, read
  through a separate connection (so what is still in the WAL counts, once);
* PostgreSQL (AsyncPostgresSaver): ``pg_total_relation_size`` of the schema's tables (TOAST and indexes included;
  TOAST compresses large values);
* memory (contextkit, InMemorySaver): the payload bytes held (serialized checkpoints, blobs, writes, metadata JSON),
  without Python's object overhead;
* the archive (``ContextKitSaver memory, PostgreSQL archive``: a memory hot tier whose checkpoints the kit's
  archiver copies into a PostgreSQL cold tier): ``pg_total_relation_size`` of the cold tier's tables once the
  archiver drained, the archive's bytes alone (its time rows: turns with archiving on).

The floor is the raw message text (UTF-8 bytes of every question and reply). Time rows are the run's wall time per
turn (``ainvoke`` of each turn, the state read back included); their ratio is against InMemorySaver.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from benchmarks.context import BenchContext, Unavailable
from benchmarks.measure import Timing, gc_paused
from benchmarks.report import Row, Target

__all__ = ["run"]

GROUP = "storage"
MESSAGES_STATE = "MessagesState"
DELTA = "DeltaChannel"
KINDS = (MESSAGES_STATE, DELTA)
#: Turns per thread, by ``--size``.
TURNS: dict[str, tuple[int, ...]] = {"smoke": (5,), "quick": (100,), "full": (100, 1_000)}
#: Seconds one run (one saver, one graph kind, one thread) may take before it is abandoned and reported skipped.
TIME_CAP: dict[str, float] = {"smoke": 60.0, "quick": 600.0, "full": 3_600.0}

FLOOR = "message text (floor)"
IN_MEMORY = "InMemorySaver"
SQLITE_PEER = "AsyncSqliteSaver"
POSTGRES_PEER = "AsyncPostgresSaver"
PLAINREDIS = "plainredis AsyncRedisSaver"
ARCHIVE = "ContextKitSaver memory, PostgreSQL archive"
CK = "ContextKitSaver {}"

_VOCABULARY = (
    "the a model answer context thread message user assistant weather forecast Paris Berlin Lisbon rain sun wind "
    "cloud morning evening tomorrow week temperature degrees humidity pressure front storm clear sky coast mountain "
    "valley river city station report update change likely chance expect during after before around across north "
    "south east west light heavy brief steady cooler warmer drier wetter gusts showers breaks mild cold warm hot "
    "because however although meanwhile later earlier then still already again also only mostly partly fairly"
)
_WORDS = tuple(_VOCABULARY.split())


def bytes_case(kind: str, turns: int) -> str:
    """The case of the bytes rows."""
    return f"bytes after {turns:,} turns, {kind}"


def time_case(kind: str, turns: int) -> str:
    """The case of the time rows."""
    return f"run of {turns:,} turns, {kind}"


def floor_case(turns: int) -> str:
    """The case of the floor row: the message text of ``turns`` turns."""
    return f"message text of {turns:,} turns"


def question(turn: int) -> str:
    """The user's message of ``turn`` (~12 words)."""
    rng = random.Random(f"q{turn}")
    return f"Turn {turn}: " + " ".join(rng.choice(_WORDS) for _ in range(12)) + "?"


def reply(turn: int) -> str:
    """The assistant's reply of ``turn``: ~80 words, different on every turn, the same in every run."""
    rng = random.Random(f"r{turn}")
    return " ".join(rng.choice(_WORDS) for _ in range(76 + rng.randrange(9))) + "."


def text_bytes(turns: int) -> int:
    """The floor: UTF-8 bytes of every message of ``turns`` turns."""
    return sum(len(question(t).encode()) + len(reply(t).encode()) for t in range(turns))


# -- the graphs ----------------------------------------------------------------------------------------------------
def build_graph(kind: str, checkpointer: Any) -> Any:
    """The 1-node chat graph whose ``messages`` channel is ``kind``."""
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, StateGraph

    def respond(state: Any) -> dict[str, Any]:
        turn = len(state["messages"]) // 2
        return {"messages": [AIMessage(content=reply(turn), id=f"a{turn}")]}

    builder = StateGraph(_state_type(kind))
    builder.add_node("respond", respond)
    builder.add_edge(START, "respond")
    builder.add_edge("respond", END)
    return builder.compile(checkpointer=checkpointer)


def _state_type(kind: str) -> Any:
    if kind == MESSAGES_STATE:
        from langgraph.graph import MessagesState

        return MessagesState
    from langgraph.channels.delta import DeltaChannel
    from langgraph.graph.message import _messages_delta_reducer

    messages = Annotated[list, DeltaChannel(_messages_delta_reducer)]
    # The functional form evaluates the annotation here, where DeltaChannel (imported on demand) is in scope.
    state: Any = TypedDict
    return state("DeltaMessagesState", {"messages": messages})


# -- the savers ----------------------------------------------------------------------------------------------------
@dataclass
class Subject:
    """A saver under test and how to read the bytes its run left."""

    saver: Any
    stored_bytes: Callable[[], Awaitable[int]]


SubjectFactory = Callable[[BenchContext], contextlib.AbstractAsyncContextManager[Subject]]


@contextlib.asynccontextmanager
async def _contextkit(ctx: BenchContext, tier: str) -> AsyncIterator[Subject]:
    try:
        from contextkit.langgraph import ContextKitSaver  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"contextkit.langgraph is not importable: {exc}") from exc
    async with ctx.kit(tier) as kit:
        hot: Any = kit.hot
        if tier == "redis":
            assert ctx.services.redis_url is not None
            prefix = hot.keys.prefix

            async def measure() -> int:
                return await _redis_bytes(ctx.services.redis_url or "", prefix)
        elif tier == "sqlite":
            path = hot.options.path

            async def measure() -> int:
                return _sqlite_bytes(path)
        else:

            async def measure() -> int:
                return _memory_tier_bytes(hot)

        yield Subject(kit.checkpointer(), measure)


@contextlib.asynccontextmanager
async def _archived(ctx: BenchContext) -> AsyncIterator[Subject]:
    import asyncpg

    async with ctx.kit("memory", "postgres") as kit:
        cold: Any = kit.cold
        archiver = kit.archiver
        assert archiver is not None

        async def measure() -> int:
            if not await archiver.flush(120):
                raise RuntimeError("the archiver did not drain in 120 s")
            conn = await asyncpg.connect(ctx.services.postgres_url)
            try:
                size = await conn.fetchval(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                    cold.schema,
                )
            finally:
                await conn.close()
            return int(size)

        try:
            yield Subject(kit.checkpointer(), measure)
        finally:
            with contextlib.suppress(Exception):
                await cold.drop_schema()


@contextlib.asynccontextmanager
async def _in_memory(ctx: BenchContext) -> AsyncIterator[Subject]:
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()

    async def measure() -> int:
        return _in_memory_saver_bytes(saver)

    yield Subject(saver, measure)


@contextlib.asynccontextmanager
async def _sqlite(ctx: BenchContext) -> AsyncIterator[Subject]:
    try:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    except ImportError as exc:
        raise Unavailable(f"langgraph-checkpoint-sqlite is not installed: {exc}") from exc
    path = str(ctx.scratch / f"{ctx.unique('lgstorage')}.sqlite3")
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        await saver.setup()

        async def measure() -> int:
            return _sqlite_bytes(path)

        yield Subject(saver, measure)


@contextlib.asynccontextmanager
async def _postgres(ctx: BenchContext) -> AsyncIterator[Subject]:
    if ctx.services.postgres_url is None:
        raise Unavailable(ctx.services.postgres_problem or "no PostgreSQL")
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg import AsyncConnection
        from psycopg.rows import dict_row
    except ImportError as exc:
        raise Unavailable(f"langgraph-checkpoint-postgres / psycopg are not installed: {exc}") from exc
    schema = ctx.unique(f"{ctx.services.schema}_storage").replace("-", "_")
    conn = await AsyncConnection.connect(
        ctx.services.postgres_url, autocommit=True, prepare_threshold=0, row_factory=dict_row,
        options=f"-c search_path={schema}",
    )
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        saver = AsyncPostgresSaver(conn)
        await saver.setup()

        async def measure() -> int:
            cursor = await conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) AS size FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            )
            found = await cursor.fetchone()
            return int(found["size"]) if found else 0

        yield Subject(saver, measure)
    finally:
        with contextlib.suppress(Exception):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@contextlib.asynccontextmanager
async def _plainredis(ctx: BenchContext) -> AsyncIterator[Subject]:
    if ctx.services.redis_url is None:
        raise Unavailable(ctx.services.redis_problem or "no Redis")
    try:
        from langgraph_checkpoint_plainredis import AsyncRedisSaver
    except ImportError as exc:
        raise Unavailable(f"langgraph-checkpoint-plainredis is not installed: {exc}") from exc
    prefix = f"{ctx.services.prefix}:{ctx.unique('plainstorage')}"
    saver = AsyncRedisSaver(url=ctx.services.redis_url, prefix=prefix)

    async def measure() -> int:
        return await _redis_bytes(ctx.services.redis_url or "", prefix)

    try:
        yield Subject(saver, measure)
    finally:
        await saver.aclose()


def _subjects(ctx: BenchContext) -> list[tuple[str, SubjectFactory]]:
    """The selected savers (``--tiers``, ``--peers``); InMemorySaver always runs: it is the time rows' baseline."""
    from functools import partial

    subjects: list[tuple[str, SubjectFactory]] = [(IN_MEMORY, _in_memory)]
    for tier in ctx.tiers:
        subjects.append((CK.format(tier), partial(_contextkit, tier=tier)))
    if "memory" in ctx.tiers and "postgres" in ctx.peers:
        subjects.append((ARCHIVE, _archived))
    peers = {"sqlite": (SQLITE_PEER, _sqlite), "postgres": (POSTGRES_PEER, _postgres), "plainredis": (PLAINREDIS, _plainredis)}
    subjects += [peers[name] for name in ctx.peers if name in peers]
    return subjects


# -- measuring bytes -----------------------------------------------------------------------------------------------
async def _redis_bytes(url: str, prefix: str) -> int:
    """Sum of ``MEMORY USAGE`` (exact: ``SAMPLES 0``) of the keys starting with ``prefix``."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    total = 0
    try:
        keys = [key async for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=1000)]
        for start in range(0, len(keys), 500):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + 500]:
                pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
            total += sum(int(size or 0) for size in await pipe.execute())
    finally:
        await client.aclose()
    return total


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _sqlite_bytes(path: str) -> int:
    """Used pages of the file, read through a connection of its own (the WAL's newer pages count, once)."""
    conn = sqlite3.connect(path)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)
    finally:
        conn.close()


def _memory_tier_bytes(hot: Any) -> int:
    """Payload bytes the contextkit memory tier holds for its checkpoints (serialized rows, blobs, writes)."""
    total = 0
    for thread in hot._cp.threads.values():
        for ns in thread.namespaces.values():
            for row in ns.rows.values():
                total += len(row.checkpoint[1]) + len(json.dumps(row.metadata)) + len(json.dumps(row.channel_versions))
            total += sum(len(kind) + len(data) for kind, data in ns.blobs.values())
            for writes in ns.writes.values():
                total += sum(len(w.value[1]) + len(w.channel) + len(w.task_id) + len(w.task_path) for w in writes.values())
    return total


def _in_memory_saver_bytes(saver: Any) -> int:
    """Payload bytes InMemorySaver holds (serialized checkpoints and metadata, blobs, writes)."""
    total = 0
    for namespaces in saver.storage.values():
        for checkpoints in namespaces.values():
            for checkpoint, metadata, _parent in checkpoints.values():
                total += len(checkpoint[1]) + len(metadata[1])
    total += sum(len(kind) + len(data) for kind, data in saver.blobs.values())
    for writes in saver.writes.values():
        total += sum(len(value[2][1]) + len(value[1]) for value in writes.values())
    return total


# -- the run -------------------------------------------------------------------------------------------------------
async def _one_run(ctx: BenchContext, factory: SubjectFactory, kind: str, turns: int) -> tuple[int, Timing]:
    """Run ``turns`` turns of ``kind`` on a fresh ``factory`` subject; the bytes it left and the timing."""
    from langchain_core.messages import HumanMessage

    cap = TIME_CAP.get(ctx.sizes.name, 600.0)
    async with factory(ctx) as subject:
        graph = build_graph(kind, subject.saver)
        config = {"configurable": {"thread_id": ctx.unique("storage-thread")}}
        # What the empty storage already takes (a SQLite file's empty tables, PostgreSQL's empty relations) is not
        # the thread's.
        empty = await subject.stored_bytes()
        timing = Timing()
        clock = time.perf_counter_ns
        deadline = clock() + int(cap * 1e9)
        with gc_paused():
            start = clock()
            for turn in range(turns):
                t0 = clock()
                await graph.ainvoke({"messages": [HumanMessage(content=question(turn), id=f"u{turn}")]}, config)
                t1 = clock()
                timing.samples_ns.append(float(t1 - t0))
                if t1 > deadline and turn + 1 < turns:
                    raise Unavailable(f"stopped after {turn + 1} of {turns:,} turns: over the {cap:.0f} s cap")
            timing.wall_ns = clock() - start
        timing.ops = turns
        state = await graph.aget_state(config)
        messages = state.values.get("messages") or []
        if len(messages) != 2 * turns or messages[-1].content != reply(turns - 1):
            raise RuntimeError(f"the thread read back {len(messages)} messages, not {2 * turns}")
        return await subject.stored_bytes() - empty, timing


async def run(ctx: BenchContext) -> None:
    """Every saver, both graph kinds, each thread length: bytes after the run and time per turn."""
    turns_list = TURNS.get(ctx.sizes.name, (100,))
    try:
        from langgraph.channels.delta import DeltaChannel  # noqa: F401
    except ImportError as exc:
        for turns in turns_list:
            for kind in KINDS:
                ctx.report.skip(GROUP, bytes_case(kind, turns), "every saver", f"langgraph 1.2+ is not installed: {exc}")
        return
    for turns in turns_list:
        floor = text_bytes(turns)
        ctx.report.add(Row(GROUP, floor_case(turns), FLOOR, value=floor, unit="B",
                           note=f"{2 * turns:,} messages, ~{floor // (2 * turns)} B each"))
        rounds = rounds_for(ctx.sizes.name, turns)
        for kind in KINDS:
            subjects = _subjects(ctx)
            stored: dict[str, int] = {}
            timings: dict[str, Timing] = {}
            failed: set[str] = set()
            # The savers take turns, round after round (a fresh thread each time), so the drift of a shared
            # machine spreads over all of them instead of favouring whichever ran first.
            for round_no in range(rounds):
                for subject, factory in subjects:
                    if subject in failed:
                        continue
                    ctx.progress(f"storage: {subject}, {kind}, {turns:,} turns, round {round_no + 1} of {rounds}")
                    try:
                        size, timing = await _one_run(ctx, factory, kind, turns)
                    except Exception as exc:  # a saver that is missing or broken skips its rows
                        failed.add(subject)
                        ctx.skip_rest(GROUP, (bytes_case(kind, turns), time_case(kind, turns)), subject, exc)
                        continue
                    stored.setdefault(subject, size)  # every round stores the same thread: the first one counts
                    timings[subject] = timings[subject].extend(timing) if subject in timings else timing
            for subject, _ in subjects:
                if subject in failed or subject not in timings:
                    continue
                size, timing = stored[subject], timings[subject]
                ctx.report.add(Row(GROUP, bytes_case(kind, turns), subject, value=size, unit="B",
                                   note=f"{size / floor:.1f}x the text"))
                ctx.report.add(Row(GROUP, time_case(kind, turns), subject, timing,
                                   baseline=f"{time_case(kind, turns)} / {IN_MEMORY}", metric="throughput",
                                   note=f"{timing.wall_ns / 1e9:.2f} s in {rounds} run(s)"))
    _targets(ctx, turns_list)


def rounds_for(size: str, turns: int) -> int:
    """Runs per saver and graph kind (the savers taking turns): 3 at quick and full size for 100 turns, one
    for a smoke run and for 1,000 turns (InMemorySaver alone takes minutes there)."""
    return 3 if size in ("quick", "full") and turns <= 100 else 1


def _targets(ctx: BenchContext, turns_list: tuple[int, ...]) -> None:
    """Issue 19's bars (bytes against the text floor, time against the peers, growth 100 -> 1,000 turns)."""
    redis, sqlite = CK.format("redis"), CK.format("sqlite")

    def expect(label: str, row: str, against: str, bound: float, metric: str = "median") -> None:
        # A time bar is shown with InMemorySaver's ratio to the same peer: a saver that only keeps serialized
        # values in a dict, the floor for one that stores them in a server or a file.
        case = row.split(" / ", 1)[0]
        context = (f"{case} / {IN_MEMORY}",) if case.startswith("run of") else ()
        ctx.report.expect(Target(GROUP, label, row=row, against=(against,), max_ratio=bound, metric=metric,  # type: ignore[arg-type]
                                 source="issue 19", context=context))

    # The bars are the at 100 turns (quick, full); a smoke run judges them at its own length.
    n = 100 if 100 in turns_list else turns_list[0]
    floor = f"{floor_case(n)} / {FLOOR}"
    for tier, name in (("redis", redis), ("sqlite", sqlite)):
        expect(f"{tier}: MessagesState, {n} turns: bytes <= 8x the text", f"{bytes_case(MESSAGES_STATE, n)} / {name}",
               floor, 8.0)
        expect(f"{tier}: MessagesState, {n} turns: time <= 0.35x AsyncPostgresSaver",
               f"{time_case(MESSAGES_STATE, n)} / {name}", f"{time_case(MESSAGES_STATE, n)} / {POSTGRES_PEER}", 0.35,
               "throughput")
        expect(f"{tier}: DeltaChannel, {n} turns: bytes <= 5x the text", f"{bytes_case(DELTA, n)} / {name}", floor, 5.0)
    expect(f"redis: DeltaChannel, {n} turns: time <= 0.5x AsyncPostgresSaver", f"{time_case(DELTA, n)} / {redis}",
           f"{time_case(DELTA, n)} / {POSTGRES_PEER}", 0.5, "throughput")
    expect(f"sqlite: DeltaChannel, {n} turns: time <= 0.5x AsyncSqliteSaver", f"{time_case(DELTA, n)} / {sqlite}",
           f"{time_case(DELTA, n)} / {SQLITE_PEER}", 0.5, "throughput")
    if 100 in turns_list and 1_000 in turns_list:
        for kind in KINDS:
            expect(f"archive: {kind}: 1,000-turn bytes <= 12x the 100-turn bytes", f"{bytes_case(kind, 1_000)} / {ARCHIVE}",
                   f"{bytes_case(kind, 100)} / {ARCHIVE}", 12.0)
        for tier, name in (("redis", redis), ("sqlite", sqlite)):
            for kind in KINDS:
                expect(f"{tier}: {kind}: 1,000-turn bytes <= 12x the 100-turn bytes", f"{bytes_case(kind, 1_000)} / {name}",
                       f"{bytes_case(kind, 100)} / {name}", 12.0)
