"""What contextkit's backends share, for a plugin author to use rather than write again.

* :mod:`contextkit.backend.documents` - JSON documents in and out of storage, with typed errors
  (``SerializationError`` for a value a write refuses, ``CorruptData`` for stored text that cannot be read).
* :mod:`contextkit.backend.tables` - the archive's table names and their lookup-key columns.
* :mod:`contextkit.backend.migrations` - versioned schema migrations: loading ``NNN_name.sql`` files and
  applying the missing ones in order, each recorded, under the engine's lock.
* :mod:`contextkit.backend.archive_reads` - the LangGraph read-through methods every cold tier answers alike.

Secret masking is :mod:`contextkit.masking` and physical-name derivation :mod:`contextkit.naming`.

The submodules are imported on use (nothing here imports them), so core modules may import the light ones
without an import cycle.
"""
