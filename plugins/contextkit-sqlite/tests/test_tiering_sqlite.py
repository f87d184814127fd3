"""The tiering suite (contextkit.testing.tiering) on the SQLite hot tier archived by the SQLite cold tier: scenarios 1-4
with four OS processes sharing the hot file, which loses every row of the namespace on purpose
(:meth:`~contextkit_sqlite.SqliteHotStore.drop_namespace`), and scenario 5: an older backup of the hot file copied
back while the kit stays open, and the restore declared (``contextkit hot-restored``, see the README); then four
processes appending to a stream the backup holds an older copy of."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit_sqlite.testing import SqliteSnapshots


class TestSqliteSqliteTiering(SqliteSnapshots):
    """SQLite hot (its outbox in its file) + SQLite cold (another file), four worker processes."""

    processes = 4

    @pytest.fixture(autouse=True)
    def _files(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def config(self, namespace: str) -> dict[str, Any]:
        return {
            "hot": {"backend": "sqlite", "path": str(self.directory / "hot.sqlite3"), "busy_timeout": 20},
            "cold": {"backend": "sqlite", "path": str(self.directory / "cold.sqlite3"), "busy_timeout": 20},
            "archiver": {"flush_interval": 0.01},
        }

    async def lose_hot(self, kit: ContextKit) -> None:
        await kit.hot.drop_namespace()  # type: ignore[attr-defined]

    async def test_processes_appending_to_a_restored_stream_never_repeat_a_seq(self, kit: ContextKit) -> None:
        """After a declared restore, several processes append at once to a stream the backup holds an older copy
        of: each of them meets the stale owner, one reconcile wins (the others find the meta up to date), and
        every caller gets a distinct seq above the archive's, which holds exactly one message per seq.

        Fix: the reconcile runs in restore_owner's one write transaction and stamps the meta with the current
        epoch, so a second reconcile of the same owner changes nothing."""
        key = "restored-busy"
        for i in range(30):
            await kit.add_message(key, "user", f"m{i}")
        await self._drain(kit)
        await self.snapshot_hot(kit)
        for i in range(20):
            await kit.add_message(key, "user", f"n{i}")
        await self._drain(kit)
        await self.restore_hot_snapshot(kit)
        jobs = [{"role": "append", "key": key, "count": 10, "tag": f"w{i}"} for i in range(self.processes)]
        results = await self._workers(kit, jobs)
        stored = [tuple(item) for result in results for item in result["stored"]]
        assert sorted(seq for seq, _, _ in stored) == list(range(51, 51 + 10 * self.processes))
        await self._drain(kit)
        assert kit.cold is not None
        archived = await kit.cold.read_history(key, None)
        assert [m.seq for m in archived] == list(range(1, 51 + 10 * self.processes))
