"""The owners of the SQLite hot tier (see "Tiering" in :mod:`contextkit.stores`): :class:`SqliteOwners`, the part of
:class:`~contextkit_sqlite.SqliteHotStore` that keeps each owner's meta row and the lifetime of its records.

``ck_owners`` holds one row per owner: its version counter, its stream's highest seq, until when it is a
tombstone, and when it may be forgotten, which is never before any record of it expires (so an owner the row
says is known never hides a record the archive would have to answer for). Every method here runs inside the
caller's transaction (``conn``), so what it reads and writes is atomic with the caller's write, across
processes too (it is the file's write lock).

A session's family (its record, history and task context, and the conversation sessions registered under it
with their histories and metas) shares one lifetime: :meth:`SqliteOwners._touch_group` pushes all of it to
``now + session_ttl`` on a write to any of it, as the memory tier's group deadline does.

Restores: a SQLite file cannot tell that it was copied back from an older backup, so the operator declares it
(``contextkit hot-restored``, :meth:`~contextkit_sqlite.SqliteHotStore.mark_restored`), which adds a row to
``ck_restores`` and so raises the file's *epoch*. Each meta records the epoch it was last written in; one below
the file's epoch was written before the restore and may be older than the archive, so with a cold tier a call on
it raises ``OwnerUnknown(stale=True)`` and :meth:`SqliteOwners._restore_owner` reconciles it with the archive
(the run-based epoch of the Redis tier, declared instead of detected). Reading the epoch is one extra b-tree
probe inside the statement that reads the meta.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contextkit.errors import OwnerUnknown
from contextkit.records import Session
from contextkit.stores import OwnerState, StoreSettings
from contextkit_sqlite.rows import SESSION_COLUMNS, session_from_record

__all__ = ["CURRENT_EPOCH", "META_COLUMNS", "Meta", "SqliteOwners", "meta_from_record", "stale_sql"]


@dataclass(slots=True)
class Meta:
    """An owner's ``ck_owners`` row, as a write changes it (see the module docstring)."""

    version: int = 0
    last_seq: int = 0
    #: Until when the owner is a tombstone (None: it is none).
    tomb_until: float | None = None
    #: When the row may be forgotten (0: not stored yet).
    expires_at: float = 0.0
    #: The version and the stream's highest seq of the owner's last delete (0, 0: none known).
    deleted_version: int = 0
    deleted_seq: int = 0
    #: Written before the file's last declared restore: it may be older than the archive.
    stale: bool = False


#: The ``ck_owners`` columns of a meta, in the order :func:`meta_from_record` reads them.
META_COLUMNS = "version, last_seq, tomb_until, expires_at, deleted_version, deleted_seq"

#: The file's epoch: the number of the last declared restore (0: none). ``ck_restores.epoch`` is the rowid, so
#: this is one probe at the end of its b-tree, whatever the number of restores.
CURRENT_EPOCH = "COALESCE((SELECT MAX(epoch) FROM ck_restores), 0)"


def stale_sql(alias: str = "") -> str:
    """The SQL term, over a ``ck_owners`` row (named ``alias`` in the statement, if any), that is true when the row
    was written before the file's last declared restore."""
    return f"{alias + '.' if alias else ''}epoch < {CURRENT_EPOCH}"


def meta_from_record(record: Sequence[Any], now: float) -> Meta:
    """The meta of a live ``ck_owners`` record read as :data:`META_COLUMNS` and then :func:`stale_sql` (a tombstone
    that ended is none)."""
    tomb = record[2] if record[2] is not None and record[2] > now else None
    return Meta(record[0], record[1], tomb, record[3], record[4], record[5], bool(record[6]))


class SqliteOwners:
    """Mixin of :class:`~contextkit_sqlite.SqliteHotStore`: owner metas, tombstones, family lifetimes, restores."""

    settings: StoreSettings
    _ns: str
    _archived: bool

    def _load_meta(self, conn: sqlite3.Connection, owner: str, now: float) -> Meta | None:
        row = conn.execute(
            f"SELECT {META_COLUMNS}, {stale_sql()} FROM ck_owners WHERE namespace = ? AND owner = ? AND expires_at > ?",
            (self._ns, owner, now),
        ).fetchone()
        return None if row is None else meta_from_record(row, now)

    def _checked(self, owner: str, meta: Meta | None) -> Meta | None:
        """``meta`` when the store may serve the owner from it; OwnerUnknown when archived and the meta is missing
        (``stale=False``) or was written before the file's last declared restore (``stale=True``)."""
        if self._archived and (meta is None or meta.stale):
            raise OwnerUnknown(owner, stale=meta is not None)
        return meta

    def _read_meta(self, conn: sqlite3.Connection, owner: str, now: float) -> Meta | None:
        """The owner's meta, or None for an unknown owner (OwnerUnknown when archived, see :meth:`_checked`)."""
        return self._checked(owner, self._load_meta(conn, owner, now))

    def _write_meta(self, conn: sqlite3.Connection, owner: str, now: float) -> Meta:
        """The owner's meta for a write: a new owner starts at 0 (OwnerUnknown when archived)."""
        meta = self._read_meta(conn, owner, now)
        return Meta() if meta is None else meta

    def _known(self, conn: sqlite3.Connection, owner: str, now: float) -> None:
        """Raise OwnerUnknown for an owner without meta, or with a stale one, when archived (a read's first step)."""
        if self._archived:
            self._checked(owner, self._load_meta(conn, owner, now))

    def _save_meta(self, conn: sqlite3.Connection, owner: str, meta: Meta, expires: float) -> None:
        """Store the meta, as written in the file's current epoch (up to date); it lives at least until
        ``expires`` (the deadline of what the write stored)."""
        meta.expires_at = max(meta.expires_at, expires)
        meta.stale = False
        conn.execute(
            f"INSERT INTO ck_owners (namespace, owner, {META_COLUMNS}, epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
            f"{CURRENT_EPOCH}) ON CONFLICT (namespace, owner) DO UPDATE SET version = excluded.version, "
            "last_seq = excluded.last_seq, tomb_until = excluded.tomb_until, expires_at = excluded.expires_at, "
            "deleted_version = excluded.deleted_version, deleted_seq = excluded.deleted_seq, epoch = excluded.epoch",
            (
                self._ns,
                owner,
                meta.version,
                meta.last_seq,
                meta.tomb_until,
                meta.expires_at,
                meta.deleted_version,
                meta.deleted_seq,
            ),
        )

    def _forget(self, conn: sqlite3.Connection, owner: str) -> None:
        conn.execute("DELETE FROM ck_owners WHERE namespace = ? AND owner = ?", (self._ns, owner))

    def _root(self, conn: sqlite3.Connection, key: str, now: float) -> str:
        """The session a key's family belongs to: the one its conversation session is registered under, or itself."""
        row = conn.execute(
            "SELECT session_id FROM ck_conversation_sessions WHERE namespace = ? AND session_key = ? AND expires_at > ?",
            (self._ns, key, now),
        ).fetchone()
        return key if row is None else str(row[0])

    def _touch_group(
        self,
        conn: sqlite3.Connection,
        root: str,
        now: float,
        *,
        activity: int | None = None,
        saved: str | None = None,
        appended: str | None = None,
        session: bool = True,
    ) -> int:
        """Push the lifetime of the session family of ``root`` to ``now + session_ttl`` (live rows only, never
        shortening one): its record (and its last_activity to ``activity`` when later; ``session=False`` when
        the caller wrote the record itself), task context, stream, the conversation sessions registered under it
        with their streams, and the metas of all of them but the one the caller saves itself (``saved``); the
        stream the caller just wrote (``appended``) is skipped too. Returns 1 if the session record exists."""
        ns = self._ns
        expires = now + self.settings.session_ttl
        touched = 0
        if session:
            touched = conn.execute(
                "UPDATE ck_sessions SET expires_at = MAX(expires_at, ?), last_activity = MAX(last_activity, ?) "
                "WHERE namespace = ? AND session_id = ? AND expires_at > ?",
                (expires, 0 if activity is None else activity, ns, root, now),
            ).rowcount
        conn.execute(
            "UPDATE ck_task_contexts SET expires_at = MAX(expires_at, ?) WHERE namespace = ? AND session_id = ? "
            "AND expires_at > ?",
            (expires, ns, root, now),
        )
        # Most sessions have no conversation session: one cheap probe (two index lookups) finds out. INDEXED BY
        # here and wherever conversation sessions are found by their session: without statistics SQLite would
        # rather walk the namespace's expiry index (every live conversation session) than the session id one.
        keys = {
            row[0]
            for row in conn.execute(
                "SELECT session_key FROM ck_conversation_sessions INDEXED BY ck_conversation_sessions_owner "
                "WHERE namespace = ? AND session_id = ? AND expires_at > ? "
                "UNION ALL SELECT session_key FROM ck_conversation_sessions WHERE namespace = ? AND session_key = ? "
                "AND expires_at > ?",
                (ns, root, now, ns, root, now),
            )
        }
        if keys:
            conn.executemany(
                "UPDATE ck_conversation_sessions SET expires_at = MAX(expires_at, ?) WHERE namespace = ? "
                "AND session_key = ?",
                [(expires, ns, key) for key in keys],
            )
        keys.add(root)
        streams = [(expires, ns, key, now) for key in keys if key != appended]
        if streams:
            conn.executemany(
                "UPDATE ck_streams SET expires_at = MAX(expires_at, ?) WHERE namespace = ? AND stream_key = ? "
                "AND expires_at > ?",
                streams,
            )
        metas = [(expires, ns, key, now) for key in keys if key != saved]
        if metas:
            conn.executemany(
                "UPDATE ck_owners SET expires_at = MAX(expires_at, ?) WHERE namespace = ? AND owner = ? "
                "AND expires_at > ?",
                metas,
            )
        return touched

    def _holds(self, conn: sqlite3.Connection, owner: str, now: float) -> bool:
        """True when a live record is stored under ``owner`` itself."""
        ns = self._ns
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM ck_sessions WHERE namespace = ? AND session_id = ? AND expires_at > ?) "
            "OR EXISTS (SELECT 1 FROM ck_streams WHERE namespace = ? AND stream_key = ? AND expires_at > ?) "
            "OR EXISTS (SELECT 1 FROM ck_task_contexts WHERE namespace = ? AND session_id = ? AND expires_at > ?) "
            "OR EXISTS (SELECT 1 FROM ck_conversation_sessions WHERE namespace = ? AND session_key = ? AND expires_at > ?) "
            "OR ((EXISTS (SELECT 1 FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ?) "
            "OR EXISTS (SELECT 1 FROM ck_seed_writes WHERE namespace = ? AND thread_id = ?)) "
            "AND NOT EXISTS (SELECT 1 FROM ck_threads WHERE namespace = ? AND thread_id = ? AND expires_at <= ?))",
            (ns, owner, now, ns, owner, now, ns, owner, now, ns, owner, now, ns, owner, ns, owner, ns, owner, now),
        ).fetchone()
        return bool(row[0])

    def _drop_owner(self, conn: sqlite3.Connection, owner: str) -> None:
        """Remove every record stored under ``owner`` itself (its session, stream, task context, conversation
        session document and seed checkpoints); the conversation sessions registered under it are owners of
        their own. LangGraph checkpoints are the checkpointer's (``cp_delete_thread``)."""
        key = (self._ns, owner)
        conn.execute("DELETE FROM ck_sessions WHERE namespace = ? AND session_id = ?", key)
        self._drop_stream(conn, owner)
        conn.execute("DELETE FROM ck_task_contexts WHERE namespace = ? AND session_id = ?", key)
        conn.execute("DELETE FROM ck_conversation_sessions WHERE namespace = ? AND session_key = ?", key)
        conn.execute("DELETE FROM ck_seed_checkpoints WHERE namespace = ? AND thread_id = ?", key)
        conn.execute("DELETE FROM ck_seed_writes WHERE namespace = ? AND thread_id = ?", key)

    def _live_session(self, conn: sqlite3.Connection, session_id: str, now: float) -> Session | None:
        record = conn.execute(
            f"SELECT {SESSION_COLUMNS} FROM ck_sessions WHERE namespace = ? AND session_id = ? AND expires_at > ?",
            (self._ns, session_id, now),
        ).fetchone()
        return None if record is None else session_from_record(record)

    def _restore_owner(
        self,
        conn: sqlite3.Connection,
        state: OwnerState,
        rows: dict[str, Any],
        seqs: list[int],
        messages: list[tuple[Any, ...]],
    ) -> None:
        now = time.time()
        owner = state.owner
        current = self._load_meta(conn, owner, now)
        if current is not None:
            if current.stale:
                self._reconcile(conn, current, state, rows, seqs, messages, now)
            return  # up to date: another caller restored it, or wrote first; what it wrote stays
        expires = now + self.settings.session_ttl
        # Each record goes in only where no live row is (an expired row not swept yet is replaced).
        root = self._put_records(conn, state, rows, expires, now, newer=False)
        last_seq = max([state.last_seq, *seqs])
        if messages:
            stream = conn.execute(
                "SELECT expires_at FROM ck_streams WHERE namespace = ? AND stream_key = ?", (self._ns, owner)
            ).fetchone()
            if stream is None or stream[0] <= now:
                self._put_stream(conn, owner, seqs, messages, expires)
        meta = Meta(version=state.version, last_seq=last_seq)
        holds = messages or state.session is not None or state.task_context is not None or state.conversation is not None
        lifetime = 0.0
        if state.deleted:
            meta.tomb_until = now + self.settings.tombstone_ttl
            lifetime = meta.tomb_until
        if holds or not state.deleted:
            lifetime = max(lifetime, expires)
        self._save_meta(conn, owner, meta, lifetime)
        if holds:
            self._touch_group(conn, root, now, saved=owner)

    def _reconcile(
        self,
        conn: sqlite3.Connection,
        meta: Meta,
        state: OwnerState,
        rows: dict[str, Any],
        seqs: list[int],
        messages: list[tuple[Any, ...]],
        now: float,
    ) -> None:
        """Bring a meta written before the file's last declared restore (and the owner's records) up to what the
        archive holds: counters raised to the archive's, each record the archive holds a newer version of replaced
        by it, the kept history replaced when the archive's stream is ahead of it, and a delete the copy never saw
        applied; then the meta is saved in the current epoch (up to date). What the copy holds and the archive does
        not know of yet (a write of the copy's that was never archived) stays."""
        owner = state.owner
        expires = now + self.settings.session_ttl
        lifetime = expires
        if state.deleted and state.version > meta.version:
            # The archive's newest write is a delete this copy never saw: it takes what the delete took.
            self._drop_owner(conn, owner)
            meta.tomb_until = now + self.settings.tombstone_ttl
            lifetime = meta.tomb_until
        elif state.version > meta.version:
            meta.tomb_until = None  # written again after a delete the copy holds
        root = self._put_records(conn, state, rows, expires, now, newer=True)
        last_seq = max([state.last_seq, *seqs])
        if last_seq > meta.last_seq:
            # The archive's stream is ahead of the copy's: its tail replaces what the copy kept.
            self._put_stream(conn, owner, seqs, messages, expires)
            meta.last_seq = last_seq
        meta.version = max(meta.version, state.version)
        holds = self._holds(conn, owner, now)
        self._save_meta(conn, owner, meta, max(lifetime, expires) if holds else lifetime)
        if holds:
            self._touch_group(conn, root, now, saved=owner)

    def _put_records(
        self, conn: sqlite3.Connection, state: OwnerState, rows: dict[str, Any], expires: float, now: float, *, newer: bool
    ) -> str:
        """Store the session, task context and conversation session of ``state`` where no live row is, and with
        ``newer`` also over a live row of a lower version; returns the session the owner's family belongs to."""
        owner, ns = state.owner, self._ns
        root = owner
        # When an upsert replaces the row there: it expired (put-if-absent), or (reconciling) it is an older version.
        where = "WHERE {t}.expires_at <= ?" + (" OR {t}.version < excluded.version" if newer else "")
        if state.session is not None:
            conn.execute(
                f"INSERT INTO ck_sessions (namespace, {SESSION_COLUMNS}, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, session_id) DO UPDATE SET "
                "user_id = excluded.user_id, created_at = excluded.created_at, last_activity = excluded.last_activity, "
                "request_count = excluded.request_count, error_count = excluded.error_count, "
                "total_processing_time = excluded.total_processing_time, status = excluded.status, "
                "metadata = excluded.metadata, version = excluded.version, expires_at = excluded.expires_at "
                + where.format(t="ck_sessions"),
                (ns, *rows["session"], state.session.version, expires, now),
            )
        if state.task_context is not None:
            conn.execute(
                "INSERT INTO ck_task_contexts (namespace, session_id, document, expires_at, version) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (namespace, session_id) DO UPDATE SET document = excluded.document, "
                "expires_at = excluded.expires_at, version = excluded.version " + where.format(t="ck_task_contexts"),
                (ns, owner, rows["task"], expires, state.task_context.version, now),
            )
        if state.conversation is not None:
            root = str(state.conversation.document.get("session_id") or owner)
            conn.execute(
                "INSERT INTO ck_conversation_sessions (namespace, session_key, session_id, document, expires_at, version) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, session_key) DO UPDATE SET "
                "session_id = excluded.session_id, document = excluded.document, expires_at = excluded.expires_at, "
                "version = excluded.version " + where.format(t="ck_conversation_sessions"),
                (ns, owner, root, rows["conversation"], expires, state.conversation.version, now),
            )
        return root

    def _put_stream(
        self, conn: sqlite3.Connection, owner: str, seqs: list[int], messages: list[tuple[Any, ...]], expires: float
    ) -> None:
        """Replace the owner's kept history with ``messages`` (numbered ``seqs``; none: no stream)."""
        ns = self._ns
        self._drop_stream(conn, owner)
        if not messages:
            return
        conn.executemany(
            "INSERT INTO ck_messages (namespace, stream_key, pos, seq, id, role, content, timestamp, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(ns, owner, pos, seq, *values) for pos, (seq, values) in enumerate(zip(seqs, messages, strict=True), start=1)],
        )
        conn.execute(
            "INSERT INTO ck_streams (namespace, stream_key, last_pos, expires_at) VALUES (?, ?, ?, ?)",
            (ns, owner, len(messages), expires),
        )

    def _drop_stream(self, conn: sqlite3.Connection, key: str) -> None:
        conn.execute("DELETE FROM ck_messages WHERE namespace = ? AND stream_key = ?", (self._ns, key))
        conn.execute("DELETE FROM ck_streams WHERE namespace = ? AND stream_key = ?", (self._ns, key))
