"""Checkpointer: ContextKitSaver (memory / Redis / SQLite) against LangGraph's savers and the raw redis-py floor.

Peers: ``InMemorySaver``, ``AsyncSqliteSaver`` (aiosqlite, a temp file), ``AsyncPostgresSaver`` (psycopg, a fresh
schema on the machine's PostgreSQL, ``setup()`` called) and ``langgraph-checkpoint-plainredis``'s
``AsyncRedisSaver`` (own key prefix). Floors: redis-py ``SET`` / ``GET`` of the same bytes a checkpoint serializes
to (the checkpoint without values + the blobs of its new channel versions + the metadata JSON), one key each.

Every saver gets the same workload: a thread of ``thread`` checkpoints (1,000 at full size) whose ``aput`` calls
are timed as they build it, each writing 2 changed channels (a chat turn, a step counter; a 1.5 KB document
channel changes every 10th step); then ``aput_writes`` (2 writes) on its checkpoints, ``aget_tuple`` of the latest,
``alist(limit=10)`` of the thread; ``aput`` on 32 threads concurrently; and ``ainvoke`` of a 3-node graph, with the
no-checkpointer invoke as that case's floor. Every other case's ratio is against InMemorySaver.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, TypedDict

from benchmarks.context import BenchContext, Unavailable
from benchmarks.measure import Timing, time_concurrent, time_interleaved
from benchmarks.report import Row, Target

__all__ = ["run"]

GROUP = "checkpointer"
APUT = "aput"
WRITES = "aput_writes"
GET = "aget_tuple (latest)"
LIST = "alist(limit=10)"
CONCURRENT = "aput, concurrent threads"
INVOKE = "graph ainvoke (3 nodes)"
CASES = (APUT, WRITES, GET, LIST, CONCURRENT, INVOKE)

IN_MEMORY = "InMemorySaver"
SQLITE_PEER = "AsyncSqliteSaver"
POSTGRES_PEER = "AsyncPostgresSaver"
PLAINREDIS = "plainredis AsyncRedisSaver"
PEERS = (IN_MEMORY, SQLITE_PEER, POSTGRES_PEER, PLAINREDIS)
CK = "ContextKitSaver {}"
RAW_SET = "redis-py SET (same bytes)"
RAW_GET = "redis-py GET (same bytes)"
NO_SAVER = "no checkpointer"

TURN = "The user asks about the weather in Paris and the assistant answers with a forecast. "


@dataclass
class Step:
    """One checkpoint of a workload, ready to ``aput`` (built before the clock starts)."""

    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    new_versions: dict[str, Any]
    floor_bytes: bytes
    writes: list[tuple[str, Any]] = field(default_factory=list)
    writes_bytes: bytes = b""


def build_steps(saver: Any, count: int) -> list[Step]:
    """``count`` successive checkpoints of one thread, versioned by ``saver.get_next_version`` as LangGraph does."""
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    serde = JsonPlusSerializer()
    versions: dict[str, Any] = {}
    values: dict[str, Any] = {}
    steps = []
    for i in range(count):
        changed = {"messages": [{"role": "user", "content": f"{i}: " + TURN}, {"role": "assistant", "content": TURN}],
                   "step": i}
        if i % 10 == 0:
            changed["context"] = {"document": "d" * 1500, "revision": i // 10}
        values.update(changed)
        new_versions = {ch: saver.get_next_version(versions.get(ch), None) for ch in changed}
        versions.update(new_versions)
        checkpoint = dict(empty_checkpoint())
        checkpoint.update(
            id=str(uuid6(clock_seq=i)),
            ts=datetime.now(timezone.utc).isoformat(),
            channel_values=dict(values),
            channel_versions=dict(versions),
            versions_seen={"agent": {"messages": versions["messages"]}},
            updated_channels=sorted(changed),
        )
        metadata = {"source": "loop", "step": i, "parents": {}, "run_id": "bench-run"}
        bare = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        floor = serde.dumps_typed(bare)[1] + b"".join(serde.dumps_typed(values[ch])[1] for ch in changed)
        floor += json.dumps(metadata).encode()
        writes = [("messages", [{"role": "assistant", "content": TURN}]), ("step", i + 1)]
        writes_bytes = b"".join(serde.dumps_typed(v)[1] for _, v in writes)
        steps.append(Step(checkpoint, metadata, new_versions, floor, writes, writes_bytes))
    return steps


def thread_config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    """A RunnableConfig for a thread (and a checkpoint)."""
    configurable = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


# -- the savers --------------------------------------------------------------------------------------------------
SaverFactory = Callable[[BenchContext], contextlib.AbstractAsyncContextManager[Any]]


@contextlib.asynccontextmanager
async def _contextkit(ctx: BenchContext, tier: str) -> AsyncIterator[Any]:
    _require_langgraph_adapter()
    async with ctx.kit(tier) as kit:
        try:
            yield kit.checkpointer()
        except Exception as exc:
            if type(exc).__name__ == "CapabilityNotSupported":
                raise Unavailable(str(exc)) from exc
            raise


def _require_langgraph_adapter() -> None:
    try:
        from contextkit.langgraph import ContextKitSaver  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"contextkit.langgraph is not importable: {exc}") from exc


@contextlib.asynccontextmanager
async def _in_memory(ctx: BenchContext) -> AsyncIterator[Any]:
    from langgraph.checkpoint.memory import InMemorySaver

    yield InMemorySaver()


@contextlib.asynccontextmanager
async def _sqlite(ctx: BenchContext) -> AsyncIterator[Any]:
    try:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    except ImportError as exc:
        raise Unavailable(f"langgraph-checkpoint-sqlite is not installed: {exc}") from exc
    async with AsyncSqliteSaver.from_conn_string(str(ctx.scratch / f"{ctx.unique('lg')}.sqlite3")) as saver:
        await saver.setup()
        yield saver


@contextlib.asynccontextmanager
async def _postgres(ctx: BenchContext) -> AsyncIterator[Any]:
    if ctx.services.postgres_url is None:
        raise Unavailable(ctx.services.postgres_problem or "no PostgreSQL")
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg import AsyncConnection
        from psycopg.rows import dict_row
    except ImportError as exc:
        raise Unavailable(f"langgraph-checkpoint-postgres / psycopg are not installed: {exc}") from exc
    schema = f"{ctx.services.schema}_lg"
    conn = await AsyncConnection.connect(
        ctx.services.postgres_url, autocommit=True, prepare_threshold=0, row_factory=dict_row,
        options=f"-c search_path={schema}",
    )
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        saver = AsyncPostgresSaver(conn)
        await saver.setup()
        yield saver
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _plainredis(ctx: BenchContext) -> AsyncIterator[Any]:
    if ctx.services.redis_url is None:
        raise Unavailable(ctx.services.redis_problem or "no Redis")
    try:
        from langgraph_checkpoint_plainredis import AsyncRedisSaver
    except ImportError as exc:
        raise Unavailable(f"langgraph-checkpoint-plainredis is not installed: {exc}") from exc
    saver = AsyncRedisSaver(url=ctx.services.redis_url, prefix=f"{ctx.services.prefix}:plain")
    try:
        yield saver
    finally:
        await saver.aclose()


def _subjects(ctx: BenchContext) -> list[tuple[str, SaverFactory]]:
    """The selected savers (``--tiers``, ``--peers``); InMemorySaver always runs: it is every case's baseline."""
    subjects: list[tuple[str, SaverFactory]] = [(IN_MEMORY, _in_memory)]
    for tier in ctx.tiers:
        subjects.append((CK.format(tier), partial(_contextkit, tier=tier)))
    peers = {"sqlite": (SQLITE_PEER, _sqlite), "postgres": (POSTGRES_PEER, _postgres), "plainredis": (PLAINREDIS, _plainredis)}
    subjects += [peers[name] for name in ctx.peers if name in peers]
    return subjects


# -- the cases ---------------------------------------------------------------------------------------------------
class _Thread:
    """One saver's workload: its prepared checkpoints, the configs ``aput`` returned, its concurrent threads."""

    def __init__(self, ctx: BenchContext, saver: Any) -> None:
        sizes = ctx.sizes
        self.saver = saver
        self.warmup = sizes.warmup
        self.steps = build_steps(saver, sizes.thread + sizes.warmup)
        self.configs: list[dict[str, Any]] = []
        self.latest = thread_config(ctx.unique("thread"))
        self.parent: dict[str, Any] = self.latest
        self.per_worker = max(3, sizes.iterations // sizes.concurrency // ROUNDS)
        self.workloads = [build_steps(saver, self.per_worker * ROUNDS + 1) for _ in range(sizes.concurrency)]
        self.heads = [thread_config(ctx.unique("conc")) for _ in range(sizes.concurrency)]
        self.used = [0] * sizes.concurrency
        self.graph = _graph(saver)
        self.graph_thread = thread_config(ctx.unique("graph"))

    async def aput(self, i: int) -> None:
        step = self.steps[i + self.warmup if i >= 0 else -1 - i]
        self.parent = await self.saver.aput(self.parent, step.checkpoint, step.metadata, step.new_versions)
        self.configs.append(self.parent)

    async def aput_writes(self, i: int) -> None:
        index = i % len(self.configs) if i >= 0 else len(self.configs) + i
        await self.saver.aput_writes(self.configs[index], self.steps[index].writes, task_id=f"task-{i}")

    async def aget_tuple(self, i: int) -> None:
        await self.saver.aget_tuple(self.latest)

    async def alist(self, i: int) -> int:
        return len([t async for t in self.saver.alist(self.latest, limit=10)])

    async def concurrent(self, w: int, i: int) -> None:
        self.used[w] = min(self.used[w] + 1, len(self.workloads[w]) - 1)
        step = self.workloads[w][self.used[w]]
        self.heads[w] = await self.saver.aput(self.heads[w], step.checkpoint, step.metadata, step.new_versions)

    async def invoke(self, i: int) -> None:
        await self.graph.ainvoke({"question": f"q{i}", "plan": "", "answer": ""}, self.graph_thread)

    async def check(self, subject: str) -> None:
        """The thread really holds what was put: the latest checkpoint comes back, alist returns 10."""
        found = await self.saver.aget_tuple(self.latest)
        if found is None or found.checkpoint["id"] != self.configs[-1]["configurable"]["checkpoint_id"]:
            raise RuntimeError(f"{subject}: aget_tuple did not return the latest checkpoint")
        if await self.alist(0) != min(10, len(self.configs)):
            raise RuntimeError(f"{subject}: alist(limit=10) did not return 10 checkpoints")


class _Floor:
    """raw redis-py SET / GET of the bytes the same checkpoints serialize to."""

    def __init__(self, ctx: BenchContext, client: Any) -> None:
        from langgraph.checkpoint.memory import InMemorySaver

        self.client = client
        self.steps = build_steps(InMemorySaver(), ctx.sizes.thread + ctx.sizes.warmup)
        self.prefix = f"{ctx.services.prefix}:rawcp"
        self.mean_bytes = sum(len(s.floor_bytes) for s in self.steps) // len(self.steps)

    async def set(self, i: int) -> None:
        await self.client.set(f"{self.prefix}:{i % len(self.steps)}", self.steps[i % len(self.steps)].floor_bytes)

    async def set_writes(self, i: int) -> None:
        await self.client.set(f"{self.prefix}:w:{i % len(self.steps)}", self.steps[i % len(self.steps)].writes_bytes)

    async def get(self, i: int) -> None:
        await self.client.get(f"{self.prefix}:{i % len(self.steps)}")


ROUNDS = 5


async def run(ctx: BenchContext) -> None:
    """Open every saver and the floors, then run each case over all of them in alternating chunks."""
    try:
        import langgraph  # noqa: F401
    except ImportError as exc:
        for case in CASES:
            ctx.report.skip(GROUP, case, "every saver", f"langgraph is not installed: {exc}")
        return
    sizes = ctx.sizes
    async with contextlib.AsyncExitStack() as stack:
        threads: dict[str, _Thread] = {}
        for subject, factory in _subjects(ctx):
            try:
                threads[subject] = _Thread(ctx, await stack.enter_async_context(factory(ctx)))
            except Exception as exc:  # a saver that is missing or broken skips its rows
                ctx.skip_rest(GROUP, CASES, subject, exc)
        floor = None
        if ctx.services.redis_url is not None:
            import redis.asyncio as aioredis

            client = aioredis.from_url(ctx.services.redis_url)
            stack.push_async_callback(client.aclose)
            floor = _Floor(ctx, client)
        else:
            for case, subject in ((APUT, RAW_SET), (WRITES, RAW_SET), (GET, RAW_GET)):
                ctx.report.skip(GROUP, case, subject, ctx.services.redis_problem or "no Redis")

        def ops(method: str, raw: Callable[[int], Any] | None = None, raw_name: str = "") -> dict[str, Any]:
            chosen: dict[str, Any] = {name: getattr(t, method) for name, t in threads.items() if name not in failed}
            if raw is not None:
                chosen[raw_name] = raw
            return chosen

        failed: set[str] = set()

        def record(case: str, results: dict[str, Timing | BaseException], note: Callable[[str], str] = str) -> None:
            for name, timing in results.items():
                if isinstance(timing, BaseException):
                    failed.add(name)
                    ctx.skip_rest(GROUP, CASES, name, timing)
                else:
                    ctx.report.add(Row(GROUP, case, name, timing, baseline=_baseline(case),
                                       metric="throughput" if case == CONCURRENT else "median", note=note(name)))

        def thread_note(name: str) -> str:
            return f"~{floor.mean_bytes} B" if floor and name in (RAW_SET, RAW_GET) else f"thread of {sizes.thread}"

        ctx.progress(f"checkpointer: {APUT} (building threads of {sizes.thread:,})")
        # the thread is built by the timed aputs: bounded by count only, so every thread ends up complete
        record(APUT, await time_interleaved(ops("aput", floor.set if floor else None, RAW_SET), sizes, iterations=sizes.thread,
                                            rounds=ROUNDS, time_cap=3600.0), thread_note)
        for name, thread in threads.items():
            if name not in failed:
                try:
                    await thread.check(name)
                except Exception as exc:
                    failed.add(name)
                    ctx.skip_rest(GROUP, CASES, name, exc)
        ctx.progress(f"checkpointer: {WRITES}")
        record(WRITES, await time_interleaved(ops("aput_writes", floor.set_writes if floor else None, RAW_SET), sizes,
                                              iterations=min(sizes.iterations, sizes.thread), rounds=ROUNDS),
               lambda name: "2 writes" if name != RAW_SET else "same bytes")
        ctx.progress(f"checkpointer: {GET}")
        record(GET, await time_interleaved(ops("aget_tuple", floor.get if floor else None, RAW_GET), sizes, rounds=ROUNDS),
               thread_note)
        ctx.progress(f"checkpointer: {LIST}")
        record(LIST, await time_interleaved(ops("alist"), sizes, rounds=ROUNDS), thread_note)

        ctx.progress(f"checkpointer: {CONCURRENT}")
        concurrent: dict[str, Timing | BaseException] = {name: Timing() for name in threads if name not in failed}
        for _ in range(ROUNDS):
            for name in list(concurrent):
                timing = concurrent[name]
                if isinstance(timing, Timing):
                    thread = threads[name]
                    try:
                        timing.extend(await time_concurrent(thread.concurrent, sizes, per_worker=thread.per_worker))
                    except Exception as exc:
                        concurrent[name] = exc
        record(CONCURRENT, concurrent, lambda name: f"{sizes.concurrency} threads")

        ctx.progress(f"checkpointer: {INVOKE}")
        no_saver = _graph(None)
        invokes = ops("invoke")
        invokes = {NO_SAVER: partial(_invoke_floor, no_saver), **invokes}
        record(INVOKE, await time_interleaved(invokes, sizes, iterations=sizes.graph_invokes, rounds=ROUNDS),
               lambda name: "" if name == NO_SAVER else "one thread, repeated")
    _targets(ctx)


async def _invoke_floor(graph: Any, i: int) -> None:
    await graph.ainvoke({"question": f"q{i}", "plan": "", "answer": ""})


def _baseline(case: str) -> str:
    return f"{INVOKE} / {NO_SAVER}" if case == INVOKE else f"{case} / {IN_MEMORY}"


class _State(TypedDict):
    question: str
    plan: str
    answer: str


def _graph(checkpointer: Any) -> Any:
    """plan -> research -> answer, each node writing one field (no reducers, so state does not grow)."""
    from langgraph.graph import END, START, StateGraph

    def plan(state: _State) -> dict[str, str]:
        return {"plan": f"look up {state['question']}"}

    def research(state: _State) -> dict[str, str]:
        return {"answer": f"notes on {state['plan']}"}

    def answer(state: _State) -> dict[str, str]:
        return {"answer": state["answer"] + " -> final answer"}

    builder = StateGraph(_State)
    builder.add_node("plan", plan)
    builder.add_node("research", research)
    builder.add_node("answer", answer)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "research")
    builder.add_edge("research", "answer")
    builder.add_edge("answer", END)
    return builder.compile(checkpointer=checkpointer)


def _targets(ctx: BenchContext) -> None:
    redis, memory, sqlite = CK.format("redis"), CK.format("memory"), CK.format("sqlite")
    bars = [
        ("redis: aput >= 4x faster than plainredis", APUT, redis, (PLAINREDIS,), 0.25, "median"),
        ("redis: aput within 2x of a raw SET of the same bytes", APUT, redis, (RAW_SET,), 2.0, "median"),
        ("redis: aget_tuple p50 <= 2.5x a raw GET", GET, redis, (RAW_GET,), 2.5, "median"),
        ("redis: alist(10) >= 10x faster than every peer (literal: InMemorySaver included)", LIST, redis, PEERS, 0.1,
         "median"),
        ("redis: alist(10) >= 10x faster than every persistent peer (sqlite, postgres, plainredis)", LIST, redis,
         (SQLITE_PEER, POSTGRES_PEER, PLAINREDIS), 0.1, "median"),
        ("redis: graph invoke <= 2.5x the no-checkpointer floor", INVOKE, redis, (NO_SAVER,), 2.5, "median"),
        ("memory: aput >= InMemorySaver", APUT, memory, (IN_MEMORY,), 1.0, "median"),
        ("memory: alist(10) >= 5x faster than InMemorySaver", LIST, memory, (IN_MEMORY,), 0.2, "median"),
        ("sqlite: aput >= 1.5x AsyncSqliteSaver", APUT, sqlite, (SQLITE_PEER,), 1 / 1.5, "median"),
    ]
    for label, case, subject, against, bound, metric in bars:
        source = "issue 8" if subject == sqlite else "issue 4"
        ctx.report.expect(Target(GROUP, label, row=f"{case} / {subject}", against=tuple(f"{case} / {a}" for a in against),
                                 max_ratio=bound, metric=metric, source=source))  # type: ignore[arg-type]
