"""The tiering suite: :class:`TieringSuite`, the invariants of a hot tier and the cold tier that archives it.

It runs five scenarios against any (hot, cold) pair, with several OS processes where the hot tier is shared (each
a :mod:`contextkit.testing.tiering_worker`), and a hot tier that loses its data on purpose:

1. a deleted session stays deleted: no update after the delete returns True, and nothing of it comes back after
   the hot copy is gone;
2. read-through after a hot loss returns exactly the acknowledged counters;
3. concurrent rehydration loses nothing: every increment made while many processes restore the same lost session
   is kept;
4. numbers never repeat: appends after the hot stream is lost continue above the archive's seqs, every (stream,
   seq) has one message, and the archive holds the seqs the callers got;
5. (:class:`SnapshotScenario`, where the hot tier can be put back to an older copy of itself) a hot tier restored
   from an older snapshot continues above the archive's numbers, and the archive's newest session never goes back.

A pair runs it by subclassing::

    class TestRedisPostgresTiering(TieringSuite):
        processes = 4

        def config(self, namespace):
            return {"hot": {"backend": "redis", "url": URL}, "cold": {"backend": "postgres", "url": PG, "schema": namespace},
                    "namespace": namespace}

        async def lose_hot(self, kit):
            await kit.hot.drop_namespace()

``config`` must be JSON (the workers rebuild the kit from it) unless ``processes == 1``, where the workers are
tasks of this process sharing its kit (the memory hot tier). Only test code imports this module.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.testing.tiering_worker import run_job

__all__ = ["SnapshotScenario", "TieringSuite"]


class TieringSuite:
    """Base class of the tiering scenarios; subclass it and implement :meth:`config` and :meth:`lose_hot`."""

    #: Every test of a subclass carries the ``conformance`` marker (pytest collects class marks along the MRO), so
    #: ``pytest -m conformance`` (``nox -s conformance``) runs every run of every suite, whatever its file's name.
    pytestmark = [pytest.mark.conformance]

    #: Worker processes of the concurrent scenarios; 1 runs the workers as tasks of the test's own process.
    processes: int = 4
    #: Increments per worker in scenario 3, appends per worker in scenario 4.
    updates_per_worker: int = 50
    appends_per_worker: int = 20
    #: Seconds the workers of scenarios 1 and 2 keep updating (each also stops after 5,000 calls).
    busy_seconds: float = 2.0
    #: The kit's per-call timeout (roomy: several processes share the machine).
    timeout: float = 15.0
    #: Prefix of the namespaces the suite creates.
    namespace_prefix: str = "cktier"

    # -- what a pair provides ------------------------------------------------------------------------------------
    def config(self, namespace: str) -> dict[str, Any]:
        """The ``ContextKit.from_config`` mapping of this pair on ``namespace`` (JSON, unless ``processes == 1``)."""
        raise NotImplementedError("subclasses of TieringSuite implement config(namespace)")

    async def lose_hot(self, kit: ContextKit) -> None:
        """Make the hot tier lose everything of the kit's namespace (as a flush, an eviction or an expiry does)."""
        raise NotImplementedError("subclasses of TieringSuite implement lose_hot(kit)")

    async def cleanup(self, kit: ContextKit) -> None:
        """Remove what a scenario left in the servers (called with an open kit of the namespace)."""

    # -- plumbing -------------------------------------------------------------------------------------------------
    @pytest.fixture
    async def kit(self) -> AsyncIterator[ContextKit]:
        """A kit of this pair on a fresh namespace, cleaned up afterwards."""
        namespace = f"{self.namespace_prefix}_{uuid.uuid4().hex[:10]}"
        config = self._config(namespace)
        async with ContextKit.from_config(config, env={}) as kit:
            try:
                yield kit
            finally:
                await self.cleanup(kit)

    def _config(self, namespace: str) -> dict[str, Any]:
        config = dict(self.config(namespace))
        config.setdefault("namespace", namespace)
        config.setdefault("timeout", self.timeout)
        # A consult waits for the outbox to settle and the archive to answer: roomy, as the per-call timeout.
        config["tiering"] = {"consult_timeout": self.timeout, **config.get("tiering", {})}
        return config

    async def _workers(
        self, kit: ContextKit, jobs: list[dict[str, Any]], started: asyncio.Future[float] | None = None
    ) -> list[dict[str, Any]]:
        """Run ``jobs`` at once: in worker processes (a shared hot tier) or as tasks on ``kit``. ``started`` (if
        given) receives the time the jobs start at, once every worker is ready."""
        if self.processes == 1:
            start = time.time() + 0.3
            for job in jobs:
                self._times(job, start)
                job.setdefault("pause", 0.001 if job.get("until") else 0.0)
            if started is not None:
                started.set_result(start)
            return list(await asyncio.gather(*(run_job(job, kit) for job in jobs)))
        namespace = kit.config.namespace
        config = self._config(namespace)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "contextkit.testing.tiering_worker",
                json.dumps({**job, "config": config}),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            for job in jobs
        ]
        try:
            # Start-up (imports, opening the kit) takes seconds on a loaded machine: the clock starts once all are
            # ready, so every worker gets its whole busy time.
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
                if line.strip() != b"ready":
                    _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
                    raise AssertionError(f"a worker did not start ({proc.returncode}): {err.decode()[-3000:]}")
            start = time.time() + 0.2
            for job, proc in zip(jobs, procs, strict=True):
                assert proc.stdin is not None
                proc.stdin.write((json.dumps(self._times(dict(job), start)) + "\n").encode())
                await proc.stdin.drain()
            if started is not None:
                started.set_result(start)
            results = []
            for proc in procs:
                out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
                assert proc.returncode == 0, f"a worker failed ({proc.returncode}): {err.decode()[-3000:]}"
                results.append(json.loads(out.decode().strip().splitlines()[-1]))
            return results
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    @staticmethod
    def _times(job: dict[str, Any], start: float) -> dict[str, Any]:
        """Set ``job``'s absolute ``start`` and ``until`` (given relative to the start); return the two."""
        job["start"] = start
        job["until"] = None if job.get("until") is None else start + job["until"]
        return {"start": job["start"], "until": job["until"]}

    @staticmethod
    async def _drain(kit: ContextKit) -> None:
        assert kit.archiver is not None
        assert await kit.archiver.flush(60), "the archiver did not drain within 60 s"

    # -- the scenarios --------------------------------------------------------------------------------------------
    async def test_a_deleted_session_stays_deleted_while_others_update_it(self, kit: ContextKit) -> None:
        """Scenario 1: while several processes update a session, one deletes it. No update that starts after the
        delete returned may return True (read-through must not bring the session back, the delete's event being
        still in the outbox or not), get_session answers None at once, and after the archive drained and the hot
        tier lost everything, the session, its metadata and its history are still gone.

        Fix: the delete leaves a tombstone in the hot tier (the owner's meta) that update and read-through honor,
        and archives a delete event that hides the owner's older rows (contextkit.tiered.cold_rules).
        """
        sid = "deleted-while-busy"
        await kit.create_session(sid, "u1", {"secret": "kept until deleted"})
        for i in range(5):
            await kit.add_message(sid, "user", f"before delete {i}")
        # The workers go on for as long again after the delete's time, so some updates surely come after it.
        busy = self.busy_seconds * 2
        jobs = [{"role": "update", "key": sid, "count": 50_000, "until": busy} for _ in range(self.processes)]
        started: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        running = asyncio.ensure_future(self._workers(kit, jobs, started))
        waited: set[asyncio.Future[Any]] = {started, running}
        await asyncio.wait(waited, timeout=150, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            await running  # it failed before the workers started: its error tells why
        start = started.result()
        await asyncio.sleep(max(0.0, start + self.busy_seconds / 2 - time.time()))
        assert await kit.delete_session(sid) is True
        deleted_at = time.time()
        assert await kit.get_session(sid) is None
        results = await running
        calls = [call for result in results for call in result["calls"]]
        late = [call for call in calls if call[0] > deleted_at]
        assert late, "no update ran after the delete: the scenario did not overlap"
        assert [call for call in late if call[2] is not False] == [], "an update after the delete found the session"
        assert await kit.get_session(sid) is None
        assert await kit.get_conversation_history(sid) == []
        await self._drain(kit)
        await self.lose_hot(kit)
        assert await kit.get_session(sid) is None
        assert await kit.get_conversation_history(sid, limit=10) == []
        assert await kit.update_session(sid, increment_requests=True) is False

    async def test_read_through_after_a_hot_loss_returns_the_acknowledged_counters(self, kit: ContextKit) -> None:
        """Scenario 2: several processes increment one session for a while; after the archive drained and the hot
        copy is gone, read-through returns exactly as many requests as calls were acknowledged, and so does the
        archive's newest snapshot (the hot tier's order, not the clocks of the processes, decides which is newest).

        Fix: version every write inside its atomic step and keep the highest version per record in the archive.
        """
        sid = "counted"
        await kit.create_session(sid, "u1")
        jobs = [{"role": "update", "key": sid, "count": 50_000, "until": self.busy_seconds} for _ in range(self.processes)]
        results = await self._workers(kit, jobs)
        acknowledged = sum(1 for result in results for call in result["calls"] if call[2] is True)
        assert acknowledged > 0
        await self._drain(kit)
        assert kit.cold is not None
        archived = await kit.cold.read_session(sid)
        assert archived is not None and archived.request_count == acknowledged
        await self.lose_hot(kit)
        session = await kit.get_session(sid)
        assert session is not None and session.request_count == acknowledged

    async def test_concurrent_rehydration_loses_no_increment(self, kit: ContextKit) -> None:
        """Scenario 3: 100 archived increments, the hot copy lost, then several processes update the session at
        once: every call returns True and every increment is kept (hot tier and archive).

        Fix: rehydrate with put-if-absent (restore_owner writes only where the hot tier has no meta), so writes that
        raced the read-through apply on top of it instead of being overwritten.
        """
        sid = "rehydrated"
        await kit.create_session(sid, "u1")
        for _ in range(100):
            assert await kit.update_session(sid, increment_requests=True)
        await self._drain(kit)
        await self.lose_hot(kit)
        jobs = [{"role": "update", "key": sid, "count": self.updates_per_worker} for _ in range(self.processes)]
        results = await self._workers(kit, jobs)
        returned = [call[2] for result in results for call in result["calls"]]
        assert returned == [True] * (self.processes * self.updates_per_worker)
        expected = 100 + self.processes * self.updates_per_worker
        session = await kit.get_session(sid)
        assert session is not None and session.request_count == expected
        await self._drain(kit)
        assert kit.cold is not None
        archived = await kit.cold.read_session(sid)
        assert archived is not None and archived.request_count == expected

    async def test_appends_after_a_lost_stream_never_repeat_a_seq(self, kit: ContextKit) -> None:
        """Scenario 4: 100 archived messages, the hot stream lost, then several processes append at once (each
        with many appends in flight): every caller gets a distinct seq above 100, the archive holds exactly those
        (stream, seq, message id) rows and the first 100, one message per seq, and the hot tier holds the newest.

        Fix: a stream the hot tier does not know continues above the archive's highest seq, decided inside the
        append's atomic step once the archive was asked (restore_owner), never from 1.
        """
        key = "numbered"
        first = [await kit.add_message(key, "user", f"archived-{i}") for i in range(100)]
        assert [m.seq for m in first] == list(range(1, 101))
        await self._drain(kit)
        await self.lose_hot(kit)
        jobs = [
            {"role": "append", "key": key, "count": self.appends_per_worker, "tag": f"w{i}"}
            for i in range(self.processes)
        ]
        results = await self._workers(kit, jobs)
        stored = [tuple(item) for result in results for item in result["stored"]]
        total = self.processes * self.appends_per_worker
        assert sorted(seq for seq, _, _ in stored) == list(range(101, 101 + total)), "seqs repeated or skipped"
        await self._drain(kit)
        assert kit.cold is not None
        archived = await kit.cold.read_history(key, None)
        expected = sorted([(m.seq, m.id, m.content) for m in first] + stored)
        assert [(m.seq, m.id, m.content) for m in archived] == expected
        newest = await kit.get_conversation_history(key, limit=10)
        assert [(m.seq, m.id, m.content) for m in newest] == expected[-10:]


class SnapshotScenario(TieringSuite):
    """Scenario 5, for the pairs whose hot tier can be put back to an older copy of itself (a Redis server restarted
    from an older RDB, a SQLite file copied back from a backup): subclass it instead of :class:`TieringSuite` and
    implement :meth:`snapshot_hot` and :meth:`restore_hot_snapshot` too. A hot tier without such a copy (the memory
    tier) has no scenario 5."""

    async def snapshot_hot(self, kit: ContextKit) -> None:
        """Take a copy of the hot tier that :meth:`restore_hot_snapshot` can go back to."""
        raise NotImplementedError("subclasses of SnapshotScenario implement snapshot_hot(kit)")

    async def restore_hot_snapshot(self, kit: ContextKit) -> None:
        """Put the hot tier back to the copy (its server restarted from it, with the operator's steps the backend
        documents for a restore) while ``kit`` stays open."""
        raise NotImplementedError("subclasses of SnapshotScenario implement restore_hot_snapshot(kit)")

    async def test_a_hot_tier_restored_from_an_older_snapshot_continues_above_the_archive(self, kit: ContextKit) -> None:
        """Scenario 5: 110 requests and messages, a snapshot of the hot tier, 40 more (archived), then the hot tier
        restarts from the snapshot: new messages are numbered from 151 on, the session counts on from 150, and the
        archive never goes back (its newest session) nor holds two messages with one seq.

        Fix: the hot tier notices a restart (a new server run) and treats every owner written before it as
        possibly stale: the first call on it asks the archive and reconciles (restore_owner) before it writes.
        """
        sid = "snapshot"
        await kit.create_session(sid, "u1")
        for i in range(110):
            await kit.update_session(sid, increment_requests=True)
            await kit.add_message(sid, "user", f"before-{i}")
        await self._drain(kit)
        await self.snapshot_hot(kit)
        for i in range(40):
            await kit.update_session(sid, increment_requests=True)
            await kit.add_message(sid, "user", f"after-{i}")
        await self._drain(kit)
        await self.restore_hot_snapshot(kit)
        stored = [await kit.add_message(sid, "user", f"restored-{i}") for i in range(10)]
        assert [m.seq for m in stored] == list(range(151, 161))
        assert await kit.update_session(sid, increment_requests=True)
        session = await kit.get_session(sid)
        assert session is not None and session.request_count == 151
        await self._drain(kit)
        assert kit.cold is not None
        archived = await kit.cold.read_history(sid, None)
        seqs = [m.seq for m in archived]
        assert seqs == list(range(1, 161)), "the archive holds repeated or missing seqs"
        assert [m.content for m in archived[-10:]] == [f"restored-{i}" for i in range(10)]
        newest = await kit.cold.read_session(sid)
        assert newest is not None and newest.request_count == 151
        # The rollback is reported, not only repaired.
        assert (await kit.get_metrics())["tiering"]["reconciled"] >= 1
        assert any("older than the archive" in issue for issue in (await kit.health_check())["issues"])
