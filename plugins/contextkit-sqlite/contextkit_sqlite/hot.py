"""The SQLite hot tier: :class:`SqliteHotStore`, a durable :class:`~contextkit.stores.HotStore` in one local file.

Sessions, history streams, task contexts, conversation sessions and the seed's checkpoint documents live in
``ck_*`` tables (see :mod:`contextkit_sqlite.schema`); LangGraph checkpoints come from
:class:`~contextkit_sqlite.checkpoints.SqliteCheckpoints`. Several processes may open the same file: every
write is one ``BEGIN IMMEDIATE`` transaction, so a stream's next ``seq``, an owner's next version and a session's
counters are computed under the file's write lock and never interleave (the guarantee holds across processes
because it is the file's lock, not a Python one).

Tiering (see "Tiering" in :mod:`contextkit.stores`): every owner has a meta row in ``ck_owners``
(:mod:`contextkit_sqlite.owners`). Each write reads it, takes the owner's next version, stores the record with
it, writes the write's archive event into the namespace's outbox table **in the same transaction**, and saves the
meta; the event's JSON is built before the transaction wherever it does not depend on what the transaction finds
(:mod:`contextkit_sqlite.rows`), so the write lock is held for little more than the statements. With
``settings.archived`` an owner without a live meta row raises :class:`~contextkit.errors.OwnerUnknown` before
anything is written (the transaction is rolled back), and so does (``stale``) one whose meta was written before
the file's last declared restore (:meth:`SqliteHotStore.mark_restored`, see :mod:`contextkit_sqlite.owners`);
without it, such an owner is new (versions and seqs from 1). A read of an archived store checks the meta in the
same read transaction as the data.

TTL is emulated: each row family carries an ``expires_at`` (epoch seconds) that reads check, and a bounded
sweep (at most ``sweep_batch`` rows of each kind, every ``sweep_interval`` seconds, on the write path) deletes
what expired. A session's family expires whole (see :mod:`contextkit_sqlite.owners`). A write to something that
expired starts it afresh rather than bringing the old data back.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from contextkit.archiver import FileOutbox, outbox_table_sql
from contextkit.errors import BackendUnavailable, CapabilityNotSupported, InvalidInput
from contextkit.naming import identifier_name
from contextkit.records import Message, Session, new_event_id
from contextkit.stores import ArchiveSpec, Capability, EventHead, OwnerState, SessionUpdate, StoreSettings, StoreStats
from contextkit.tiered.events import (
    checkpoint_document_event,
    conversation_session_event,
    delete_event,
    session_event,
    task_context_event,
    writes_document_event,
)
from contextkit_sqlite.checkpoints import SqliteCheckpoints
from contextkit_sqlite.database import SqliteDatabase, dumps, loads, parse_options, to_micros
from contextkit_sqlite.owners import CURRENT_EPOCH, Meta, SqliteOwners, meta_from_record, stale_sql
from contextkit_sqlite.rows import (
    SESSION_COLUMNS,
    MessageParts,
    OutboxRow,
    Unversioned,
    encode_messages,
    message_from_record,
    message_parts,
    outbox_row,
    session_event_head,
    session_event_row,
    session_from_record,
    session_params,
    unversioned_event,
    versioned_row,
)
from contextkit_sqlite.schema import HOT_MIGRATIONS

__all__ = ["SqliteHotStore"]

T = TypeVar("T")

_UPDATABLE_FIELDS = {"status", "user_id", "metadata"}
# The hot tables keyed by namespace first (drop_namespace empties them for one namespace).
_NAMESPACE_TABLES = (
    "ck_sessions",
    "ck_streams",
    "ck_messages",
    "ck_task_contexts",
    "ck_conversation_sessions",
    "ck_owners",
    "ck_threads",
    "ck_seed_checkpoints",
    "ck_seed_writes",
    "ck_tombstones",
    "ck_tombstone_dead",
)
# The LangGraph tables, keyed by their thread's ck_checkpoint_threads key (that table names the namespace).
_THREAD_KEYED_TABLES = ("ck_checkpoints", "ck_checkpoint_blobs", "ck_checkpoint_writes")


class SqliteHotStore(SqliteOwners, SqliteCheckpoints):
    """A hot tier in one SQLite file (WAL), shared by every process that opens the file.

    :param settings: the tier settings (namespace, TTLs, history cap, timeout, ``archived``, ``tombstone_ttl``).
    :param options: ``path`` (default ``./contextkit.sqlite3``; ``:memory:`` for tests) or ``url``
        (``sqlite:///path``), ``busy_timeout`` in seconds (default ``settings.timeout``), ``sweep_interval``
        and ``sweep_batch`` for the expiry sweep.
    """

    name = "sqlite"
    capabilities: frozenset[str] = frozenset(
        {
            Capability.DURABLE.value,
            Capability.SHARED.value,
            Capability.TTL.value,
            Capability.CHECKPOINTS.value,
            Capability.CHECKED_PUTS.value,
        }
    )

    @classmethod
    def from_options(cls, settings: StoreSettings, options: Mapping[str, Any]) -> SqliteHotStore:
        """The factory registered as the hot tier ``sqlite``: validates ``options``
        (:func:`~contextkit_sqlite.options.parse_options`), does no I/O; ``await store.open()`` connects."""
        return cls(settings, options)

    def __init__(self, settings: StoreSettings, options: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self.options = parse_options(options or {}, settings.timeout)
        self._db = SqliteDatabase(self.options, HOT_MIGRATIONS)
        self._ns = settings.namespace
        self._archived = settings.archived
        self._next_sweep = 0.0
        # The archive outbox of this namespace is a table of the same file, so a write and its archive event are
        # committed together and both survive a crash of the app (an in-memory database has no file to share).
        # Its name is the namespace's identifier name: reversible and lowercase (SQLite compares table names
        # without regard to case), so two namespaces never share an outbox.
        #: The table of this namespace's archive outbox in the database file.
        self.outbox_table = "ck_outbox_" + identifier_name(self._ns)
        # Earlier versions named it after 16 hex digits of the namespace's SHA-256; open() renames such a table.
        self._legacy_outbox_table = "ck_outbox_" + hashlib.sha256(self._ns.encode("utf-8")).hexdigest()[:16]
        self._outbox_insert = f"INSERT OR IGNORE INTO {self.outbox_table} (event_id, created_at, body) VALUES (?, ?, ?)"
        self._outbox_created = False
        if self.options.path != ":memory:":
            self.capabilities = self.capabilities | {Capability.OUTBOX.value, Capability.ATOMIC_OUTBOX.value}

    def __repr__(self) -> str:
        return f"SqliteHotStore(path={self.options.path!r}, namespace={self._ns!r})"

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the file, set WAL and the pragmas, run pending migrations, take over the outbox table of an
        earlier version, and sweep what expired."""
        await self._db.open()
        if self.options.path != ":memory:":
            await self._db.write(self._rename_legacy_outbox)
        self._next_sweep = time.monotonic() + self.options.sweep_interval
        await self.sweep_expired()

    def _rename_legacy_outbox(self, conn: sqlite3.Connection) -> None:
        """The outbox table an earlier version named after a hash of the namespace becomes this namespace's outbox
        table (its events merged in when both exist), so events it still held are archived, not stranded."""
        def exists(table: str) -> bool:
            return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None

        legacy = self._legacy_outbox_table
        if not exists(legacy):
            return
        if not exists(self.outbox_table):
            conn.execute(f"ALTER TABLE {legacy} RENAME TO {self.outbox_table}")
            return
        conn.execute(
            f"INSERT OR IGNORE INTO {self.outbox_table} (event_id, created_at, body) "
            f"SELECT event_id, created_at, body FROM {legacy} ORDER BY seq"
        )
        conn.execute(f"DROP TABLE {legacy}")

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        await self._db.close()

    async def __aenter__(self) -> SqliteHotStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def health(self) -> dict[str, Any]:
        """``healthy`` with the latency of a trivial query, the journal mode and the file's restore epoch (the
        number of the last declared restore, 0 for none: see :meth:`mark_restored`), or ``unhealthy`` with the
        reason; never raises."""
        base = {"backend": self.name, "path": self.options.path, "namespace": self._ns}
        try:
            latency = await self._db.ping()
            epoch = await self._db.run(lambda conn: int(conn.execute(f"SELECT {CURRENT_EPOCH}").fetchone()[0]))
        except Exception as exc:
            return {**base, "status": "unhealthy", "latency_ms": -1.0, "error": str(exc)}
        return {
            **base,
            "status": "healthy",
            "latency_ms": round(latency, 3),
            "journal_mode": self._db.journal_mode,
            "restore_epoch": epoch,
        }

    def describe(self) -> dict[str, Any]:
        """Backend, file path and options (a file path holds no secret); no I/O."""
        return {
            "backend": self.name,
            "tier": "hot",
            "path": self.options.path,
            "namespace": self._ns,
            "busy_timeout": self.options.busy_timeout,
            "history_cap": self.settings.history_cap,
            "session_ttl": self.settings.session_ttl,
            "checkpoint_ttl": self.settings.checkpoint_ttl,
            "archived": self._archived,
            "capabilities": sorted(self.capabilities),
        }

    async def stats(self) -> StoreStats:
        """Counts of live rows in this namespace, read from the file (so shared by every process)."""
        return await self._db.read(self._stats)

    def _stats(self, conn: sqlite3.Connection) -> StoreStats:
        now = time.time()
        ns = self._ns
        sessions, active = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'active'), 0) FROM ck_sessions WHERE namespace = ? AND expires_at > ?",
            (ns, now),
        ).fetchone()
        messages = conn.execute(
            "SELECT COUNT(*) FROM ck_messages m JOIN ck_streams s ON s.namespace = m.namespace "
            "AND s.stream_key = m.stream_key WHERE m.namespace = ? AND s.expires_at > ?",
            (ns, now),
        ).fetchone()[0]
        checkpoints = 0
        for query in (
            # LangGraph's rows name their thread by its key; the seed's documents by namespace and thread id
            "SELECT COUNT(*) FROM ck_checkpoints c JOIN ck_checkpoint_threads k ON k.tkey = c.tkey "
            "WHERE k.namespace = ? AND NOT EXISTS (SELECT 1 FROM ck_threads t WHERE t.namespace = k.namespace "
            "AND t.thread_id = k.thread_id AND t.expires_at <= ?)",
            "SELECT COUNT(*) FROM ck_seed_checkpoints c WHERE c.namespace = ? AND NOT EXISTS (SELECT 1 FROM ck_threads t "
            "WHERE t.namespace = c.namespace AND t.thread_id = c.thread_id AND t.expires_at <= ?)",
        ):
            checkpoints += conn.execute(query, (ns, now)).fetchone()[0]
        return StoreStats(sessions=sessions, active_sessions=active, messages=messages, checkpoints=checkpoints)

    # -- transactions -------------------------------------------------------------------------------------------
    async def _write(self, fn: Callable[..., T], *args: Any, events: bool = False, inline: bool = False) -> T:
        """Run ``fn`` in a write transaction, then maybe sweep. ``events``: it may write into the outbox table,
        which the transaction then creates first, until one such transaction committed (the flag is set only
        then, so a rollback cannot leave it claiming a table that is not there). ``inline``: a small write, run on
        the caller's thread when the connection is free (:meth:`SqliteDatabase.write`)."""
        result: T
        if events and not self._outbox_created:
            result = await self._db.write(self._creating_outbox, fn, args)
            self._outbox_created = True
        else:
            result = await self._db.write(fn, *args, inline=inline)
        await self._maybe_sweep()
        return result

    def _creating_outbox(self, conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn.execute(outbox_table_sql(self.outbox_table))
        return fn(conn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read: in a read transaction when archived (the meta check and the data read see one snapshot,
        so an owner evicted in between raises OwnerUnknown rather than reading empty), else as it comes."""
        if self._archived:
            return await self._db.read(fn, *args)
        return await self._db.run(fn, *args)

    def _check_outbox(self) -> None:
        if Capability.OUTBOX.value not in self.capabilities:
            raise CapabilityNotSupported("an in-memory SQLite database has no file to keep an archive outbox in")

    def _put_events(self, conn: sqlite3.Connection, rows: Sequence[OutboxRow]) -> None:
        """Write archive events into the outbox table, in the caller's transaction (the rows FileOutbox.push would
        write; the transaction was started with ``events=True``, see :meth:`_write`)."""
        if rows:
            conn.executemany(self._outbox_insert, rows)

    async def restore_owner(self, state: OwnerState) -> None:
        """See :meth:`contextkit.stores.HotStore.restore_owner`: one transaction that does nothing when the owner
        has an up-to-date meta row (another caller restored it, or wrote first), creates the meta with the state's
        counters and stores its records where no live row is when it has none, and reconciles a meta written
        before the file's last declared restore (:meth:`mark_restored`) with the state."""
        cap = max(self.settings.history_cap, 0)
        history = list(state.history[-cap:]) if cap else []
        rows = {
            "session": None if state.session is None else session_params(state.session),
            "task": None if state.task_context is None else dumps(dict(state.task_context.document)),
            "conversation": None if state.conversation is None else dumps(dict(state.conversation.document)),
        }
        seqs = [m.seq for m in history]
        await self._write(self._restore_owner, state, rows, seqs, encode_messages(history))

    async def mark_restored(self, backup: str | None = None) -> int:
        """Declare that the file was put back to an older copy of itself (a backup copied back): raise the file's
        epoch, so every owner written before (in any namespace of the file, since the copy rolled them all back) is
        taken as possibly older than the archive at its next call (``OwnerUnknown(stale=True)``) and reconciled
        with it first. Returns the new epoch. Run it (``contextkit hot-restored``) right after the copy, before
        the applications write again: a write in between is numbered from the copy's counters.

        With ``backup`` (the path of a copy of a hot file, taken with SQLite's backup API or while no process had
        the file open), this store first copies it into the file itself, with the new epoch already in the copy,
        so no write of any process falls between the two (``contextkit hot-restored --from BACKUP``). The backup
        is left as it is; one of an older schema is migrated in the copy. Raises
        :class:`~contextkit.errors.InvalidInput` when ``backup`` is missing, is this file, or is not a contextkit
        hot file."""
        if backup is None:
            return await self._db.write(self._mark_restored)
        if self.options.path == ":memory:":
            raise InvalidInput("an in-memory SQLite database cannot be restored from a backup")
        return await self._db.run(self._restore_from, Path(backup))

    def _mark_restored(self, conn: sqlite3.Connection, floor: int = 0) -> int:
        """Add the next restore (above ``floor`` too) to ``ck_restores``; returns its epoch."""
        if Capability.OUTBOX.value in self.capabilities:
            # A backup taken before this namespace's first archived write has no outbox table, which this store
            # (having written since) no longer creates on its own.
            conn.execute(outbox_table_sql(self.outbox_table))
        row = conn.execute(
            f"INSERT INTO ck_restores (epoch, declared_at) VALUES (MAX({CURRENT_EPOCH}, ?) + 1, ?) RETURNING epoch",
            (floor, datetime.now(timezone.utc).isoformat()),
        ).fetchone()
        return int(row[0])

    def _restore_from(self, conn: sqlite3.Connection, source: Path) -> int:
        if not source.is_file():  # (sqlite3.connect would create it)
            raise InvalidInput(f"the backup {source} does not exist or is not a file")
        if source.resolve() == Path(self.options.path).resolve():
            raise InvalidInput(f"the backup {source} is the hot file itself")
        # A scratch copy beside the file (same file system): the backup stays untouched, and the copy gets the
        # migrations and the new epoch before it replaces the file in one backup step under the file's lock.
        with tempfile.TemporaryDirectory(dir=Path(self.options.path).resolve().parent, prefix=".ck-restore-") as tmp:
            scratch = Path(tmp) / "restore.sqlite3"
            try:
                with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(scratch)) as dst:
                    src.backup(dst)
            except sqlite3.DatabaseError as exc:
                raise InvalidInput(f"the backup {source} is not a SQLite database: {exc}") from exc
            with closing(sqlite3.connect(scratch, isolation_level=None)) as copy:
                hot = copy.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ck_migrations'"
                ).fetchone() and copy.execute("SELECT 1 FROM ck_migrations WHERE component = 'hot'").fetchone()
                if not hot:
                    raise InvalidInput(f"the backup {source} is not a contextkit SQLite hot file")
                SqliteDatabase(self.options, HOT_MIGRATIONS).prepare(copy)
                current = int(conn.execute(f"SELECT {CURRENT_EPOCH}").fetchone()[0])
                epoch = self._mark_restored(copy, current)
                copy.backup(conn)
        return epoch

    async def drop_namespace(self) -> int:
        """Delete every row of this namespace: its sessions, histories, documents, owners and tombstones, seed and
        LangGraph checkpoints, and the events waiting in its outbox table, in one transaction; returns how many
        rows went. Meant for tests and maintenance (the hot tier losing everything at once): it walks the
        namespace, unlike the data path."""
        return await self._db.write(self._drop_namespace)

    def _drop_namespace(self, conn: sqlite3.Connection) -> int:
        removed = 0
        for table in _NAMESPACE_TABLES:
            removed += conn.execute(f"DELETE FROM {table} WHERE namespace = ?", (self._ns,)).rowcount
        for table in _THREAD_KEYED_TABLES:
            removed += conn.execute(
                f"DELETE FROM {table} WHERE tkey IN (SELECT tkey FROM ck_checkpoint_threads WHERE namespace = ?)",
                (self._ns,),
            ).rowcount
        conn.execute("DELETE FROM ck_checkpoint_threads WHERE namespace = ?", (self._ns,))
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.outbox_table,))
        if exists.fetchone() is not None:
            removed += conn.execute(f"DELETE FROM {self.outbox_table}").rowcount
        return removed

    # -- expiry -------------------------------------------------------------------------------------------------
    async def sweep_expired(self) -> int:
        """Delete up to ``sweep_batch`` expired rows of each kind in this namespace; returns how many records went
        (forgotten metas and tombstones are not records and are not counted)."""
        return await self._db.write(self._sweep)

    async def _maybe_sweep(self) -> None:
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + self.options.sweep_interval
        try:
            await self.sweep_expired()
        except BackendUnavailable:
            pass  # expiry is also checked on read; the next sweep retries

    def _sweep(self, conn: sqlite3.Connection) -> int:
        now = time.time()
        batch = self.options.sweep_batch
        ns = self._ns
        removed = 0
        for table in ("ck_sessions", "ck_task_contexts", "ck_conversation_sessions"):
            removed += conn.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE namespace = ? AND expires_at <= ? LIMIT ?)",
                (ns, now, batch),
            ).rowcount
        streams = conn.execute(
            "SELECT stream_key FROM ck_streams WHERE namespace = ? AND expires_at <= ? LIMIT ?", (ns, now, batch)
        ).fetchall()
        for (key,) in streams:
            self._drop_stream(conn, key)
        threads = conn.execute(
            "SELECT thread_id FROM ck_threads WHERE namespace = ? AND expires_at <= ? LIMIT ?", (ns, now, batch)
        ).fetchall()
        for (thread_id,) in threads:
            self._purge_thread(conn, thread_id, True)
            conn.execute("DELETE FROM ck_threads WHERE namespace = ? AND thread_id = ?", (ns, thread_id))
        # A meta outlives every record of its owner, so an expired one has nothing left to count for.
        conn.execute(
            "DELETE FROM ck_owners WHERE rowid IN (SELECT rowid FROM ck_owners WHERE namespace = ? AND expires_at <= ? "
            "LIMIT ?)",
            (ns, now, batch),
        )
        return removed + len(streams) + len(threads)

    # -- sessions -----------------------------------------------------------------------------------------------
    async def put_session(
        self, session: Session, *, task_context: Mapping[str, Any] | None = None, archive: EventHead | None = None
    ) -> Session:
        """Store ``session`` whole (create or replace; a tombstoned owner lives again) and start its TTL under the
        owner's next version; with ``task_context``, store that document too under the version after it. With
        ``archive``, both events go into the outbox table in the same transaction."""
        params = session_params(session)
        document = None if task_context is None else dumps(dict(task_context))
        events: list[Unversioned] = []
        if archive is not None:
            self._check_outbox()
            events.append(unversioned_event(session_event(session, archive)))
            if task_context is not None:
                head = replace(archive, event_id=new_event_id())
                events.append(unversioned_event(task_context_event(session.session_id, task_context, 0, head)))
        version: int = await self._write(self._put_session, params, document, events, events=bool(events))
        return replace(session, version=version)

    def _put_session(
        self, conn: sqlite3.Connection, params: tuple[Any, ...], document: str | None, events: list[Unversioned]
    ) -> int:
        now = time.time()
        sid = params[0]
        meta = self._write_meta(conn, sid, now)
        version = meta.version + 1
        expires = now + self.settings.session_ttl
        conn.execute(
            f"INSERT OR REPLACE INTO ck_sessions (namespace, {SESSION_COLUMNS}, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self._ns, *params, version, expires),
        )
        meta.version = version
        if document is not None:
            meta.version += 1
            conn.execute(
                "INSERT OR REPLACE INTO ck_task_contexts (namespace, session_id, document, expires_at, version) "
                "VALUES (?, ?, ?, ?, ?)",
                (self._ns, sid, document, expires, meta.version),
            )
        meta.tomb_until = None
        self._touch_group(conn, sid, now, saved=sid, session=False)
        self._save_meta(conn, sid, meta, expires)
        self._put_events(conn, [versioned_row(part, version + i) for i, part in enumerate(events)])
        return version

    async def get_session(self, session_id: str) -> Session | None:
        """The session (with its version), or None when it does not exist, expired or was deleted."""
        return await self._read(self._get_session, session_id)

    def _get_session(self, conn: sqlite3.Connection, session_id: str) -> Session | None:
        now = time.time()
        self._known(conn, session_id, now)
        return self._live_session(conn, session_id, now)

    async def update_session(
        self, session_id: str, update: SessionUpdate, *, archive: EventHead | None = None
    ) -> Session | None:
        """Apply counter increments, replaced fields and the activity time under the owner's next version, and
        refresh the TTLs; None (nothing written) if the session does not exist. With ``archive``, the updated
        session's event goes into the outbox table in the same transaction."""
        unknown = set(update.fields) - _UPDATABLE_FIELDS
        if unknown:
            raise InvalidInput(f"cannot update session field(s) {', '.join(sorted(unknown))}")
        head = None
        if archive is not None:
            self._check_outbox()
            head = session_event_head(session_id, archive)
        fields = update.fields
        metadata = fields.get("metadata")
        params = (
            int(update.requests),
            int(update.errors),
            float(update.processing_time),
            to_micros(update.activity),
            None if fields.get("status") is None else str(fields["status"]),
            None if fields.get("user_id") is None else str(fields["user_id"]),
            None if metadata is None else dumps(dict(metadata)),
        )
        record = await self._write(self._update_session, session_id, update, params, head, events=head is not None)
        # Decoded after the commit: the write lock is held for the statements only.
        return None if record is None else session_from_record(record)

    def _update_session(
        self,
        conn: sqlite3.Connection,
        session_id: str,
        update: SessionUpdate,
        params: tuple[Any, ...],
        head: tuple[str, str, str] | None,
    ) -> tuple[Any, ...] | None:
        now = time.time()
        meta = self._read_meta(conn, session_id, now)
        if update.requests or update.errors or update.processing_time:
            # Checked under the write lock before anything is written: SQLite would store an overflowing REAL as
            # Inf and turn an overflowing INTEGER into a REAL, and the update would be applied all the same.
            current = conn.execute(
                "SELECT request_count, error_count, total_processing_time FROM ck_sessions "
                "WHERE namespace = ? AND session_id = ? AND expires_at > ?",
                (self._ns, session_id, now),
            ).fetchone()
            if current is not None:
                update.counters_after(session_id, *current)
        version = (0 if meta is None else meta.version) + 1
        expires = now + self.settings.session_ttl
        records = conn.execute(
            "UPDATE ck_sessions SET request_count = request_count + ?, error_count = error_count + ?, "
            "total_processing_time = total_processing_time + ?, last_activity = MAX(last_activity, ?), "
            "status = COALESCE(?, status), user_id = COALESCE(?, user_id), metadata = COALESCE(?, metadata), "
            "version = ?, expires_at = ? WHERE namespace = ? AND session_id = ? AND expires_at > ? "
            f"RETURNING {SESSION_COLUMNS}",
            (*params, version, expires, self._ns, session_id, now),
        ).fetchall()
        if not records:
            return None
        record: tuple[Any, ...] = records[0]
        # Activity keeps the session's whole family alive with it (never shortening a TTL).
        self._touch_group(conn, session_id, now, saved=session_id, session=False)
        updated = meta or Meta()
        updated.version = version
        self._save_meta(conn, session_id, updated, expires)
        if head is not None:
            # The payload is the session as the update left it, only known here, under the lock: the event's
            # JSON is completed from the stored columns (see session_event_row).
            self._put_events(conn, [session_event_row(head, record)])
        return record

    async def delete_session(self, session_id: str, *, archive: EventHead | None = None, evict: bool = False) -> bool:
        """Remove the owner and every key family of it, and each conversation session registered under it (see
        :meth:`contextkit.stores.HotStore.delete_session`): with ``settings.archived`` each removed owner keeps a
        tombstone under its next version and, with ``archive``, its delete event goes into the outbox table, all
        in one transaction. ``evict=True`` forgets the owners instead (no tombstone, no event)."""
        if archive is not None and not evict:
            self._check_outbox()
        return await self._write(self._delete_session, session_id, archive, evict, events=archive is not None)

    def _delete_session(
        self, conn: sqlite3.Connection, session_id: str, archive: EventHead | None, evict: bool
    ) -> bool:
        now = time.time()
        keys = [
            row[0]
            for row in conn.execute(
                "SELECT session_key FROM ck_conversation_sessions INDEXED BY ck_conversation_sessions_owner "
                "WHERE namespace = ? AND session_id = ? AND session_key != ? AND expires_at > ? ORDER BY session_key",
                (self._ns, session_id, session_id, now),
            )
        ]
        owners = [session_id, *keys]
        existed = self._live_session(conn, session_id, now)
        if evict:
            for owner in owners:
                self._drop_owner(conn, owner)
                self._forget(conn, owner)
            return existed is not None
        # Every owner is checked before anything is removed: an unknown one rolls the whole delete back.
        metas = [self._read_meta(conn, owner, now) for owner in owners]
        events: list[OutboxRow] = []
        for owner, meta in zip(owners, metas, strict=True):
            tombstone = meta is not None and meta.tomb_until is not None
            # An owner that holds nothing is left alone when it is a tombstone already (a second delete adds no
            # event) or never had anything (an id the archive does not know either).
            had = meta is not None and (meta.version > 0 or meta.last_seq > 0) and not tombstone
            write = self._archived and (had or self._holds(conn, owner, now))
            session = existed if owner == session_id else self._live_session(conn, owner, now)
            self._drop_owner(conn, owner)
            if not write:
                if not tombstone:
                    self._forget(conn, owner)  # nothing of it lives: the next write starts it afresh
                continue
            current = meta or Meta()
            current.version += 1
            # Remembered while the meta lives: read-through skips what the delete covers, pending or archived.
            current.deleted_version, current.deleted_seq = current.version, current.last_seq
            current.tomb_until = now + self.settings.tombstone_ttl
            self._save_meta(conn, owner, current, current.tomb_until)
            if archive is not None:
                head = archive if owner == session_id else replace(archive, event_id=new_event_id())
                events.append(outbox_row(delete_event(owner, current.version, current.last_seq, session, head)))
        self._put_events(conn, events)
        return existed is not None

    async def scan_sessions(self, cursor: str | None, count: int) -> tuple[list[Session], str | None]:
        """A page of sessions ordered by id after ``cursor`` (keyset pagination: stable under concurrent writes)."""
        return await self._db.run(self._scan_sessions, cursor, max(1, int(count)))

    def _scan_sessions(self, conn: sqlite3.Connection, cursor: str | None, count: int) -> tuple[list[Session], str | None]:
        after = "" if cursor is None else cursor
        records = conn.execute(
            f"SELECT {SESSION_COLUMNS} FROM ck_sessions WHERE namespace = ? AND session_id > ? AND expires_at > ? "
            "ORDER BY session_id LIMIT ?",
            (self._ns, after, time.time(), count + 1),
        ).fetchall()
        sessions = [session_from_record(r) for r in records[:count]]
        next_cursor = sessions[-1].session_id if len(records) > count else None
        return sessions, next_cursor

    async def idle_sessions(self, before: datetime, limit: int) -> list[str]:
        """Ids of live sessions whose ``last_activity`` is older than ``before``, oldest first, from an index."""
        if limit <= 0:
            return []
        return await self._db.run(self._idle_sessions, to_micros(before), int(limit))

    def _idle_sessions(self, conn: sqlite3.Connection, before: int, limit: int) -> list[str]:
        return [
            row[0]
            for row in conn.execute(
                "SELECT session_id FROM ck_sessions WHERE namespace = ? AND last_activity < ? AND expires_at > ? "
                "ORDER BY last_activity LIMIT ?",
                (self._ns, before, time.time(), limit),
            )
        ]

    # -- history streams ----------------------------------------------------------------------------------------
    def outbox(self, max_pending: int = 10_000_000) -> FileOutbox:
        """The durable archive outbox of this namespace: a table of this database file (capability ``outbox``;
        every write puts its archive events into it in its own transaction, capability ``atomic_outbox``)."""
        self._check_outbox()
        return FileOutbox(self.options.path, max_pending, table=self.outbox_table)

    async def append_messages(
        self, key: str, messages: Sequence[Message], *, archive: ArchiveSpec | None = None
    ) -> list[Message]:
        """Append at the tail with consecutive seqs continuing above the highest the stream ever had (under the
        write lock), trim the oldest, refresh the family's TTL; move the session ``key``'s last_activity forward
        to the newest message when that session exists. With ``archive``, the messages' archive events go into
        the outbox table in the same transaction."""
        if not messages:
            return []
        encoded = encode_messages(messages)
        events = None
        if archive is not None:
            self._check_outbox()
            events = message_parts(key, messages, archive)
        first_seq: int = await self._write(self._append, key, encoded, events, events=events is not None)
        return [m.with_seq(first_seq + i) for i, m in enumerate(messages)]

    def _append(
        self,
        conn: sqlite3.Connection,
        key: str,
        encoded: list[tuple[Any, ...]],
        events: list[MessageParts] | None = None,
    ) -> int:
        now = time.time()
        ns = self._ns
        # The meta, the stream and the family the key belongs to, in one probe.
        row = conn.execute(
            "SELECT o.version, o.last_seq, o.tomb_until, o.expires_at, o.deleted_version, o.deleted_seq, "
            f"{stale_sql('o')}, s.last_pos, s.expires_at, (SELECT c.session_id FROM ck_conversation_sessions c "
            "WHERE c.namespace = o.namespace AND c.session_key = o.owner AND c.expires_at > ?) "
            "FROM ck_owners o LEFT JOIN ck_streams s ON s.namespace = o.namespace AND s.stream_key = o.owner "
            "WHERE o.namespace = ? AND o.owner = ? AND o.expires_at > ?",
            (now, ns, key, now),
        ).fetchone()
        if row is None:
            self._checked(key, None)  # OwnerUnknown when archived
            meta, last_pos, root = Meta(), 0, key
            self._drop_stream(conn, key)  # leftovers of an expired life (a meta outlives its stream)
        else:
            meta = meta_from_record(row, now)
            self._checked(key, meta)  # OwnerUnknown(stale=True) when archived and written before a restore
            last_pos, root = (row[7] or 0), (row[9] or key)
            if row[8] is not None and row[8] <= now:
                self._drop_stream(conn, key)
                last_pos = 0
        last_seq = meta.last_seq
        conn.executemany(
            "INSERT INTO ck_messages (namespace, stream_key, pos, seq, id, role, content, timestamp, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(ns, key, last_pos + i, last_seq + i, *values) for i, values in enumerate(encoded, start=1)],
        )
        new_pos = last_pos + len(encoded)
        expires = now + self.settings.session_ttl
        conn.execute(
            "INSERT INTO ck_streams (namespace, stream_key, last_pos, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (namespace, stream_key) DO UPDATE SET last_pos = excluded.last_pos, expires_at = excluded.expires_at",
            (ns, key, new_pos, expires),
        )
        cap = max(1, self.settings.history_cap)
        if new_pos > cap:
            conn.execute("DELETE FROM ck_messages WHERE namespace = ? AND stream_key = ? AND pos <= ?", (ns, key, new_pos - cap))
        # A message is activity: the session whose history this is moves its last_activity forward and its whole
        # family lives on with it (as update_session would do).
        newest = max(values[3] for values in encoded)
        if root == key:
            self._touch_group(conn, key, now, activity=newest, saved=key, appended=key)
        else:
            self._touch_group(conn, root, now, saved=key, appended=key)
        meta.last_seq = last_seq + len(encoded)
        self._save_meta(conn, key, meta, expires)
        if events is not None:
            self._put_events(
                conn,
                [
                    (event_id, created_at, f'{head}{{"seq":{last_seq + i},{rest}}}}}')
                    for i, (event_id, created_at, head, rest) in enumerate(events, start=1)
                ],
            )
        return last_seq + 1

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        """The newest ``limit`` messages (all kept when None) in chronological order, from the (stream, pos) index."""
        if limit is not None and limit <= 0:
            if self._archived:
                await self._read(self._bounds, key)  # an unknown owner still raises OwnerUnknown
            return []
        return await self._read(self._read_history, key, -1 if limit is None else int(limit))

    def _read_history(self, conn: sqlite3.Connection, key: str, limit: int) -> list[Message]:
        now = time.time()
        self._known(conn, key, now)
        records = conn.execute(
            "SELECT seq, id, role, content, timestamp, metadata FROM ck_messages WHERE namespace = ? "
            "AND stream_key = ? AND EXISTS (SELECT 1 FROM ck_streams WHERE namespace = ? AND stream_key = ? "
            "AND expires_at > ?) ORDER BY pos DESC LIMIT ?",
            (self._ns, key, self._ns, key, now, limit),
        ).fetchall()
        records.reverse()
        return [message_from_record(r) for r in records]

    def _kept(self, conn: sqlite3.Connection, key: str, now: float) -> tuple[int, int, int]:
        """``(kept, first kept pos, first kept seq)`` of a live stream (zeros when none), from two index probes."""
        stream = conn.execute(
            "SELECT last_pos FROM ck_streams WHERE namespace = ? AND stream_key = ? AND expires_at > ?",
            (self._ns, key, now),
        ).fetchone()
        if stream is None:
            return 0, 0, 0
        first = conn.execute(
            "SELECT pos, seq FROM ck_messages WHERE namespace = ? AND stream_key = ? ORDER BY pos LIMIT 1",
            (self._ns, key),
        ).fetchone()
        if first is None:
            return 0, 0, 0
        # Positions are contiguous: trimming removes a prefix, backfill prepends, replace_history renumbers from 1.
        return stream[0] - first[0] + 1, first[0], first[1]

    def _bounds(self, conn: sqlite3.Connection, key: str) -> tuple[int, int, int]:
        """``(kept, first_seq, last_seq)``: the highest seq ever assigned comes from the owner's meta."""
        now = time.time()
        meta = self._read_meta(conn, key, now)
        kept, _, first = self._kept(conn, key, now)
        return kept, first, 0 if meta is None else meta.last_seq

    async def history_length(self, key: str) -> int:
        """Number of messages kept in the stream."""
        kept, _, _ = await self._db.read(self._bounds, key)
        return kept

    async def history_bounds(self, key: str) -> tuple[int, int]:
        """``(first_seq, last_seq)``: the seq of the oldest kept message (0 when none is kept) and the highest seq
        ever assigned in the stream (0 for a new one)."""
        _, first, last = await self._db.read(self._bounds, key)
        return first, last

    async def delete_mark(self, owner: str) -> tuple[int, int]:
        """``(version, last_seq)`` of the owner's last delete while its meta lives, ``(0, 0)`` when none is known
        (see :meth:`contextkit.stores.HotStore.delete_mark`)."""
        return await self._db.read(self._delete_mark, owner)

    def _delete_mark(self, conn: sqlite3.Connection, owner: str) -> tuple[int, int]:
        meta = self._read_meta(conn, owner, time.time())
        return (0, 0) if meta is None else (meta.deleted_version, meta.deleted_seq)

    async def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Replace the whole stream atomically with ``messages`` as given (seq included); the highest seq never
        goes down. Nothing is archived and no version is taken."""
        seqs = [m.seq for m in messages]
        await self._write(self._replace_history, key, seqs, encode_messages(messages))

    def _replace_history(self, conn: sqlite3.Connection, key: str, seqs: list[int], encoded: list[tuple[Any, ...]]) -> None:
        now = time.time()
        ns = self._ns
        meta = self._write_meta(conn, key, now)
        # The highest seq ever assigned never goes back, so appends after a compaction keep counting up.
        meta.last_seq = max([meta.last_seq, *seqs])
        self._drop_stream(conn, key)
        conn.executemany(
            "INSERT INTO ck_messages (namespace, stream_key, pos, seq, id, role, content, timestamp, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(ns, key, pos, seq, *values) for pos, (seq, values) in enumerate(zip(seqs, encoded, strict=True), start=1)],
        )
        expires = now + self.settings.session_ttl
        conn.execute(
            "INSERT INTO ck_streams (namespace, stream_key, last_pos, expires_at) VALUES (?, ?, ?, ?)",
            (ns, key, len(encoded), expires),
        )
        self._touch_group(conn, self._root(conn, key, now), now, saved=key, appended=key)
        self._save_meta(conn, key, meta, expires)

    async def backfill_history(self, key: str, older: Sequence[Message]) -> int:
        """Insert the archived messages ``older`` that are older than every kept message (all of them into an
        empty stream) before the kept ones, keeping at most the cap; never displaces or renumbers a kept message.
        Returns how many were inserted."""
        ordered = sorted(older, key=lambda m: m.seq)
        seqs = [m.seq for m in ordered]
        return await self._write(self._backfill, key, seqs, encode_messages(ordered))

    def _backfill(self, conn: sqlite3.Connection, key: str, seqs: list[int], encoded: list[tuple[Any, ...]]) -> int:
        now = time.time()
        ns = self._ns
        meta = self._read_meta(conn, key, now)
        if meta is None:
            return 0
        kept, first_pos, first_seq = self._kept(conn, key, now)
        floor = first_seq if kept else meta.last_seq + 1
        room = max(self.settings.history_cap, 0) - kept
        candidates = [(seq, values) for seq, values in zip(seqs, encoded, strict=True) if seq < floor]
        candidates = candidates[-room:] if room > 0 else []
        if not candidates:
            return 0
        expires = now + self.settings.session_ttl
        if kept:
            # Positions below the first kept one: the stream stays contiguous and ordered by position.
            start = first_pos - len(candidates)
        else:
            self._drop_stream(conn, key)
            start = 1
            conn.execute(
                "INSERT INTO ck_streams (namespace, stream_key, last_pos, expires_at) VALUES (?, ?, ?, ?)",
                (ns, key, len(candidates), expires),
            )
        conn.executemany(
            "INSERT INTO ck_messages (namespace, stream_key, pos, seq, id, role, content, timestamp, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(ns, key, start + i, seq, *values) for i, (seq, values) in enumerate(candidates)],
        )
        meta.last_seq = max(meta.last_seq, candidates[-1][0])
        self._touch_group(conn, self._root(conn, key, now), now, saved=key)
        self._save_meta(conn, key, meta, expires)
        return len(candidates)

    # -- task contexts and conversation sessions ------------------------------------------------------------------
    async def put_task_context(
        self, session_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store the task context document of a session (replacing any previous one) under the owner's next
        version, with the session family's TTL. With ``archive``, its event goes into the outbox table in the
        same transaction."""
        text = dumps(dict(document))
        event = None
        if archive is not None:
            self._check_outbox()
            event = unversioned_event(task_context_event(session_id, document, 0, archive))
        await self._write(self._put_task_context, session_id, text, event, events=event is not None)

    def _put_task_context(self, conn: sqlite3.Connection, session_id: str, text: str, event: Unversioned | None) -> None:
        now = time.time()
        meta = self._write_meta(conn, session_id, now)
        meta.version += 1
        expires = now + self.settings.session_ttl
        conn.execute(
            "INSERT OR REPLACE INTO ck_task_contexts (namespace, session_id, document, expires_at, version) "
            "VALUES (?, ?, ?, ?, ?)",
            (self._ns, session_id, text, expires, meta.version),
        )
        self._touch_group(conn, self._root(conn, session_id, now), now, saved=session_id)
        self._save_meta(conn, session_id, meta, expires)
        if event is not None:
            self._put_events(conn, [versioned_row(event, meta.version)])

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The stored task context document, or None."""
        return await self._read(self._get_document, "ck_task_contexts", "session_id", session_id)

    def _get_document(self, conn: sqlite3.Connection, table: str, column: str, key: str) -> dict[str, Any] | None:
        now = time.time()
        self._known(conn, key, now)
        row = conn.execute(
            f"SELECT document FROM {table} WHERE namespace = ? AND {column} = ? AND expires_at > ?",
            (self._ns, key, now),
        ).fetchone()
        if row is None:
            return None
        document: dict[str, Any] = loads(row[0])
        return document

    async def put_conversation_session(
        self, session_key: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store a conversation session document under the key's next version, registered under
        ``document["session_id"]`` (whose family's TTL it shares). With ``archive``, its event goes into the
        outbox table in the same transaction."""
        owner = document.get("session_id")
        if not isinstance(owner, str) or not owner:
            raise InvalidInput("a conversation session document needs its session_id")
        text = dumps(dict(document))
        event = None
        if archive is not None:
            self._check_outbox()
            event = unversioned_event(conversation_session_event(session_key, document, 0, archive))
        await self._write(self._put_conversation_session, session_key, owner, text, event, events=event is not None)

    def _put_conversation_session(
        self, conn: sqlite3.Connection, session_key: str, owner: str, text: str, event: Unversioned | None
    ) -> None:
        now = time.time()
        meta = self._write_meta(conn, session_key, now)
        meta.version += 1
        expires = now + self.settings.session_ttl
        conn.execute(
            "INSERT OR REPLACE INTO ck_conversation_sessions (namespace, session_key, session_id, document, expires_at, "
            "version) VALUES (?, ?, ?, ?, ?, ?)",
            (self._ns, session_key, owner, text, expires, meta.version),
        )
        self._touch_group(conn, owner, now, saved=session_key)
        self._save_meta(conn, session_key, meta, expires)
        if event is not None:
            self._put_events(conn, [versioned_row(event, meta.version)])

    async def get_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The stored conversation session document, or None."""
        return await self._read(self._get_document, "ck_conversation_sessions", "session_key", session_key)

    # -- seed checkpoints ---------------------------------------------------------------------------------------
    async def put_checkpoint_document(
        self, thread_id: str, checkpoint_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store (or replace, keeping its place in the listing order) a checkpoint document under the owner's next
        version; refresh the thread TTL. With ``archive``, its event goes into the outbox table in the same
        transaction."""
        text = dumps(dict(document))
        event = None
        if archive is not None:
            self._check_outbox()
            event = unversioned_event(checkpoint_document_event(thread_id, checkpoint_id, document, 0, archive))
        await self._write(self._put_checkpoint_document, thread_id, checkpoint_id, text, event, events=event is not None)

    def _put_checkpoint_document(
        self, conn: sqlite3.Connection, thread_id: str, checkpoint_id: str, text: str, event: Unversioned | None
    ) -> None:
        now = time.time()
        meta = self._write_meta(conn, thread_id, now)
        meta.version += 1
        self._touch_thread(conn, thread_id, now)
        conn.execute(
            "INSERT INTO ck_seed_checkpoints (namespace, thread_id, checkpoint_id, ord, document, version) VALUES "
            "(?, ?, ?, (SELECT COALESCE(MAX(ord), 0) + 1 FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ?), "
            "?, ?) ON CONFLICT (namespace, thread_id, checkpoint_id) DO UPDATE SET document = excluded.document, "
            "version = excluded.version",
            (self._ns, thread_id, checkpoint_id, self._ns, thread_id, text, meta.version),
        )
        self._save_meta(conn, thread_id, meta, now + self.settings.checkpoint_ttl)
        if event is not None:
            self._put_events(conn, [versioned_row(event, meta.version)])

    async def get_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That checkpoint document, or the most recently inserted one of the thread."""
        return await self._db.read(self._get_checkpoint_document, thread_id, checkpoint_id)

    def _get_checkpoint_document(
        self, conn: sqlite3.Connection, thread_id: str, checkpoint_id: str | None
    ) -> dict[str, Any] | None:
        now = time.time()
        self._known(conn, thread_id, now)
        if not self._thread_alive(conn, thread_id, now):
            return None
        if checkpoint_id is None:
            row = conn.execute(
                "SELECT document FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ? ORDER BY ord DESC LIMIT 1",
                (self._ns, thread_id),
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT document FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ? AND checkpoint_id = ?",
                (self._ns, thread_id, checkpoint_id),
            ).fetchone()
        if row is None:
            return None
        document: dict[str, Any] = loads(row[0])
        return document

    async def list_checkpoint_documents(self, thread_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` checkpoint documents of the thread, newest first, from the (thread, ord) index."""
        if limit <= 0:
            if self._archived:
                await self._db.read(self._list_checkpoint_documents, thread_id, 0)  # raises for an unknown owner
            return []
        return await self._db.read(self._list_checkpoint_documents, thread_id, int(limit))

    def _list_checkpoint_documents(self, conn: sqlite3.Connection, thread_id: str, limit: int) -> list[dict[str, Any]]:
        now = time.time()
        self._known(conn, thread_id, now)
        if limit <= 0 or not self._thread_alive(conn, thread_id, now):
            return []
        return [
            loads(row[0])
            for row in conn.execute(
                "SELECT document FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ? ORDER BY ord DESC LIMIT ?",
                (self._ns, thread_id, limit),
            )
        ]

    async def put_writes_document(
        self,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[Any],
        *,
        archive: EventHead | None = None,
    ) -> None:
        """Append ``writes`` of one task to the checkpoint (a later call for the same task adds to them) under the
        owner's next version. With ``archive``, their event goes into the outbox table in the same transaction."""
        texts = [dumps(w) for w in writes]
        event = None
        if archive is not None:
            self._check_outbox()
            event = unversioned_event(writes_document_event(thread_id, checkpoint_id, task_id, writes, 0, archive))
        await self._write(
            self._put_writes_document, thread_id, checkpoint_id, task_id, texts, event, events=event is not None
        )

    def _put_writes_document(
        self,
        conn: sqlite3.Connection,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        texts: list[str],
        event: Unversioned | None,
    ) -> None:
        now = time.time()
        meta = self._write_meta(conn, thread_id, now)
        meta.version += 1
        self._touch_thread(conn, thread_id, now)
        conn.executemany(
            "INSERT INTO ck_seed_writes (namespace, thread_id, checkpoint_id, task_id, write, version) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(self._ns, thread_id, checkpoint_id, task_id, text, meta.version) for text in texts],
        )
        self._save_meta(conn, thread_id, meta, now + self.settings.checkpoint_ttl)
        if event is not None:
            self._put_events(conn, [versioned_row(event, meta.version)])

    async def get_writes_documents(self, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        """``(task_id, write)`` pairs of the checkpoint in the order they were put."""
        return await self._db.read(self._get_writes_documents, thread_id, checkpoint_id)

    def _get_writes_documents(self, conn: sqlite3.Connection, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        now = time.time()
        self._known(conn, thread_id, now)
        if not self._thread_alive(conn, thread_id, now):
            return []
        return [
            (task_id, loads(text))
            for task_id, text in conn.execute(
                "SELECT task_id, write FROM ck_seed_writes WHERE namespace = ? AND thread_id = ? AND checkpoint_id = ? "
                "ORDER BY id",
                (self._ns, thread_id, checkpoint_id),
            )
        ]

    # -- enumeration --------------------------------------------------------------------------------------------
    async def list_conversation_sessions(self, session_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The live conversation sessions registered under ``session_id``, sorted by key (from the owner index)."""
        return await self._db.run(self._list_conversation_sessions, session_id)

    def _list_conversation_sessions(self, conn: sqlite3.Connection, session_id: str) -> list[tuple[str, dict[str, Any]]]:
        rows = conn.execute(
            "SELECT session_key, document FROM ck_conversation_sessions INDEXED BY ck_conversation_sessions_owner "
            "WHERE namespace = ? AND session_id = ? AND expires_at > ? ORDER BY session_key",
            (self._ns, session_id, time.time()),
        ).fetchall()
        return [(key, loads(text)) for key, text in rows]

    async def iter_data_owners(self) -> AsyncIterator[str]:
        """See :meth:`contextkit.stores.HotStore.iter_data_owners` (one query over the three tables)."""
        for owner in await self._db.run(self._data_owners):
            yield owner

    def _data_owners(self, conn: sqlite3.Connection) -> list[str]:
        now = time.time()
        rows = conn.execute(
            "SELECT stream_key FROM ck_streams WHERE namespace = ? AND expires_at > ? "
            "UNION SELECT session_id FROM ck_task_contexts WHERE namespace = ? AND expires_at > ? "
            "UNION SELECT session_key FROM ck_conversation_sessions WHERE namespace = ? AND expires_at > ?",
            (self._ns, now, self._ns, now, self._ns, now),
        ).fetchall()
        return [row[0] for row in rows]

    async def scan_checkpoint_threads(self, cursor: str | None, count: int) -> tuple[list[str], str | None]:
        """A page of live seed checkpoint thread ids in id order after ``cursor`` (keyset pagination)."""
        return await self._db.run(self._scan_checkpoint_threads, cursor, max(1, int(count)))

    def _scan_checkpoint_threads(
        self, conn: sqlite3.Connection, cursor: str | None, count: int
    ) -> tuple[list[str], str | None]:
        # ck_threads also holds LangGraph threads: keep those with a seed document or write.
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT t.thread_id FROM ck_threads t WHERE t.namespace = ? AND t.thread_id > ? AND t.expires_at > ? "
                "AND (EXISTS (SELECT 1 FROM ck_seed_checkpoints c WHERE c.namespace = t.namespace "
                "AND c.thread_id = t.thread_id) OR EXISTS (SELECT 1 FROM ck_seed_writes w "
                "WHERE w.namespace = t.namespace AND w.thread_id = t.thread_id)) ORDER BY t.thread_id LIMIT ?",
                (self._ns, "" if cursor is None else cursor, time.time(), count + 1),
            )
        ]
        page = ids[:count]
        return page, (page[-1] if len(ids) > count else None)

    async def read_checkpoint_thread(
        self, thread_id: str
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, list[tuple[str, Any]]]]]:
        """The thread's documents in insertion order and its writes by checkpoint id, in one read transaction."""
        return await self._db.read(self._read_checkpoint_thread, thread_id)

    def _read_checkpoint_thread(
        self, conn: sqlite3.Connection, thread_id: str
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, list[tuple[str, Any]]]]]:
        if not self._thread_alive(conn, thread_id, time.time()):
            return [], []
        documents = [
            (cid, loads(text))
            for cid, text in conn.execute(
                "SELECT checkpoint_id, document FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ? "
                "ORDER BY ord",
                (self._ns, thread_id),
            )
        ]
        writes: list[tuple[str, list[tuple[str, Any]]]] = []
        for cid, task_id, text in conn.execute(
            "SELECT checkpoint_id, task_id, write FROM ck_seed_writes WHERE namespace = ? AND thread_id = ? "
            "ORDER BY checkpoint_id, id",
            (self._ns, thread_id),
        ):
            if not writes or writes[-1][0] != cid:
                writes.append((cid, []))
            writes[-1][1].append((task_id, loads(text)))
        return documents, writes
