-- contextkit ClickHouse cold tier, migration 002: the version of every row and the reach of an owner's delete.
--
-- Placeholders as in 001 (${db}, ${prefix}, ${local}, ${on_cluster}).
--
-- version   the version the hot tier gave the write (ArchiveEvent.version), on all six tables. Per record, the row
--           with the highest (version, created_at, tie-breaker) answers (contextkit.tiered.cold_rules); messages
--           keep 0 (their seq orders them). Rows archived before this migration read 0: among them created_at
--           decides, as it did before, and any row written since versions exist is newer than all of them.
-- last_seq  on context_sessions only: for an owner's delete (event_type 'delete'), the highest seq its stream
--           had; the delete hides the messages of the key up to it. 0 on every other row, and on deletes archived
--           before this migration, which therefore hide no message (they never did).
--
-- Both are plain columns with DEFAULT 0: ADD COLUMN only changes metadata (old parts are not rewritten; their
-- rows read the default), so an existing archive migrates in place at once. Neither joins the sorting key: rows
-- stay keyed on event_id (retries still collapse), and reads pick the winning row themselves.
-- On a cluster the replicated _local tables change first, then the Distributed tables over them (an insert
-- through a Distributed table needs the column on both).

ALTER TABLE ${db}.`${prefix}context_sessions${local}` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_seq UInt64 DEFAULT 0;

ALTER TABLE ${db}.`${prefix}context_conversations${local}` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

ALTER TABLE ${db}.`${prefix}context_task_contexts${local}` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

ALTER TABLE ${db}.`${prefix}context_checkpoints${local}` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

ALTER TABLE ${db}.`${prefix}context_checkpoint_writes${local}` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

ALTER TABLE ${db}.`${prefix}context_conversation_sessions${local}` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

-- @cluster-only
ALTER TABLE ${db}.`${prefix}context_sessions` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS last_seq UInt64 DEFAULT 0;

-- @cluster-only
ALTER TABLE ${db}.`${prefix}context_conversations` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

-- @cluster-only
ALTER TABLE ${db}.`${prefix}context_task_contexts` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

-- @cluster-only
ALTER TABLE ${db}.`${prefix}context_checkpoints` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

-- @cluster-only
ALTER TABLE ${db}.`${prefix}context_checkpoint_writes` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;

-- @cluster-only
ALTER TABLE ${db}.`${prefix}context_conversation_sessions` ${on_cluster}
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 0;
