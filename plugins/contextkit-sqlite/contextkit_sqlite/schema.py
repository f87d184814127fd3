"""The schema of the sqlite backend, as versioned migrations (recorded in ``ck_migrations``).

Every table has a ``namespace`` column that leads its primary key and every index, so one file holds any number
of applications without one schema per namespace. Hot tables are prefixed ``ck_`` (so they never meet the
``checkpoints`` / ``writes`` tables of LangGraph's own SqliteSaver in a shared file); the six cold archive
tables keep the seed's names. Timestamps are integer microseconds since the epoch (exact, and ordered as
numbers); expiry times are float epoch seconds. A new version is appended to a list, never edited in place.
"""

from __future__ import annotations

from contextkit_sqlite.database import Migration

__all__ = ["COLD_MIGRATIONS", "HOT_MIGRATIONS"]

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
            *_archive_table("context_sessions", ",\n            user_id TEXT,\n            event_type TEXT"),
            *_archive_table(
                "context_conversations",
                ",\n            seq INTEGER NOT NULL,\n            message_id TEXT NOT NULL,\n            role TEXT",
                ("seq", "namespace, key, seq"),
            ),
            *_archive_table("context_task_contexts"),
            *_archive_table(
                "context_checkpoints",
                ",\n            checkpoint_id TEXT NOT NULL",
                ("checkpoint", "namespace, key, checkpoint_id"),
            ),
            *_archive_table("context_checkpoint_writes", ",\n            checkpoint_id TEXT NOT NULL,\n            task_id TEXT"),
            *_archive_table("context_conversation_sessions"),
        ),
    ),
)
