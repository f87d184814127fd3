"""The SQLite hot tier: :class:`SqliteHotStore`, a durable :class:`~contextkit.stores.HotStore` in one local file.

Sessions, history streams, task contexts, conversation sessions and the seed's checkpoint documents live in
``ck_*`` tables (see :mod:`contextkit_sqlite.schema`); LangGraph checkpoints come from
:class:`~contextkit_sqlite.checkpoints.SqliteCheckpoints`. Several processes may open the same file: every
write is one ``BEGIN IMMEDIATE`` transaction, so a stream's next ``seq`` and a session's counters are computed
under the file's write lock and never interleave.

TTL is emulated: each row family carries an ``expires_at`` (epoch seconds) that reads check, and a bounded
sweep (at most ``sweep_batch`` rows of each kind, every ``sweep_interval`` seconds, on the write path) deletes
what expired. A write to something that expired starts it afresh rather than bringing the old data back.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from contextkit.archiver import FileOutbox, message_event_heads, outbox_table_sql
from contextkit.codec import archive_json
from contextkit.errors import BackendUnavailable, CapabilityNotSupported, InvalidInput, SerializationError
from contextkit.records import Message, Session
from contextkit.stores import ArchiveSpec, Capability, SessionUpdate, StoreSettings, StoreStats
from contextkit_sqlite.checkpoints import SqliteCheckpoints
from contextkit_sqlite.database import SqliteDatabase, dumps, from_micros, loads, parse_options, to_micros
from contextkit_sqlite.schema import HOT_MIGRATIONS

__all__ = ["SqliteHotStore"]

_SESSION_COLUMNS = (
    "session_id, user_id, created_at, last_activity, request_count, error_count, total_processing_time, status, metadata"
)
_UPDATABLE_FIELDS = {"status", "user_id", "metadata"}


def _session(record: Sequence[Any]) -> Session:
    return Session(
        session_id=record[0],
        user_id=record[1],
        created_at=from_micros(record[2]),
        last_activity=from_micros(record[3]),
        request_count=record[4],
        error_count=record[5],
        total_processing_time=record[6],
        status=record[7],
        metadata=loads(record[8]),
    )


def _message(record: Sequence[Any]) -> Message:
    seq, ident, role, content, timestamp, metadata = record
    return Message(role=role, content=content, timestamp=from_micros(timestamp), metadata=loads(metadata), id=ident, seq=seq)


def _event_parts(key: str, messages: Sequence[Message], archive: ArchiveSpec) -> list[tuple[str, str, str, str]]:
    """(event id, created_at column, JSON head, message JSON after its seq) of each message's archive event: the
    write transaction completes each with the seq it assigns (see :func:`message_event_heads`)."""
    heads = message_event_heads(key, archive, len(messages))
    parts = []
    for message, head, event_id, created_at in zip(messages, heads, archive.event_ids, archive.created_at, strict=True):
        data = message.to_dict()
        del data["seq"]
        try:
            rest = archive_json(data, allow_nan=True)[1:]
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"archive event {event_id} cannot be stored as JSON: {exc}") from exc
        parts.append((event_id, created_at.isoformat(), head, rest))
    return parts


class SqliteHotStore(SqliteCheckpoints):
    """A hot tier in one SQLite file (WAL), shared by every process that opens the file.

    :param settings: the tier settings (namespace, TTLs, history cap, timeout).
    :param options: ``path`` (default ``./contextkit.sqlite3``; ``:memory:`` for tests) or ``url``
        (``sqlite:///path``), ``busy_timeout`` in seconds (default ``settings.timeout``), ``sweep_interval``
        and ``sweep_batch`` for the expiry sweep.
    """

    name = "sqlite"
    capabilities: frozenset[str] = frozenset(
        {Capability.DURABLE.value, Capability.SHARED.value, Capability.TTL.value, Capability.CHECKPOINTS.value}
    )

    def __init__(self, settings: StoreSettings, options: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self.options = parse_options(options or {}, settings.timeout)
        self._db = SqliteDatabase(self.options, HOT_MIGRATIONS)
        self._ns = settings.namespace
        self._next_sweep = 0.0
        # The archive outbox of this namespace is a table of the same file, so a message and its archive event
        # are committed together and both survive a crash of the app (an in-memory database has no file to share).
        #: The table of this namespace's archive outbox in the database file.
        self.outbox_table = "ck_outbox_" + hashlib.sha256(self._ns.encode("utf-8")).hexdigest()[:16]
        self._outbox_created = False
        if self.options.path != ":memory:":
            self.capabilities = self.capabilities | {Capability.OUTBOX.value, Capability.ATOMIC_OUTBOX.value}

    def __repr__(self) -> str:
        return f"SqliteHotStore(path={self.options.path!r}, namespace={self._ns!r})"

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the file, set WAL and the pragmas, run pending migrations, and sweep what expired."""
        await self._db.open()
        self._next_sweep = time.monotonic() + self.options.sweep_interval
        await self.sweep_expired()

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        await self._db.close()

    async def __aenter__(self) -> SqliteHotStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def health(self) -> dict[str, Any]:
        """``healthy`` with the latency of a trivial query, or ``unhealthy`` with the reason; never raises."""
        base = {"backend": self.name, "path": self.options.path, "namespace": self._ns}
        try:
            latency = await self._db.ping()
        except Exception as exc:
            return {**base, "status": "unhealthy", "latency_ms": -1.0, "error": str(exc)}
        return {**base, "status": "healthy", "latency_ms": round(latency, 3), "journal_mode": self._db.journal_mode}

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
        for table in ("ck_checkpoints", "ck_seed_checkpoints"):
            checkpoints += conn.execute(
                f"SELECT COUNT(*) FROM {table} c WHERE c.namespace = ? AND NOT EXISTS (SELECT 1 FROM ck_threads t "
                "WHERE t.namespace = c.namespace AND t.thread_id = c.thread_id AND t.expires_at <= ?)",
                (ns, now),
            ).fetchone()[0]
        return StoreStats(sessions=sessions, active_sessions=active, messages=messages, checkpoints=checkpoints)

    # -- expiry -------------------------------------------------------------------------------------------------
    async def sweep_expired(self) -> int:
        """Delete up to ``sweep_batch`` expired rows of each kind in this namespace; returns how many records went."""
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
        return removed + len(streams) + len(threads)

    def _drop_stream(self, conn: sqlite3.Connection, key: str) -> None:
        conn.execute("DELETE FROM ck_messages WHERE namespace = ? AND stream_key = ?", (self._ns, key))
        conn.execute("DELETE FROM ck_streams WHERE namespace = ? AND stream_key = ?", (self._ns, key))

    # -- sessions -----------------------------------------------------------------------------------------------
    async def put_session(self, session: Session) -> None:
        """Store ``session`` whole (create or replace) and start its TTL."""
        params = (
            self._ns,
            session.session_id,
            session.user_id,
            to_micros(session.created_at),
            to_micros(session.last_activity),
            session.request_count,
            session.error_count,
            float(session.total_processing_time),
            session.status,
            dumps(dict(session.metadata)),
        )
        await self._db.write(self._put_session, params)
        await self._maybe_sweep()

    def _put_session(self, conn: sqlite3.Connection, params: tuple[Any, ...]) -> None:
        conn.execute(
            f"INSERT OR REPLACE INTO ck_sessions (namespace, {_SESSION_COLUMNS}, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*params, time.time() + self.settings.session_ttl),
        )

    async def get_session(self, session_id: str) -> Session | None:
        """The session, or None when it does not exist or expired."""
        return await self._db.run(self._get_session, session_id)

    def _get_session(self, conn: sqlite3.Connection, session_id: str) -> Session | None:
        record = conn.execute(
            f"SELECT {_SESSION_COLUMNS} FROM ck_sessions WHERE namespace = ? AND session_id = ? AND expires_at > ?",
            (self._ns, session_id, time.time()),
        ).fetchone()
        return None if record is None else _session(record)

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session | None:
        """Apply counter increments, replaced fields and the activity time in one statement; refresh the TTLs."""
        unknown = set(update.fields) - _UPDATABLE_FIELDS
        if unknown:
            raise InvalidInput(f"cannot update session field(s) {', '.join(sorted(unknown))}")
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
        result = await self._db.write(self._update_session, session_id, params)
        await self._maybe_sweep()
        return result

    def _update_session(self, conn: sqlite3.Connection, session_id: str, params: tuple[Any, ...]) -> Session | None:
        now = time.time()
        expires = now + self.settings.session_ttl
        records = conn.execute(
            "UPDATE ck_sessions SET request_count = request_count + ?, error_count = error_count + ?, "
            "total_processing_time = total_processing_time + ?, last_activity = MAX(last_activity, ?), "
            "status = COALESCE(?, status), user_id = COALESCE(?, user_id), metadata = COALESCE(?, metadata), "
            "expires_at = ? WHERE namespace = ? AND session_id = ? AND expires_at > ? "
            f"RETURNING {_SESSION_COLUMNS}",
            (*params, expires, self._ns, session_id, now),
        ).fetchall()
        if not records:
            return None
        # Activity keeps the session's own history and task context alive with it (never shortening a TTL).
        for table, column in (("ck_streams", "stream_key"), ("ck_task_contexts", "session_id")):
            conn.execute(
                f"UPDATE {table} SET expires_at = MAX(expires_at, ?) WHERE namespace = ? AND {column} = ? AND expires_at > ?",
                (expires, self._ns, session_id, now),
            )
        conn.execute(
            "UPDATE ck_conversation_sessions SET expires_at = MAX(expires_at, ?) WHERE namespace = ? "
            "AND session_id = ? AND expires_at > ?",
            (expires, self._ns, session_id, now),
        )
        return _session(records[0])

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and every key family of it (see :meth:`contextkit.stores.HotStore.delete_session`)."""
        return await self._db.write(self._delete_session, session_id)

    def _delete_session(self, conn: sqlite3.Connection, session_id: str) -> bool:
        ns = self._ns
        existed = conn.execute(
            "SELECT expires_at > ? FROM ck_sessions WHERE namespace = ? AND session_id = ?",
            (time.time(), ns, session_id),
        ).fetchone()
        conn.execute("DELETE FROM ck_sessions WHERE namespace = ? AND session_id = ?", (ns, session_id))
        keys = [
            row[0]
            for row in conn.execute(
                "SELECT session_key FROM ck_conversation_sessions WHERE namespace = ? AND session_id = ?",
                (ns, session_id),
            )
        ]
        for key in {session_id, *keys}:
            self._drop_stream(conn, key)
        conn.execute("DELETE FROM ck_conversation_sessions WHERE namespace = ? AND session_id = ?", (ns, session_id))
        conn.execute("DELETE FROM ck_task_contexts WHERE namespace = ? AND session_id = ?", (ns, session_id))
        conn.execute("DELETE FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ?", (ns, session_id))
        conn.execute("DELETE FROM ck_seed_writes WHERE namespace = ? AND thread_id = ?", (ns, session_id))
        return bool(existed and existed[0])

    async def scan_sessions(self, cursor: str | None, count: int) -> tuple[list[Session], str | None]:
        """A page of sessions ordered by id after ``cursor`` (keyset pagination: stable under concurrent writes)."""
        return await self._db.run(self._scan_sessions, cursor, max(1, int(count)))

    def _scan_sessions(self, conn: sqlite3.Connection, cursor: str | None, count: int) -> tuple[list[Session], str | None]:
        after = "" if cursor is None else cursor
        records = conn.execute(
            f"SELECT {_SESSION_COLUMNS} FROM ck_sessions WHERE namespace = ? AND session_id > ? AND expires_at > ? "
            "ORDER BY session_id LIMIT ?",
            (self._ns, after, time.time(), count + 1),
        ).fetchall()
        sessions = [_session(r) for r in records[:count]]
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
        appends write their messages' events into it in the same transaction, capability ``atomic_outbox``)."""
        if Capability.OUTBOX.value not in self.capabilities:
            raise CapabilityNotSupported("an in-memory SQLite database has no file to keep an outbox in")
        return FileOutbox(self.options.path, max_pending, table=self.outbox_table)

    async def append_messages(
        self, key: str, messages: Sequence[Message], *, archive: ArchiveSpec | None = None
    ) -> list[Message]:
        """Append at the tail with consecutive seqs (under the write lock), trim the oldest, refresh the TTL; move
        the session ``key``'s last_activity forward to the newest message when that session exists. With
        ``archive`` (and a stream that already had messages), the messages' archive events go into the outbox
        table in the same transaction."""
        if not messages:
            return []
        encoded = [(m.id, m.role, m.content, to_micros(m.timestamp), dumps(dict(m.metadata))) for m in messages]
        events = None if archive is None else _event_parts(key, messages, archive)
        first_seq: int = await self._db.write(self._append, key, encoded, events)
        if events is not None and first_seq > 1:
            self._outbox_created = True  # committed: later appends skip the CREATE TABLE
        await self._maybe_sweep()
        return [m.with_seq(first_seq + i) for i, m in enumerate(messages)]

    def _archive_events(self, conn: sqlite3.Connection, events: list[tuple[str, str, str, str]], first_seq: int) -> None:
        # The rows FileOutbox.push would write for these events, in the append's transaction, which also creates
        # the table until one such transaction committed (the flag is set only then, so a rollback cannot leave
        # it claiming a table that is not there).
        if not self._outbox_created:
            conn.execute(outbox_table_sql(self.outbox_table))
        conn.executemany(
            f"INSERT OR IGNORE INTO {self.outbox_table} (event_id, created_at, body) VALUES (?, ?, ?)",
            [
                (event_id, created_at, f'{head}{{"seq":{first_seq + i},{rest}}}}}')
                for i, (event_id, created_at, head, rest) in enumerate(events)
            ],
        )

    def _append(
        self,
        conn: sqlite3.Connection,
        key: str,
        encoded: list[tuple[Any, ...]],
        events: list[tuple[str, str, str, str]] | None = None,
    ) -> int:
        now = time.time()
        ns = self._ns
        row = conn.execute(
            "SELECT last_seq, last_pos, expires_at FROM ck_streams WHERE namespace = ? AND stream_key = ?", (ns, key)
        ).fetchone()
        if row is not None and row[2] <= now:
            self._drop_stream(conn, key)
            row = None
        last_seq, last_pos = (row[0], row[1]) if row is not None else (0, 0)
        conn.executemany(
            "INSERT INTO ck_messages (namespace, stream_key, pos, seq, id, role, content, timestamp, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(ns, key, last_pos + i, last_seq + i, *values) for i, values in enumerate(encoded, start=1)],
        )
        new_pos = last_pos + len(encoded)
        conn.execute(
            "INSERT INTO ck_streams (namespace, stream_key, last_seq, last_pos, expires_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (namespace, stream_key) DO UPDATE SET last_seq = excluded.last_seq, "
            "last_pos = excluded.last_pos, expires_at = excluded.expires_at",
            (ns, key, last_seq + len(encoded), new_pos, now + self.settings.session_ttl),
        )
        cap = max(1, self.settings.history_cap)
        if new_pos > cap:
            conn.execute("DELETE FROM ck_messages WHERE namespace = ? AND stream_key = ? AND pos <= ?", (ns, key, new_pos - cap))
        # A message is activity: the session whose history this is moves its last_activity forward and lives on
        # with it (its task context and conversation sessions too, as update_session would do).
        expires = now + self.settings.session_ttl
        touched = conn.execute(
            "UPDATE ck_sessions SET expires_at = MAX(expires_at, ?), last_activity = MAX(last_activity, ?) "
            "WHERE namespace = ? AND session_id = ? AND expires_at > ?",
            (expires, max(values[3] for values in encoded), ns, key, now),
        ).rowcount
        if touched:
            conn.execute(
                "UPDATE ck_task_contexts SET expires_at = MAX(expires_at, ?) WHERE namespace = ? AND session_id = ? "
                "AND expires_at > ?",
                (expires, ns, key, now),
            )
            conn.execute(
                "UPDATE ck_conversation_sessions SET expires_at = MAX(expires_at, ?) WHERE namespace = ? "
                "AND session_id = ? AND expires_at > ?",
                (expires, ns, key, now),
            )
        # A new stream's first messages are left to the caller (ArchiveSpec): it may renumber them.
        if events is not None and last_seq > 0:
            self._archive_events(conn, events, last_seq + 1)
        return last_seq + 1

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        """The newest ``limit`` messages (all kept when None) in chronological order, from the (stream, pos) index."""
        if limit is not None and limit <= 0:
            return []
        return await self._db.run(self._read_history, key, -1 if limit is None else int(limit))

    def _read_history(self, conn: sqlite3.Connection, key: str, limit: int) -> list[Message]:
        records = conn.execute(
            "SELECT seq, id, role, content, timestamp, metadata FROM ck_messages WHERE namespace = ? "
            "AND stream_key = ? AND EXISTS (SELECT 1 FROM ck_streams WHERE namespace = ? AND stream_key = ? "
            "AND expires_at > ?) ORDER BY pos DESC LIMIT ?",
            (self._ns, key, self._ns, key, time.time(), limit),
        ).fetchall()
        records.reverse()
        return [_message(r) for r in records]

    def _bounds(self, conn: sqlite3.Connection, key: str) -> tuple[int, int, int]:
        """``(kept, first_seq, last_seq)`` of a live stream, from two index probes."""
        stream = conn.execute(
            "SELECT last_seq, last_pos FROM ck_streams WHERE namespace = ? AND stream_key = ? AND expires_at > ?",
            (self._ns, key, time.time()),
        ).fetchone()
        if stream is None:
            return 0, 0, 0
        first = conn.execute(
            "SELECT pos, seq FROM ck_messages WHERE namespace = ? AND stream_key = ? ORDER BY pos LIMIT 1",
            (self._ns, key),
        ).fetchone()
        if first is None:
            return 0, 0, 0
        # Positions are contiguous: trimming removes a prefix and replace_history renumbers from 1.
        return stream[1] - first[0] + 1, first[1], stream[0]

    async def history_length(self, key: str) -> int:
        """Number of messages kept in the stream."""
        kept, _, _ = await self._db.read(self._bounds, key)
        return kept

    async def history_bounds(self, key: str) -> tuple[int, int]:
        """``(first_seq, last_seq)`` of the kept messages; ``(0, 0)`` for an empty or missing stream."""
        _, first, last = await self._db.read(self._bounds, key)
        return first, last

    async def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Replace the whole stream atomically with ``messages`` as given (seq included)."""
        encoded = [(m.seq, m.id, m.role, m.content, to_micros(m.timestamp), dumps(dict(m.metadata))) for m in messages]
        await self._db.write(self._replace_history, key, encoded)

    def _replace_history(self, conn: sqlite3.Connection, key: str, encoded: list[tuple[Any, ...]]) -> None:
        now = time.time()
        ns = self._ns
        row = conn.execute(
            "SELECT last_seq FROM ck_streams WHERE namespace = ? AND stream_key = ? AND expires_at > ?", (ns, key, now)
        ).fetchone()
        # The highest seq ever assigned never goes back, so appends after a compaction keep counting up.
        last_seq = max([row[0] if row is not None else 0, *(values[0] for values in encoded)])
        self._drop_stream(conn, key)
        conn.executemany(
            "INSERT INTO ck_messages (namespace, stream_key, pos, seq, id, role, content, timestamp, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(ns, key, pos, *values) for pos, values in enumerate(encoded, start=1)],
        )
        conn.execute(
            "INSERT INTO ck_streams (namespace, stream_key, last_seq, last_pos, expires_at) VALUES (?, ?, ?, ?, ?)",
            (ns, key, last_seq, len(encoded), now + self.settings.session_ttl),
        )

    # -- task contexts and conversation sessions ------------------------------------------------------------------
    async def put_task_context(self, session_id: str, document: Mapping[str, Any]) -> None:
        """Store the task context document of a session (replacing any previous one) with the session TTL."""
        await self._db.write(self._put_document, "ck_task_contexts", "session_id", session_id, dumps(dict(document)))

    def _put_document(self, conn: sqlite3.Connection, table: str, column: str, key: str, text: str) -> None:
        conn.execute(
            f"INSERT OR REPLACE INTO {table} (namespace, {column}, document, expires_at) VALUES (?, ?, ?, ?)",
            (self._ns, key, text, time.time() + self.settings.session_ttl),
        )

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The stored task context document, or None."""
        return await self._db.run(self._get_document, "ck_task_contexts", "session_id", session_id)

    def _get_document(self, conn: sqlite3.Connection, table: str, column: str, key: str) -> dict[str, Any] | None:
        row = conn.execute(
            f"SELECT document FROM {table} WHERE namespace = ? AND {column} = ? AND expires_at > ?",
            (self._ns, key, time.time()),
        ).fetchone()
        if row is None:
            return None
        document: dict[str, Any] = loads(row[0])
        return document

    async def put_conversation_session(self, session_key: str, document: Mapping[str, Any]) -> None:
        """Store a conversation session document, registered under ``document["session_id"]``."""
        owner = document.get("session_id")
        if not isinstance(owner, str) or not owner:
            raise InvalidInput("a conversation session document needs its session_id")
        await self._db.write(self._put_conversation_session, session_key, owner, dumps(dict(document)))

    def _put_conversation_session(self, conn: sqlite3.Connection, session_key: str, owner: str, text: str) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO ck_conversation_sessions (namespace, session_key, session_id, document, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (self._ns, session_key, owner, text, time.time() + self.settings.session_ttl),
        )

    async def get_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The stored conversation session document, or None."""
        return await self._db.run(self._get_document, "ck_conversation_sessions", "session_key", session_key)

    # -- seed checkpoints ---------------------------------------------------------------------------------------
    async def put_checkpoint_document(self, thread_id: str, checkpoint_id: str, document: Mapping[str, Any]) -> None:
        """Store (or replace, keeping its place in the listing order) a checkpoint document; refresh the thread TTL."""
        await self._db.write(self._put_checkpoint_document, thread_id, checkpoint_id, dumps(dict(document)))

    def _put_checkpoint_document(self, conn: sqlite3.Connection, thread_id: str, checkpoint_id: str, text: str) -> None:
        self._touch_thread(conn, thread_id, time.time())
        conn.execute(
            "INSERT INTO ck_seed_checkpoints (namespace, thread_id, checkpoint_id, ord, document) VALUES (?, ?, ?, "
            "(SELECT COALESCE(MAX(ord), 0) + 1 FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ?), ?) "
            "ON CONFLICT (namespace, thread_id, checkpoint_id) DO UPDATE SET document = excluded.document",
            (self._ns, thread_id, checkpoint_id, self._ns, thread_id, text),
        )

    async def get_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That checkpoint document, or the most recently inserted one of the thread."""
        return await self._db.read(self._get_checkpoint_document, thread_id, checkpoint_id)

    def _get_checkpoint_document(
        self, conn: sqlite3.Connection, thread_id: str, checkpoint_id: str | None
    ) -> dict[str, Any] | None:
        if not self._thread_alive(conn, thread_id, time.time()):
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
            return []
        return await self._db.read(self._list_checkpoint_documents, thread_id, int(limit))

    def _list_checkpoint_documents(self, conn: sqlite3.Connection, thread_id: str, limit: int) -> list[dict[str, Any]]:
        if not self._thread_alive(conn, thread_id, time.time()):
            return []
        return [
            loads(row[0])
            for row in conn.execute(
                "SELECT document FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ? ORDER BY ord DESC LIMIT ?",
                (self._ns, thread_id, limit),
            )
        ]

    async def put_writes_document(self, thread_id: str, checkpoint_id: str, task_id: str, writes: Sequence[Any]) -> None:
        """Append ``writes`` of one task to the checkpoint (a later call for the same task adds to them)."""
        rows = [(self._ns, thread_id, checkpoint_id, task_id, dumps(w)) for w in writes]
        if rows:
            await self._db.write(self._put_writes_document, thread_id, rows)

    def _put_writes_document(self, conn: sqlite3.Connection, thread_id: str, rows: list[tuple[Any, ...]]) -> None:
        self._touch_thread(conn, thread_id, time.time())
        conn.executemany(
            "INSERT INTO ck_seed_writes (namespace, thread_id, checkpoint_id, task_id, write) VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    async def get_writes_documents(self, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        """``(task_id, write)`` pairs of the checkpoint in the order they were put."""
        return await self._db.read(self._get_writes_documents, thread_id, checkpoint_id)

    def _get_writes_documents(self, conn: sqlite3.Connection, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        if not self._thread_alive(conn, thread_id, time.time()):
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
            "SELECT session_key, document FROM ck_conversation_sessions WHERE namespace = ? AND session_id = ? "
            "AND expires_at > ? ORDER BY session_key",
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
