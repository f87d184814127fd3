-- contextkit cold tier, migration 1: the seed's six permanent tables, with event ids for idempotent writes.
--
-- contextkit_postgres runs this file itself (in a transaction, under an advisory lock, recorded in
-- contextkit_migrations) and substitutes the schema. To apply it by hand, psql does the same substitution:
--     psql "$CONTEXT_PG_URL" -v schema=contextkit -f 001_context_permanent_tables.sql
--
-- Every table: id BIGSERIAL primary key (insertion order), event_id UNIQUE (a retried batch never duplicates a
-- row: writes use ON CONFLICT (event_id) DO NOTHING), created_at = when the event happened (not when the
-- archiver got to it). The indexes serve the read-through queries: "newest row of a key" and, for conversations,
-- "newest N messages of a stream below a sequence number".

CREATE SCHEMA IF NOT EXISTS :"schema";

CREATE TABLE IF NOT EXISTS :"schema".context_sessions (
    id          BIGSERIAL PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    session_id  TEXT NOT NULL,
    user_id     TEXT,
    event_type  TEXT NOT NULL,
    payload     JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS context_sessions_session_created_idx
    ON :"schema".context_sessions (session_id, created_at, id);

CREATE TABLE IF NOT EXISTS :"schema".context_conversations (
    id          BIGSERIAL PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    session_id  TEXT NOT NULL,
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    metadata    JSONB NOT NULL DEFAULT '{}',
    seq         BIGINT NOT NULL,
    message_id  TEXT NOT NULL,
    sent_at     TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS context_conversations_session_seq_idx
    ON :"schema".context_conversations (session_id, seq, id);
CREATE INDEX IF NOT EXISTS context_conversations_session_created_idx
    ON :"schema".context_conversations (session_id, created_at);

CREATE TABLE IF NOT EXISTS :"schema".context_task_contexts (
    id            BIGSERIAL PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    session_id    TEXT NOT NULL,
    context_data  JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS context_task_contexts_session_created_idx
    ON :"schema".context_task_contexts (session_id, created_at, id);

CREATE TABLE IF NOT EXISTS :"schema".context_checkpoints (
    id             BIGSERIAL PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    thread_id      TEXT NOT NULL,
    checkpoint_id  TEXT NOT NULL,
    data           JSONB NOT NULL,
    metadata       JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS context_checkpoints_thread_checkpoint_idx
    ON :"schema".context_checkpoints (thread_id, checkpoint_id, created_at, id);
CREATE INDEX IF NOT EXISTS context_checkpoints_thread_created_idx
    ON :"schema".context_checkpoints (thread_id, created_at, id);

CREATE TABLE IF NOT EXISTS :"schema".context_checkpoint_writes (
    id             BIGSERIAL PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    thread_id      TEXT NOT NULL,
    checkpoint_id  TEXT NOT NULL,
    task_id        TEXT NOT NULL,
    writes_data    JSONB NOT NULL DEFAULT '[]',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS context_checkpoint_writes_thread_checkpoint_idx
    ON :"schema".context_checkpoint_writes (thread_id, checkpoint_id, id);

CREATE TABLE IF NOT EXISTS :"schema".context_conversation_sessions (
    id            BIGSERIAL PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    session_key   TEXT NOT NULL,
    session_data  JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS context_conversation_sessions_key_created_idx
    ON :"schema".context_conversation_sessions (session_key, created_at, id);
