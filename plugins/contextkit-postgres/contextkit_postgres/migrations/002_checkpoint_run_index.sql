-- contextkit-postgres migration 002: find archived LangGraph checkpoints by run.
--
-- ContextKitSaver.adelete_for_runs asks the archive which threads hold checkpoints of the deleted runs
-- (metadata->>'run_id'), so it can archive a runs tombstone for threads only the archive still holds. Only rows
-- of the saver (data ? 'kind') are indexed; seed checkpoint documents are never searched by run.
--
-- Run by hand like 001: psql -v schema=contextkit -f 002_checkpoint_run_index.sql

CREATE INDEX IF NOT EXISTS context_checkpoints_run_idx
    ON :"schema".context_checkpoints ((metadata->>'run_id'), thread_id)
    WHERE data ? 'kind';
