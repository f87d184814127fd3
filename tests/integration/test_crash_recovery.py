"""The application process is SIGKILLed with archive events pending; a new process drains them, no loss, no duplicates.

The last test kills apps on a Redis hot tier 50 times at random points (issue 15's must-show): whatever the hot tier
holds after the kills is in the PostgreSQL archive once a new process drained the outbox.

The events wait in a durable outbox (``archiver.outbox_path``, a local SQLite file, or the SQLite hot tier's own
outbox table, written in the transaction of each message) because the cold tier, a
private PostgreSQL this session started, is stopped (or, in the second test, busy) when the process dies. The
processes are real: ``kit_process.py`` run with this interpreter. The hot tier is a parameter, so a hot tier
with its own durable outbox (the Redis stream) joins by adding its configuration to :data:`HOT_TIERS`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contextkit import ContextKit
from contextkit.archiver import FileOutbox
from contextkit.records import Session
from contextkit.stores import CheckpointBundle, StoreSettings
from contextkit.testing.hot import scan_all
from contextkit.testing.services import missing_service
from contextkit.testing.services.postgres_server import PostgresServer
from contextkit.testing.services.redis_servers import RedisServer, redis_binaries
from contextkit_postgres.cold import PostgresColdStore
from contextkit_sqlite import SqliteHotStore

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("kit_process.py")
#: The sessions the churning apps of the 50-kill test share (kit_process.SHARED).
SHARED = ("shared-0", "shared-1", "shared-2")
TOTAL = 2_000
SID = "crash-session"


def _hot_memory(tmp: Path) -> dict[str, Any]:
    return {"backend": "memory"}


def _hot_sqlite(tmp: Path) -> dict[str, Any]:
    return {"backend": "sqlite", "path": str(tmp / "hot.sqlite3")}


def _outbox_file(tmp: Path) -> tuple[Path, str]:
    return tmp / "outbox.sqlite3", "outbox"


def _sqlite_own_outbox(tmp: Path) -> tuple[Path, str]:
    # No outbox_path: the SQLite hot tier's own outbox, a table of its file written with each message.
    path = tmp / "hot.sqlite3"
    return path, SqliteHotStore(StoreSettings(), {"path": str(path)}).outbox_table


#: Hot tier configurations, where their outbox is (file, table; the outbox_path file unless the tier has its own),
#: and how many messages of the session the draining process finds in its hot tier (the memory tier dies with the
#: process; the SQLite file survives it). The SQLite tier always keeps its own outbox (the composer refuses an
#: outbox_path for it: its writes put their events into its own file in their transaction).
HOT_TIERS = {
    "memory": (_hot_memory, _outbox_file, 0),
    "sqlite, own outbox": (_hot_sqlite, _sqlite_own_outbox, TOTAL),
}


def _config(hot: dict[str, Any], dsn: str, schema: str, outbox: Path | None) -> dict[str, Any]:
    archiver: dict[str, Any] = {"max_backoff": 0.5}
    if outbox is not None:
        archiver["outbox_path"] = str(outbox)
    return {
        "hot": hot,
        "cold": {"backend": "postgres", "url": dsn, "schema": schema},
        "timeout": 10.0,
        "history_cap": TOTAL * 2,
        "archiver": archiver,
        # The writer creates its session while the archive is down: a new id it may take as new (the schema is
        # fresh), where the default would refuse to guess.
        "tiering": {"assume_new_when_unreachable": True},
    }


def _spawn_writer(config: dict[str, Any], cwd: Path) -> subprocess.Popen[str]:
    # cwd: a directory without contextkit.toml / pyproject.toml, so only the given config applies.
    with open(cwd / "writer.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, str(SCRIPT), "write", json.dumps(config), SID, str(TOTAL)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=cwd,
        )


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's next stdout line, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return proc.stdout.readline().strip()


def _drain(config: dict[str, Any], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "drain", json.dumps(config), "60", SID],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _outbox_depth(path: Path, table: str = "outbox") -> int:
    with sqlite3.connect(path, timeout=10) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()  # our end of the pipe: left to the garbage collector it is a ResourceWarning
    assert proc.returncode == -signal.SIGKILL


async def _archived(dsn: str, schema: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(dsn, timeout=15)
    try:
        messages = await conn.fetch(
            f'SELECT seq, message_id, event_id, content FROM "{schema}".context_conversations '
            "WHERE session_id = $1 ORDER BY seq, id",
            SID,
        )
        sessions = await conn.fetch(
            f'SELECT session_id, event_type FROM "{schema}".context_sessions ORDER BY id'
        )
    finally:
        await conn.close()
    return [tuple(r) for r in messages], [tuple(r) for r in sessions]


def _assert_each_message_once(messages: list[tuple[Any, ...]]) -> None:
    assert len(messages) == TOTAL
    assert [m[0] for m in messages] == list(range(1, TOTAL + 1))
    assert len({m[1] for m in messages}) == TOTAL and len({m[2] for m in messages}) == TOTAL
    assert [m[3] for m in messages] == [f"crash message {s}" for s in range(1, TOTAL + 1)]


@pytest.mark.parametrize("hot_tier", sorted(HOT_TIERS))
async def test_events_pending_when_the_app_is_killed_are_drained_by_the_next_process(
    hot_tier: str, private_postgres: PostgresServer, fresh_name: str, tmp_path: Path
) -> None:
    """The cold tier is down: a process writes 2,000 messages (2,002 events with the session and its task
    context), all pending in the outbox file, and is SIGKILLed. With the server started again, a second process
    on the same outbox flushes it: 2,000 message rows with seqs 1..2,000, each message id and event id once, one
    session row, and the outbox file empty."""
    make_hot, locate_outbox, hot_messages = HOT_TIERS[hot_tier]
    outbox, table = locate_outbox(tmp_path)
    own = table != "outbox"
    config = _config(make_hot(tmp_path), private_postgres.dsn, fresh_name, None if own else outbox)

    private_postgres.stop()
    writer = _spawn_writer(config, tmp_path)
    try:
        line = _read_line(writer, timeout=90)
        assert line == f"written {TOTAL + 2}", (line, (tmp_path / "writer.log").read_text()[-3000:])
        assert _outbox_depth(outbox, table) == TOTAL + 2
    finally:
        _kill(writer)
    assert _outbox_depth(outbox, table) == TOTAL + 2

    private_postgres.start()
    report = _drain(config, tmp_path)
    assert report["flushed"] is True, report
    assert report["metrics"]["queue_depth"] == 0 and report["metrics"]["rows"] == TOTAL + 2
    assert report["metrics"]["outbox"] == "FileOutbox" and report["metrics"]["dead_letters"] == 0
    assert report["hot_messages"] == hot_messages
    assert _outbox_depth(outbox, table) == 0

    messages, sessions = await _archived(private_postgres.dsn, fresh_name)
    _assert_each_message_once(messages)
    assert sessions == [(SID, "create")]


async def test_a_batch_written_but_not_acknowledged_before_the_kill_is_not_archived_twice(
    private_postgres: PostgresServer, fresh_name: str, tmp_path: Path
) -> None:
    """The process dies between writing a batch to the cold tier and acknowledging it in the outbox (made
    deterministic: the test writes the oldest 700 pending events to PostgreSQL itself, as the dead archiver
    would have). The next process sends all 2,002 events again; the event ids make the 700 re-sent rows collapse,
    so every message is archived exactly once."""
    outbox = tmp_path / "outbox.sqlite3"
    config = _config(_hot_memory(tmp_path), private_postgres.dsn, fresh_name, outbox)
    private_postgres.stop()
    writer = _spawn_writer(config, tmp_path)
    try:
        line = _read_line(writer, timeout=90)
        assert line == f"written {TOTAL + 2}", (line, (tmp_path / "writer.log").read_text()[-3000:])
    finally:
        _kill(writer)
    private_postgres.start()

    pending = FileOutbox(outbox)
    try:
        unacknowledged = await pending.peek(700)
    finally:
        await pending.aclose()
    # The kits' namespace (the default): the schema records the namespace that owns it and refuses any other.
    settings = StoreSettings(namespace=config.get("namespace", "contextkit"), timeout=15.0)
    store = PostgresColdStore(settings, {"url": private_postgres.dsn, "schema": fresh_name})
    async with store:
        await store.write_events(unacknowledged)
        assert await store.count_events("context_conversations", SID) == 698

    report = _drain(config, tmp_path)
    assert report["flushed"] is True and report["metrics"]["rows"] == TOTAL + 2, report
    assert _outbox_depth(outbox) == 0
    messages, sessions = await _archived(private_postgres.dsn, fresh_name)
    _assert_each_message_once(messages)
    assert sessions == [(SID, "create")]


# -- 50 random SIGKILLs of apps on Redis + PostgreSQL ----------------------------------------------------------------
KILLS = 50
#: App processes alive at once: each is killed at a random point, and a new one starts in its place.
PARALLEL = 4
#: The bound on the whole kill phase (about 20-30 s here); exceeded, the test fails rather than hangs.
KILL_PHASE_LIMIT = 120.0


class _Forker:
    """``kit_process.py forker``: forks app processes on demand (see its docstring), each SIGKILLed by the test."""

    def __init__(self, config: dict[str, Any], cwd: Path) -> None:
        self.log = cwd / "forker.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), "forker", json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=cwd,
            )
        assert _read_line(self.proc, timeout=60) == "ready", self.log.read_text()[-3000:]

    def spawn(self, prefix: str) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"spawn {prefix}\n")
        self.proc.stdin.flush()
        line = _read_line(self.proc, timeout=30)
        assert line.startswith("pid "), (line, self.log.read_text()[-3000:])
        return int(line.split()[1])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=30)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def _kill_pid(pid: int, log: Path) -> None:
    """SIGKILL an app process the forker made, and wait until it is gone (the forker reaps it)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended by itself before its kill point: it failed (it writes for 60 s)
        raise AssertionError(f"app process {pid} died before it was killed:\n{log.read_text()[-5000:]}") from None
    for _ in range(500):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still exists 5 s after SIGKILL")


async def _assert_hot_is_archived(config: dict[str, Any]) -> dict[str, int]:
    """A new process's kit (this one's) drains the outbox the killed ones left, then every owner the hot tier
    holds is in the archive as the hot tier holds it: each session at its version (equal but for a last_activity
    that later messages moved), each kept message, each task context and conversation session document, each
    LangGraph checkpoint with its writes. Returns the counts checked."""
    async with ContextKit.from_config(config, env={}) as kit:
        kit.hot.outbox_lease = 1.0  # type: ignore[attr-defined]
        assert kit.archiver is not None and kit.cold is not None
        assert await kit.archiver.flush(60), await kit.archiver.metrics()
        metrics = await kit.archiver.metrics()
        assert metrics["queue_depth"] == 0 and metrics["dead_letters"] == 0, metrics
        hot, cold = kit.hot, kit.cold
        counts = {"sessions": 0, "messages": 0, "task_contexts": 0, "conversations": 0, "checkpoints": 0}

        async def session_archived(session: Session) -> None:
            archived = await cold.read_session(session.session_id)
            assert archived is not None, session
            # A message moves its session's last_activity forward in the hot tier without a session event (the
            # message's own event carries its time), so only the archived snapshot's last_activity may be older.
            assert archived.last_activity <= session.last_activity, (session, archived)
            assert replace(archived, last_activity=session.last_activity) == session, (session, archived)
            counts["sessions"] += 1

        async def owner_archived(owner: str) -> None:
            hot_ids = [(m.seq, m.id, m.content) for m in await hot.read_history(owner, None)]
            cold_ids = {(m.seq, m.id, m.content) for m in await cold.read_history(owner, None)}
            missing = [ids for ids in hot_ids if ids not in cold_ids]
            assert not missing, (owner, missing)
            counts["messages"] += len(hot_ids)
            task = await hot.get_task_context(owner)
            if task is not None:
                assert await cold.read_task_context(owner) == task, owner
                counts["task_contexts"] += 1
            conversation = await hot.get_conversation_session(owner)
            if conversation is not None:
                assert await cold.read_conversation_session(owner) == conversation, owner
                counts["conversations"] += 1

        async def checkpoint_archived(bundle: CheckpointBundle) -> None:
            row = bundle.row
            archived = await cold.read_langgraph_checkpoint(row.thread_id, row.checkpoint_ns, row.checkpoint_id)
            assert archived is not None, row
            assert archived.row.checkpoint == row.checkpoint and dict(archived.blobs) == dict(bundle.blobs), row
            archived_writes = {(w.task_id, w.idx, w.value) for w in archived.writes}
            assert {(w.task_id, w.idx, w.value) for w in bundle.writes} <= archived_writes, row
            counts["checkpoints"] += 1

        checks = [session_archived(session) for session in await scan_all(hot)]
        checks += [owner_archived(owner) async for owner in hot.iter_data_owners()]
        checks += [checkpoint_archived(b) async for b in hot.cp_list(None, None)]  # type: ignore[attr-defined]
        for start in range(0, len(checks), 8):  # a few at a time: the stores' pools are small
            await asyncio.gather(*checks[start : start + 8])
        return counts


async def test_fifty_random_sigkills_of_apps_on_redis_leave_nothing_in_the_hot_tier_unarchived(
    pg_target: Any, tmp_path: Path
) -> None:
    """App processes write sessions, messages, task contexts, conversation sessions and LangGraph checkpoints on a
    Redis hot tier (a private server) archived to PostgreSQL, four at a time, each SIGKILLed at a random point and
    replaced by a new one, 50 kills in all: one in five while its kit is opening (0-1 s after it started: connecting,
    consulting the archive, starting the archiver), the others 0-1.2 s after its kit opened (writing, or draining
    the outbox with its lease held). After the 25th kill and at the end, a new process drains the outbox: every
    owner the hot tier holds is in the archive as the hot tier holds it."""
    if redis_binaries() is None:
        missing_service("redis-server", "redis-server / redis-cli are not on PATH")
    server = RedisServer().start()
    forker: _Forker | None = None
    try:
        config = {
            "hot": {"backend": "redis", "url": server.url},
            "cold": pg_target.kit_cold(),
            "namespace": "crash50",
            "timeout": 15.0,
            "archiver": {"max_backoff": 0.5},
        }
        async with ContextKit.from_config(config, env={}) as kit:
            for shared in SHARED:
                await kit.create_session(shared, "crash-user")
        forker = _Forker(config, tmp_path)
        rng = random.Random(15)  # fixed: a failure can be replayed with the same kill points
        # pid -> [prefix, kill time (None: when its kit is open, see kit_process.churn's marker file), spawn time]
        live: dict[int, list[Any]] = {}
        spawned = kills = 0
        checks: list[dict[str, int]] = []
        phase_end = time.monotonic() + KILL_PHASE_LIMIT
        while kills < KILLS:
            now = time.monotonic()
            assert now < phase_end, f"only {kills} kills in {KILL_PHASE_LIMIT:g} s"
            pause = kills >= KILLS // 2 and not checks
            while not pause and len(live) < PARALLEL and spawned < KILLS:
                prefix = f"p{spawned}"
                while_opening = rng.random() < 0.2
                live[forker.spawn(prefix)] = [prefix, now + rng.uniform(0.0, 1.0) if while_opening else None, now]
                spawned += 1
            if not live:  # the midway check: every app of the first half is dead
                checks.append(await _assert_hot_is_archived(config))
                continue
            for pid, entry in list(live.items()):
                prefix, at, started = entry
                if at is None and (tmp_path / f"open-{prefix}").exists():
                    entry[1] = at = now + rng.uniform(0.0, 1.2)
                assert at is not None or now - started < 60, f"app {prefix} did not open its kit within 60 s"
                if at is not None and at <= now:
                    _kill_pid(pid, forker.log)
                    del live[pid]
                    kills += 1
            await asyncio.sleep(0.01)
        forker.close()
        forker = None
        checks.append(await _assert_hot_is_archived(config))
        log = (tmp_path / "forker.log").read_text()
        assert "Traceback" not in log, log[-5000:]
        final = checks[-1]
        # the apps did write (else the kills proved nothing): owners of every kind, in the hot tier and the archive
        assert final["sessions"] > KILLS // 2 and final["checkpoints"] > KILLS // 2, checks
        assert final["task_contexts"] and final["conversations"] and final["messages"] > final["sessions"], checks
        print(f"50 kills: midway {checks[0]}, final {final}")
    finally:
        if forker is not None:
            forker.close()
        server.stop()
