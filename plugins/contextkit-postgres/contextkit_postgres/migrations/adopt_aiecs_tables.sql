-- contextkit-postgres: adopt the six tables the original ContextEngine (AIECS) created (its
-- 001_context_permanent_tables.sql: id, created_at and the seed's columns, no event ids), so contextkit archives into
-- them and reads them back. Run by contextkit_postgres.schema.migrate, in the migration transaction, before migration
-- 001, only for a schema contextkit never migrated whose context_sessions has no event_id column; each table is
-- adopted only when it exists without event_id. Every row keeps its id, columns and created_at; what is added:
--
-- * event_id (unique, as contextkit's writes need): 'aiecs:<table>:<id>' for the original's rows;
-- * context_sessions.user_id may be NULL (the delete of an owner without a session has none);
-- * context_conversations: seq (the message's position in its stream, by created_at then id), message_id (the
--   agent message's own id when its metadata has one), sent_at (its created_at);
-- * context_checkpoints.data becomes the checkpoint document contextkit stores there ({checkpoint_id, thread_id,
--   data, metadata, created_at}): the original stored the checkpoint data alone.
--
-- The statements of one table are separated by blank lines from the next table's; each block starts with a
-- "-- table: <name>" line (schema.py runs a block only when its table needs it).

-- table: context_sessions
ALTER TABLE :"schema".context_sessions ADD COLUMN event_id TEXT;
UPDATE :"schema".context_sessions SET event_id = 'aiecs:context_sessions:' || id;
ALTER TABLE :"schema".context_sessions ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE :"schema".context_sessions ADD CONSTRAINT context_sessions_event_id_key UNIQUE (event_id);
ALTER TABLE :"schema".context_sessions ALTER COLUMN user_id DROP NOT NULL;

-- table: context_conversations
ALTER TABLE :"schema".context_conversations ADD COLUMN event_id TEXT, ADD COLUMN seq BIGINT, ADD COLUMN message_id TEXT, ADD COLUMN sent_at TIMESTAMPTZ;
UPDATE :"schema".context_conversations c SET event_id = 'aiecs:context_conversations:' || c.id, seq = n.seq, message_id = COALESCE(NULLIF(c.metadata->>'message_id', ''), 'aiecs:' || c.id), sent_at = c.created_at FROM (SELECT id, row_number() OVER (PARTITION BY session_id ORDER BY created_at, id) AS seq FROM :"schema".context_conversations) n WHERE c.id = n.id;
ALTER TABLE :"schema".context_conversations ALTER COLUMN event_id SET NOT NULL, ALTER COLUMN seq SET NOT NULL, ALTER COLUMN message_id SET NOT NULL, ALTER COLUMN sent_at SET NOT NULL;
ALTER TABLE :"schema".context_conversations ADD CONSTRAINT context_conversations_event_id_key UNIQUE (event_id);

-- table: context_task_contexts
ALTER TABLE :"schema".context_task_contexts ADD COLUMN event_id TEXT;
UPDATE :"schema".context_task_contexts SET event_id = 'aiecs:context_task_contexts:' || id;
ALTER TABLE :"schema".context_task_contexts ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE :"schema".context_task_contexts ADD CONSTRAINT context_task_contexts_event_id_key UNIQUE (event_id);

-- table: context_checkpoints
ALTER TABLE :"schema".context_checkpoints ADD COLUMN event_id TEXT;
UPDATE :"schema".context_checkpoints SET event_id = 'aiecs:context_checkpoints:' || id, data = jsonb_build_object('checkpoint_id', checkpoint_id, 'thread_id', thread_id, 'data', data, 'metadata', metadata, 'created_at', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'));
ALTER TABLE :"schema".context_checkpoints ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE :"schema".context_checkpoints ADD CONSTRAINT context_checkpoints_event_id_key UNIQUE (event_id);

-- table: context_checkpoint_writes
ALTER TABLE :"schema".context_checkpoint_writes ADD COLUMN event_id TEXT;
UPDATE :"schema".context_checkpoint_writes SET event_id = 'aiecs:context_checkpoint_writes:' || id;
ALTER TABLE :"schema".context_checkpoint_writes ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE :"schema".context_checkpoint_writes ADD CONSTRAINT context_checkpoint_writes_event_id_key UNIQUE (event_id);

-- table: context_conversation_sessions
ALTER TABLE :"schema".context_conversation_sessions ADD COLUMN event_id TEXT;
UPDATE :"schema".context_conversation_sessions SET event_id = 'aiecs:context_conversation_sessions:' || id;
ALTER TABLE :"schema".context_conversation_sessions ALTER COLUMN event_id SET NOT NULL;
ALTER TABLE :"schema".context_conversation_sessions ADD CONSTRAINT context_conversation_sessions_event_id_key UNIQUE (event_id);
