"""The SQLite hot tier's side of the tiering suite's scenario 5 (:class:`SqliteSnapshots`): an older backup of the
hot file copied back while the kit stays open, and the restore declared as the README tells an operator to.

Only test code imports this module (it imports pytest through :mod:`contextkit.testing.tiering`).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from contextkit import ContextKit
from contextkit.testing.tiering import SnapshotScenario

__all__ = ["SqliteSnapshots", "copy_database"]


def copy_database(source: str | Path, target: str | Path) -> None:
    """Copy the SQLite database ``source`` into ``target`` with SQLite's online backup API: a consistent copy
    while other connections (other processes too) read and write either file, which a file copy is not."""
    # closing(): a connection's own context manager ends a transaction, it does not close the connection
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


class SqliteSnapshots(SnapshotScenario):
    """A :class:`~contextkit.testing.tiering.SnapshotScenario` whose hot tier is a SQLite file: the kit's hot store
    must be a :class:`~contextkit_sqlite.SqliteHotStore` on a file."""

    async def snapshot_hot(self, kit: ContextKit) -> None:
        """A consistent copy of the hot file beside it (the backup an operator takes)."""
        copy_database(self._hot_path(kit), self._snapshot_path(kit))

    async def restore_hot_snapshot(self, kit: ContextKit) -> None:
        """Copy the backup back into the hot file while ``kit`` stays open, then declare the restore as an
        operator does (``contextkit hot-restored``: a kit of the same configuration calls ``hot_restored``)."""
        copy_database(self._snapshot_path(kit), self._hot_path(kit))
        async with ContextKit.from_config(self._config(kit.config.namespace), env={}) as operator:
            await operator.hot_restored()

    @staticmethod
    def _hot_path(kit: ContextKit) -> Path:
        path = kit.hot.describe().get("path")
        assert path and path != ":memory:", "scenario 5 needs a SQLite hot tier on a file"
        return Path(path)

    def _snapshot_path(self, kit: ContextKit) -> Path:
        hot = self._hot_path(kit)
        return hot.with_name(hot.name + ".snapshot")
