"""The schema of the sqlite backend, as versioned migrations (recorded in ``ck_migrations``).

Every table has a ``namespace`` column that leads its primary key and every index, so one file holds any number
of applications without one schema per namespace. Hot tables are prefixed ``ck_`` (so they never meet the
``checkpoints`` / ``writes`` tables of LangGraph's own SqliteSaver in a shared file); the six cold archive
tables keep the seed's names. Timestamps are integer microseconds since the epoch (exact, and ordered as
numbers); expiry times are float epoch seconds. A new version is appended to a list, never edited in place.

Hot version 2 (tiering, see "Tiering" in :mod:`contextkit.stores`): ``ck_owners`` holds each owner's meta record
(its version counter, its stream's highest seq, which moves there from ``ck_streams``, and its tombstone), created
for every owner that holds data when the file is migrated; the records keep the version of their last write.
Cold version 2: a ``version`` column on the six archive tables, indexes that find a record's row of the highest
``(version, created_at, id)`` (and an owner's newest delete) in one lookup, and the session id of each archived
conversation session document, indexed for :meth:`~contextkit.stores.ColdStore.conversation_keys_of`.
Hot version 3 (restores, see :meth:`~contextkit_sqlite.SqliteHotStore.mark_restored`): ``ck_restores`` records
each declared restore of the file (the file's epoch is the highest), and ``ck_owners.epoch`` the epoch each meta
was last written in, so an owner written before the last restore is reconciled with the archive at its next use.
Hot version 4: the LangGraph tables (``ck_checkpoints``, ``ck_checkpoint_blobs``, ``ck_checkpoint_writes``) are
WITHOUT ROWID tables (the same columns, keys and indexes; rows stored in the primary key's B-tree).
"""

from __future__ import annotations

from contextkit.backend.tables import ArchiveTables
from contextkit.records import ARCHIVE_TABLES
from contextkit_sqlite.codes import path_case_sql, stored_id, type_case_sql
from contextkit_sqlite.database import Migration

__all__ = ["COLD_MIGRATIONS", "HOT_MIGRATIONS"]


def _without_rowid(table: str, columns: str) -> tuple[str, ...]:
    """Rebuild ``table`` (its indexes dropped with it) as a WITHOUT ROWID table of ``columns``, keeping its rows."""
    return (
        f"CREATE TABLE {table}_v4 ({columns}) WITHOUT ROWID",
        f"INSERT INTO {table}_v4 SELECT * FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_v4 RENAME TO {table}",
    )


def _sql_stored_id(value: object) -> object:
    return stored_id(value) if isinstance(value, str) else value


def _keyed_by_thread(table: str, columns: str, select: str) -> tuple[str, ...]:
    """Rebuild ``table`` as a WITHOUT ROWID table of ``columns`` whose rows name their thread by its
    ``ck_checkpoint_threads`` key: ``select`` (over the old table ``o`` joined to the thread ``t``) gives its rows."""
    return (
        f"CREATE TABLE {table}_v5 ({columns}) WITHOUT ROWID",
        f"INSERT INTO {table}_v5 SELECT {select} FROM {table} o "
        "JOIN ck_checkpoint_threads t ON t.namespace = o.namespace AND t.thread_id = o.thread_id",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_v5 RENAME TO {table}",
    )


HOT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "hot",
        1,
        (
            """CREATE TABLE ck_sessions (
                namespace TEXT NOT NULL,
                session_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                last_activity INTEGER NOT NULL,
                request_count INTEGER NOT NULL DEFAULT 0,
                error_count INTEGER NOT NULL DEFAULT 0,
                total_processing_time REAL NOT NULL DEFAULT 0,
                status TEXT NOT NULL,
                metadata TEXT NOT NULL,
                expires_at REAL NOT NULL,
                PRIMARY KEY (namespace, session_id)
            )""",
            "CREATE INDEX ck_sessions_activity ON ck_sessions (namespace, last_activity)",
            "CREATE INDEX ck_sessions_expiry ON ck_sessions (namespace, expires_at)",
            # last_seq is the highest seq ever assigned (it survives trimming); pos orders the kept messages.
            """CREATE TABLE ck_streams (
                namespace TEXT NOT NULL,
                stream_key TEXT NOT NULL,
                last_seq INTEGER NOT NULL,
                last_pos INTEGER NOT NULL,
                expires_at REAL NOT NULL,
                PRIMARY KEY (namespace, stream_key)
            )""",
            "CREATE INDEX ck_streams_expiry ON ck_streams (namespace, expires_at)",
            """CREATE TABLE ck_messages (
                namespace TEXT NOT NULL,
                stream_key TEXT NOT NULL,
                pos INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                id TEXT NOT NULL,
                role TEXT NOT NULL,
                content TEXT NOT NULL,
                timestamp INTEGER NOT NULL,
                metadata TEXT NOT NULL,
                PRIMARY KEY (namespace, stream_key, pos)
            )""",
            """CREATE TABLE ck_task_contexts (
                namespace TEXT NOT NULL,
                session_id TEXT NOT NULL,
                document TEXT NOT NULL,
                expires_at REAL NOT NULL,
                PRIMARY KEY (namespace, session_id)
            )""",
            "CREATE INDEX ck_task_contexts_expiry ON ck_task_contexts (namespace, expires_at)",
            """CREATE TABLE ck_conversation_sessions (
                namespace TEXT NOT NULL,
                session_key TEXT NOT NULL,
                session_id TEXT NOT NULL,
                document TEXT NOT NULL,
                expires_at REAL NOT NULL,
                PRIMARY KEY (namespace, session_key)
            )""",
            "CREATE INDEX ck_conversation_sessions_owner ON ck_conversation_sessions (namespace, session_id)",
            "CREATE INDEX ck_conversation_sessions_expiry ON ck_conversation_sessions (namespace, expires_at)",
            # One TTL row per checkpoint thread, for both the seed's documents and LangGraph checkpoints.
            """CREATE TABLE ck_threads (
                namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                expires_at REAL NOT NULL,
                PRIMARY KEY (namespace, thread_id)
            )""",
            "CREATE INDEX ck_threads_expiry ON ck_threads (namespace, expires_at)",
            """CREATE TABLE ck_seed_checkpoints (
                namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                ord INTEGER NOT NULL,
                document TEXT NOT NULL,
                PRIMARY KEY (namespace, thread_id, checkpoint_id)
            )""",
            "CREATE INDEX ck_seed_checkpoints_order ON ck_seed_checkpoints (namespace, thread_id, ord)",
            """CREATE TABLE ck_seed_writes (
                id INTEGER PRIMARY KEY,
                namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                write TEXT NOT NULL
            )""",
            "CREATE INDEX ck_seed_writes_checkpoint ON ck_seed_writes (namespace, thread_id, checkpoint_id, id)",
            """CREATE TABLE ck_checkpoints (
                namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                parent_checkpoint_id TEXT,
                type TEXT NOT NULL,
                checkpoint BLOB NOT NULL,
                metadata TEXT NOT NULL,
                channel_versions TEXT NOT NULL,
                run_id TEXT,
                PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id)
            )""",
            # Newest-first listing of one thread across namespaces, and of every thread.
            "CREATE INDEX ck_checkpoints_thread ON ck_checkpoints (namespace, thread_id, checkpoint_id, checkpoint_ns)",
            "CREATE INDEX ck_checkpoints_all ON ck_checkpoints (namespace, checkpoint_id, thread_id, checkpoint_ns)",
            "CREATE INDEX ck_checkpoints_run ON ck_checkpoints (namespace, run_id) WHERE run_id IS NOT NULL",
            """CREATE TABLE ck_checkpoint_blobs (
                namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                channel TEXT NOT NULL,
                version TEXT NOT NULL,
                type TEXT NOT NULL,
                blob BLOB NOT NULL,
                PRIMARY KEY (namespace, thread_id, checkpoint_ns, channel, version)
            )""",
            # What a deleted thread remembers so that late writes of the run going at the delete stay dropped.
            """CREATE TABLE ck_tombstones (
                namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                floor TEXT NOT NULL,
                expires_at REAL NOT NULL,
                PRIMARY KEY (namespace, thread_id)
            )""",
            "CREATE INDEX ck_tombstones_expiry ON ck_tombstones (namespace, expires_at)",
            """CREATE TABLE ck_tombstone_dead (
                namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                PRIMARY KEY (namespace, thread_id, checkpoint_id)
            )""",
            """CREATE TABLE ck_checkpoint_writes (
                namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                idx INTEGER NOT NULL,
                channel TEXT NOT NULL,
                type TEXT NOT NULL,
                blob BLOB NOT NULL,
                task_path TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
            )""",
        ),
    ),
    Migration(
        "hot",
        2,
        (
            # The meta record of an owner: its version counter, its stream's highest seq (kept through trims,
            # deletes and compactions), until when it is a tombstone (NULL: it is none), the (version, last seq)
            # of its last delete (0, 0: none known), and when it may be forgotten (never before any record of it
            # expires).
            """CREATE TABLE ck_owners (
                namespace TEXT NOT NULL,
                owner TEXT NOT NULL,
                version INTEGER NOT NULL,
                last_seq INTEGER NOT NULL,
                tomb_until REAL,
                deleted_version INTEGER NOT NULL DEFAULT 0,
                deleted_seq INTEGER NOT NULL DEFAULT 0,
                expires_at REAL NOT NULL,
                PRIMARY KEY (namespace, owner)
            )""",
            "CREATE INDEX ck_owners_expiry ON ck_owners (namespace, expires_at)",
            # An owner that holds data knows it: without its meta an archived store would take it for lost.
            """INSERT INTO ck_owners (namespace, owner, version, last_seq, tomb_until, expires_at)
            SELECT namespace, owner, 0, MAX(last_seq), NULL, MAX(expires_at) FROM (
                SELECT namespace, stream_key AS owner, last_seq, expires_at FROM ck_streams
                UNION ALL SELECT namespace, session_id, 0, expires_at FROM ck_sessions
                UNION ALL SELECT namespace, session_id, 0, expires_at FROM ck_task_contexts
                UNION ALL SELECT namespace, session_key, 0, expires_at FROM ck_conversation_sessions
                UNION ALL SELECT t.namespace, t.thread_id, 0, t.expires_at FROM ck_threads t
                    WHERE EXISTS (SELECT 1 FROM ck_seed_checkpoints c WHERE c.namespace = t.namespace
                        AND c.thread_id = t.thread_id)
                    OR EXISTS (SELECT 1 FROM ck_seed_writes w WHERE w.namespace = t.namespace
                        AND w.thread_id = t.thread_id)
            ) GROUP BY namespace, owner""",
            # The seq counter now lives in ck_owners: ck_streams is rebuilt without it (SQLite's own recipe;
            # DROP COLUMN needs SQLite 3.35, older than some Pythons ship).
            """CREATE TABLE ck_streams_v2 (
                namespace TEXT NOT NULL,
                stream_key TEXT NOT NULL,
                last_pos INTEGER NOT NULL,
                expires_at REAL NOT NULL,
                PRIMARY KEY (namespace, stream_key)
            )""",
            "INSERT INTO ck_streams_v2 (namespace, stream_key, last_pos, expires_at) "
            "SELECT namespace, stream_key, last_pos, expires_at FROM ck_streams",
            "DROP TABLE ck_streams",
            "ALTER TABLE ck_streams_v2 RENAME TO ck_streams",
            "CREATE INDEX ck_streams_expiry ON ck_streams (namespace, expires_at)",
            # Each record keeps the version of its last write (0: written before versions existed).
            "ALTER TABLE ck_sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE ck_task_contexts ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE ck_conversation_sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE ck_seed_checkpoints ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE ck_seed_writes ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        "hot",
        3,
        (
            # One row per declared restore of the file (SqliteHotStore.mark_restored): the file's epoch is the
            # highest. A file copied back from an older backup holds the epoch of that backup, so the next
            # declaration moves it above every meta the backup holds.
            """CREATE TABLE ck_restores (
                epoch INTEGER PRIMARY KEY,
                declared_at TEXT NOT NULL
            )""",
            # The epoch each owner's meta was last written in: a meta below the file's epoch may be older than
            # the archive. Existing metas and a file that never was declared restored are both at epoch 0.
            "ALTER TABLE ck_owners ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        "hot",
        4,
        (
            # The LangGraph tables become WITHOUT ROWID: their rows live in the primary key's own B-tree, not in
            # a rowid table beside an index repeating every key (on a chat thread, 15% of the file). Rebuilt by
            # SQLite's own recipe: a file's first open at this version copies its checkpoints once.
            *_without_rowid(
                "ck_checkpoints",
                """namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                parent_checkpoint_id TEXT,
                type TEXT NOT NULL,
                checkpoint BLOB NOT NULL,
                metadata TEXT NOT NULL,
                channel_versions TEXT NOT NULL,
                run_id TEXT,
                PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id)""",
            ),
            "CREATE INDEX ck_checkpoints_thread ON ck_checkpoints (namespace, thread_id, checkpoint_id, checkpoint_ns)",
            "CREATE INDEX ck_checkpoints_all ON ck_checkpoints (namespace, checkpoint_id, thread_id, checkpoint_ns)",
            "CREATE INDEX ck_checkpoints_run ON ck_checkpoints (namespace, run_id) WHERE run_id IS NOT NULL",
            *_without_rowid(
                "ck_checkpoint_blobs",
                """namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                channel TEXT NOT NULL,
                version TEXT NOT NULL,
                type TEXT NOT NULL,
                blob BLOB NOT NULL,
                PRIMARY KEY (namespace, thread_id, checkpoint_ns, channel, version)""",
            ),
            *_without_rowid(
                "ck_checkpoint_writes",
                """namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                idx INTEGER NOT NULL,
                channel TEXT NOT NULL,
                type TEXT NOT NULL,
                blob BLOB NOT NULL,
                task_path TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx)""",
            ),
        ),
    ),
    Migration(
        "hot",
        5,
        (
            # A LangGraph thread is named once, in ck_checkpoint_threads, and its rows (and index entries) carry
            # its integer key instead of the namespace and thread id (~40 bytes in each of ~1,500 places per 100
            # chat turns); type tags and LangGraph's task path prefixes are stored as codes (contextkit_sqlite.codes).
            # The `type` columns have no declared type: SQLite keeps each value as given, an integer code or a tag's
            # text (a TEXT column would turn the codes into text, an INTEGER one a tag like "7" into a number).
            """CREATE TABLE ck_checkpoint_threads (
                tkey INTEGER PRIMARY KEY,
                namespace TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                UNIQUE (namespace, thread_id)
            )""",
            "INSERT INTO ck_checkpoint_threads (namespace, thread_id) SELECT namespace, thread_id FROM ck_checkpoints "
            "UNION SELECT namespace, thread_id FROM ck_checkpoint_blobs "
            "UNION SELECT namespace, thread_id FROM ck_checkpoint_writes",
            *_keyed_by_thread(
                "ck_checkpoints",
                """tkey INTEGER NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                parent_checkpoint_id TEXT,
                type NOT NULL,
                checkpoint BLOB NOT NULL,
                metadata TEXT NOT NULL,
                channel_versions TEXT NOT NULL,
                run_id TEXT,
                PRIMARY KEY (tkey, checkpoint_ns, checkpoint_id)""",
                "t.tkey, o.checkpoint_ns, o.checkpoint_id, o.parent_checkpoint_id, "
                f"{type_case_sql('o.type')}, o.checkpoint, o.metadata, o.channel_versions, o.run_id",
            ),
            "CREATE INDEX ck_checkpoints_thread ON ck_checkpoints (tkey, checkpoint_id, checkpoint_ns)",
            "CREATE INDEX ck_checkpoints_all ON ck_checkpoints (checkpoint_id, tkey, checkpoint_ns)",
            "CREATE INDEX ck_checkpoints_run ON ck_checkpoints (run_id) WHERE run_id IS NOT NULL",
            *_keyed_by_thread(
                "ck_checkpoint_blobs",
                """tkey INTEGER NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                channel TEXT NOT NULL,
                version TEXT NOT NULL,
                type NOT NULL,
                blob BLOB NOT NULL,
                PRIMARY KEY (tkey, checkpoint_ns, channel, version)""",
                f"t.tkey, o.checkpoint_ns, o.channel, o.version, {type_case_sql('o.type')}, o.blob",
            ),
            *_keyed_by_thread(
                "ck_checkpoint_writes",
                """tkey INTEGER NOT NULL,
                checkpoint_ns TEXT NOT NULL,
                checkpoint_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                idx INTEGER NOT NULL,
                channel TEXT NOT NULL,
                type NOT NULL,
                blob BLOB NOT NULL,
                task_path TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (tkey, checkpoint_ns, checkpoint_id, task_id, idx)""",
                "t.tkey, o.checkpoint_ns, o.checkpoint_id, o.task_id, o.idx, o.channel, "
                f"{type_case_sql('o.type')}, o.blob, {path_case_sql('o.task_path')}",
            ),
        ),
    ),
    Migration(
        "hot",
        6,
        (
            # Checkpoint and task ids of LangGraph's form as their 16 bytes instead of 36 characters
            # (contextkit_sqlite.codes.stored_id): ~20 bytes in each of ~1,500 places per 100 chat turns. The
            # columns keep their TEXT affinity, which stores a blob as it is.
            "UPDATE ck_checkpoints SET checkpoint_id = ck_stored_id(checkpoint_id), "
            "parent_checkpoint_id = ck_stored_id(parent_checkpoint_id)",
            "UPDATE ck_checkpoint_writes SET checkpoint_id = ck_stored_id(checkpoint_id), task_id = ck_stored_id(task_id)",
        ),
        functions=(("ck_stored_id", _sql_stored_id),),
    ),
)


def _archive_table(name: str, extra_columns: str = "", index: tuple[str, str] | None = None) -> tuple[str, ...]:
    statements = [
        f"""CREATE TABLE {name} (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            event_id TEXT NOT NULL,
            key TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            payload TEXT NOT NULL{extra_columns},
            UNIQUE (namespace, event_id)
        )""",
        f"CREATE INDEX {name}_key ON {name} (namespace, key, created_at)",
    ]
    if index is not None:
        suffix, columns = index
        statements.append(f"CREATE INDEX {name}_{suffix} ON {name} ({columns})")
    return tuple(statements)


COLD_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "cold",
        1,
        (
            *_archive_table(ArchiveTables.SESSIONS, ",\n            user_id TEXT,\n            event_type TEXT"),
            *_archive_table(
                ArchiveTables.CONVERSATIONS,
                ",\n            seq INTEGER NOT NULL,\n            message_id TEXT NOT NULL,\n            role TEXT",
                ("seq", "namespace, key, seq"),
            ),
            *_archive_table(ArchiveTables.TASK_CONTEXTS),
            *_archive_table(
                ArchiveTables.CHECKPOINTS,
                ",\n            checkpoint_id TEXT NOT NULL",
                ("checkpoint", "namespace, key, checkpoint_id"),
            ),
            *_archive_table(
                ArchiveTables.CHECKPOINT_WRITES, ",\n            checkpoint_id TEXT NOT NULL,\n            task_id TEXT"
            ),
            *_archive_table(ArchiveTables.CONVERSATION_SESSIONS),
        ),
    ),
    Migration(
        "cold",
        2,
        (
            # Every event's version (0: archived before versions existed), and per record the row of the highest
            # (version, created_at, id) in one index lookup (id is the rowid, the implicit last index column).
            *(f"ALTER TABLE {table} ADD COLUMN version INTEGER NOT NULL DEFAULT 0" for table in ARCHIVE_TABLES),
            *(f"DROP INDEX {table}_key" for table in ARCHIVE_TABLES),
            *(f"CREATE INDEX {table}_record ON {table} (namespace, key, version, created_at)" for table in ARCHIVE_TABLES),
            # An owner's newest delete, without walking every snapshot of its session.
            "CREATE INDEX context_sessions_deletes ON context_sessions (namespace, key, version, created_at) "
            "WHERE event_type = 'delete'",
            # A seed checkpoint's newest version, and LangGraph reads in (checkpoint id, version, time) order.
            "DROP INDEX context_checkpoints_checkpoint",
            "CREATE INDEX context_checkpoints_checkpoint ON context_checkpoints "
            "(namespace, key, checkpoint_id, version, created_at)",
            # The session a conversation session document names: conversation_keys_of is an index lookup.
            "ALTER TABLE context_conversation_sessions ADD COLUMN session_id TEXT",
            "UPDATE context_conversation_sessions SET session_id = json_extract(payload, '$.session.session_id')",
            "CREATE INDEX context_conversation_sessions_owner ON context_conversation_sessions (namespace, session_id)",
        ),
    ),
)
