"""The SQLite file behind the stores: where it is, how it is opened, its migrations, and how calls reach it.

:class:`SqliteDatabase` owns one aiosqlite connection. Why one, and not a pool: SQLite lets a single writer hold
the file at a time (WAL lets readers go on beside it), so a second connection in the same process would only
queue behind the first on the file lock, while costing a thread. What does matter for latency is the number of
hops between the event loop and the connection's thread: every store method hands one plain function to
:meth:`SqliteDatabase.run`, which runs its whole transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) on that thread
in a single hop. Statements are prepared once and reused from sqlite3's statement cache.

aiosqlite has no public "run this function on the connection's thread"; ``Connection._execute`` is the method
its own public helpers use. This module relies on it and on three more private members (``_conn``, ``_thread``,
``_running``); ``tests/test_aiosqlite_contract.py`` fails, naming the member, when an aiosqlite release changes
one, and the plugin's pyproject allows aiosqlite 0.22.x only.

The LangGraph saver's hot path (a put, pending writes, a checkpoint read, a DeltaChannel walk: small transactions
a chat turn makes seven of) skips the hop when it can: asked ``inline``, the call runs on the caller's thread when
the connection is free (its thread idle, no write queued for it) and the file's lock is free (``busy_timeout`` 0
for that call; a transaction that would wait gives up at once, having done nothing, and goes to the thread, which
waits for the lock while the event loop goes on). A lock held by whoever uses the connection keeps the two
apart; the connection is opened with ``check_same_thread=False`` for it. A WAL commit with ``synchronous=NORMAL``
does not fsync, so such a call holds the loop about as long as the hop it saves would have taken (the storage
benchmark's DeltaChannel turn: 0.60x / 0.51x of AsyncSqliteSaver's time before, 0.44x / 0.49x after, runs
alternating; docs/benchmarks.md).
``SqliteDatabase.inline_small_operations = False`` sends every call to the thread.

Writes that wait together share one transaction (group commit, :meth:`SqliteDatabase.write`): the writes asked
for while the connection's thread is busy run, in order, in the next ``BEGIN IMMEDIATE`` ... ``COMMIT``, each in a
savepoint of its own, so one that fails rolls back alone; each caller gets its own result once the batch
committed, from that one hop. LangGraph's puts and pending writes, issued in the background, often arrive so.

WAL checkpoints (copying committed pages from the WAL into the file, with two fsyncs) run on a thread of their
own (:class:`_WalCheckpointer`, with its own connection), at most every 0.1 s while writes come, instead of inside
the commit that crosses SQLite's 1,000-page threshold: a write then costs its own pages only, not now and then a
checkpoint of a thousand. SQLite's automatic checkpoint stays on at 10,000 pages, should the thread fall behind.

Errors: ``sqlite3`` errors (``database is locked`` once ``busy_timeout`` has passed, disk I/O errors, a file that
is not a database) become :class:`~contextkit.errors.BackendUnavailable`; data SQLite refuses (a string or blob
too big, an integer over 64 bits) becomes :class:`~contextkit.errors.EventRefused`; undecodable
stored JSON becomes :class:`~contextkit.errors.CorruptData`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from contextkit.backend.documents import dump_document, load_document
from contextkit.backend.migrations import apply_migrations_sync
from contextkit.errors import BackendUnavailable, ConfigError, EventRefused, SerializationError
from contextkit_sqlite.options import DEFAULT_PATH, SqliteOptions, parse_options

__all__ = [
    "DEFAULT_PATH",
    "Migration",
    "SqliteDatabase",
    "SqliteOptions",
    "dumps",
    "from_micros",
    "loads",
    "parse_options",
    "to_micros",
]

T = TypeVar("T")

logger = logging.getLogger("contextkit.sqlite")

#: Seconds the checkpoint thread lets writes gather before it checkpoints them (at most one checkpoint per period).
_CHECKPOINT_PERIOD = 0.1
#: WAL pages at which a committing writer checkpoints by itself: only when the checkpoint thread fell behind.
_BACKSTOP_PAGES = 10_000

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``version`` (1, 2, ...) of a ``component`` (``hot`` / ``cold``) and its SQL statements;
    ``functions``: one-argument SQL functions (name, callable) its statements use, defined on the connection first."""

    component: str
    version: int
    statements: tuple[str, ...]
    functions: tuple[tuple[str, Callable[[Any], Any]], ...] = ()


_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS ck_migrations (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (component, version)
)
"""


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (naive ones are taken as UTC); exact, unlike a float."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The aware UTC datetime of :func:`to_micros` output."""
    return _EPOCH + timedelta(microseconds=int(value))


def dumps(value: Any) -> str:
    """Compact JSON text of a plain-JSON value (unicode kept as is); :class:`SerializationError` when JSON cannot
    hold it."""
    return dump_document(value)


def loads(text: str | bytes) -> Any:
    """Parse stored JSON text; :class:`CorruptData` when it cannot be decoded."""
    return load_document(text, "JSON")


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a read-then-write (the next seq, a counter) can never be
    # interleaved with another process's write: busy_timeout makes the second writer wait instead.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _in_write_transaction(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    with _write_transaction(conn):
        return fn(conn, *args)


class _WriteOp:
    """One write waiting for a batch: its function, arguments and the future its caller awaits."""

    __slots__ = ("args", "fn", "future", "taken")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.taken = False


#: What a batched write gave: ``(True, result)`` or ``(False, exception)``.
_Outcome = tuple[bool, Any]


def _run_writes(conn: sqlite3.Connection, ops: Sequence[_WriteOp]) -> list[_Outcome]:
    """Run ``ops`` in order in one write transaction, each in a savepoint (a failed one is rolled back alone); a
    single write runs as :meth:`SqliteDatabase.write` always did. When the transaction itself fails (the lock
    not taken within ``busy_timeout``, the commit), none is stored and each gets that error."""
    if len(ops) == 1:
        op = ops[0]
        try:
            return [(True, _in_write_transaction(conn, op.fn, op.args))]
        except BaseException as exc:
            return [(False, exc)]
    outcomes: list[_Outcome] = []
    try:
        with _write_transaction(conn):
            for op in ops:
                conn.execute("SAVEPOINT ck_write")
                try:
                    result = op.fn(conn, *op.args)
                except BaseException as exc:
                    if not conn.in_transaction:
                        raise  # SQLite rolled the whole transaction back (a full disk, an I/O error): none is stored
                    conn.execute("ROLLBACK TO ck_write")
                    conn.execute("RELEASE ck_write")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE ck_write")
                    outcomes.append((True, result))
    except BaseException as exc:
        return [(False, exc)] * len(ops)
    return outcomes


class _Ledger:
    """The migrations of one component (``hot`` / ``cold``) of a database file, recorded in ``ck_migrations``
    (:class:`contextkit.backend.migrations.SyncMigrationLedger`): applied under the write lock, so several
    processes opening a fresh file at once migrate it once, and the others see the versions it recorded."""

    def __init__(self, conn: sqlite3.Connection, component: str) -> None:
        self.conn = conn
        self.component = component

    def applied(self) -> set[int]:
        rows = self.conn.execute("SELECT version FROM ck_migrations WHERE component = ?", (self.component,))
        return {int(row[0]) for row in rows}

    def exclusive(self) -> AbstractContextManager[None]:
        return _write_transaction(self.conn)

    def apply(self, migration: Migration) -> None:
        for name, function in migration.functions:
            self.conn.create_function(name, 1, function, deterministic=True)
        for statement in migration.statements:
            self.conn.execute(statement)
        self.conn.execute(
            "INSERT INTO ck_migrations (component, version, applied_at) VALUES (?, ?, ?)",
            (migration.component, migration.version, datetime.now(timezone.utc).isoformat()),
        )


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite gave up on a lock another connection holds (SQLITE_BUSY or SQLITE_LOCKED, any variant)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc)


def _in_read_transaction(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    # A deferred transaction gives several SELECTs one snapshot (WAL keeps it without blocking writers).
    conn.execute("BEGIN")
    try:
        return fn(conn, *args)
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


class _WalCheckpointer:
    """Checkpoints a WAL database from a daemon thread with a connection of its own, ``_CHECKPOINT_PERIOD`` after
    a write asked for it (:meth:`notify`), so commits on the main connection never run one. PASSIVE checkpoints
    neither wait for nor block readers and writers; a failed one is logged and retried after the next write."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="contextkit-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A write committed: checkpoint within the period."""
        self._dirty.set()

    def _serve(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=self._busy_timeout)
        except sqlite3.Error as exc:
            logger.warning("sqlite database %s: no checkpoint thread (%s); SQLite checkpoints in commits", self._path, exc)
            return
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            while not self._stop.is_set():
                self._dirty.wait()
                self._stop.wait(_CHECKPOINT_PERIOD)  # writes of the period share one checkpoint
                self._dirty.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    logger.warning("sqlite database %s: checkpoint failed: %s", self._path, exc)
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running) and close its connection."""
        self._stop.set()
        self._dirty.set()
        self._thread.join()


class SqliteDatabase:
    """One SQLite file opened through one aiosqlite connection (see the module docstring for why one)."""

    #: Whether reads and writes asked for ``inline`` run on the caller's thread when the connection is free
    #: (:meth:`_inline`); False sends every call to the connection's thread.
    inline_small_operations = True

    def __init__(self, options: SqliteOptions, migrations: Sequence[Migration]) -> None:
        self.options = options
        self._migrations = tuple(migrations)
        self._db: aiosqlite.Connection | None = None
        self._raw: sqlite3.Connection | None = None
        self._checkpointer: _WalCheckpointer | None = None
        # Writes waiting for the next batch, and whether a batch job is queued on the connection's thread that
        # will take them (both under the lock: the thread takes the list, the loop appends to it).
        self._writes: list[_WriteOp] = []
        self._write_queued = False
        self._writes_lock = threading.Lock()
        # Held by whoever uses the connection: a job on its thread, or a small operation run on the caller's
        # thread (see _inline); the connection is opened with check_same_thread=False for the latter.
        self._conn_lock = threading.Lock()
        self._closing = False
        self.journal_mode = "?"

    @property
    def path(self) -> str:
        """The database file (``:memory:`` for an in-memory database)."""
        return self.options.path

    async def open(self) -> None:
        """Create the file (and its directory), set WAL and the pragmas, and apply pending migrations."""
        if self._db is not None:
            return
        path = self.options.path
        db = aiosqlite.connect(
            path, isolation_level=None, timeout=self.options.busy_timeout, cached_statements=256, check_same_thread=False
        )
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            await db
        except (OSError, sqlite3.Error) as exc:
            # On a failed connect aiosqlite stops its thread, which then reports to this loop: wait for the
            # thread while the loop still runs, or it reports to a closed loop and dies with an error.
            if db._thread.is_alive():
                await asyncio.get_running_loop().run_in_executor(None, db._thread.join, 5.0)
            raise BackendUnavailable(f"cannot open sqlite database {path}: {exc}") from exc
        self._db = db
        self._raw = db._conn
        self._closing = False
        try:
            self.journal_mode = await self.run(self.prepare)
            if self.journal_mode.lower() == "wal" and path != ":memory:":
                await self.run(lambda conn: conn.execute(f"PRAGMA wal_autocheckpoint = {_BACKSTOP_PAGES}").fetchall())
                self._checkpointer = _WalCheckpointer(path, self.options.busy_timeout)
        except BaseException:
            await self.close()
            raise

    def prepare(self, conn: sqlite3.Connection) -> str:
        """Set the pragmas on ``conn`` (this database's, or another connection to a file of the same schema) and
        apply the pending migrations; returns the journal mode."""
        conn.execute(f"PRAGMA busy_timeout = {int(self.options.busy_timeout * 1000)}")
        mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        # NORMAL in WAL mode: a commit is durable against an application crash and atomic after a power loss
        # (the last transactions may roll back); FULL would add an fsync to every write.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(_MIGRATIONS_TABLE)
        for component in dict.fromkeys(m.component for m in self._migrations):
            steps = [m for m in self._migrations if m.component == component]
            ledger = _Ledger(conn, component)
            known = max(m.version for m in steps)
            newer = sorted(v for v in ledger.applied() if v > known)
            if newer:
                # Its tables have a layout this code does not know: reading or writing them would fail on every
                # call or, worse, misread them.
                raise ConfigError(
                    f"sqlite database {self.path} was migrated by a later contextkit-sqlite ({component} schema "
                    f"version {newer[-1]}; this one knows versions up to {known}): upgrade contextkit-sqlite in "
                    "every process that opens the file"
                )
            apply_migrations_sync(ledger, steps)
        return mode

    async def close(self) -> None:
        """Close the connection (and the checkpoint thread's, first: the last one closed checkpoints the WAL
        whole and removes it); idempotent."""
        self._closing = True  # no operation runs inline from here on (the thread closes the connection)
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(None, checkpointer.close)
        db, self._db, self._raw = self._db, None, None
        if db is not None:
            try:
                await db.close()
            except sqlite3.Error:
                pass

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` on the connection's thread (one hop), translating driver errors."""
        db, raw = self._db, self._raw
        if db is None or raw is None:
            raise BackendUnavailable(f"sqlite database {self.path} is not open")
        try:
            # aiosqlite's _execute (private, see the module docstring) carries no annotations
            result: T = await db._execute(self._locked, fn, raw, *args)  # type: ignore[no-untyped-call]
            return result
        except (sqlite3.Error, OverflowError, ValueError) as exc:  # (UnicodeError is a ValueError)
            typed = self._typed_error(exc, db._running)
            if typed is None:
                raise
            raise typed from exc

    def _locked(self, fn: Callable[..., T], conn: sqlite3.Connection, *args: Any) -> T:
        with self._conn_lock:
            return fn(conn, *args)

    def _inline(self, transaction: Callable[..., T], fn: Callable[..., T], args: tuple[Any, ...]) -> tuple[bool, T | None]:
        """Run ``transaction(conn, fn, args)`` here, on the caller's thread, when the connection is free: its thread
        idle (the lock taken without waiting), no write queued for it (writes keep their order), and the file's
        lock free (``busy_timeout`` 0 for the call: a transaction that would wait for another process gives up at
        once, having done nothing). ``(False, None)``: not run, take the connection's thread. A hop to that thread
        and back costs more than a small transaction on a WAL file (no fsync at commit), so the LangGraph saver's
        puts, pending writes, reads and DeltaChannel walks come here (measurements in docs/benchmarks.md)."""
        raw = self._raw
        if raw is None or self._db is None or self._closing or not self.inline_small_operations:
            return False, None
        if not self._conn_lock.acquire(blocking=False):
            return False, None
        try:
            with self._writes_lock:
                if self._write_queued or self._writes:
                    return False, None
            raw.execute("PRAGMA busy_timeout = 0")
            try:
                return True, transaction(raw, fn, args)
            except sqlite3.OperationalError as exc:
                if _busy(exc):
                    return False, None  # rolled back or read-only: the thread runs it again, waiting for the lock
                raise
            finally:
                raw.execute(f"PRAGMA busy_timeout = {int(self.options.busy_timeout * 1000)}")
        except (sqlite3.Error, OverflowError, ValueError) as exc:
            typed = self._typed_error(exc, True)
            if typed is None:
                raise
            raise typed from exc
        finally:
            self._conn_lock.release()

    def _typed_error(self, exc: BaseException, running: bool) -> Exception | None:
        """The contextkit error for a driver error (None: raise it as it is); ``running``: whether the
        connection's thread still runs (a ValueError of a closed connection means the database closed)."""
        if isinstance(exc, (sqlite3.DataError, OverflowError)):
            # The data is refused, not the file (a string or blob over SQLITE_MAX_LENGTH, an integer over 64
            # bits): the transaction rolled back and the same data is refused on any retry.
            return EventRefused(f"sqlite database {self.path} refused the data: {type(exc).__name__}: {exc}")
        if isinstance(exc, sqlite3.Error):
            return BackendUnavailable(f"sqlite database {self.path}: {exc}")
        if isinstance(exc, UnicodeError):
            return SerializationError(f"text cannot be stored or read as UTF-8: {exc}")
        if isinstance(exc, ValueError) and not running:
            return BackendUnavailable(f"sqlite database {self.path} is closed")
        return None

    async def write(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        """Run ``fn(conn, *args)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back if it raises).

        Writes asked for while the connection's thread is busy are batched (see the module docstring): the
        first queues one job on the thread, which takes every write waiting when it starts; the others only wait
        for their result. Each is rolled back alone when it raises, and a write that completed was committed.
        ``inline``: a small write, run on the caller's thread when the connection is free (:meth:`_inline`)."""
        db = self._db
        if db is None or self._raw is None:
            raise BackendUnavailable(f"sqlite database {self.path} is not open")
        if inline:
            ran, value = self._inline(_in_write_transaction, fn, args)
            if ran:
                if self._checkpointer is not None:
                    self._checkpointer.notify()
                return value  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        op = _WriteOp(fn, args, loop.create_future())
        with self._writes_lock:
            self._writes.append(op)
            lead = not self._write_queued
            self._write_queued = True
        if lead:
            try:
                await self.run(self._write_batch)
            except asyncio.CancelledError:
                op.future.cancel()  # the batch still runs (as a queued write always did); the others get theirs
                raise
            except BaseException as exc:
                self._fail_untaken(exc, op)  # the job never ran: the database closed under it
                raise
        result: T = await op.future
        if self._checkpointer is not None:
            self._checkpointer.notify()
        return result

    def _write_batch(self, conn: sqlite3.Connection) -> None:
        """On the connection's thread: take the waiting writes, run them in one transaction, and hand each
        outcome to its caller's loop."""
        with self._writes_lock:
            ops, self._writes = self._writes, []
            self._write_queued = False
        for op in ops:
            op.taken = True
        outcomes = _run_writes(conn, ops)
        loops: dict[asyncio.AbstractEventLoop, list[tuple[_WriteOp, _Outcome]]] = {}
        for op, outcome in zip(ops, outcomes, strict=True):
            loops.setdefault(op.future.get_loop(), []).append((op, outcome))
        for loop, settled in loops.items():
            loop.call_soon_threadsafe(self._settle, settled)

    def _settle(self, settled: list[tuple[_WriteOp, _Outcome]]) -> None:
        db = self._db
        running = db is not None and bool(db._running)
        for op, (ok, value) in settled:
            if op.future.done():
                continue  # its caller was cancelled
            if ok:
                op.future.set_result(value)
                continue
            typed = self._typed_error(value, running)
            if typed is not None:
                typed.__cause__ = value
            op.future.set_exception(typed if typed is not None else value)

    def _fail_untaken(self, exc: BaseException, own: _WriteOp) -> None:
        """The batch job of ``own`` did not run: fail the writes that waited for it (``own``'s caller raises
        ``exc`` itself)."""
        with self._writes_lock:
            untaken = [op for op in self._writes if not op.taken]
            self._writes = [op for op in self._writes if op.taken]
            self._write_queued = False
        for op in untaken:
            if op is own:
                op.future.cancel()
            elif not op.future.done():
                failed = BackendUnavailable(f"sqlite database {self.path}: the write was not run: {exc}")
                failed.__cause__ = exc
                op.future.set_exception(failed)

    async def read(self, fn: Callable[..., T], *args: Any, inline: bool = False) -> T:
        """Run ``fn(conn, *args)`` inside a read transaction (one consistent snapshot); ``inline``: a small read,
        run on the caller's thread when the connection is free (:meth:`_inline`)."""
        if inline:
            ran, value = self._inline(_in_read_transaction, fn, args)
            if ran:
                return value  # type: ignore[return-value]
        return await self.run(_in_read_transaction, fn, args)

    async def ping(self) -> float:
        """Milliseconds a trivial query takes; raises :class:`BackendUnavailable` when the file is unusable."""
        started = time.perf_counter()
        await self.run(lambda conn: conn.execute("SELECT count(*) FROM ck_migrations").fetchone())
        return (time.perf_counter() - started) * 1000.0
