"""Soak: 64 concurrent clients mix every kit operation on Redis + PostgreSQL while the cold tier restarts once.

One kit (hot tier: the machine's Redis under a namespace of its own; cold tier: a private PostgreSQL this test
starts) serves 64 asyncio client tasks for a bounded time. Each client owns its sessions, so it knows exactly what
it wrote: a client-side ledger records every *acknowledged* write (a call that returned), and every read during
the run is checked against it (read-your-writes). In the middle the PostgreSQL server is stopped, left down for
~3 s and started again; the hot path must not notice.

At the end, after the archiver drained:

* every acknowledged write reads back through the kit (sessions and their counters, history, task contexts,
  agent conversations, seed checkpoints and writes, LangGraph checkpoints); counters equal the sum of the
  acknowledged increments;
* the archive holds every event exactly once: rows per (table, key) counted with asyncpg equal the ledger;
* no leak: the objects the garbage collector tracks, less the test's own ledger, grow by at most a few thousand
  over the load phase; as a coarse backstop, RSS (after ``gc.collect()`` and ``malloc_trim``, less what the ledger
  grew) stays within 25 % of its plateau after warm-up.

Time: ``CONTEXTKIT_SOAK_SECONDS`` (default 60) bounds warm-up + load + drain + checks; server start-up comes on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import gc
import logging
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from contextkit import ContextKit
from contextkit.errors import ContextKitError
from contextkit.stores import Capability
from contextkit.testing.services import machine_redis_url
from contextkit.testing.services.postgres_server import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

CLIENTS = 64
BUDGET = float(os.environ.get("CONTEXTKIT_SOAK_SECONDS", "60"))
#: Share of the budget for each phase; the rest is drain + verification.
WARMUP_ROUND = 0.1 * BUDGET  # two rounds
LOAD = 0.5 * BUDGET
#: When the cold tier goes down, as a share of the load phase, and for how long.
OUTAGE_AT = 0.3
OUTAGE_SECONDS = 3.0
#: A session is retired (ended or deleted) after this many operations, so histories stay far below the cap.
OPS_PER_SESSION = 30
#: RSS is a coarse backstop (the allocator keeps freed pages it fragmented, connections re-made after the restart
#: hold new buffers); the leak check proper counts live objects.
MEMORY_TOLERANCE = 0.25
#: Live objects the library may add over the load phase (pools, a thread pool, caches that fill once).
OBJECT_TOLERANCE = 2_000
TIMEOUT = 15.0
SEED = int(os.environ.get("CONTEXTKIT_SOAK_SEED", "0")) or random.randrange(1, 2**31)


# -- the ledger: what each client was told succeeded ----------------------------------------------------------------
@dataclass
class SessionLedger:
    """Everything acknowledged for one session (and its threads and agent conversation)."""

    sid: str
    requests: int = 0
    errors: int = 0
    processing: float = 0.0  # multiples of 0.25: sums are exact in binary floating point
    status: str = "active"
    deleted: bool = False
    messages: int = 0
    task_version: int = 0
    agent_key: str | None = None
    agent_messages: int = 0
    checkpoints: list[int] = field(default_factory=list)  # seed checkpoint numbers, in order
    writes: Counter[int] = field(default_factory=Counter)  # seed checkpoint number -> put_writes calls
    lg_checkpoints: list[tuple[str, int]] = field(default_factory=list)  # (checkpoint id, value)
    lg_writes: int = 0
    ops: int = 0

    def content(self, n: int) -> str:
        """The text of message ``n`` (0-based): derived, so the ledger holds counts, not strings."""
        return f"{self.sid}/m{n}"

    def agent_content(self, n: int) -> str:
        """The text of agent message ``n``."""
        return f"{self.sid}/a{n}"

    @property
    def lg_thread(self) -> str:
        """The LangGraph thread id of this session."""
        return f"lg:{self.sid}"


@dataclass
class Ledger:
    """The ledger of every client, the archive events expected per (table, key), and what went wrong."""

    sessions: dict[str, SessionLedger] = field(default_factory=dict)
    archive: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)  # time spent per operation (printed, never asserted)

    def expect(self, table: str, key: str, count: int = 1) -> None:
        """One more acknowledged event for ``table`` under ``key``."""
        self.archive[(table, key)] += count

    def check(self, ok: bool, what: str) -> None:
        """Record a read that disagreed with the ledger (kept short: the first few are enough to debug)."""
        if not ok and len(self.mismatches) < 50:
            self.mismatches.append(what)


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settled_rss() -> int:
    """RSS after a full collection and after glibc hands free heap pages back (so RSS tracks live memory)."""
    gc.collect()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_bytes()


def deep_size(root: object) -> tuple[int, int]:
    """Bytes held by ``root`` and everything it reaches through containers and dataclass fields (each object
    once), and how many of those objects the garbage collector tracks: what the test's own ledger costs, which
    grows with the operations and is not the library's."""
    seen: set[int] = set()
    stack = [root]
    total = tracked = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        tracked += gc.is_tracked(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif hasattr(obj, "__dataclass_fields__"):
            stack.extend(getattr(obj, name) for name in obj.__dataclass_fields__)  # type: ignore[attr-defined]
    return total, tracked


def live_objects() -> Counter[str]:
    """Objects the garbage collector tracks, by type name (after a full collection), less cancelled asyncio timers.

    A cancelled timer (every ``asyncio.timeout`` or ``wait_for`` that finished in time leaves one) stays in the
    event loop's heap, with the context it copied, until its deadline passes or cancelled ones make up half the
    heap: after a burst of calls with 15 s timeouts that is hundreds of objects the loop drops on its own."""
    gc.collect()
    objects = gc.get_objects()
    cancelled = [obj for obj in objects if isinstance(obj, asyncio.TimerHandle) and obj.cancelled()]
    skip = {id(obj) for obj in cancelled}
    skip.update(id(ref) for timer in cancelled for ref in gc.get_referents(timer) if isinstance(ref, contextvars.Context))
    return Counter(type(obj).__qualname__ for obj in objects if id(obj) not in skip)


class CountingHandler(logging.Handler):
    """Counts log records by logger, level and message template, keeping none of them: pytest's log capture keeps
    every record it sees (with the traceback and frames of those logged with ``exc_info``), which during the
    outage would grow the process like a leak."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[tuple[str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[(record.levelname, f"{record.name}: {str(record.msg)[:60]}")] += 1


@contextlib.contextmanager
def counted_logs() -> Iterator[CountingHandler]:
    """Send every log record (the library's, asyncpg's, any other) only to a :class:`CountingHandler` for the body
    of the test: pytest attaches its capture to the root logger and to every non-propagating logger when the call
    phase starts, after the fixtures ran, so a fixture cannot keep records out of it."""
    handler = CountingHandler()
    manager = logging.Logger.manager
    loggers = [logging.getLogger(), *(lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    saved = [(logger, logger.handlers[:], logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers = []
        logger.propagate = True
    logging.getLogger().handlers = [handler]
    try:
        yield handler
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers = handlers
            logger.propagate = propagate


# -- servers ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_url() -> str:
    """The machine's Redis (``CONTEXTKIT_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``)."""
    return machine_redis_url()


@pytest.fixture(scope="module")
def cold_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL the test restarts (never the machine's)."""
    server = PostgresServer.create_or_skip()
    try:
        yield server
    finally:
        server.close()


# -- the clients ----------------------------------------------------------------------------------------------------------
class Client:
    """One of the concurrent clients: picks operations at random and keeps the ledger of its own sessions.

    Each ``op_<name>`` method is one operation of the mix (weights in ``__init__``); writes update the ledger only
    once the call returned, reads compare what they got with the ledger.
    """

    def __init__(self, index: int, kit: ContextKit, saver: Any, ledger: Ledger, run: str) -> None:
        self.index = index
        self.kit = kit
        self.saver = saver
        self.ledger = ledger
        self.run = run
        self.rng = random.Random(SEED * 1000 + index)
        self.session: SessionLedger | None = None
        self.count = 0
        ops: list[tuple[str, float]] = [
            ("message", 25), ("history", 12), ("update", 12), ("get_session", 8),
            ("task_store", 6), ("task_get", 4), ("agent_message", 6), ("agent_history", 3),
            ("checkpoint", 5), ("writes", 3), ("checkpoint_get", 3), ("checkpoint_list", 2),
            ("metrics", 0.3), ("health", 0.2), ("cleanup", 0.2), ("list_sessions", 0.05),
        ]  # fmt: skip
        if saver is not None:
            ops += [("lg_put", 4), ("lg_writes", 2), ("lg_get", 2)]
        self.names = [name for name, _ in ops]
        self.weights = [weight for _, weight in ops]

    async def new_session(self) -> None:
        """Create the client's next session (its task context comes with it)."""
        self.count += 1
        sid = f"{self.run}-c{self.index}-s{self.count}"
        await self.kit.create_session(sid, user_id=f"user-{self.index}", metadata={"version": 0})
        ledger = SessionLedger(sid)
        self.ledger.sessions[sid] = ledger
        self.ledger.expect("context_sessions", sid)
        self.ledger.expect("context_task_contexts", sid)
        self.session = ledger

    async def retire(self) -> None:
        """End (3 in 4) or delete (1 in 4) the current session."""
        s = self.session
        assert s is not None
        if self.rng.random() < 0.25:
            assert await self.kit.delete_session(s.sid)
            s.deleted = True
            if s.agent_key is not None:  # its agent conversation is deleted with it: one delete row of its own
                self.ledger.expect("context_sessions", s.agent_key)
        else:
            assert await self.kit.end_session(s.sid)
            s.status = "completed"
        self.ledger.expect("context_sessions", s.sid)
        self.session = None

    async def loop(self, stop: asyncio.Event) -> None:
        """Run operations until ``stop`` is set; the current operation always completes."""
        while not stop.is_set():
            try:
                if self.session is None:
                    await self.new_session()
                    self.ledger.ops["create"] += 1
                    continue
                if self.session.ops >= OPS_PER_SESSION:
                    await self.retire()
                    self.ledger.ops["retire"] += 1
                    continue
                name = self.rng.choices(self.names, self.weights)[0]
                began = time.perf_counter()
                await getattr(self, f"op_{name}")(self.session)
                self.ledger.seconds[name] += time.perf_counter() - began
                self.session.ops += 1
                self.ledger.ops[name] += 1
            except (ContextKitError, OSError, AssertionError) as exc:
                # Nothing here may fail: the hot tier stays up, and a cold outage must not reach the hot path.
                self.ledger.failures.append(f"client {self.index}: {type(exc).__name__}: {exc}"[:300])
                if len(self.ledger.failures) > 20:
                    stop.set()
                await asyncio.sleep(0.05)
            await asyncio.sleep(0)  # let the outage controller and the archiver in

    # -- operations (each updates the ledger only after the call returned) -------------------------------------
    async def op_message(self, s: SessionLedger) -> None:
        assert await self.kit.add_conversation_message(
            s.sid, "user" if s.messages % 2 == 0 else "assistant", s.content(s.messages)
        )
        s.messages += 1
        self.ledger.expect("context_conversations", s.sid)

    async def op_history(self, s: SessionLedger) -> None:
        history = await self.kit.get_conversation_history(s.sid, limit=10)
        want = [s.content(n) for n in range(max(0, s.messages - 10), s.messages)]
        self.ledger.check([m.content for m in history] == want, f"history of {s.sid}")

    async def op_update(self, s: SessionLedger) -> None:
        quarter = self.rng.randrange(0, 5)
        error = self.rng.random() < 0.2
        assert await self.kit.update_session(s.sid, {"metadata": {"version": 0, "op": s.ops}}, True, quarter * 0.25, error)
        s.requests += 1
        s.errors += int(error)
        s.processing += quarter * 0.25
        self.ledger.expect("context_sessions", s.sid)

    async def op_get_session(self, s: SessionLedger) -> None:
        session = await self.kit.get_session(s.sid)
        ok = session is not None and (session.request_count, session.error_count) == (s.requests, s.errors)
        self.ledger.check(ok and session.total_processing_time == s.processing, f"counters of {s.sid}")  # type: ignore[union-attr]

    async def op_task_store(self, s: SessionLedger) -> None:
        version = s.task_version + 1
        assert await self.kit.store_task_context(s.sid, {"user_id": "u", "chat_id": s.sid, "metadata": {"version": version}})
        s.task_version = version
        self.ledger.expect("context_task_contexts", s.sid)

    async def op_task_get(self, s: SessionLedger) -> None:
        context = await self.kit.get_task_context(s.sid)
        self.ledger.check(context is not None and context.metadata.get("version") == s.task_version, f"task of {s.sid}")

    async def op_agent_message(self, s: SessionLedger) -> None:
        if s.agent_key is None:
            participants = [
                {"id": "planner", "type": "agent", "role": "planner"},
                {"id": "coder", "type": "agent", "role": "coder"},
            ]
            s.agent_key = await self.kit.create_conversation_session(s.sid, participants, "agent_to_agent")
            self.ledger.expect("context_conversation_sessions", s.agent_key)
        text = s.agent_content(s.agent_messages)
        assert await self.kit.add_agent_communication_message(
            s.agent_key, "planner", "agent", "planner", "coder", "agent", "coder", text, "task_assignment"
        )
        s.agent_messages += 1
        self.ledger.expect("context_conversations", s.agent_key)
        self.ledger.expect("context_conversation_sessions", s.agent_key)

    async def op_agent_history(self, s: SessionLedger) -> None:
        if s.agent_key is None:
            return
        rows = await self.kit.get_agent_conversation_history(s.agent_key, limit=5)
        want = [s.agent_content(n) for n in range(max(0, s.agent_messages - 5), s.agent_messages)]
        self.ledger.check([r["content"] for r in rows] == want, f"agent history of {s.sid}")

    async def op_checkpoint(self, s: SessionLedger) -> None:
        n = len(s.checkpoints)
        assert await self.kit.store_checkpoint(s.sid, f"cp{n}", {"n": n}, {"step": n})
        s.checkpoints.append(n)
        self.ledger.expect("context_checkpoints", s.sid)

    async def op_writes(self, s: SessionLedger) -> None:
        if not s.checkpoints:
            return
        n = self.rng.choice(s.checkpoints)
        assert await self.kit.put_writes(s.sid, f"cp{n}", f"task-{s.writes[n]}", [["channel", n]])
        s.writes[n] += 1
        self.ledger.expect("context_checkpoint_writes", s.sid)

    async def op_checkpoint_get(self, s: SessionLedger) -> None:
        if not s.checkpoints:
            return
        n = self.rng.choice(s.checkpoints)
        document = await self.kit.get_checkpoint(s.sid, f"cp{n}")
        self.ledger.check(document is not None and document["data"] == {"n": n}, f"checkpoint cp{n} of {s.sid}")

    async def op_checkpoint_list(self, s: SessionLedger) -> None:
        listed = await self.kit.list_checkpoints(s.sid, limit=100)
        self.ledger.check(len(listed) == len(s.checkpoints), f"checkpoint list of {s.sid}")

    async def op_lg_put(self, s: SessionLedger) -> None:
        from langgraph.checkpoint.base import empty_checkpoint

        value = len(s.lg_checkpoints)
        version = self.saver.get_next_version(value or None, None)
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"count": value}
        checkpoint["channel_versions"] = {"count": version}
        config: dict[str, Any] = {"configurable": {"thread_id": s.lg_thread, "checkpoint_ns": ""}}
        if s.lg_checkpoints:
            config["configurable"]["checkpoint_id"] = s.lg_checkpoints[-1][0]
        saved = await self.saver.aput(config, checkpoint, {"source": "loop", "step": value}, {"count": version})
        s.lg_checkpoints.append((saved["configurable"]["checkpoint_id"], value))
        self.ledger.expect("context_checkpoints", s.lg_thread)

    async def op_lg_writes(self, s: SessionLedger) -> None:
        if not s.lg_checkpoints:
            return
        config = {"configurable": {"thread_id": s.lg_thread, "checkpoint_ns": "", "checkpoint_id": s.lg_checkpoints[-1][0]}}
        await self.saver.aput_writes(config, [("count", s.lg_writes)], f"task-{s.lg_writes}")
        s.lg_writes += 1
        self.ledger.expect("context_checkpoint_writes", s.lg_thread)

    async def op_lg_get(self, s: SessionLedger) -> None:
        if not s.lg_checkpoints:
            return
        found = await self.saver.aget_tuple({"configurable": {"thread_id": s.lg_thread, "checkpoint_ns": ""}})
        want_id, want_value = s.lg_checkpoints[-1]
        ok = found is not None and found.checkpoint["id"] == want_id
        self.ledger.check(ok and found.checkpoint["channel_values"].get("count") == want_value, f"langgraph {s.lg_thread}")  # type: ignore[union-attr]

    async def op_metrics(self, s: SessionLedger) -> None:
        assert isinstance(await self.kit.get_metrics(), dict)

    async def op_health(self, s: SessionLedger) -> None:
        health = await self.kit.health_check()
        self.ledger.check(health["hot"]["status"] == "healthy", "hot tier healthy")

    async def op_cleanup(self, s: SessionLedger) -> None:
        # Nothing is idle for 1000 hours: cleanup must find nothing to remove among live sessions.
        self.ledger.check(await self.kit.cleanup_expired_sessions(max_idle_hours=1000) == 0, "cleanup removed a session")

    async def op_list_sessions(self, s: SessionLedger) -> None:
        listed = {session.session_id for session in await self.kit.list_all_sessions()}
        self.ledger.check(s.sid in listed, f"{s.sid} listed")


async def run_round(clients: list[Client], seconds: float, during: Callable[[], Awaitable[None]] | None = None) -> None:
    """Every client runs for ``seconds`` (``during`` runs beside them); returns once every client stopped."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client.loop(stop)) for client in clients]
    side = asyncio.create_task(during()) if during is not None else None
    try:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        stop.set()
        await asyncio.gather(*tasks)
        if side is not None:
            await side
    finally:
        stop.set()
        for task in [*tasks, *([side] if side else [])]:
            task.cancel()
        await asyncio.gather(*tasks, *([side] if side else []), return_exceptions=True)


# -- verification ---------------------------------------------------------------------------------------------------------
async def verify_reads(kit: ContextKit, saver: Any, ledger: Ledger) -> list[str]:
    """Read back every acknowledged write of every session; returns what disagreed."""
    problems: list[str] = []
    gate = asyncio.Semaphore(32)

    async def one(s: SessionLedger) -> None:
        async with gate:
            session = await kit.get_session(s.sid)
            if s.deleted:
                if session is not None:
                    problems.append(f"{s.sid}: deleted but still readable")
            elif session is None:
                problems.append(f"{s.sid}: session lost")
            else:
                got = (session.request_count, session.error_count, session.total_processing_time, session.status)
                if got != (s.requests, s.errors, s.processing, s.status):
                    problems.append(f"{s.sid}: counters {got} != {(s.requests, s.errors, s.processing, s.status)}")
            # A delete hides the session's history and its agent conversations too (hot copy or archive).
            history = await kit.get_conversation_history(s.sid, limit=0)
            expected = 0 if s.deleted else s.messages
            if [m.content for m in history] != [s.content(n) for n in range(expected)]:
                problems.append(f"{s.sid}: history has {len(history)} messages, {expected} expected")
            if not s.deleted:
                context = await kit.get_task_context(s.sid)
                if context is None or context.metadata.get("version") != s.task_version:
                    problems.append(f"{s.sid}: task context is not version {s.task_version}")
                for n in s.checkpoints:
                    document = await kit.get_checkpoint(s.sid, f"cp{n}")
                    if document is None or document["data"] != {"n": n}:
                        problems.append(f"{s.sid}: checkpoint cp{n} lost")
                    if len(await kit.get_writes(s.sid, f"cp{n}")) != s.writes[n]:
                        problems.append(f"{s.sid}: writes of cp{n} != {s.writes[n]}")
            if s.agent_key is not None:
                rows = await kit.get_agent_conversation_history(s.agent_key, limit=1000)
                expected = 0 if s.deleted else s.agent_messages
                if [r["content"] for r in rows] != [s.agent_content(n) for n in range(expected)]:
                    problems.append(f"{s.sid}: agent history has {len(rows)} messages, {expected} expected")
            if saver is not None and s.lg_checkpoints:
                for checkpoint_id, value in s.lg_checkpoints:
                    config = {"configurable": {"thread_id": s.lg_thread, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
                    found = await saver.aget_tuple(config)
                    if found is None or found.checkpoint["channel_values"].get("count") != value:
                        problems.append(f"{s.lg_thread}: checkpoint {checkpoint_id} lost")

    await asyncio.gather(*(one(s) for s in ledger.sessions.values()))
    return problems


_KEY_COLUMNS = {
    "context_sessions": "session_id",
    "context_conversations": "session_id",
    "context_task_contexts": "session_id",
    "context_checkpoints": "thread_id",
    "context_checkpoint_writes": "thread_id",
    "context_conversation_sessions": "session_key",
}


async def archived_counts(dsn: str, schema: str) -> Counter[tuple[str, str]]:
    """Rows per (table, key) in the archive, counted by asyncpg directly (not through the store)."""
    counts: Counter[tuple[str, str]] = Counter()
    conn = await asyncpg.connect(dsn, timeout=TIMEOUT)
    try:
        for table, column in _KEY_COLUMNS.items():
            rows = await conn.fetch(
                f"SELECT {column} AS key, count(*) AS n, count(DISTINCT event_id) AS distinct_events "
                f'FROM "{schema}".{table} GROUP BY {column}'
            )
            for row in rows:
                assert row["n"] == row["distinct_events"]
                counts[(table, row["key"])] = row["n"]
    finally:
        await conn.close()
    return counts


# -- the test ---------------------------------------------------------------------------------------------------------------
async def test_64_clients_keep_every_acknowledged_write_through_a_cold_tier_restart(
    redis_url: str, cold_server: PostgresServer
) -> None:
    """Every acknowledged write reads back, counters are exact, the archive holds each event once, and memory
    returns to its post-warm-up plateau, after 64 clients mixed every operation across a cold-tier restart."""
    with counted_logs() as logs:
        await soak(redis_url, cold_server, logs)


async def soak(redis_url: str, cold_server: PostgresServer, logs: CountingHandler) -> None:
    """The body of the soak test (its log records counted, not kept)."""
    run = f"soak{uuid.uuid4().hex[:8]}"
    config = {
        "hot": "redis",
        "cold": "postgres",
        "namespace": run,
        "timeout": TIMEOUT,
        "fallback": False,
        "redis": {"url": redis_url},
        "postgres": {"url": cold_server.dsn, "max_size": 4},
        "archiver": {"max_backoff": 0.5, "drain_timeout": 30},
        # Clients keep creating sessions through the outage; their ids are new by construction (a fresh namespace),
        # so taking an unknown id as new while the archive cannot be asked is safe here (the default refuses).
        "tiering": {"assume_new_when_unreachable": True},
    }
    kit = ContextKit.from_config(config, env={})
    ledger = Ledger()
    started = time.monotonic()
    print(f"\nsoak seed={SEED} (CONTEXTKIT_SOAK_SEED replays the operation mix), budget {BUDGET:.0f}s, namespace {run}")
    await kit.open()
    try:
        async with asyncio.timeout(BUDGET * 2 + 60):
            saver = kit.checkpointer() if Capability.CHECKPOINTS.value in kit.hot.capabilities else None
            clients = [Client(i, kit, saver, ledger, run) for i in range(CLIENTS)]
            archiver = kit.archiver
            assert archiver is not None

            # Warm-up: pools fill, scripts load, caches settle. Two rounds; the plateau is the higher reading.
            readings: list[int] = []
            for _ in range(2):
                await run_round(clients, WARMUP_ROUND)
                assert await archiver.flush(30)
                readings.append(settled_rss())
            plateau = max(readings)
            ledger_at_plateau, ledger_objects_at_plateau = deep_size(ledger)
            objects_at_plateau = live_objects()
            warm_ops = sum(ledger.ops.values())

            outage: dict[str, float] = {}

            async def restart_cold_tier() -> None:
                await asyncio.sleep(LOAD * OUTAGE_AT)
                outage["stopped_at"] = time.monotonic()
                await asyncio.to_thread(cold_server.stop)
                await asyncio.sleep(OUTAGE_SECONDS)
                await asyncio.to_thread(cold_server.start)
                outage["down_for"] = time.monotonic() - outage["stopped_at"]

            await run_round(clients, LOAD, restart_cold_tier)
            load_ops = sum(ledger.ops.values()) - warm_ops
            assert "down_for" in outage, "the cold tier restart did not happen"
            metrics = await archiver.metrics()
            assert await archiver.flush(60), await archiver.metrics()
            after = settled_rss()
            # The ledger keeps every session and archive key until the checks below: its growth is the test's.
            ledger_after, ledger_objects_after = deep_size(ledger)
            ledger_growth = ledger_after - ledger_at_plateau
            objects_after = live_objects()
            added = objects_after.total() - objects_at_plateau.total() - (ledger_objects_after - ledger_objects_at_plateau)

            assert not ledger.failures, f"{len(ledger.failures)} operations failed, first: {ledger.failures[:5]}"
            assert not ledger.mismatches, f"reads disagreed with the ledger during the run: {ledger.mismatches[:5]}"
            assert metrics["failures"] > 0, "the archiver never saw the outage (was the cold tier really down?)"

            # Memory first: verification below allocates (and frees) a lot.
            assert load_ops >= warm_ops, (load_ops, warm_ops)
            assert added <= OBJECT_TOLERANCE, (
                f"{added} more live objects (the ledger's own excluded) after {load_ops} operations; grew most: "
                f"{(objects_after - objects_at_plateau).most_common(10)}"
            )
            growth = (after - ledger_growth - plateau) / plateau
            assert growth <= MEMORY_TOLERANCE, (
                f"RSS {after / 2**20:.1f} MiB after {load_ops} operations, of which the test's ledger grew "
                f"{ledger_growth / 2**20:.1f} MiB, vs plateau {plateau / 2**20:.1f} MiB after warm-up ({growth:+.1%})"
            )

            problems = await verify_reads(kit, saver, ledger)
            assert not problems, f"{len(problems)} acknowledged writes did not read back: {problems[:10]}"

            assert kit.cold is not None
            schema = kit.cold.schema  # type: ignore[attr-defined]
            archived = await archived_counts(cold_server.dsn, schema)
            missing = {k: (n, archived.get(k, 0)) for k, n in ledger.archive.items() if archived.get(k, 0) != n}
            extra = {k: n for k, n in archived.items() if k not in ledger.archive}
            assert not missing and not extra, (
                f"archive differs from the ledger: {len(missing)} keys with wrong counts {list(missing.items())[:5]}, "
                f"{len(extra)} unexpected keys {list(extra.items())[:5]}"
            )
            print(
                f"soak: {sum(ledger.ops.values())} operations ({load_ops} in the load phase), "
                f"{len(ledger.sessions)} sessions, {sum(ledger.archive.values())} archived events, cold tier down "
                f"{outage['down_for']:.1f}s, RSS after the warm-up rounds {[round(r / 2**20, 1) for r in readings]} MiB, "
                f"after the load {after / 2**20:.1f} MiB (the ledger {ledger_growth / 2**20:+.1f} MiB), "
                f"{added:+d} live objects besides the ledger's, "
                f"{time.monotonic() - started:.0f}s"
            )
            print("log records: " + ", ".join(f"{n}x {level} {text!r}" for (level, text), n in logs.counts.most_common(6)))
            slowest = sorted(ledger.seconds, key=lambda n: -ledger.seconds[n] / ledger.ops[n])[:5]
            print("mean ms per call: " + ", ".join(f"{n} {1000 * ledger.seconds[n] / ledger.ops[n]:.1f}" for n in slowest))
    finally:
        with contextlib.suppress(Exception):
            await kit.hot.drop_namespace()  # type: ignore[attr-defined]
        if kit.cold is not None:
            with contextlib.suppress(Exception):
                await kit.cold.drop_schema()  # type: ignore[attr-defined]
        await kit.aclose(drain_timeout=5)
