-- contextkit-postgres migration 003: the namespace that owns this schema.
--
-- A namespace's schema is its percent name (contextkit_postgres.options.schema_from_namespace), which no other
-- namespace has; but a schema may also come from the `schema` option, from the name an earlier version gave the
-- namespace, or from the hashed fallback of a namespace too long for a 63-byte name, and none of those is
-- injective. The store writes its namespace here when it first opens the schema and refuses to open a schema that
-- another namespace owns (ConfigError), so two applications never read and delete each other's archive.
--
-- Run by hand like 001: psql -v schema=contextkit -f 003_namespace_owner.sql

CREATE TABLE IF NOT EXISTS :"schema".contextkit_namespace (
    singleton   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    namespace   TEXT NOT NULL,
    claimed_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
