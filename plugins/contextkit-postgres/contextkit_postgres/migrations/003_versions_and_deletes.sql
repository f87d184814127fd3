-- contextkit-postgres migration 003: the hot tier's versions, and deletes that hide what they removed.
--
-- Every write of a record now carries the version its owner's hot tier gave it, inside the write's atomic step
-- (contextkit.stores.ColdStore, "Versions and deletes"). Per record the archive answers with the row of the
-- highest (version, created_at, id): the hot tier's order, never clocks'. Rows archived before this migration get
-- version 0 and keep reading as before (among version-0 rows created_at decides, as it always did).
--
-- An owner's delete is a context_sessions row with event_type = 'delete' (the owner may be any key: a session id,
-- a conversation session key, a checkpoint thread id). It hides every row of its key in the other tables (LangGraph
-- rows aside) whose (version, created_at) is not above its own, and every message of the key's stream with
-- seq <= its last_seq. A delete of an owner without a session record stores payload NULL and user_id NULL.
--
-- Adding a column with a constant default and dropping NOT NULL change only the catalog (no table rewrite). The
-- CREATE INDEX statements scan their table and block writes to it while they run: on a large archive, create
-- them by hand beforehand with CREATE INDEX CONCURRENTLY and the same names; IF NOT EXISTS then finds them.
--
-- Run by hand like 001: psql -v schema=contextkit -f 003_versions_and_deletes.sql

ALTER TABLE :"schema".context_sessions ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE :"schema".context_conversations ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE :"schema".context_task_contexts ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE :"schema".context_checkpoints ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE :"schema".context_checkpoint_writes ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE :"schema".context_conversation_sessions ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;

-- Delete rows: the stream's highest seq when the owner was deleted (NULL on other rows, and on deletes archived
-- before this migration, which hide no message); no session when the deleted owner had none.
ALTER TABLE :"schema".context_sessions ADD COLUMN IF NOT EXISTS last_seq BIGINT;
ALTER TABLE :"schema".context_sessions ALTER COLUMN payload DROP NOT NULL;

-- The newest row of a record, and each key's highest version: one index lookup each.
CREATE INDEX IF NOT EXISTS context_sessions_session_version_idx
    ON :"schema".context_sessions (session_id, version, created_at, id);
CREATE INDEX IF NOT EXISTS context_task_contexts_session_version_idx
    ON :"schema".context_task_contexts (session_id, version, created_at, id);
CREATE INDEX IF NOT EXISTS context_conversation_sessions_key_version_idx
    ON :"schema".context_conversation_sessions (session_key, version, created_at, id);
-- Seed checkpoint documents only (LangGraph rows have data ? 'kind' and their own index from 001): one checkpoint
-- by id, and the thread's newest.
CREATE INDEX IF NOT EXISTS context_checkpoints_document_version_idx
    ON :"schema".context_checkpoints (thread_id, checkpoint_id, version, created_at, id)
    WHERE NOT (data ? 'kind');
CREATE INDEX IF NOT EXISTS context_checkpoints_thread_version_idx
    ON :"schema".context_checkpoints (thread_id, version, created_at, id)
    WHERE NOT (data ? 'kind');
-- Seed writes (a JSON array; LangGraph writes are an object): the thread's highest version.
CREATE INDEX IF NOT EXISTS context_checkpoint_writes_thread_version_idx
    ON :"schema".context_checkpoint_writes (thread_id, version)
    WHERE jsonb_typeof(writes_data) <> 'object';

-- The newest delete of a key (deletes are few among a session's snapshots).
CREATE INDEX IF NOT EXISTS context_sessions_delete_idx
    ON :"schema".context_sessions (session_id, version, created_at, id)
    WHERE event_type = 'delete';

-- The conversation sessions of a session (conversation_keys_of: a delete of the session tombstones them too).
CREATE INDEX IF NOT EXISTS context_conversation_sessions_parent_idx
    ON :"schema".context_conversation_sessions ((session_data->>'session_id'), session_key);

-- Superseded by the version indexes above (every read that used them now orders by version first); dropping them
-- keeps the archiver's inserts from maintaining indexes no query uses.
DROP INDEX IF EXISTS :"schema".context_sessions_session_created_idx;
DROP INDEX IF EXISTS :"schema".context_task_contexts_session_created_idx;
DROP INDEX IF EXISTS :"schema".context_conversation_sessions_key_created_idx;
DROP INDEX IF EXISTS :"schema".context_checkpoints_thread_created_idx;
