-- contextkit ClickHouse cold tier, migration 003: find the conversation sessions of a session without a scan.
--
-- Placeholders as in 001 (${db}, ${prefix}, ${local}, ${on_cluster}).
--
-- When a session is deleted, the archive is asked which conversation sessions name it (conversation_keys_of):
-- the table is keyed by session key, so without an index that reads the session_id of every archived document
-- (measured: ~0.4 s for 200,000 documents on the test machine, growing with the archive). A bloom filter on the
-- very expression the query filters on lets ClickHouse skip every granule that cannot hold the session (keys of
-- one session sort next to each other, so few granules remain: ~0.1 s for the same 200,000).
--
-- ADD INDEX covers the parts written from now on; MATERIALIZE INDEX builds it for the existing parts as a
-- background mutation (the statement returns at once; until it is done, old parts are read whole, as before).
-- Only the data tables get it: on a cluster the _local tables (a Distributed table holds no data).

ALTER TABLE ${db}.`${prefix}context_conversation_sessions${local}` ${on_cluster}
    ADD INDEX IF NOT EXISTS conversation_session_id JSONExtractString(session_data, 'session_id')
    TYPE bloom_filter(0.01) GRANULARITY 1;

ALTER TABLE ${db}.`${prefix}context_conversation_sessions${local}` ${on_cluster}
    MATERIALIZE INDEX conversation_session_id;
