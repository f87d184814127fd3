"""The SQLite cold tier: :class:`SqliteColdStore`, an archive of :class:`~contextkit.records.ArchiveEvent` rows.

Six tables named like the seed's (``context_sessions``, ``context_conversations``, ...), each with
``(namespace, event_id)`` unique so a retried batch is ignored row by row (``INSERT OR IGNORE``), a ``version``
column (the version the hot tier gave the write) and an index on ``(namespace, key, version, created_at)``. A
batch is one transaction with one ``executemany`` per table: it is stored whole or not at all.

Reads follow :mod:`contextkit.tiered.cold_rules`: a record is answered by its row of the highest ``(version,
created_at, id)`` (one index lookup: ``id`` is the rowid, the last column of every index), and an owner's newest
delete (a partial index on ``context_sessions`` finds it in one lookup) hides the rows of its key below it and
the messages of its stream up to its ``last_seq``. History reads walk the ``(namespace, key, seq)`` index newest
first, above that ``last_seq``, and keep each message once (by its id), so a message archived twice still reads
back once.

LangGraph checkpoints (:mod:`contextkit.checkpoint_archive`) share ``context_checkpoints`` /
``context_checkpoint_writes`` with the seed's documents, told apart by ``json_extract(payload, '$.kind')``; their
reads walk the ``(namespace, key, checkpoint_id)`` index newest id first, in pages, so a read costs about
``limit`` rows. A thread's delete tombstones have an empty ``checkpoint_id``, found through the same index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from contextkit.backend.archive_reads import ArchiveCheckpointReads
from contextkit.backend.tables import ArchiveTables
from contextkit.checkpoint_archive import (
    LANGGRAPH_KIND,
    bundles_from_payloads,
    delete_floor,
    deleted_runs,
    linked_span,
    newest_distinct,
)
from contextkit.errors import EventRefused, InvalidInput
from contextkit.records import ARCHIVE_TABLES, ArchiveEvent, Message, Session
from contextkit.stores import Capability, CheckpointBundle, OwnerState, StoreSettings
from contextkit.tiered.cold_rules import DeleteMark, RowOrder, build_owner_state, delete_mark, hides, row_order
from contextkit_sqlite.database import SqliteDatabase, dumps, from_micros, loads, parse_options, to_micros
from contextkit_sqlite.schema import COLD_MIGRATIONS

__all__ = ["SqliteColdStore"]

_BASE_COLUMNS = ("namespace", "event_id", "key", "created_at", "payload", "version")
# The order of a record's rows (contextkit.tiered.cold_rules.row_order), newest first.
_NEWEST_FIRST = "ORDER BY version DESC, created_at DESC, id DESC"
_ROW = "version, created_at, id, payload"


def _get(payload: Mapping[str, Any], *path: str) -> Any:
    value: Any = payload
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _document(row: tuple[RowOrder, dict[str, Any]] | None, field: str) -> tuple[RowOrder, Mapping[str, Any]] | None:
    """``(order, payload[field])`` of a document row whose payload holds a document there, else None."""
    if row is None or not isinstance(row[1].get(field), Mapping):
        return None
    return row[0], row[1][field]


def _seq(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# Per table: the extra columns pulled out of the payload for indexed reads.
_EXTRAS: dict[str, tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...]] = {
    ArchiveTables.SESSIONS: (
        ("user_id", lambda p: _text(_get(p, "session", "user_id"))),
        ("event_type", lambda p: _text(p.get("event_type"))),
    ),
    ArchiveTables.CONVERSATIONS: (
        ("seq", lambda p: _seq(_get(p, "message", "seq"))),
        ("message_id", lambda p: str(_get(p, "message", "id") or "")),
        ("role", lambda p: _text(_get(p, "message", "role"))),
    ),
    ArchiveTables.TASK_CONTEXTS: (),
    ArchiveTables.CHECKPOINTS: (("checkpoint_id", lambda p: str(p.get("checkpoint_id") or "")),),
    ArchiveTables.CHECKPOINT_WRITES: (
        ("checkpoint_id", lambda p: str(p.get("checkpoint_id") or "")),
        ("task_id", lambda p: _text(p.get("task_id"))),
    ),
    ArchiveTables.CONVERSATION_SESSIONS: (("session_id", lambda p: _text(_get(p, "session", "session_id"))),),
}
_INSERTS = {
    table: (
        f"INSERT OR IGNORE INTO {table} ({', '.join(_BASE_COLUMNS + tuple(c for c, _ in extras))}) "
        f"VALUES ({', '.join('?' * (len(_BASE_COLUMNS) + len(extras)))})"
    )
    for table, extras in _EXTRAS.items()
}
_HISTORY_PAGE = 256
_CHECKPOINT_PAGE = 64
_NOT_LANGGRAPH = " AND json_extract(payload, '$.kind') IS NULL"


class SqliteColdStore(ArchiveCheckpointReads):
    """A cold tier in a SQLite file (the same file as the hot tier by default, in tables of its own).

    :param settings: the tier settings (only ``namespace`` and ``timeout`` matter here).
    :param options: like :class:`~contextkit_sqlite.SqliteHotStore`'s (``path`` / ``url``, ``busy_timeout``).
    """

    name = "sqlite"
    capabilities: frozenset[str] = frozenset({Capability.DURABLE.value, Capability.SHARED.value})

    @classmethod
    def from_options(cls, settings: StoreSettings, options: Mapping[str, Any]) -> SqliteColdStore:
        """The factory registered as the cold tier ``sqlite``: validates ``options``
        (:func:`~contextkit_sqlite.options.parse_options`), does no I/O; ``await store.open()`` connects."""
        return cls(settings, options)

    def __init__(self, settings: StoreSettings, options: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self.options = parse_options(options or {}, settings.timeout)
        self._db = SqliteDatabase(self.options, COLD_MIGRATIONS)
        self._ns = settings.namespace

    def __repr__(self) -> str:
        return f"SqliteColdStore(path={self.options.path!r}, namespace={self._ns!r})"

    async def open(self) -> None:
        """Create the file and run pending migrations."""
        await self._db.open()

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        await self._db.close()

    async def __aenter__(self) -> SqliteColdStore:
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
        """Backend, file path and options; no I/O."""
        return {
            "backend": self.name,
            "tier": "cold",
            "path": self.options.path,
            "namespace": self._ns,
            "busy_timeout": self.options.busy_timeout,
            "tables": list(ARCHIVE_TABLES),
        }

    # -- writes -------------------------------------------------------------------------------------------------
    async def write_events(self, events: Sequence[ArchiveEvent]) -> None:
        """Write a batch in one transaction, ignoring events already stored (by ``event_id``)."""
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for event in events:
            extras = _EXTRAS.get(event.table)
            if extras is None:
                raise InvalidInput(f"unknown archive table {event.table!r} (known: {', '.join(ARCHIVE_TABLES)})")
            payload = event.payload
            rows.setdefault(event.table, []).append(
                (
                    self._ns,
                    event.event_id,
                    event.key,
                    to_micros(event.created_at),
                    dumps(dict(payload)),
                    int(event.version),
                    *(extract(payload) for _, extract in extras),
                )
            )
        if rows:
            await self._db.write(self._write_rows, rows)

    @staticmethod
    def _write_rows(conn: sqlite3.Connection, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        try:
            for table, table_rows in rows.items():
                conn.executemany(_INSERTS[table], table_rows)
        except sqlite3.IntegrityError as exc:
            # A constraint of the archive tables refuses a row (duplicates are ignored by the INSERTs): the data
            # is refused, not the file, so the archiver isolates it instead of retrying the batch forever.
            raise EventRefused(f"sqlite archive refused the data: {exc}") from exc

    # -- reads (contextkit.tiered.cold_rules) ---------------------------------------------------------------------
    @staticmethod
    def _order(row: Sequence[Any]) -> RowOrder:
        """The row order of a ``(version, created_at, id, ...)`` record."""
        return row_order(row[0], from_micros(row[1]), row[2])

    def _newest(
        self, conn: sqlite3.Connection, table: str, key: str, extra: str = "", args: tuple[Any, ...] = ()
    ) -> tuple[RowOrder, dict[str, Any]] | None:
        """The row of ``key`` in ``table`` (narrowed by ``extra``) that answers: the highest in row order."""
        row = conn.execute(
            f"SELECT {_ROW} FROM {table} WHERE namespace = ? AND key = ?{extra} {_NEWEST_FIRST} LIMIT 1",
            (self._ns, key, *args),
        ).fetchone()
        return None if row is None else (self._order(row), loads(row[3]))

    def _mark(self, conn: sqlite3.Connection, key: str) -> DeleteMark | None:
        """The owner's newest delete (the literal event_type lets SQLite use the partial index of deletes)."""
        row = conn.execute(
            f"SELECT {_ROW} FROM context_sessions WHERE namespace = ? AND key = ? AND event_type = 'delete' "
            f"{_NEWEST_FIRST} LIMIT 1",
            (self._ns, key),
        ).fetchone()
        return None if row is None else delete_mark(row[0], from_micros(row[1]), row[2], loads(row[3]))

    def _visible(
        self, conn: sqlite3.Connection, table: str, key: str, extra: str = "", args: tuple[Any, ...] = ()
    ) -> dict[str, Any] | None:
        """The payload of a record's newest row, or None when there is none or the owner's newest delete hides it."""
        newest = self._newest(conn, table, key, extra, args)
        if newest is None or hides(self._mark(conn, key), newest[0]):
            return None
        return newest[1]

    async def read_owner(self, owner: str) -> OwnerState:
        """See :meth:`contextkit.stores.ColdStore.read_owner`: two statements in one read transaction, each of
        whose parts is an index lookup."""
        return await self._db.read(self._read_owner, owner)

    def _read_owner(self, conn: sqlite3.Connection, owner: str) -> OwnerState:
        ns = self._ns
        # The highest version of any record (LangGraph rows, which carry none, left out) and the stream's
        # highest seq. Seed checkpoint rows are found from the top of the version index, past LangGraph rows.
        seed_version = (
            "SELECT version FROM {table} WHERE namespace = ? AND key = ? AND version > 0"
            + _NOT_LANGGRAPH
            + " ORDER BY version DESC LIMIT 1"
        )
        version, last_seq = conn.execute(
            "SELECT MAX("
            "COALESCE((SELECT MAX(version) FROM context_sessions WHERE namespace = ? AND key = ?), 0), "
            "COALESCE((SELECT MAX(version) FROM context_task_contexts WHERE namespace = ? AND key = ?), 0), "
            "COALESCE((SELECT MAX(version) FROM context_conversation_sessions WHERE namespace = ? AND key = ?), 0), "
            f"COALESCE(({seed_version.format(table='context_checkpoints')}), 0), "
            f"COALESCE(({seed_version.format(table='context_checkpoint_writes')}), 0)), "
            "COALESCE((SELECT MAX(seq) FROM context_conversations WHERE namespace = ? AND key = ?), 0)",
            (ns, owner) * 6,
        ).fetchone()
        newest: dict[str, tuple[RowOrder, dict[str, Any]]] = {}
        mark: DeleteMark | None = None
        for part, *row in conn.execute(
            f"SELECT * FROM (SELECT 'delete', {_ROW} FROM context_sessions WHERE namespace = ? AND key = ? "
            f"AND event_type = 'delete' {_NEWEST_FIRST} LIMIT 1) "
            f"UNION ALL SELECT * FROM (SELECT 'session', {_ROW} FROM context_sessions WHERE namespace = ? AND key = ? "
            f"{_NEWEST_FIRST} LIMIT 1) "
            f"UNION ALL SELECT * FROM (SELECT 'task', {_ROW} FROM context_task_contexts WHERE namespace = ? AND key = ? "
            f"{_NEWEST_FIRST} LIMIT 1) "
            f"UNION ALL SELECT * FROM (SELECT 'conversation', {_ROW} FROM context_conversation_sessions "
            f"WHERE namespace = ? AND key = ? {_NEWEST_FIRST} LIMIT 1)",
            (ns, owner) * 4,
        ):
            payload = loads(row[3])
            if part == "delete":
                mark = delete_mark(row[0], from_micros(row[1]), row[2], payload)
            else:
                newest[part] = (self._order(row), payload)
        session = None
        if "session" in newest and newest["session"][1].get("event_type") != "delete":
            order, payload = newest["session"]
            record = payload.get("session")
            if isinstance(record, Mapping):
                session = (order, Session.from_dict(record))
        task = newest.get("task")
        conversation = newest.get("conversation")
        return build_owner_state(
            owner,
            version=int(version),
            last_seq=int(last_seq),
            mark=mark,
            session=session,
            task_context=_document(task, "context"),
            conversation=_document(conversation, "session"),
        )

    async def read_session(self, session_id: str) -> Session | None:
        """The session as of its newest archived version (``version`` set); None when there is none or the
        newest is a delete (read-through must not bring back a session that was deleted on purpose)."""
        newest = await self._db.run(self._newest, ArchiveTables.SESSIONS, session_id)
        if newest is None or newest[1].get("event_type") == "delete":
            return None
        session = newest[1].get("session")
        if not isinstance(session, Mapping):
            return None
        return replace(Session.from_dict(session), version=newest[0][0])

    async def read_history(self, key: str, limit: int | None, before_seq: int | None = None) -> list[Message]:
        """The newest ``limit`` archived messages with ``seq < before_seq``, chronological, each message once,
        without those the key's newest delete hides."""
        if limit is not None and limit <= 0:
            return []
        return await self._db.read(self._read_history, key, limit, before_seq)

    def _read_history(self, conn: sqlite3.Connection, key: str, limit: int | None, before_seq: int | None) -> list[Message]:
        mark = self._mark(conn, key)
        floor = 0 if mark is None else mark.last_seq
        seen: set[str] = set()
        found: list[Message] = []
        upper = before_seq
        last_id: int | None = None
        while limit is None or len(found) < limit:
            # Keyset over (seq, id) descending: each page continues below the last row read, above the delete.
            where = "namespace = ? AND key = ? AND seq > ?"
            params: list[Any] = [self._ns, key, floor]
            if last_id is not None:
                where += " AND (seq < ? OR (seq = ? AND id < ?))"
                params.extend((upper, upper, last_id))
            elif upper is not None:
                where += " AND seq < ?"
                params.append(upper)
            records = conn.execute(
                f"SELECT id, seq, message_id, payload FROM context_conversations WHERE {where} "
                "ORDER BY seq DESC, id DESC LIMIT ?",
                (*params, _HISTORY_PAGE),
            ).fetchall()
            for _, _, message_id, payload in records:
                if message_id in seen:
                    continue
                seen.add(message_id)
                message = _get(loads(payload), "message")
                if isinstance(message, Mapping):
                    found.append(Message.from_dict(message))
                    if limit is not None and len(found) >= limit:
                        break
            if len(records) < _HISTORY_PAGE:
                break
            last_id, upper = records[-1][0], records[-1][1]
        found.reverse()
        return found

    async def read_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The newest archived task context document, or None (also when a later delete hides it)."""
        payload = await self._db.read(self._visible, ArchiveTables.TASK_CONTEXTS, session_id)
        context = None if payload is None else payload.get("context")
        return dict(context) if isinstance(context, Mapping) else None

    async def read_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The newest archived conversation session document, or None (also when a later delete hides it)."""
        payload = await self._db.read(self._visible, ArchiveTables.CONVERSATION_SESSIONS, session_key)
        session = None if payload is None else payload.get("session")
        return dict(session) if isinstance(session, Mapping) else None

    async def conversation_keys_of(self, session_id: str) -> list[str]:
        """See :meth:`contextkit.stores.ColdStore.conversation_keys_of`: the keys that ever named the session
        (from the session id index), each kept when its newest document still names it and no delete hides it."""
        return await self._db.read(self._conversation_keys_of, session_id)

    def _conversation_keys_of(self, conn: sqlite3.Connection, session_id: str) -> list[str]:
        # Sorted here: ORDER BY key would make SQLite walk the namespace's key index instead of the session id one.
        keys = {
            row[0]
            for row in conn.execute(
                "SELECT key FROM context_conversation_sessions WHERE namespace = ? AND session_id = ?",
                (self._ns, session_id),
            )
        }
        found = []
        for key in sorted(keys):
            payload = self._visible(conn, ArchiveTables.CONVERSATION_SESSIONS, key)
            if payload is not None and _get(payload, "session", "session_id") == session_id:
                found.append(key)
        return found

    async def read_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """An archived seed checkpoint document (that checkpoint's newest version, or the thread's newest
        checkpoint when ``checkpoint_id`` is None), or None; a delete of the thread's owner hides those written
        before it."""
        if checkpoint_id is None:
            payload = await self._db.read(self._visible, ArchiveTables.CHECKPOINTS, thread_id, _NOT_LANGGRAPH)
        else:
            payload = await self._db.read(
                self._visible,
                ArchiveTables.CHECKPOINTS,
                thread_id,
                " AND checkpoint_id = ?" + _NOT_LANGGRAPH,
                (checkpoint_id,),
            )
        document = None if payload is None else payload.get("document")
        return dict(document) if isinstance(document, Mapping) else None

    async def _langgraph_bundles(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None, before: str | None, limit: int | None
    ) -> list[CheckpointBundle]:
        """See :meth:`contextkit.backend.archive_reads.ArchiveCheckpointReads._langgraph_bundles`."""
        return await self._db.read(self._langgraph, thread_id, checkpoint_ns, checkpoint_id, before, limit)

    def _langgraph(
        self,
        conn: sqlite3.Connection,
        thread_id: str,
        checkpoint_ns: str | None,
        checkpoint_id: str | None,
        before: str | None,
        limit: int | None,
    ) -> list[CheckpointBundle]:
        tombstones = conn.execute(
            "SELECT payload FROM context_checkpoints WHERE namespace = ? AND key = ? AND checkpoint_id = ''",
            (self._ns, thread_id),
        ).fetchall()
        tomb_payloads = [loads(row[0]) for row in tombstones]
        floor, runs = delete_floor(tomb_payloads), deleted_runs(tomb_payloads)
        where = "namespace = ? AND key = ? AND checkpoint_id > ? AND json_extract(payload, '$.kind') = ?"
        params: list[Any] = [self._ns, thread_id, floor or "", LANGGRAPH_KIND]
        if checkpoint_id is not None:
            where += " AND checkpoint_id = ?"
            params.append(checkpoint_id)
        if before is not None:
            where += " AND checkpoint_id < ?"
            params.append(before)
        if checkpoint_ns is not None:
            where += " AND json_extract(payload, '$.checkpoint_ns') = ?"
            params.append(checkpoint_ns)

        def pages() -> Any:
            cursor: tuple[Any, ...] | None = None
            while True:
                extra, args = "", list(params)
                if cursor is not None:
                    # keyset: continue below the last (checkpoint_id, version, created_at, id) read
                    extra = " AND (checkpoint_id, version, created_at, id) < (?, ?, ?, ?)"
                    args.extend(cursor)
                # For one checkpoint id the newest row comes first (cold_rules order; LangGraph rows are version 0).
                rows = conn.execute(
                    f"SELECT checkpoint_id, version, created_at, id, payload FROM context_checkpoints WHERE {where}{extra} "
                    "ORDER BY checkpoint_id DESC, version DESC, created_at DESC, id DESC LIMIT ?",
                    (*args, _CHECKPOINT_PAGE),
                ).fetchall()
                for row in rows:
                    yield loads(row[4])
                if len(rows) < _CHECKPOINT_PAGE:
                    return
                cursor = rows[-1][:4]

        chosen = newest_distinct(pages(), checkpoint_ns=checkpoint_ns, before=before, floor=floor, limit=limit, runs=runs)
        if not chosen:
            return []
        ids = sorted({str(p["checkpoint_id"]) for p in chosen})
        found: list[tuple[int, int, dict[str, Any]]] = []
        for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
            chunk = ids[start : start + 500]
            for created_at, row_id, text in conn.execute(
                "SELECT created_at, id, payload FROM context_checkpoint_writes WHERE namespace = ? AND key = ? "
                f"AND checkpoint_id IN ({', '.join('?' * len(chunk))})",
                (self._ns, thread_id, *chunk),
            ).fetchall():
                found.append((created_at, row_id, loads(text)))
        found.sort(key=lambda item: (item[0], item[1]))  # archive order decides which write of a key wins
        span = linked_span(chosen)
        linked = [] if span is None else [
            loads(row[0])
            for row in conn.execute(
                "SELECT payload FROM context_checkpoints WHERE namespace = ? AND key = ? AND checkpoint_id >= ? "
                "AND checkpoint_id <= ? AND json_extract(payload, '$.kind') = ?",
                (self._ns, thread_id, span[0], span[1], LANGGRAPH_KIND),
            ).fetchall()
        ]
        return bundles_from_payloads(thread_id, chosen, [payload for _, _, payload in found], linked)

    async def langgraph_threads_of_runs(self, run_ids: Sequence[str]) -> list[str]:
        """See :meth:`contextkit.stores.ColdStore.langgraph_threads_of_runs`."""
        wanted = sorted({str(r) for r in run_ids})
        if not wanted:
            return []
        return await self._db.read(self._threads_of_runs, wanted)

    def _threads_of_runs(self, conn: sqlite3.Connection, wanted: list[str]) -> list[str]:
        # The run ids travel as one JSON array: no limit on bound parameters.
        rows = conn.execute(
            "SELECT DISTINCT key FROM context_checkpoints WHERE namespace = ? AND checkpoint_id != '' "
            "AND json_extract(payload, '$.kind') = ? "
            "AND json_extract(payload, '$.metadata.run_id') IN (SELECT value FROM json_each(?)) ORDER BY key",
            (self._ns, LANGGRAPH_KIND, dumps(wanted)),
        ).fetchall()
        return [row[0] for row in rows]

    async def count_events(self, table: str, key: str | None = None) -> int:
        """Rows in ``table`` (for ``key`` when given); each event is stored once, so each counts once."""
        if table not in _EXTRAS:
            raise InvalidInput(f"unknown archive table {table!r} (known: {', '.join(ARCHIVE_TABLES)})")
        return await self._db.run(self._count, table, key)

    def _count(self, conn: sqlite3.Connection, table: str, key: str | None) -> int:
        if key is None:
            row = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE namespace = ?", (self._ns,)).fetchone()
        else:
            row = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE namespace = ? AND key = ?", (self._ns, key)).fetchone()
        return int(row[0])
