-- contextkit ClickHouse cold tier, migration 001: the six archive tables.
--
-- Read by contextkit_clickhouse.schema (this file is the only copy of the DDL). Placeholders, substituted by the
-- code with Python's string.Template (ClickHouse macros such as {shard} and {replica} are left alone):
--   ${db}          the database, quoted
--   ${prefix}      the table prefix (from the namespace), already safe as an identifier
--   ${local}       "" on a single server; "_local" with a cluster (the Distributed table takes the plain name)
--   ${on_cluster}  "" or ON CLUSTER `name`
--   ${engine}      ReplacingMergeTree, or ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
--   ${ttl}         "" or TTL toDateTime(created_at) + INTERVAL n DAY
--   ${cluster}     the cluster name as a string literal (cluster-only statements)
--   ${db_name}     the database as a string literal (cluster-only statements)
--
-- Idempotency: ReplacingMergeTree collapses rows with equal ORDER BY keys. Every key ends with event_id, and the
-- columns before it (the lookup key, seq or created_at) are fixed per event, so a retried batch produces rows
-- with identical keys; reads also deduplicate (LIMIT 1 BY) because merges happen in the background.
-- A statement preceded by "-- @cluster-only" runs only when a cluster is configured.

CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_sessions${local}` ${on_cluster}
(
    session_id  String,
    user_id     String,
    event_type  LowCardinality(String),
    payload     String,
    created_at  DateTime64(6, 'UTC'),
    event_id    String
)
ENGINE = ${engine}
PARTITION BY toYYYYMM(created_at)
ORDER BY (session_id, created_at, event_id)
${ttl};

CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_conversations${local}` ${on_cluster}
(
    session_id  String,
    seq         UInt64,
    message_id  String,
    role        LowCardinality(String),
    content     String,
    metadata    String,
    timestamp   DateTime64(6, 'UTC'),
    created_at  DateTime64(6, 'UTC'),
    event_id    String
)
ENGINE = ${engine}
PARTITION BY toYYYYMM(created_at)
ORDER BY (session_id, seq, event_id)
${ttl};

CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_task_contexts${local}` ${on_cluster}
(
    session_id    String,
    context_data  String,
    created_at    DateTime64(6, 'UTC'),
    event_id      String
)
ENGINE = ${engine}
PARTITION BY toYYYYMM(created_at)
ORDER BY (session_id, created_at, event_id)
${ttl};

CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_checkpoints${local}` ${on_cluster}
(
    thread_id      String,
    checkpoint_id  String,
    data           String,
    metadata       String,
    created_at     DateTime64(6, 'UTC'),
    event_id       String
)
ENGINE = ${engine}
PARTITION BY toYYYYMM(created_at)
ORDER BY (thread_id, created_at, event_id)
${ttl};

CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_checkpoint_writes${local}` ${on_cluster}
(
    thread_id      String,
    checkpoint_id  String,
    task_id        String,
    writes_data    String DEFAULT '[]',
    created_at     DateTime64(6, 'UTC'),
    event_id       String
)
ENGINE = ${engine}
PARTITION BY toYYYYMM(created_at)
ORDER BY (thread_id, checkpoint_id, created_at, event_id)
${ttl};

CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_conversation_sessions${local}` ${on_cluster}
(
    session_key   String,
    session_data  String,
    created_at    DateTime64(6, 'UTC'),
    event_id      String
)
ENGINE = ${engine}
PARTITION BY toYYYYMM(created_at)
ORDER BY (session_key, created_at, event_id)
${ttl};

-- Distributed tables: sharded by the lookup key, so every event of one session/thread (and every retry of an
-- event) lands on the same shard, where ReplacingMergeTree can collapse it.

-- @cluster-only
CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_sessions` ${on_cluster}
AS ${db}.`${prefix}context_sessions_local`
ENGINE = Distributed(${cluster}, ${db_name}, '${prefix}context_sessions_local', cityHash64(session_id));

-- @cluster-only
CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_conversations` ${on_cluster}
AS ${db}.`${prefix}context_conversations_local`
ENGINE = Distributed(${cluster}, ${db_name}, '${prefix}context_conversations_local', cityHash64(session_id));

-- @cluster-only
CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_task_contexts` ${on_cluster}
AS ${db}.`${prefix}context_task_contexts_local`
ENGINE = Distributed(${cluster}, ${db_name}, '${prefix}context_task_contexts_local', cityHash64(session_id));

-- @cluster-only
CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_checkpoints` ${on_cluster}
AS ${db}.`${prefix}context_checkpoints_local`
ENGINE = Distributed(${cluster}, ${db_name}, '${prefix}context_checkpoints_local', cityHash64(thread_id));

-- @cluster-only
CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_checkpoint_writes` ${on_cluster}
AS ${db}.`${prefix}context_checkpoint_writes_local`
ENGINE = Distributed(${cluster}, ${db_name}, '${prefix}context_checkpoint_writes_local', cityHash64(thread_id));

-- @cluster-only
CREATE TABLE IF NOT EXISTS ${db}.`${prefix}context_conversation_sessions` ${on_cluster}
AS ${db}.`${prefix}context_conversation_sessions_local`
ENGINE = Distributed(${cluster}, ${db_name}, '${prefix}context_conversation_sessions_local', cityHash64(session_key));
