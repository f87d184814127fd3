"""LangGraph checkpoint storage in the SQLite file: the :class:`~contextkit.stores.CheckpointStore` half of the hot store.

Three tables: ``ck_checkpoints`` (one row per checkpoint, keyed ``(thread, ns, id)``, with the parent, the
serialized checkpoint without channel values, metadata JSON, the channel versions and the ``run_id`` pulled out of
metadata for ``cp_delete_for_runs``), ``ck_checkpoint_blobs`` (channel values keyed by
``(thread, ns, channel, version)``, written once per version) and ``ck_checkpoint_writes`` (pending writes keyed
``(thread, ns, checkpoint, task, idx)``). A thread is its integer key in ``ck_checkpoint_threads`` (one row per
namespace and thread id, given on the thread's first write, removed with its rows), and the values every row
repeats are stored as codes (:mod:`contextkit_sqlite.codes`: type tags, task path prefixes, LangGraph's ids as 16
bytes); every method reads and writes the values they stand for. A thread's TTL lives in ``ck_threads`` and is
refreshed by every write (lazily by LangGraph's: :meth:`SqliteCheckpoints._touch_thread`).

Deleting a thread leaves a tombstone (``ck_tombstones``: the newest id at the delete, and the ids dropped since)
so that late puts and writes of the run still going at the delete do not bring the thread back; pruning keeps
the ancestors a ``DeltaChannel`` is rebuilt from. Both rules are the memory tier's
(:mod:`contextkit_memory.checkpoints`), reused here so every tier behaves alike.

Every method is one hop to the connection's thread and one transaction (a write may share its transaction, each in
a savepoint, with the writes that waited beside it: :meth:`~contextkit_sqlite.database.SqliteDatabase.write`),
and a put or a pending write commits few pages: the thread's TTL row is refreshed lazily. Listing walks an index newest first, a
page at a time (keyset pagination), so a read costs O(limit); metadata filters on scalar values are pushed into
SQL with ``json_extract`` and every filter is re-checked in Python with the equality LangGraph's own savers use.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from contextkit.backend.tables import ArchiveTables
from contextkit.checkpoint_archive import delete_payload
from contextkit.checkpoint_lists import LIST_MARK, is_node_version, reachable_nodes
from contextkit.errors import CapabilityNotSupported, MissingBlobs
from contextkit.records import ArchiveEvent
from contextkit.stores import (
    EMPTY_BLOB_TYPE,
    KEEP_NEWEST,
    CheckpointBundle,
    CheckpointRow,
    DeltaStep,
    DeltaWalk,
    EventHead,
    RetentionPolicy,
    StoreSettings,
    ThreadBytes,
    Typed,
    WriteRow,
    checkpoint_id_floor,
    delta_ancestors,
    missing_blobs_message,
)
from contextkit_sqlite.codes import (
    TYPES,
    id_bytes_sql,
    id_of,
    path_bytes_sql,
    path_of,
    stored_id,
    stored_path,
    stored_type,
    type_bytes_sql,
    type_of,
)
from contextkit_sqlite.database import SqliteDatabase, dumps, loads
from contextkit_sqlite.rows import OutboxRow, outbox_row

__all__ = ["SqliteCheckpoints"]

T = TypeVar("T")

_PAGE = 100
# Ancestors one DeltaChannel history query visits at most (the saver resumes at the next one): LangGraph snapshots
# a delta channel at least every 5,000 supersteps, so a real chain fits in one or two calls, and a chain looped by
# a re-put (INSERT OR REPLACE of an older id under a newer parent) cannot recurse without end.
_DELTA_MAX_STEPS = 2_000
# The most a lazy TTL refresh (LangGraph puts and writes) sets a thread's expiry beyond its TTL, in seconds.
_LAZY_TTL_SLACK = 60.0
# Channels one query walks for: they are the bits of an SQLite integer (63 usable); more go in several queries.
_DELTA_MAX_CHANNELS = 62
# The shared lists' record types that have a code (contextkit_sqlite.codes): the others are found by their text.
_LIST_TYPES = tuple(kind for kind in TYPES if kind.endswith(LIST_MARK))

# The channels (bits of a mask) whose stored blob at checkpoint `{c}` is a seed: a value, not the empty marker.
_SEED_BITS = (
    "(SELECT coalesce(sum(1 << req.bit), 0) FROM json_each({c}.channel_versions) v "
    "CROSS JOIN req ON req.name = v.key CROSS JOIN ck_checkpoint_blobs b ON b.tkey = :tk "
    "AND b.checkpoint_ns = :cns AND b.channel = v.key AND b.version = v.value AND b.type != :empty)"
)
# One statement: a recursive CTE walks parent_checkpoint_id from the start, carrying the mask of the channels still
# walking (`left`; `wanted` is the mask on arrival), and stops by itself once every channel found its seed; then
# the chain, the writes of each ancestor to the channels it was visited for, and the seeds, tagged 0, 1, 2. The
# CTE is used three times, so SQLite computes it once (materialized). `CROSS JOIN` fixes every join order (chain, then
# its versions, then the blob or the writes): each step is primary-key lookups; with a plain JOIN and no ANALYZE
# statistics SQLite scanned every blob of the thread per ancestor.
_DELTA_SQL = (
    "WITH RECURSIVE req(bit, name) AS (SELECT key, value FROM json_each(:channels)), "
    "chain(depth, cid, parent, channel_versions, wanted, left) AS ("
    "SELECT :first, checkpoint_id, parent_checkpoint_id, channel_versions, :full, "
    "CASE WHEN :first = 1 THEN :full & ~" + _SEED_BITS.format(c="ck_checkpoints") + " ELSE :full END "
    "FROM ck_checkpoints WHERE tkey = :tk AND checkpoint_ns = :cns AND checkpoint_id = :cid "
    "UNION ALL "
    "SELECT chain.depth + 1, c.checkpoint_id, c.parent_checkpoint_id, c.channel_versions, chain.left, "
    "chain.left & ~" + _SEED_BITS.format(c="c") + " "
    "FROM chain CROSS JOIN ck_checkpoints c ON c.tkey = :tk AND c.checkpoint_ns = :cns "
    "AND c.checkpoint_id = chain.parent WHERE chain.left != 0 AND chain.depth < :max_depth "
    "AND (:stop IS NULL OR chain.depth = 0 OR chain.cid != :stop)) "
    "SELECT 0, depth, cid, parent, left, NULL, NULL, NULL, NULL FROM chain "
    "UNION ALL "
    "SELECT 1, chain.depth, w.task_id, w.channel, w.idx, w.type, w.blob, w.task_path, NULL FROM chain "
    "CROSS JOIN ck_checkpoint_writes w ON w.tkey = :tk AND w.checkpoint_ns = :cns "
    "AND w.checkpoint_id = chain.cid CROSS JOIN req ON req.name = w.channel "
    "WHERE chain.depth >= 1 AND (chain.wanted >> req.bit) & 1 "
    "UNION ALL "
    "SELECT 2, chain.depth, v.key, NULL, NULL, b.type, b.blob, NULL, NULL FROM chain "
    "CROSS JOIN json_each(chain.channel_versions) v CROSS JOIN req ON req.name = v.key "
    "CROSS JOIN ck_checkpoint_blobs b ON b.tkey = :tk "
    "AND b.checkpoint_ns = :cns AND b.channel = v.key AND b.version = v.value "
    "WHERE chain.depth >= 1 AND ((chain.wanted & ~chain.left) >> req.bit) & 1"
)

# A row as _bundle and _row read it: its thread id comes from the caller (or the join in a listing of threads).
_ROW_COLUMNS = "checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata, channel_versions"


def _versions_param(versions_text: str, versions: Mapping[str, Any]) -> str:
    # Blob versions are stored as text; the stored JSON can be passed straight to json_each when it is all text.
    if all(isinstance(v, str) for v in versions.values()):
        return versions_text
    return dumps({channel: str(version) for channel, version in versions.items()})


def _write_order(write: WriteRow) -> tuple[str, str, int]:
    return (write.task_path, write.task_id, write.idx)


def _sql_filter(metadata_filter: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """SQL conditions for the filter entries SQL can judge exactly like Python's ``==`` (str and numbers)."""
    clauses: list[str] = []
    params: list[Any] = []
    for key, value in metadata_filter.items():
        if '"' in key or "\\" in key:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            # None must also match a missing key and True must match 1, as in Python: leave them to Python.
            continue
        clauses.append("json_extract(metadata, ?) = ?")
        params.extend((f'$."{key}"', value))
    return clauses, params


class SqliteCheckpoints:
    """Mixin implementing :class:`contextkit.stores.CheckpointStore` for :class:`~contextkit_sqlite.SqliteHotStore`."""

    settings: StoreSettings
    _db: SqliteDatabase
    _ns: str

    # -- the host store's outbox (SqliteHotStore overrides both) --------------------------------------------------
    async def _write(self, fn: Callable[..., T], *args: Any, events: bool = False, inline: bool = False) -> T:
        """Run ``fn`` in a write transaction (``events``: it may write into the outbox table; ``inline``: a small
        write, see :meth:`SqliteDatabase.write`)."""
        return await self._db.write(fn, *args, inline=inline)

    def _put_events(self, conn: sqlite3.Connection, rows: Sequence[OutboxRow]) -> None:
        """Write archive events into the outbox table in the caller's transaction."""
        raise CapabilityNotSupported("this checkpoint store has no outbox to archive to")

    # -- thread TTL (shared with the seed's checkpoint documents) ----------------------------------------------
    def _thread_alive(self, conn: sqlite3.Connection, thread_id: str, now: float) -> bool:
        row = conn.execute(
            "SELECT expires_at FROM ck_threads WHERE namespace = ? AND thread_id = ?", (self._ns, thread_id)
        ).fetchone()
        return row is None or row[0] > now

    def _touch_thread(self, conn: sqlite3.Connection, thread_id: str, now: float, *, lazy: bool = False) -> None:
        """Refresh the thread's TTL; a thread that already expired is emptied first, so it never comes back.

        ``lazy`` (LangGraph puts and writes, several per graph step): the thread is set to expire a little later
        than the TTL asks (1% of it, at most a minute), and left as it is while it still expires at least a TTL
        from now. The thread still lives at least ``checkpoint_ttl`` after its last write, and most writes no
        longer rewrite the row and its expiry index: two fewer pages per commit (the WAL, and its checkpoints
        into the file, grow by the pages a transaction changes)."""
        ttl = self.settings.checkpoint_ttl
        found = conn.execute(
            "SELECT expires_at FROM ck_threads WHERE namespace = ? AND thread_id = ?", (self._ns, thread_id)
        ).fetchone()
        if found is not None and found[0] <= now:
            self._purge_thread(conn, thread_id, True)
        expires = now + ttl
        if lazy:
            if found is not None and found[0] >= expires:
                return
            expires += min(ttl * 0.01, _LAZY_TTL_SLACK)
        conn.execute(
            "INSERT INTO ck_threads (namespace, thread_id, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (namespace, thread_id) DO UPDATE SET expires_at = excluded.expires_at",
            (self._ns, thread_id, expires),
        )

    def _tkey(self, conn: sqlite3.Connection, thread_id: str) -> int | None:
        """The thread's key in the LangGraph tables, or None when it has no row there."""
        row = conn.execute(
            "SELECT tkey FROM ck_checkpoint_threads WHERE namespace = ? AND thread_id = ?", (self._ns, thread_id)
        ).fetchone()
        return None if row is None else int(row[0])

    def _new_tkey(self, conn: sqlite3.Connection, thread_id: str) -> int:
        """The thread's key, given to it now if it has none (in a write transaction)."""
        tkey = self._tkey(conn, thread_id)
        if tkey is None:
            cursor = conn.execute("INSERT INTO ck_checkpoint_threads (namespace, thread_id) VALUES (?, ?)", (self._ns, thread_id))
            tkey = int(cursor.lastrowid or 0)
        return tkey

    def _purge_thread(self, conn: sqlite3.Connection, thread_id: str, seed: bool) -> None:
        tkey = self._tkey(conn, thread_id)
        if tkey is not None:
            # The key goes with the rows: a key may be given again (SQLite reuses the highest one freed) only to a
            # thread whose rows are all new.
            for table in ("ck_checkpoints", "ck_checkpoint_blobs", "ck_checkpoint_writes", "ck_checkpoint_threads"):
                conn.execute(f"DELETE FROM {table} WHERE tkey = ?", (tkey,))
        key = (self._ns, thread_id)
        if seed:
            conn.execute("DELETE FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ?", key)
            conn.execute("DELETE FROM ck_seed_writes WHERE namespace = ? AND thread_id = ?", key)

    def _tombstone(self, conn: sqlite3.Connection, thread_id: str, now: float) -> str | None:
        """The floor of the thread's live tombstone, or None (an expired tombstone is removed)."""
        row = conn.execute(
            "SELECT floor, expires_at FROM ck_tombstones WHERE namespace = ? AND thread_id = ?", (self._ns, thread_id)
        ).fetchone()
        if row is None:
            return None
        if row[1] <= now:
            self._drop_tombstone(conn, thread_id)
            return None
        return str(row[0])

    def _drop_tombstone(self, conn: sqlite3.Connection, thread_id: str) -> None:
        conn.execute("DELETE FROM ck_tombstones WHERE namespace = ? AND thread_id = ?", (self._ns, thread_id))
        conn.execute("DELETE FROM ck_tombstone_dead WHERE namespace = ? AND thread_id = ?", (self._ns, thread_id))

    def _stale_id(self, conn: sqlite3.Connection, thread_id: str, floor: str, checkpoint_id: str) -> bool:
        """True when ``checkpoint_id`` was made before the delete or chains onto a checkpoint dropped since."""
        if checkpoint_id <= floor:
            return True
        return (
            conn.execute(
                "SELECT 1 FROM ck_tombstone_dead WHERE namespace = ? AND thread_id = ? AND checkpoint_id = ?",
                (self._ns, thread_id, checkpoint_id),
            ).fetchone()
            is not None
        )

    def _collect_blobs(self, conn: sqlite3.Connection, tkey: int, checkpoint_ns: str) -> None:
        """Delete the blobs of ``(thread, ns)`` that no remaining checkpoint points at, and the shared list nodes
        no remaining record reaches."""
        key = (tkey, checkpoint_ns)
        referenced: set[tuple[str, str]] = set()
        for (text,) in conn.execute(
            "SELECT channel_versions FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ?",
            key,
        ):
            referenced.update((channel, str(version)) for channel, version in loads(text).items())
        doomed = [
            (*key, channel, version)
            for channel, version in conn.execute(
                "SELECT channel, version FROM ck_checkpoint_blobs WHERE tkey = ? AND checkpoint_ns = ?",
                key,
            )
            # shared list nodes (versions "#...") go below, once no remaining record reaches them
            if (channel, version) not in referenced and not is_node_version(version)
        ]
        delete = "DELETE FROM ck_checkpoint_blobs WHERE tkey = ? AND checkpoint_ns = ? AND channel = ? AND version = ?"
        conn.executemany(delete, doomed)
        nodes: dict[str, list[str]] = {}
        for channel, version in conn.execute(
            "SELECT channel, version FROM ck_checkpoint_blobs WHERE tkey = ? AND checkpoint_ns = ? "
            "AND version >= '#' AND version < '$'",
            key,
        ):
            nodes.setdefault(channel, []).append(version)
        if not nodes:
            return
        records: dict[str, list[Typed]] = {}
        list_codes = [stored_type(kind) for kind in _LIST_TYPES]
        for channel, kind, data in conn.execute(
            "SELECT channel, type, blob FROM ck_checkpoint_blobs WHERE tkey = ? AND checkpoint_ns = ? "
            f"AND (type IN ({', '.join('?' * len(list_codes))}) OR type LIKE ?)",
            (*key, *list_codes, f"%{LIST_MARK}"),
        ):
            records.setdefault(channel, []).append((type_of(kind), data))

        def block(channel: str, version: str) -> Typed | None:
            found = conn.execute(
                "SELECT type, blob FROM ck_checkpoint_blobs WHERE tkey = ? AND checkpoint_ns = ? AND channel = ? AND version = ?",
                (*key, channel, version),
            ).fetchone()
            return None if found is None else (type_of(found[0]), found[1])

        for channel, versions in nodes.items():
            reached = reachable_nodes(records.get(channel, ()), lambda v, ch=channel: block(ch, v))  # type: ignore[misc]
            if reached is not None:
                conn.executemany(delete, [(*key, channel, v) for v in versions if v not in reached])

    # -- writes -----------------------------------------------------------------------------------------------
    async def cp_put(
        self,
        row: CheckpointRow,
        new_blobs: Mapping[tuple[str, str], Typed],
        *,
        archive: ArchiveEvent | None = None,
        requires: Collection[tuple[str, str]] = (),
    ) -> None:
        """Store a checkpoint and the blobs of its changed channels (``{(channel, version): typed}``); with
        ``archive``, that event goes into the outbox table in the same transaction, unless the put is dropped as a
        late write of a deleted thread (then neither is written). A ``requires`` blob that is not stored (the file
        was replaced or the thread expired under a run) raises ``MissingBlobs``, and nothing is written."""
        metadata = dumps(dict(row.metadata))
        versions = dumps(dict(row.channel_versions))
        run_id = row.metadata.get("run_id")
        if not isinstance(run_id, str):
            run_id = None
        blobs = [
            (row.checkpoint_ns, channel, str(version), stored_type(typed[0]), typed[1])
            for (channel, version), typed in new_blobs.items()
        ]
        event = None if archive is None else outbox_row(archive)  # its JSON built before the transaction
        await self._write(
            self._cp_put, row, metadata, versions, run_id, blobs, event, tuple(requires), events=event is not None,
            inline=True,
        )

    def _cp_put(
        self,
        conn: sqlite3.Connection,
        row: CheckpointRow,
        metadata: str,
        versions: str,
        run_id: str | None,
        blobs: list[tuple[Any, ...]],
        event: OutboxRow | None = None,
        requires: tuple[tuple[str, str], ...] = (),
    ) -> None:
        now = time.time()
        floor = self._tombstone(conn, row.thread_id, now)
        if floor is not None and (
            self._stale_id(conn, row.thread_id, floor, row.checkpoint_id)
            or (row.parent_checkpoint_id is not None and self._stale_id(conn, row.thread_id, floor, row.parent_checkpoint_id))
        ):
            # A late put of the run that was going when the thread was deleted: dropped, with the writes that
            # raced ahead of it, and remembered so that the checkpoints chained onto it are dropped too.
            conn.execute(
                "INSERT OR IGNORE INTO ck_tombstone_dead (namespace, thread_id, checkpoint_id) VALUES (?, ?, ?)",
                (self._ns, row.thread_id, row.checkpoint_id),
            )
            tkey = self._tkey(conn, row.thread_id)
            if tkey is not None:
                conn.execute(
                    "DELETE FROM ck_checkpoint_writes WHERE tkey = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
                    (tkey, row.checkpoint_ns, stored_id(row.checkpoint_id)),
                )
            return
        if requires:
            tkey = self._tkey(conn, row.thread_id)
            stored = "SELECT 1 FROM ck_checkpoint_blobs WHERE tkey = ? AND checkpoint_ns = ? AND channel = ? AND version = ?"
            missing = [
                key
                for key in requires
                if tkey is None or conn.execute(stored, (tkey, row.checkpoint_ns, *key)).fetchone() is None
            ]
            if missing:
                raise MissingBlobs(missing_blobs_message(row, missing), missing)
        self._touch_thread(conn, row.thread_id, now, lazy=True)
        tkey = self._new_tkey(conn, row.thread_id)
        conn.execute(
            "INSERT OR REPLACE INTO ck_checkpoints (tkey, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            "checkpoint, metadata, channel_versions, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tkey,
                row.checkpoint_ns,
                stored_id(row.checkpoint_id),
                None if row.parent_checkpoint_id is None else stored_id(row.parent_checkpoint_id),
                stored_type(row.checkpoint[0]),
                row.checkpoint[1],
                metadata,
                versions,
                run_id,
            ),
        )
        if blobs:
            # A (channel, version) pair always names the same value, so an existing blob is kept as is.
            conn.executemany(
                "INSERT OR IGNORE INTO ck_checkpoint_blobs (tkey, checkpoint_ns, channel, version, type, blob) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(tkey, *blob) for blob in blobs],
            )
        if event is not None:
            self._put_events(conn, [event])

    async def cp_put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: Sequence[WriteRow],
        upsert: bool,
        *,
        archive: ArchiveEvent | None = None,
    ) -> None:
        """Store pending writes of a checkpoint: ``upsert=True`` replaces a ``(task_id, idx)``, otherwise keeps it;
        ``archive`` as for :meth:`cp_put`."""
        if not writes:
            return
        stored = stored_id(checkpoint_id)
        rows = [
            (
                checkpoint_ns,
                stored,
                stored_id(w.task_id),
                w.idx,
                w.channel,
                stored_type(w.value[0]),
                w.value[1],
                stored_path(w.task_path),
            )
            for w in writes
        ]
        event = None if archive is None else outbox_row(archive)
        await self._write(
            self._cp_put_writes, thread_id, checkpoint_ns, checkpoint_id, rows, upsert, event, events=event is not None,
            inline=True,
        )

    def _cp_put_writes(
        self,
        conn: sqlite3.Connection,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        rows: list[tuple[Any, ...]],
        upsert: bool,
        event: OutboxRow | None = None,
    ) -> None:
        now = time.time()
        floor = self._tombstone(conn, thread_id, now)
        if floor is not None and self._stale_id(conn, thread_id, floor, checkpoint_id):
            # Writes may arrive before their checkpoint; on a deleted thread, only for a checkpoint of a new run.
            tkey = self._tkey(conn, thread_id)
            stored = (
                None
                if tkey is None
                else conn.execute(
                    "SELECT 1 FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
                    (tkey, checkpoint_ns, stored_id(checkpoint_id)),
                ).fetchone()
            )
            if stored is None:
                return
        self._touch_thread(conn, thread_id, now, lazy=True)
        tkey = self._new_tkey(conn, thread_id)
        insert = (
            "INSERT INTO ck_checkpoint_writes (tkey, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, "
            "task_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        )
        keyed = [(tkey, *row) for row in rows]
        if upsert:
            conn.executemany(
                insert + "ON CONFLICT (tkey, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET "
                "channel = excluded.channel, type = excluded.type, blob = excluded.blob, task_path = excluded.task_path",
                keyed,
            )
        else:
            conn.executemany(insert + "ON CONFLICT DO NOTHING", keyed)
        if event is not None:
            self._put_events(conn, [event])

    # -- reads ------------------------------------------------------------------------------------------------
    def _bundle(
        self, conn: sqlite3.Connection, tkey: int, thread_id: str, record: Sequence[Any], metadata: Mapping[str, Any]
    ) -> CheckpointBundle:
        row = self._row(thread_id, record, metadata)
        checkpoint_ns, stored, versions_text = record[0], record[1], record[6]
        versions = row.channel_versions
        blobs: dict[str, Typed] = {}
        if versions:
            for channel, btype, value in conn.execute(
                "SELECT channel, type, blob FROM ck_checkpoint_blobs WHERE tkey = ? "
                "AND checkpoint_ns = ? AND (channel, version) IN (SELECT key, value FROM json_each(?))",
                (tkey, checkpoint_ns, _versions_param(versions_text, versions)),
            ):
                blobs[channel] = (type_of(btype), value)
        # sqlite3 returns BLOB columns as bytes already: no copies on this hot path. The order is LangGraph
        # savers' (task path, task id, idx), of the paths as written, not of their stored codes.
        writes = sorted(
            (
                WriteRow(id_of(task_id), idx, channel, (type_of(wtype), value), path_of(task_path))
                for task_id, idx, channel, wtype, value, task_path in conn.execute(
                    "SELECT task_id, idx, channel, type, blob, task_path FROM ck_checkpoint_writes WHERE tkey = ? "
                    "AND checkpoint_ns = ? AND checkpoint_id = ?",
                    (tkey, checkpoint_ns, stored),
                )
            ),
            key=_write_order,
        )
        return CheckpointBundle(row=row, blobs=blobs, writes=writes)

    async def cp_get_blobs(
        self, thread_id: str, checkpoint_ns: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Typed]:
        """See :meth:`contextkit.stores.SharedBlobStore.cp_get_blobs`: one query (primary-key lookups)."""
        if not keys:
            return {}
        return await self._db.read(self._cp_get_blobs, thread_id, checkpoint_ns, dumps([list(k) for k in keys]))

    def _cp_get_blobs(
        self, conn: sqlite3.Connection, thread_id: str, checkpoint_ns: str, keys_json: str
    ) -> dict[tuple[str, str], Typed]:
        tkey = self._tkey(conn, thread_id)
        if tkey is None:
            return {}
        return {
            (channel, version): (type_of(btype), value)
            for channel, version, btype, value in conn.execute(
                "SELECT b.channel, b.version, b.type, b.blob FROM json_each(?) AS k CROSS JOIN ck_checkpoint_blobs b "
                "ON b.tkey = ? AND b.checkpoint_ns = ? "
                "AND b.channel = json_extract(k.value, '$[0]') AND b.version = json_extract(k.value, '$[1]')",
                (keys_json, tkey, checkpoint_ns),
            )
        }

    async def cp_get(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> CheckpointBundle | None:
        """That checkpoint, or the newest of ``(thread, ns)`` when ``checkpoint_id`` is None."""
        return await self._db.read(self._cp_get, thread_id, checkpoint_ns, checkpoint_id, inline=True)

    def _cp_get(
        self, conn: sqlite3.Connection, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointBundle | None:
        if not self._thread_alive(conn, thread_id, time.time()):
            return None
        tkey = self._tkey(conn, thread_id)
        if tkey is None:
            return None
        if checkpoint_id is None:
            record = conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ? "
                "ORDER BY checkpoint_id DESC LIMIT 1",
                (tkey, checkpoint_ns),
            ).fetchone()
        else:
            record = conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
                (tkey, checkpoint_ns, stored_id(checkpoint_id)),
            ).fetchone()
        if record is None:
            return None
        return self._bundle(conn, tkey, thread_id, record, loads(record[5]))

    async def cp_delta_history(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str | None,
        channels: Sequence[str],
        *,
        inclusive: bool = False,
        stop_at: str | None = None,
    ) -> DeltaWalk | None:
        """See :meth:`contextkit.stores.DeltaHistoryStore.cp_delta_history`: one hop to the connection's thread,
        one read transaction, one recursive query (per 62 channels) that stops at the seeds (and ``stop_at``) by
        itself."""
        return await self._db.read(
            self._cp_delta_history, thread_id, checkpoint_ns, checkpoint_id, list(channels), inclusive, stop_at, inline=True
        )

    def _cp_delta_history(
        self,
        conn: sqlite3.Connection,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str | None,
        channels: list[str],
        inclusive: bool,
        stop_at: str | None = None,
    ) -> DeltaWalk | None:
        if not self._thread_alive(conn, thread_id, time.time()):
            return None
        tkey = self._tkey(conn, thread_id)
        if tkey is None:
            return None
        if checkpoint_id is None:
            newest = conn.execute(
                "SELECT checkpoint_id FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ? "
                "ORDER BY checkpoint_id DESC LIMIT 1",
                (tkey, checkpoint_ns),
            ).fetchone()
            if newest is None:
                return None
            checkpoint_id = id_of(newest[0])
        walks = [
            self._cp_delta_chunk(
                conn, tkey, checkpoint_ns, checkpoint_id, channels[i : i + _DELTA_MAX_CHANNELS], inclusive, stop_at
            )
            for i in range(0, max(len(channels), 1), _DELTA_MAX_CHANNELS)
        ]
        if any(walk is None for walk in walks):
            return None
        if len(walks) == 1:
            return walks[0]
        # Every chunk walked the same chain, each as far as its own channels needed: merge step by step.
        merged: list[DeltaStep] = []
        resume: str | None = None
        bounded = stopped = False
        for walk in walks:
            assert walk is not None
            stopped = stopped or walk.stopped
            if resume is None and walk.resume is not None:
                resume, bounded = walk.resume, walk.bounded
            for i, step in enumerate(walk.steps):
                if i == len(merged):
                    merged.append(step)
                else:
                    have = merged[i]
                    merged[i] = DeltaStep(have.checkpoint_id, [*have.writes, *step.writes], {**have.seeds, **step.seeds})
        if stopped:  # every chunk walked to stop_at or ended at its seeds before it: nothing to resume
            return DeltaWalk(checkpoint_id, merged, stopped=True)
        return DeltaWalk(checkpoint_id, merged, resume, bounded)

    def _cp_delta_chunk(
        self,
        conn: sqlite3.Connection,
        tkey: int,
        checkpoint_ns: str,
        checkpoint_id: str,
        channels: list[str],
        inclusive: bool,
        stop_at: str | None = None,
    ) -> DeltaWalk | None:
        params = {
            "channels": dumps(channels),
            "full": (1 << len(channels)) - 1,
            "first": 1 if inclusive else 0,
            "tk": tkey,
            "cns": checkpoint_ns,
            "cid": stored_id(checkpoint_id),
            "empty": stored_type(EMPTY_BLOB_TYPE),
            "max_depth": _DELTA_MAX_STEPS,
            "stop": None if stop_at is None else stored_id(stop_at),
        }
        chain: dict[int, tuple[str, str | None, int]] = {}
        writes: dict[int, list[WriteRow]] = {}
        seeds: dict[int, dict[str, Typed]] = {}
        for kind, depth, a, b, c, vtype, value, task_path, _ in conn.execute(_DELTA_SQL, params):
            if kind == 0:
                chain[depth] = (id_of(a), None if b is None else id_of(b), c)
            elif kind == 1:
                writes.setdefault(depth, []).append(WriteRow(id_of(a), c, b, (type_of(vtype), value), path_of(task_path)))
            else:
                seeds.setdefault(depth, {})[a] = (type_of(vtype), value)
        if not chain:
            return None
        steps: list[DeltaStep] = []
        seen = {checkpoint_id} if not inclusive else set()
        left = 1
        parent: str | None = None
        depth = 0
        for depth in sorted(chain):
            cid, parent, left = chain[depth]
            if depth == 0:
                continue
            if cid in seen:
                return DeltaWalk(checkpoint_id, steps)  # a looped chain: it ends where it repeats
            seen.add(cid)
            steps.append(DeltaStep(cid, writes.get(depth, []), seeds.get(depth, {})))
        if left and depth >= 1 and cid == stop_at:
            return DeltaWalk(checkpoint_id, steps, stopped=True)
        # Channels left and a parent the query did not reach: past the bound of one call, or not stored here.
        resume = parent if left and parent is not None else None
        return DeltaWalk(checkpoint_id, steps, resume, bounded=resume is not None and depth >= _DELTA_MAX_STEPS)

    async def cp_list(
        self,
        thread_id: str | None,
        checkpoint_ns: str | None,
        *,
        checkpoint_id: str | None = None,
        before: str | None = None,
        limit: int | None = None,
        metadata_filter: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[CheckpointBundle]:
        """Matching checkpoints, newest first, fetched a page at a time."""
        if limit is not None and limit <= 0:
            return
        remaining = limit
        wanted = dict(metadata_filter or {})
        cursor: tuple[Any, ...] | None = None
        while True:
            page = _PAGE if remaining is None or wanted else min(_PAGE, remaining)
            bundles, cursor, done = await self._db.read(
                self._cp_list_page, thread_id, checkpoint_ns, checkpoint_id, before, wanted, cursor, page
            )
            for bundle in bundles:
                yield bundle
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return
            if done:
                return

    def _cp_list_page(
        self,
        conn: sqlite3.Connection,
        thread_id: str | None,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        before: str | None,
        wanted: dict[str, Any],
        cursor: tuple[Any, ...] | None,
        page: int,
    ) -> tuple[list[CheckpointBundle], tuple[Any, ...] | None, bool]:
        now = time.time()
        where = ["t.namespace = ?"]
        params: list[Any] = [self._ns]
        # The sort key: the id, then whichever of thread and ns is not fixed (ids repeat across copied threads).
        keys = ["c.checkpoint_id"]
        if thread_id is not None:
            if not self._thread_alive(conn, thread_id, now):
                return [], None, True
            tkey = self._tkey(conn, thread_id)
            if tkey is None:
                return [], None, True
            where.append("c.tkey = ?")
            params.append(tkey)
        else:
            keys.append("t.thread_id")
            where.append(
                "NOT EXISTS (SELECT 1 FROM ck_threads x WHERE x.namespace = t.namespace "
                "AND x.thread_id = t.thread_id AND x.expires_at <= ?)"
            )
            params.append(now)
        if checkpoint_ns is not None:
            where.append("c.checkpoint_ns = ?")
            params.append(checkpoint_ns)
        else:
            keys.append("c.checkpoint_ns")
        if checkpoint_id is not None:
            where.append("c.checkpoint_id = ?")
            params.append(stored_id(checkpoint_id))
        if before is not None:
            where.append("c.checkpoint_id < ?")
            params.append(stored_id(before))
        clauses, values = _sql_filter(wanted)
        where.extend(clauses)
        params.extend(values)
        if cursor is not None:
            where.append(f"({', '.join(keys)}) < ({', '.join('?' * len(keys))})")
            params.extend(cursor)
        order = ", ".join(f"{k} DESC" for k in keys)
        # CROSS JOIN: the checkpoints are walked in the index's id order (ties on the thread id are sorted, not the
        # whole namespace); without ANALYZE statistics SQLite would start from the namespace's threads instead.
        records = conn.execute(
            f"SELECT {_ROW_COLUMNS}, c.tkey, t.thread_id, {', '.join(keys)} FROM ck_checkpoints c "
            f"CROSS JOIN ck_checkpoint_threads t ON t.tkey = c.tkey WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?",
            (*params, page),
        ).fetchall()
        bundles = []
        for record in records:
            metadata = loads(record[5])
            if all(metadata.get(key) == value for key, value in wanted.items()):
                bundles.append(self._bundle(conn, record[7], record[8], record[:7], metadata))
        next_cursor = tuple(records[-1][9:]) if records else None
        return bundles, next_cursor, len(records) < page

    async def cp_thread_ids(self) -> list[str]:
        """See :class:`contextkit.stores.CheckpointThreadsStore`: the namespace's threads from
        ``ck_checkpoint_threads`` (its unique index, in id order), those holding a checkpoint and not expired."""
        return await self._db.read(self._cp_thread_ids)

    def _cp_thread_ids(self, conn: sqlite3.Connection) -> list[str]:
        return [
            row[0]
            for row in conn.execute(
                "SELECT t.thread_id FROM ck_checkpoint_threads t WHERE t.namespace = ? "
                "AND EXISTS (SELECT 1 FROM ck_checkpoints c WHERE c.tkey = t.tkey) AND NOT EXISTS "
                "(SELECT 1 FROM ck_threads x WHERE x.namespace = t.namespace AND x.thread_id = t.thread_id "
                "AND x.expires_at <= ?) ORDER BY t.thread_id",
                (self._ns, time.time()),
            )
        ]

    # -- deletion, copy, pruning --------------------------------------------------------------------------------
    async def cp_delete_thread(self, thread_id: str, *, archive: EventHead | None = None) -> None:
        """Remove every checkpoint, blob and write of the thread in every namespace, and leave a tombstone that
        drops late writes of the runs going at the delete (for ``checkpoint_ttl`` seconds); with ``archive``, the
        tombstone's ``langgraph-delete`` event (of the floor decided here) goes into the outbox table in the same
        transaction."""
        await self._write(self._cp_delete_thread, thread_id, archive, events=archive is not None)

    def _cp_delete_thread(self, conn: sqlite3.Connection, thread_id: str, archive: EventHead | None = None) -> None:
        now = time.time()
        floor = checkpoint_id_floor(now)
        tkey = self._tkey(conn, thread_id)
        newest = (
            None
            if tkey is None
            else conn.execute("SELECT MAX(checkpoint_id) FROM ck_checkpoints WHERE tkey = ?", (tkey,)).fetchone()[0]
        )
        if newest is not None:
            newest = id_of(newest)
        if newest is not None and newest > floor:
            floor = newest
        previous = self._tombstone(conn, thread_id, now)
        if previous is not None and previous > floor:
            floor = previous
        conn.execute(
            "INSERT INTO ck_tombstones (namespace, thread_id, floor, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (namespace, thread_id) DO UPDATE SET floor = excluded.floor, expires_at = excluded.expires_at",
            (self._ns, thread_id, floor, now + self.settings.checkpoint_ttl),
        )
        self._purge_thread(conn, thread_id, False)
        if archive is not None:
            payload = delete_payload(floor)
            event = ArchiveEvent(ArchiveTables.CHECKPOINTS, thread_id, payload, archive.created_at, archive.event_id)
            self._put_events(conn, [outbox_row(event)])

    async def cp_deleted_floor(self, thread_id: str) -> str | None:
        """The floor of the thread's tombstone while it lives, else None (see
        :meth:`contextkit.stores.CheckpointStore.cp_deleted_floor`); a read, shared by every process of the file."""
        return await self._db.run(self._deleted_floor, thread_id)

    def _deleted_floor(self, conn: sqlite3.Connection, thread_id: str) -> str | None:
        row = conn.execute(
            "SELECT floor FROM ck_tombstones WHERE namespace = ? AND thread_id = ? AND expires_at > ?",
            (self._ns, thread_id, time.time()),
        ).fetchone()
        return None if row is None else str(row[0])

    async def cp_delete_for_runs(self, run_ids: Sequence[str]) -> list[str]:
        """Remove the checkpoints (and their writes) whose ``metadata["run_id"]`` is in ``run_ids``; the ids of the
        threads that lost some."""
        if not run_ids:
            return []
        return await self._db.write(self._cp_delete_for_runs, dumps([str(r) for r in run_ids]))

    def _cp_delete_for_runs(self, conn: sqlite3.Connection, run_ids: str) -> list[str]:
        doomed = conn.execute(
            "SELECT t.thread_id, c.tkey, c.checkpoint_ns, c.checkpoint_id FROM ck_checkpoints c "
            "JOIN ck_checkpoint_threads t ON t.tkey = c.tkey WHERE c.run_id IN (SELECT value FROM json_each(?)) "
            "AND t.namespace = ?",
            (run_ids, self._ns),
        ).fetchall()
        keys = [key[1:] for key in doomed]
        conn.executemany("DELETE FROM ck_checkpoint_writes WHERE tkey = ? AND checkpoint_ns = ? AND checkpoint_id = ?", keys)
        conn.executemany("DELETE FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ? AND checkpoint_id = ?", keys)
        for tkey, checkpoint_ns in {(tkey, checkpoint_ns) for _, tkey, checkpoint_ns, _ in doomed}:
            self._collect_blobs(conn, tkey, checkpoint_ns)
        return sorted({thread_id for thread_id, _, _, _ in doomed})

    async def cp_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of a thread, in every namespace, to another thread id."""
        if source_thread_id == target_thread_id:
            return
        await self._db.write(self._cp_copy_thread, source_thread_id, target_thread_id)

    def _cp_copy_thread(self, conn: sqlite3.Connection, source: str, target: str) -> None:
        now = time.time()
        if not self._thread_alive(conn, source, now):
            return
        self._drop_tombstone(conn, target)  # a copy is a deliberate write, not a late one
        self._touch_thread(conn, target, now)
        source_key = self._tkey(conn, source)
        if source_key is None:
            return
        args = (self._new_tkey(conn, target), source_key)
        conn.execute(
            "INSERT OR REPLACE INTO ck_checkpoints (tkey, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            "checkpoint, metadata, channel_versions, run_id) SELECT ?, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata, channel_versions, run_id FROM ck_checkpoints WHERE tkey = ?",
            args,
        )
        conn.execute(
            "INSERT OR REPLACE INTO ck_checkpoint_blobs (tkey, checkpoint_ns, channel, version, type, blob) "
            "SELECT ?, checkpoint_ns, channel, version, type, blob FROM ck_checkpoint_blobs WHERE tkey = ?",
            args,
        )
        conn.execute(
            "INSERT OR REPLACE INTO ck_checkpoint_writes (tkey, checkpoint_ns, checkpoint_id, task_id, idx, channel, "
            "type, blob, task_path) SELECT ?, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, task_path "
            "FROM ck_checkpoint_writes WHERE tkey = ?",
            args,
        )

    async def cp_usage(self, thread_id: str) -> ThreadBytes:
        """The thread's bytes counted by SQLite in one read (:class:`~contextkit.stores.CheckpointUsageStore`),
        as :mod:`contextkit.checkpoint_usage` counts them (text in its UTF-8 bytes)."""
        return await self._db.read(self._cp_usage, thread_id)

    def _cp_usage(self, conn: sqlite3.Connection, thread_id: str) -> ThreadBytes:
        if not self._thread_alive(conn, thread_id, time.time()):
            return ThreadBytes(0, 0, 0, {})
        tkey = self._tkey(conn, thread_id)
        if tkey is None:
            return ThreadBytes(0, 0, 0, {})
        key = (tkey,)
        # Stored codes count as the tags and paths they stand for: the report is of the values, not of the layout.
        parent_bytes = id_bytes_sql("COALESCE(parent_checkpoint_id, '')")
        count, rows = conn.execute(
            f"SELECT COUNT(*), COALESCE(SUM(length(checkpoint) + {type_bytes_sql('type')} "
            "+ length(CAST(metadata AS BLOB)) + length(CAST(channel_versions AS BLOB)) "
            f"+ {id_bytes_sql('checkpoint_id')} + {parent_bytes} "
            "+ length(CAST(checkpoint_ns AS BLOB))), 0) FROM ck_checkpoints WHERE tkey = ?",
            key,
        ).fetchone()
        (writes,) = conn.execute(
            f"SELECT COALESCE(SUM(length(blob) + {type_bytes_sql('type')} + length(CAST(channel AS BLOB)) "
            f"+ {id_bytes_sql('task_id')} + {path_bytes_sql('task_path')}), 0) FROM ck_checkpoint_writes "
            "WHERE tkey = ?",
            key,
        ).fetchone()
        channels = {
            channel: int(size)
            for channel, size in conn.execute(
                f"SELECT channel, SUM(length(blob) + {type_bytes_sql('type')}) FROM ck_checkpoint_blobs "
                "WHERE tkey = ? GROUP BY channel",
                key,
            )
        }
        return ThreadBytes(int(count), int(rows), int(writes), channels)

    async def cp_prune(
        self, thread_ids: Sequence[str], keep_latest: bool, *, policy: RetentionPolicy | None = None
    ) -> None:
        """Keep what ``policy`` retains per namespace (by default the newest checkpoint and the ancestors its
        ``DeltaChannel`` state is rebuilt from), with their writes and blobs; or delete the threads (as
        :meth:`cp_delete_thread`).

        A subgraph call's namespace (``node:task_id``) goes with the root checkpoint it started from, once that
        one is pruned. A kept checkpoint whose parent is pruned is left without a parent.
        """
        if not thread_ids:
            return
        await self._db.write(self._cp_prune, list(thread_ids), keep_latest, policy or KEEP_NEWEST)

    def _cp_prune(
        self, conn: sqlite3.Connection, thread_ids: list[str], keep_latest: bool, policy: RetentionPolicy
    ) -> None:
        now = time.time()
        for thread_id in thread_ids:
            if not keep_latest:
                self._cp_delete_thread(conn, thread_id)
                continue
            if not self._thread_alive(conn, thread_id, now):
                continue
            tkey = self._tkey(conn, thread_id)
            if tkey is None:
                continue
            namespaces = [
                row[0] for row in conn.execute("SELECT DISTINCT checkpoint_ns FROM ck_checkpoints WHERE tkey = ?", (tkey,))
            ]
            root_ids = {
                id_of(row[0])
                for row in conn.execute("SELECT checkpoint_id FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ''", (tkey,))
            }
            kept_root = self._prune_namespace(conn, tkey, thread_id, "", policy, now) if root_ids else set()
            for checkpoint_ns in namespaces:
                if checkpoint_ns == "":
                    continue
                newest = self._newest_row(conn, tkey, thread_id, checkpoint_ns)
                if newest is None:
                    continue
                started_from = (newest.metadata.get("parents") or {}).get("")
                if ":" in checkpoint_ns and started_from in root_ids and started_from not in kept_root:
                    for table in ("ck_checkpoints", "ck_checkpoint_writes", "ck_checkpoint_blobs"):
                        conn.execute(f"DELETE FROM {table} WHERE tkey = ? AND checkpoint_ns = ?", (tkey, checkpoint_ns))
                    continue
                self._prune_namespace(conn, tkey, thread_id, checkpoint_ns, policy, now)

    def _load_row(
        self, conn: sqlite3.Connection, tkey: int, thread_id: str, checkpoint_ns: str, checkpoint_id: str
    ) -> CheckpointRow | None:
        record = conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ? AND checkpoint_id = ?",
            (tkey, checkpoint_ns, stored_id(checkpoint_id)),
        ).fetchone()
        return None if record is None else self._row(thread_id, record)

    def _newest_row(self, conn: sqlite3.Connection, tkey: int, thread_id: str, checkpoint_ns: str) -> CheckpointRow | None:
        record = conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ? ORDER BY checkpoint_id DESC LIMIT 1",
            (tkey, checkpoint_ns),
        ).fetchone()
        return None if record is None else self._row(thread_id, record)

    @staticmethod
    def _row(thread_id: str, record: Sequence[Any], metadata: Mapping[str, Any] | None = None) -> CheckpointRow:
        """The row a ``_ROW_COLUMNS`` record stores (``metadata``: already decoded by the caller)."""
        checkpoint_ns, checkpoint_id, parent, type_, blob, metadata_text, versions = record
        return CheckpointRow(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=id_of(checkpoint_id),
            parent_checkpoint_id=None if parent is None else id_of(parent),
            # sqlite3 returns BLOB columns as bytes already: bytes() of bytes is the same object, no copy
            checkpoint=(type_of(type_), bytes(blob)),
            metadata=loads(metadata_text) if metadata is None else metadata,
            channel_versions=loads(versions),
        )

    def _prune_namespace(
        self,
        conn: sqlite3.Connection,
        tkey: int,
        thread_id: str,
        checkpoint_ns: str,
        policy: RetentionPolicy,
        now: float,
    ) -> set[str]:
        newest = self._newest_row(conn, tkey, thread_id, checkpoint_ns)
        if newest is None:
            return set()
        key = (tkey, checkpoint_ns)

        def has_value(row: CheckpointRow, channel: str) -> bool:
            version = row.channel_versions.get(channel)
            if version is None:
                return False
            found = conn.execute(
                "SELECT type FROM ck_checkpoint_blobs WHERE tkey = ? AND checkpoint_ns = ? AND channel = ? AND version = ?",
                (*key, channel, str(version)),
            ).fetchone()
            return found is not None and type_of(found[0]) != EMPTY_BLOB_TYPE

        if policy == KEEP_NEWEST:
            # The common prune reads only the newest row and its delta ancestors.
            ancestors = delta_ancestors(newest, lambda cid: self._load_row(conn, tkey, thread_id, checkpoint_ns, cid), has_value)
            keep = {newest.checkpoint_id, *ancestors}
        else:
            rows = {
                row.checkpoint_id: row
                for row in (
                    self._row(thread_id, record)
                    for record in conn.execute(
                        f"SELECT {_ROW_COLUMNS} FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ?", key
                    )
                )
            }
            keep = policy.retained(rows, has_value, now)
        kept = {stored_id(checkpoint_id) for checkpoint_id in keep}
        doomed = [
            (*key, stored)
            for (stored,) in conn.execute("SELECT checkpoint_id FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ?", key)
            if stored not in kept
        ]
        conn.executemany("DELETE FROM ck_checkpoints WHERE tkey = ? AND checkpoint_ns = ? AND checkpoint_id = ?", doomed)
        # The rows left are the kept ones. Writes of pruned checkpoints go; writes ahead of the newest wait for a
        # checkpoint still being saved.
        remaining = "SELECT checkpoint_id FROM ck_checkpoints WHERE tkey = ?1 AND checkpoint_ns = ?2"
        conn.execute(
            "DELETE FROM ck_checkpoint_writes WHERE tkey = ?1 AND checkpoint_ns = ?2 "
            f"AND checkpoint_id < ?3 AND checkpoint_id NOT IN ({remaining})",
            (*key, stored_id(newest.checkpoint_id)),
        )
        conn.execute(
            "UPDATE ck_checkpoints SET parent_checkpoint_id = NULL WHERE tkey = ?1 AND checkpoint_ns = ?2 "
            f"AND parent_checkpoint_id IS NOT NULL AND parent_checkpoint_id NOT IN ({remaining})",
            key,
        )
        self._collect_blobs(conn, tkey, checkpoint_ns)
        return keep
