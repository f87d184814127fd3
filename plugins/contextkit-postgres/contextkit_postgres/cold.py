"""The PostgreSQL cold tier: :class:`PostgresColdStore`, an archive of the seed's six tables on an asyncpg pool.

Writes are batched per table, all tables of a batch in one transaction, and idempotent: ``event_id`` is unique
and conflicts are skipped, so the archiver can retry a batch as often as it needs. A batch is COPYed straight into
its tables; when that hits a stored ``event_id`` (a retry) it is COPYed into per-transaction TEMP tables instead and
merged with ``INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING``. Every row keeps the event's ``version``
(migration 003). Reads answer the tiered layer's read-through with the rules of
:mod:`contextkit.tiered.cold_rules`, each read one statement (see :class:`_Sql`): the row of a record with the
highest ``(version, created_at, id)``, unless the key's newest delete hides it; the newest messages of a stream
above that delete's ``last_seq``; and :meth:`PostgresColdStore.read_owner`, all an owner's state in one round
trip. JSON goes over the wire as text (cast to ``jsonb`` in
SQL, read back as ``::text``), so a pool handed in by the application works whatever type codecs it has set; for
that reason the direct COPY (binary, through the jsonb codec) is used only on a pool this store created.

LangGraph checkpoints (:mod:`contextkit.checkpoint_archive`) share ``context_checkpoints`` and
``context_checkpoint_writes`` with the seed's documents: their whole payload goes in ``data`` / ``writes_data``
(a JSON object, where seed writes are a list) and ``data->>'kind'`` tells them apart. Their reads walk the
``(thread_id, checkpoint_id, created_at, id)`` index newest id first in pages, so a read costs about ``limit``
rows; a thread's delete tombstones have an empty ``checkpoint_id``, found through the same index.

Driver errors are translated: connection failures, timeouts and server-side failures become
:class:`~contextkit.errors.BackendUnavailable` (the message never holds the password), data PostgreSQL cannot
store becomes :class:`~contextkit.errors.SerializationError` or, refused by the server (a data or limit error),
:class:`~contextkit.errors.EventRefused`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

import asyncpg

from contextkit.archiver import write_timeout
from contextkit.backend.archive_reads import ArchiveCheckpointReads
from contextkit.backend.documents import load_document, load_object
from contextkit.backend.tables import KEY_COLUMNS, ArchiveTables
from contextkit.checkpoint_archive import (
    DELETE_KIND,
    LANGGRAPH_KIND,
    bundles_from_payloads,
    delete_floor,
    deleted_runs,
    linked_span,
    newest_distinct,
    payload_kind,
)
from contextkit.codec import archive_json
from contextkit.errors import BackendUnavailable, ContextKitError, CorruptData, EventRefused, InvalidInput, SerializationError
from contextkit.masking import SECRET_FILTER, mask_secrets
from contextkit.records import ARCHIVE_TABLES, ArchiveEvent, Message, Session, from_iso, new_id
from contextkit.stores import Capability, CheckpointBundle, OwnerState, StoreSettings
from contextkit.tiered.cold_rules import DeleteMark, build_owner_state, row_order
from contextkit.validation import parse_input
from contextkit_postgres.options import PostgresOptions, parse_options, quote_identifier
from contextkit_postgres.schema import MIGRATIONS_TABLE, claim_schema, load_migrations, migrate, resolve_schema

__all__ = ["PostgresColdStore"]

logger = logging.getLogger("contextkit.postgres")
logger.addFilter(SECRET_FILTER)

T = TypeVar("T")

# Per table: the columns written after (event_id, <key>, created_at), with their SQL types; a "jsonb" type means
# the value is JSON text cast in SQL. Every table ends with the event's version (migration 003).
_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    ArchiveTables.SESSIONS: (
        ("user_id", "text"),
        ("event_type", "text"),
        ("payload", "jsonb"),
        ("last_seq", "bigint"),
        ("version", "bigint"),
    ),
    ArchiveTables.CONVERSATIONS: (
        ("role", "text"),
        ("content", "text"),
        ("metadata", "jsonb"),
        ("seq", "bigint"),
        ("message_id", "text"),
        ("sent_at", "timestamptz"),
        ("version", "bigint"),
    ),
    ArchiveTables.TASK_CONTEXTS: (("context_data", "jsonb"), ("version", "bigint")),
    ArchiveTables.CHECKPOINTS: (("checkpoint_id", "text"), ("data", "jsonb"), ("metadata", "jsonb"), ("version", "bigint")),
    ArchiveTables.CHECKPOINT_WRITES: (
        ("checkpoint_id", "text"),
        ("task_id", "text"),
        ("writes_data", "jsonb"),
        ("version", "bigint"),
    ),
    ArchiveTables.CONVERSATION_SESSIONS: (("session_data", "jsonb"), ("version", "bigint")),
}

# The largest value of a BIGINT column (versions and seqs).
_BIGINT_MAX = 2**63 - 1

# Errors that mean "the connection is gone": the operation may be retried once on a fresh connection.
# Driver errors that refuse the data, not the connection: SQLSTATE classes 22 (data exception), 23 (integrity
# constraint: a unique violation never gets here, write_events merges duplicates) and 54 (program limit exceeded:
# "index row size ... exceeds btree maximum", "row is too big"), and text Python cannot encode.
_REFUSED = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
    UnicodeEncodeError,
)

_CONNECTION_LOST = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # asyncpg's "cannot switch to state N; another operation is in progress", met on a connection the server
    # terminated in the middle of an operation (a restart; MagicStack/asyncpg#784, #1069)
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
_HISTORY_PAGE = 500
_CHECKPOINT_PAGE = 64


_UTC = timezone.utc
_fromisoformat = datetime.fromisoformat


def _dumps(value: Any) -> str:
    if not value and isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return archive_json(value)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _json_text(value: Any, event: ArchiveEvent) -> str:
    try:
        text = _dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"event {event.event_id} ({event.table}) is not JSON-serializable: {exc}") from None
    # PostgreSQL text and jsonb cannot hold U+0000; the escape only appears in the JSON text when a string has one.
    if "\\u0000" in text and _has_nul(value):
        raise SerializationError(f"event {event.event_id} ({event.table}) holds a NUL character, which PostgreSQL cannot store")
    return text


def _plain_text(value: str, event: ArchiveEvent) -> str:
    if "\x00" in value:
        raise SerializationError(f"event {event.event_id} ({event.table}) holds a NUL character, which PostgreSQL cannot store")
    return value


def _mapping(payload: Mapping[str, Any], name: str, event: ArchiveEvent) -> Mapping[str, Any]:
    value = payload.get(name)
    if not isinstance(value, Mapping):
        raise SerializationError(f"event {event.event_id} ({event.table}) needs a {name!r} object in its payload")
    return value


def _version(event: ArchiveEvent) -> int:
    """The event's version, checked to fit its BIGINT column."""
    version = event.version
    if type(version) is not int:
        if isinstance(version, bool) or not isinstance(version, int):
            raise SerializationError(f"event {event.event_id} ({event.table}) has a non-integer version {version!r}")
        version = int(version)
    if not 0 <= version <= _BIGINT_MAX:
        raise SerializationError(f"event {event.event_id} ({event.table}) has a version out of range: {version}")
    return version


def _conversation_row(event: ArchiveEvent) -> tuple[Any, ...]:
    """The COPY record of a ``context_conversations`` event: :meth:`Message.from_dict`'s checks and coercions
    without building the Message, the metadata serialized once, and the conversions skipped for values that have
    their type already (what the kit's events hold). This is the hot loop of a drain: every step is inline."""
    event_id = event.event_id
    key = event.key
    # Ids are str by the ArchiveEvent contract; str() only for a caller that passed something else.
    if type(event_id) is not str:
        event_id = str(event_id)
    if type(key) is not str:
        key = str(key)
    data = event.payload.get("message")
    if type(data) is not dict and not isinstance(data, Mapping):
        raise SerializationError(f"event {event.event_id} ({event.table}) needs a 'message' object in its payload")
    try:
        message_id = data.get("id") or new_id()
        if type(message_id) is not str:
            message_id = str(message_id)
        seq = data.get("seq", 0)
        if type(seq) is not int:
            seq = int(seq)
        role = data["role"]
        if type(role) is not str:
            role = str(role)
        content = data["content"]
        if type(content) is not str:
            content = str(content)
        timestamp = data["timestamp"]
        sent_at = _fromisoformat(timestamp) if type(timestamp) is str else None
        if sent_at is None or sent_at.tzinfo is not _UTC:
            sent_at = from_iso(timestamp)  # naive, another offset, or a datetime: normalised to UTC
        metadata = data.get("metadata")
        metadata_text = "{}" if not metadata else archive_json(metadata if type(metadata) is dict else dict(metadata))
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        if isinstance(exc, SerializationError):
            raise
        raise SerializationError(f"event {event.event_id} ({event.table}) holds a malformed message: {exc!r}") from None
    # PostgreSQL text and jsonb cannot hold U+0000 (in JSON text it can only appear escaped).
    if "\x00" in content or "\x00" in role or "\x00" in message_id or "\x00" in event_id or "\x00" in key or (
        "\\u0000" in metadata_text and _has_nul(metadata)
    ):
        raise SerializationError(f"event {event.event_id} ({event.table}) holds a NUL character, which PostgreSQL cannot store")
    # Messages carry version 0 (their seq orders them): the common case skips the check.
    version = event.version
    if version.__class__ is not int or version != 0:
        version = _version(event)
    return (event_id, key, event.created_at, role, content, metadata_text, seq, message_id, sent_at, version)


def _session_row(event: ArchiveEvent) -> tuple[Any, ...]:
    """The ``context_sessions`` columns: user_id, event_type, payload (the session itself: event_type has its own
    column, as in the ClickHouse tier) and last_seq (a delete's; NULL on other rows).

    An owner's delete may carry no session (any owner can be deleted, e.g. a conversation session key): its
    user_id and payload are then NULL.
    """
    payload = event.payload
    event_type = payload.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise SerializationError(f"event {event.event_id} (context_sessions) needs an 'event_type'")
    last_seq: int | None = None
    if event_type == "delete":
        last_seq = payload.get("last_seq")
        if last_seq is not None and (
            isinstance(last_seq, bool) or not isinstance(last_seq, int) or not 0 <= last_seq <= _BIGINT_MAX
        ):
            raise SerializationError(f"event {event.event_id} (context_sessions) has a malformed last_seq {last_seq!r}")
        if payload.get("session") is None:
            return (None, event_type, None, last_seq)
    document = _mapping(payload, "session", event)
    session = parse_input(Session.from_dict, document, f"event {event.event_id} (context_sessions) session")
    return (
        _plain_text(session.user_id, event),
        _plain_text(event_type, event),
        _json_text(dict(document), event),
        last_seq,
    )


def _row(event: ArchiveEvent) -> tuple[Any, ...]:
    """The column values of one event of any table but ``context_conversations`` (after event_id, key,
    created_at, before version), validated."""
    payload = event.payload
    table = event.table
    if table == ArchiveTables.SESSIONS:
        return _session_row(event)
    if table == ArchiveTables.TASK_CONTEXTS:
        return (_json_text(dict(_mapping(payload, "context", event)), event),)
    kind = payload_kind(payload)
    if table == ArchiveTables.CHECKPOINTS and kind in (LANGGRAPH_KIND, DELETE_KIND):
        metadata = payload.get("metadata")
        return (
            _plain_text(str(payload.get("checkpoint_id") or ""), event),
            _json_text(dict(payload), event),
            _json_text(dict(metadata) if isinstance(metadata, Mapping) else {}, event),
        )
    if table == ArchiveTables.CHECKPOINT_WRITES and kind == LANGGRAPH_KIND:
        return (
            _plain_text(str(payload.get("checkpoint_id", "")), event),
            _plain_text(str(payload.get("task_id", "")), event),
            _json_text(dict(payload), event),
        )
    if table == ArchiveTables.CHECKPOINTS:
        document = _mapping(payload, "document", event)
        metadata = document.get("metadata")
        return (
            _plain_text(str(payload.get("checkpoint_id") or document.get("checkpoint_id") or ""), event),
            _json_text(dict(document), event),
            _json_text(dict(metadata) if isinstance(metadata, Mapping) else {}, event),
        )
    if table == ArchiveTables.CHECKPOINT_WRITES:
        writes = payload.get("writes", [])
        if not isinstance(writes, (list, tuple)):
            raise SerializationError(f"event {event.event_id} (context_checkpoint_writes) needs a 'writes' list")
        return (
            _plain_text(str(payload.get("checkpoint_id", "")), event),
            _plain_text(str(payload.get("task_id", "")), event),
            _json_text(list(writes), event),
        )
    if table == ArchiveTables.CONVERSATION_SESSIONS:
        return (_json_text(dict(_mapping(payload, "session", event)), event),)
    raise InvalidInput(f"unknown archive table {table!r} (known: {', '.join(ARCHIVE_TABLES)})")


def _copy_row(event: ArchiveEvent) -> tuple[Any, ...]:
    """The COPY record of one event: (event_id, key, created_at, *the table's columns, version), validated."""
    if event.table == ArchiveTables.CONVERSATIONS:
        return _conversation_row(event)
    event_id = event.event_id
    key = event.key
    # Ids are str by the ArchiveEvent contract; str() only for a caller that passed something else.
    if type(event_id) is not str:
        event_id = str(event_id)
    if type(key) is not str:
        key = str(key)
    if "\x00" in event_id or "\x00" in key:
        _plain_text(event_id + key, event)
    return (event_id, key, event.created_at, *_row(event), _version(event))


async def _keep_session_state(conn: Any) -> None:
    """The reset of a pool this store creates: nothing to send.

    asyncpg's default reset sends ``RESET ALL; CLOSE ALL; UNLISTEN *; ...`` each time a connection goes back to
    the pool: a second round trip per call, which doubled the latency of a read (``read_owner`` runs on the hot
    path for every owner the hot tier does not know). This store leaves no session state behind: it sets no
    variables, declares no cursors, listens to nothing, takes only transaction-scoped locks and its temp tables
    drop on commit; asyncpg still rolls back a transaction left open before calling this.
    """


class _CopyRows:
    """The COPY records of one table's events, built while COPY sends them.

    asyncpg sends a COPY in chunks of 512 KB as it iterates the records, so building each row as COPY asks for it
    lets the server store one chunk while this process builds the next, instead of building every row first.
    An event that cannot be stored raises its error out of the iteration, which makes asyncpg abort the COPY
    (CopyFail): the server stores none of its rows, and an enclosing transaction rolls back. Rows are kept as they
    are built, so a retry (or the staging path) iterates them again without rebuilding.
    """

    __slots__ = ("build", "error", "events", "rows")

    def __init__(self, table: str, events: list[ArchiveEvent]) -> None:
        self.events = events
        self.build = _conversation_row if table == ArchiveTables.CONVERSATIONS else _copy_row
        self.rows: list[tuple[Any, ...]] = []
        self.error: ContextKitError | None = None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        rows = self.rows
        yield from rows[:]
        if self.error is not None:
            return
        append, build = rows.append, self.build
        try:
            for event in self.events[len(rows) :]:
                row = build(event)
                append(row)
                yield row
        except ContextKitError as exc:
            # Raised inside COPY: asyncpg aborts it (CopyFail), so the server stores none of the batch's rows.
            self.error = exc
            raise

    def check(self) -> None:
        """Raise the error of an event that could not be built, if any."""
        if self.error is not None:
            raise self.error

    def complete(self) -> list[tuple[Any, ...]]:
        """Every record, built now where not yet (raises for an event that cannot be stored)."""
        for _ in self:
            pass
        self.check()
        return self.rows


@dataclass(frozen=True, slots=True)
class _Sql:
    """The read statements of one schema, built once per store.

    They state :mod:`contextkit.tiered.cold_rules` in SQL. The row of a record that answers is the first in
    ``ORDER BY version DESC, created_at DESC, id DESC`` (an index on ``(key, version, created_at, id)`` per
    record, migration 003). The key's newest delete (a ``context_sessions`` row with ``event_type = 'delete'``,
    partial index ``context_sessions_delete_idx``) hides a row of another table whose ``(version, created_at)`` is
    not above its own: ids of two tables do not compare, so a tie (only version-0 rows stamped in the same
    microsecond can tie) counts as written before the delete. It hides the messages of the key's stream with
    ``seq <= last_seq`` (a delete without one, archived before migration 003, hides none). LangGraph rows
    (``data ? 'kind'``, a JSON object in ``writes_data``) are outside these rules.
    """

    owner: str
    session: str
    history: str
    task_context: str
    conversation: str
    conversation_keys: str
    checkpoint: str
    thread_checkpoint: str

    @classmethod
    def build(cls, schema_q: str) -> _Sql:
        """The statements for the quoted schema ``schema_q``."""
        sessions = f"{schema_q}.context_sessions"
        newest = "ORDER BY version DESC, created_at DESC, id DESC LIMIT 1"
        deletes = f"FROM {sessions} d WHERE d.session_id = {{key}} AND d.event_type = 'delete'"

        def visible(table: str, key_column: str, column: str, extra: str = "") -> str:
            # The record's newest row, unless a delete of its key is not older than it.
            return (
                f"SELECT r.{column}::text FROM (SELECT {column}, version, created_at FROM {schema_q}.{table} "
                f"WHERE {key_column} = $1 {extra} {newest}) r "
                f"WHERE NOT EXISTS (SELECT 1 {deletes.format(key='$1')} "
                "AND (d.version, d.created_at) >= (r.version, r.created_at))"
            )

        seed_checkpoint = "AND NOT (data ? 'kind')"
        owner = (
            "SELECT d.version, d.created_at, d.id, d.last_seq, "
            "s.version, s.created_at, s.id, s.payload::text, "
            "t.version, t.created_at, t.context_data::text, "
            "c.version, c.created_at, c.session_data::text, "
            f"(SELECT version FROM {schema_q}.context_checkpoints WHERE thread_id = $1 {seed_checkpoint} "
            "ORDER BY version DESC LIMIT 1), "
            f"(SELECT version FROM {schema_q}.context_checkpoint_writes WHERE thread_id = $1 "
            "AND jsonb_typeof(writes_data) <> 'object' ORDER BY version DESC LIMIT 1), "
            f"(SELECT seq FROM {schema_q}.context_conversations WHERE session_id = $1 ORDER BY seq DESC LIMIT 1) "
            "FROM (VALUES (1)) AS one "
            f"LEFT JOIN LATERAL (SELECT version, created_at, id, last_seq {deletes.format(key='$1')} "
            "ORDER BY d.version DESC, d.created_at DESC, d.id DESC LIMIT 1) d ON TRUE "
            f"LEFT JOIN LATERAL (SELECT version, created_at, id, payload FROM {sessions} "
            f"WHERE session_id = $1 AND event_type <> 'delete' {newest}) s ON TRUE "
            f"LEFT JOIN LATERAL (SELECT version, created_at, context_data FROM {schema_q}.context_task_contexts "
            f"WHERE session_id = $1 {newest}) t ON TRUE "
            f"LEFT JOIN LATERAL (SELECT version, created_at, session_data FROM {schema_q}.context_conversation_sessions "
            f"WHERE session_key = $1 {newest}) c ON TRUE"
        )
        history = (
            "SELECT message_id, seq, id, role, content, metadata::text, sent_at "
            f"FROM {schema_q}.context_conversations WHERE session_id = $1 AND (seq, id) < ($2, $3) "
            f"AND seq > COALESCE((SELECT d.last_seq {deletes.format(key='$1')} "
            "ORDER BY d.version DESC, d.created_at DESC, d.id DESC LIMIT 1), 0) "
            "ORDER BY seq DESC, id DESC LIMIT $4"
        )
        # Per key that ever named the session: its newest document and its newest delete, each one lookup (LATERAL
        # ... LIMIT 1 keeps them per key: an anti join may instead merge with every delete of the archive).
        conversation_keys = (
            "SELECT k.session_key FROM (SELECT DISTINCT session_key "
            f"FROM {schema_q}.context_conversation_sessions WHERE session_data->>'session_id' = $1) k "
            "CROSS JOIN LATERAL (SELECT session_data->>'session_id' AS parent, version, created_at "
            f"FROM {schema_q}.context_conversation_sessions n WHERE n.session_key = k.session_key {newest}) r "
            f"LEFT JOIN LATERAL (SELECT d.version, d.created_at {deletes.format(key='k.session_key')} "
            "ORDER BY d.version DESC, d.created_at DESC, d.id DESC LIMIT 1) x ON TRUE "
            "WHERE r.parent = $1 AND (x.version IS NULL OR (x.version, x.created_at) < (r.version, r.created_at))"
        )
        return cls(
            owner=owner,
            session=f"SELECT event_type, payload::text, version FROM {sessions} WHERE session_id = $1 {newest}",
            history=history,
            task_context=visible(ArchiveTables.TASK_CONTEXTS, "session_id", "context_data"),
            conversation=visible(ArchiveTables.CONVERSATION_SESSIONS, "session_key", "session_data"),
            conversation_keys=conversation_keys,
            checkpoint=visible(ArchiveTables.CHECKPOINTS, "thread_id", "data", f"AND checkpoint_id = $2 {seed_checkpoint}"),
            thread_checkpoint=visible(ArchiveTables.CHECKPOINTS, "thread_id", "data", seed_checkpoint),
        )


class PostgresColdStore(ArchiveCheckpointReads):
    """The cold tier on PostgreSQL (asyncpg): the seed's six tables in a schema of their own.

    Built by the ``postgres`` factory without I/O; :meth:`open` creates the pool (unless one was handed in, which
    is then never closed) and applies the migrations. See :class:`contextkit.stores.ColdStore` for the contract.
    """

    name = "postgres"
    # Concurrent writes: each batch takes a connection of the pool and is one atomic COPY or transaction.
    capabilities: frozenset[str] = frozenset(
        {Capability.DURABLE.value, Capability.SHARED.value, Capability.CONCURRENT_WRITES.value}
    )
    #: Longest id in UTF-8 bytes (contextkit.stores.max_key_bytes): a btree index row holds at most 2,704 bytes
    #: and some indexes hold two ids ((thread_id, checkpoint_id), (session id, session_key)) plus a few fixed-size
    #: columns, so each id gets 1,250 bytes. A longer id makes PostgreSQL refuse the whole row.
    max_key_bytes: int | None = 1_250

    @classmethod
    def from_options(cls, settings: StoreSettings, options: Mapping[str, Any]) -> PostgresColdStore:
        """The factory registered as the cold tier ``postgres``: validates ``options``
        (:func:`~contextkit_postgres.options.parse_options`), does no I/O; ``await store.open()`` connects."""
        return cls(settings, options)

    def __init__(self, settings: StoreSettings, options: Mapping[str, Any] | PostgresOptions) -> None:
        self.settings = settings
        self.options = options if isinstance(options, PostgresOptions) else parse_options(settings.namespace, options)
        self._pool: Any | None = self.options.pool
        self._owns_pool = self.options.pool is None
        self._opened = False
        self._closed = False
        self._use_schema(self.options.schema)
        self._copy_columns = {
            table: ("event_id", KEY_COLUMNS[table], "created_at", *(name for name, _ in _COLUMNS[table]))
            for table in ARCHIVE_TABLES
        }
        self.migrations_applied: list[int] = []

    def _use_schema(self, schema: str) -> None:
        """Point every statement at ``schema``."""
        if schema != self.options.schema:
            self.options = replace(self.options, schema=schema)
        self._schema_q = quote_identifier(schema)
        self._insert_sql = {table: self._build_insert(table) for table in ARCHIVE_TABLES}
        self._sql = _Sql.build(self._schema_q)

    # -- identity ---------------------------------------------------------------------------------------------
    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding this store's tables."""
        return self.options.schema

    @property
    def pool(self) -> Any:
        """The asyncpg pool (after :meth:`open`)."""
        if self._pool is None:
            raise BackendUnavailable("the postgres cold tier is not open")
        return self._pool

    def describe(self) -> dict[str, Any]:
        """Backend, host, port, database, user, schema and pool sizes; never the password. No I/O."""
        return {
            "backend": self.name,
            **self.options.target(),
            "pool": {
                "min_size": self.options.min_size,
                "max_size": self.options.max_size,
                "owned": self._owns_pool,
            },
            "capabilities": sorted(self.capabilities),
        }

    def __repr__(self) -> str:
        target = self.options.target()
        return f"PostgresColdStore(host={target['host']!r}, database={target['database']!r}, schema={self.schema!r})"

    # -- lifecycle --------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the pool within ``settings.timeout`` and apply pending migrations; idempotent."""
        if self._opened:
            return
        if self._closed:
            raise BackendUnavailable("the postgres cold tier was closed; build a new store")
        timeout = self.settings.timeout
        if self._pool is None:
            kwargs: dict[str, Any] = dict(self.options.connect_kwargs)
            if self.options.database:
                kwargs["database"] = self.options.database
            pool = asyncpg.create_pool(
                self.options.url,
                min_size=self.options.min_size,
                max_size=self.options.max_size,
                timeout=timeout,
                reset=_keep_session_state,
                **kwargs,
            )
            try:
                await asyncio.wait_for(asyncio.ensure_future(pool), timeout)
            except Exception as exc:
                pool.terminate()
                raise self._translate(exc, "connect") from None
            self._pool = pool
        namespace = self.settings.namespace
        try:
            legacy = self.options.legacy_schema
            if legacy is not None:
                found = await self._call("find schema", lambda conn: resolve_schema(conn, self.schema, legacy, namespace))
                if found != self.schema:
                    logger.info("postgres cold tier: namespace %r keeps its archive in schema %r", namespace, found)
                    self._use_schema(found)
            self.migrations_applied = await self._call("migrate", lambda conn: migrate(conn, self.schema, timeout))
            # Before any read or write: a schema another namespace owns is refused with a ConfigError.
            await self._call("claim schema", lambda conn: claim_schema(conn, self.schema, namespace, timeout))
        except BaseException:
            if self._owns_pool and self._pool is not None:
                self._pool.terminate()
                self._pool = None
            raise
        if self.migrations_applied:
            logger.info("postgres cold tier: applied migrations %s in schema %s", self.migrations_applied, self.schema)
        self._opened = True

    async def aclose(self) -> None:
        """Close the pool if this store created it (a pool handed in stays open); idempotent."""
        self._closed = True
        self._opened = False
        pool, self._pool = self._pool, None
        if pool is None or not self._owns_pool:
            return
        try:
            await asyncio.wait_for(pool.close(), self.settings.timeout)
        except Exception:
            pool.terminate()

    async def __aenter__(self) -> PostgresColdStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def health(self) -> dict[str, Any]:
        """Status, latency of ``SELECT 1``, server version, pool sizes and schema version; never raises."""
        report: dict[str, Any] = {"backend": self.name, "schema": self.schema}
        started = time.perf_counter()
        try:

            async def probe(conn: Any) -> tuple[Any, Any]:
                await conn.fetchval("SELECT 1")
                version = await conn.fetchval(f"SELECT max(version) FROM {self._schema_q}.{MIGRATIONS_TABLE}")
                return conn.get_settings().server_version, version

            server_version, schema_version = await self._call("health check", probe, retry=False)
        except Exception as exc:
            report.update(
                status="unhealthy",
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
                error=mask_secrets(str(exc), self.options.secrets),
            )
            return report
        pool = self._pool
        report.update(
            status="healthy",
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            server_version=str(server_version).split(" ")[0],
            schema_version=schema_version,
            schema_version_expected=max(m.version for m in load_migrations()),
            pool={
                "size": pool.get_size() if pool is not None and hasattr(pool, "get_size") else None,
                "idle": pool.get_idle_size() if pool is not None and hasattr(pool, "get_idle_size") else None,
                "min_size": self.options.min_size,
                "max_size": self.options.max_size,
            },
        )
        return report

    # -- plumbing ---------------------------------------------------------------------------------------------
    def _translate(self, exc: BaseException, op: str) -> ContextKitError:
        if isinstance(exc, ContextKitError):
            return exc
        if op == "write_events" and isinstance(exc, _REFUSED):
            # The archive refuses the data itself (a value out of range, a row too big for an index, a
            # constraint): the same rows are refused again on any retry, so it is not an outage. Only for writes
            # of events: a constraint met while opening (two processes migrating at once) is not about data.
            return EventRefused(
                f"postgres {op}: value rejected ({type(exc).__name__}): {mask_secrets(str(exc), self.options.secrets)}"
            )
        if isinstance(exc, (asyncpg.DataError, UnicodeEncodeError)):
            return SerializationError(f"postgres {op}: value rejected: {mask_secrets(str(exc), self.options.secrets)}")
        if isinstance(exc, asyncio.TimeoutError):
            return BackendUnavailable(f"postgres {op} timed out after {self.settings.timeout:g}s")
        detail = mask_secrets(str(exc), self.options.secrets) or type(exc).__name__
        return BackendUnavailable(f"postgres {op} failed: {type(exc).__name__}: {detail}")

    async def _call(self, op: str, work: Callable[[Any], Awaitable[T]], *, retry: bool = True, timeout: float | None = None) -> T:
        """Run ``work(connection)`` within the timeout, retrying once on a fresh connection when the pooled one
        turns out to be dead (the server restarted); every operation here is idempotent, so a retry is safe."""
        pool = self._pool
        if pool is None:
            raise BackendUnavailable(f"postgres {op}: the cold tier is not open")
        budget = timeout if timeout is not None else self.settings.timeout

        async def attempt() -> T:
            async with pool.acquire(timeout=budget) as conn:
                return await work(conn)

        deadline = time.monotonic() + budget
        for attempt_no in (1, 2):
            try:
                return await asyncio.wait_for(attempt(), max(deadline - time.monotonic(), 0.001))
            except _CONNECTION_LOST as exc:
                if retry and attempt_no == 1 and deadline - time.monotonic() > 0.05:
                    logger.debug("postgres %s: connection lost (%s), retrying once", op, type(exc).__name__)
                    # The other idle connections died with the same server: replace them all, not one per call.
                    if hasattr(pool, "expire_connections"):
                        await pool.expire_connections()
                    continue
                raise self._translate(exc, op) from None
            except Exception as exc:
                raise self._translate(exc, op) from None
        raise AssertionError("unreachable")

    def _table(self, table: str) -> str:
        if table not in KEY_COLUMNS:
            raise InvalidInput(f"unknown archive table {table!r} (known: {', '.join(ARCHIVE_TABLES)})")
        return f"{self._schema_q}.{table}"

    def _build_insert(self, table: str) -> tuple[str, str]:
        """The staging table's DDL and the INSERT that moves its rows into ``table``.

        The staging table is a per-transaction TEMP table filled by COPY; its JSON columns are ``text`` (cast to
        ``jsonb`` in the INSERT) so the COPY never goes through the connection's jsonb codec, which an
        application's pool may have replaced. No constraints: conflicts are resolved by the INSERT.
        """
        extra = _COLUMNS[table]
        names = ["event_id", KEY_COLUMNS[table], "created_at", *(name for name, _ in extra)]
        types = ["text", "text", "timestamptz", *("text" if kind == "jsonb" else kind for _, kind in extra)]
        selected = [f"{name}::jsonb" if i >= 3 and extra[i - 3][1] == "jsonb" else name for i, name in enumerate(names)]
        stage = f"pg_temp.contextkit_stage_{table}"
        create = (
            f"CREATE TEMP TABLE {stage} ({', '.join(f'{name} {kind}' for name, kind in zip(names, types, strict=True))}) "
            "ON COMMIT DROP"
        )
        # No ORDER BY: a temp table is read by one sequential scan (never parallel), so rows come back in COPY
        # order and ids keep following the batch order, as the archiver hands it over.
        insert = (
            f"INSERT INTO {self._schema_q}.{table} ({', '.join(names)}) "
            f"SELECT {', '.join(selected)} FROM {stage} ON CONFLICT (event_id) DO NOTHING"
        )
        return create, insert

    # -- writes -----------------------------------------------------------------------------------------------
    async def write_events(self, events: Sequence[ArchiveEvent]) -> None:
        """Store a batch in one transaction, idempotently on ``event_id``.

        Raises :class:`SerializationError` (checked before any I/O) or :class:`EventRefused` (refused by the
        server) for an event PostgreSQL cannot hold, nothing written, and :class:`BackendUnavailable` when the
        batch was not stored for an outage; retrying a batch never duplicates a row.
        """
        if not events:
            return
        by_table: dict[str, list[ArchiveEvent]] = {}
        for event in events:
            table_events = by_table.get(event.table)
            if table_events is None:
                if event.table not in KEY_COLUMNS:
                    raise InvalidInput(f"unknown archive table {event.table!r} (known: {', '.join(ARCHIVE_TABLES)})")
                by_table[event.table] = [event]
            else:
                table_events.append(event)
        tables = [table for table in ARCHIVE_TABLES if table in by_table]
        rows = {table: _CopyRows(table, by_table[table]) for table in tables}
        if not self._owns_pool:
            for table in tables:
                rows[table].complete()  # every row checked before any I/O

        async def write(conn: Any) -> None:
            # Fast path: COPY straight into the tables. New events are the common case; a batch holding an event
            # that is stored already (a retried batch, or a duplicate within it) fails as a whole on the unique
            # event_id and is merged through the staging tables instead. Only on a pool this store created: COPY
            # is binary and would pass the JSON text through an application's own jsonb codec.
            if self._owns_pool:
                try:
                    if len(tables) == 1:
                        # One COPY is atomic by itself: no BEGIN / COMMIT round trips (most batches are messages).
                        await self._copy_into(conn, tables[0], rows[tables[0]])
                        return
                    async with conn.transaction():
                        for table in tables:
                            await self._copy_into(conn, table, rows[table])
                    return
                except asyncpg.UniqueViolationError:
                    pass
            records = {table: rows[table].complete() for table in tables}
            async with conn.transaction():
                await conn.execute(";".join(self._insert_sql[table][0] for table in tables))
                for table in tables:
                    await conn.copy_records_to_table(
                        f"contextkit_stage_{table}", records=records[table], schema_name="pg_temp"
                    )
                    await conn.execute(self._insert_sql[table][1])

        # A big batch (many events, or big ones) may legitimately take longer than one call's timeout.
        await self._call("write_events", write, timeout=write_timeout(self.settings.timeout, events))

    async def _copy_into(self, conn: Any, table: str, rows: _CopyRows) -> None:
        await conn.copy_records_to_table(table, records=rows, columns=self._copy_columns[table], schema_name=self.schema)
        rows.check()

    # -- reads ------------------------------------------------------------------------------------------------
    def _loads(self, text: str, what: str) -> Any:
        return load_document(text, what)

    async def read_owner(self, owner: str) -> OwnerState:
        """See :meth:`contextkit.stores.ColdStore.read_owner`: one statement (one round trip once asyncpg has
        prepared it), each of its parts one index lookup; the rules are applied by
        :func:`contextkit.tiered.cold_rules.build_owner_state`.

        Messages carry version 0 by contract (their seq orders them), so the stream's version is not read.
        """
        sql = self._sql.owner
        row = await self._call("read owner", lambda conn: conn.fetchrow(sql, owner))
        (
            delete_version, delete_at, delete_row_id, delete_last_seq,
            session_version, session_at, session_row_id, session_text,
            task_version, task_at, task_text,
            conversation_version, conversation_at, conversation_text,
            checkpoint_version, writes_version, last_seq,
        ) = row
        mark = None
        if delete_version is not None:
            mark = DeleteMark(row_order(delete_version, delete_at, delete_row_id), delete_last_seq or 0)
        session = None
        if session_version is not None:
            order = row_order(session_version, session_at, session_row_id)
            session = (order, replace(self._session(session_text, owner), version=session_version))
        # Rows of the other tables tie-break below a delete of the same (version, created_at): ids of two tables
        # do not compare, and the SQL reads hide such a row too (see _Sql).
        task = None
        if task_version is not None:
            task = (row_order(task_version, task_at, 0), self._document(task_text, "task context"))
        conversation = None
        if conversation_version is not None:
            conversation = (
                row_order(conversation_version, conversation_at, 0),
                self._document(conversation_text, "conversation session"),
            )
        versions = (session_version, task_version, conversation_version, checkpoint_version, writes_version)
        return build_owner_state(
            owner,
            version=max((v for v in versions if v is not None), default=0),
            last_seq=last_seq or 0,
            mark=mark,
            session=session,
            task_context=task,
            conversation=conversation,
        )

    def _session(self, text: str | None, session_id: str) -> Session:
        payload = None if text is None else self._loads(text, "session event")
        if not isinstance(payload, dict):
            raise CorruptData(f"stored session event of {session_id!r} is not a session document")
        return Session.from_dict(payload)

    async def read_session(self, session_id: str) -> Session | None:
        """The session as of its newest archived event by ``(version, created_at, id)``, with that ``version``;
        None when there is none or the newest is a delete."""
        sql = self._sql.session
        row = await self._call("read context_sessions", lambda conn: conn.fetchrow(sql, session_id))
        if row is None or row[0] == "delete":
            return None
        return replace(self._session(row[1], session_id), version=row[2])

    async def read_history(self, key: str, limit: int | None, before_seq: int | None = None) -> list[Message]:
        """The newest ``limit`` messages with ``seq < before_seq``, chronological, each message id once, without
        those the key's newest delete hides (``seq <= last_seq``).

        Walks the ``(session_id, seq, id)`` index backwards in pages, so the cost follows ``limit`` (plus any
        duplicates met on the way), not the length of the stream; the delete's ``last_seq`` bounds the walk.
        """
        if limit is not None and limit <= 0:
            return []
        sql = self._sql.history

        async def read(conn: Any) -> list[Any]:
            seen: set[str] = set()
            kept: list[Any] = []
            cursor = (before_seq if before_seq is not None else 2**62, 0)
            while True:
                want = _HISTORY_PAGE if limit is None else max(min(limit - len(kept), 10_000), 1) + 8
                rows = await conn.fetch(sql, key, cursor[0], cursor[1], want)
                for row in rows:
                    if row[0] not in seen:
                        seen.add(row[0])
                        kept.append(row)
                        if limit is not None and len(kept) >= limit:
                            return kept
                if len(rows) < want:
                    return kept
                cursor = (rows[-1][1], rows[-1][2])

        rows = await self._call("read history", read)
        messages = []
        for row in reversed(rows):
            metadata = self._loads(row[5], "message metadata")
            messages.append(Message(role=row[3], content=row[4], timestamp=row[6], metadata=metadata, id=row[0], seq=row[1]))
        return messages

    async def _visible_document(self, op: str, sql: str, *args: str) -> dict[str, Any] | None:
        row = await self._call(op, lambda conn: conn.fetchrow(sql, *args))
        return None if row is None else self._document(row[0], op.removeprefix("read "))

    async def read_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The newest archived task context document, or None (also when a later delete hides it)."""
        return await self._visible_document("read task context", self._sql.task_context, session_id)

    async def read_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The newest archived conversation session document, or None (also when a later delete hides it)."""
        return await self._visible_document("read conversation session", self._sql.conversation, session_key)

    async def conversation_keys_of(self, session_id: str) -> list[str]:
        """See :meth:`contextkit.stores.ColdStore.conversation_keys_of`: the keys that ever named the session
        (the ``session_data->>'session_id'`` index of migration 003), kept when their newest document still
        does and no delete of the key hides it."""
        sql = self._sql.conversation_keys
        rows = await self._call("conversation keys", lambda conn: conn.fetch(sql, session_id))
        # Sorted here: ORDER BY would follow the database's collation, the contract sorts by code point.
        return sorted(row[0] for row in rows)

    async def read_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """An archived seed checkpoint document (that checkpoint's newest version, or the thread's newest
        checkpoint when ``checkpoint_id`` is None), or None, also when a later delete of the thread's owner hides
        it."""
        if checkpoint_id is None:
            return await self._visible_document("read checkpoint", self._sql.thread_checkpoint, thread_id)
        return await self._visible_document("read checkpoint", self._sql.checkpoint, thread_id, checkpoint_id)

    async def _langgraph_bundles(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None, before: str | None, limit: int | None
    ) -> list[CheckpointBundle]:
        checkpoints, writes = self._table(ArchiveTables.CHECKPOINTS), self._table(ArchiveTables.CHECKPOINT_WRITES)
        floor_sql = (
            f"SELECT data::text FROM {checkpoints} WHERE thread_id = $1 AND checkpoint_id = '' "
            f"AND data->>'kind' = '{DELETE_KIND}'"
        )
        page_sql = (
            f"SELECT checkpoint_id, created_at, id, data::text FROM {checkpoints} "
            f"WHERE thread_id = $1 AND checkpoint_id > $2 AND data->>'kind' = '{LANGGRAPH_KIND}' "
            "AND ($3::text IS NULL OR checkpoint_id = $3) AND ($4::text IS NULL OR checkpoint_id < $4) "
            "AND ($5::text IS NULL OR data->>'checkpoint_ns' = $5) "
            "AND ($6::text IS NULL OR (checkpoint_id, created_at, id) < ($6, $7, $8)) "
            "ORDER BY checkpoint_id DESC, created_at DESC, id DESC LIMIT $9"
        )
        writes_sql = (
            f"SELECT writes_data::text FROM {writes} WHERE thread_id = $1 AND checkpoint_id = ANY($2::text[]) "
            f"AND jsonb_typeof(writes_data) = 'object' AND writes_data->>'kind' = '{LANGGRAPH_KIND}' "
            "ORDER BY created_at, id"
        )
        linked_sql = (
            f"SELECT data::text FROM {checkpoints} WHERE thread_id = $1 AND checkpoint_id >= $2 "
            f"AND checkpoint_id <= $3 AND data->>'kind' = '{LANGGRAPH_KIND}'"
        )

        async def read(conn: Any) -> tuple[list[Any], list[Any], list[Any]]:
            tombstones = [self._loads(r[0], "checkpoint tombstone") for r in await conn.fetch(floor_sql, thread_id)]
            floor, runs = delete_floor(tombstones), deleted_runs(tombstones)
            payloads: list[Any] = []
            chosen: list[Any] = []
            cursor: tuple[Any, Any, Any] = (None, None, None)
            while True:
                rows = await conn.fetch(
                    page_sql, thread_id, floor or "", checkpoint_id, before, checkpoint_ns, *cursor, _CHECKPOINT_PAGE
                )
                payloads.extend(self._loads(r[3], "archived checkpoint") for r in rows)
                chosen = newest_distinct(
                    payloads, checkpoint_ns=checkpoint_ns, before=before, floor=floor, limit=limit, runs=runs
                )
                if len(rows) < _CHECKPOINT_PAGE or (limit is not None and len(chosen) >= limit):
                    break
                cursor = (rows[-1][0], rows[-1][1], rows[-1][2])
            if not chosen:
                return [], [], []
            ids = sorted({str(p["checkpoint_id"]) for p in chosen})
            found = [self._loads(r[0], "archived writes") for r in await conn.fetch(writes_sql, thread_id, ids)]
            span = linked_span(chosen)
            linked = [] if span is None else await conn.fetch(linked_sql, thread_id, span[0], span[1])
            return chosen, found, [self._loads(r[0], "archived checkpoint") for r in linked]

        chosen, found, linked = await self._call("read LangGraph checkpoints", read)
        return bundles_from_payloads(thread_id, chosen, found, linked)

    def _document(self, text: str, what: str) -> dict[str, Any]:
        return load_object(text, what)

    async def langgraph_threads_of_runs(self, run_ids: Sequence[str]) -> list[str]:
        """See :meth:`contextkit.stores.ColdStore.langgraph_threads_of_runs` (the run index of migration 002)."""
        wanted = sorted({str(r) for r in run_ids})
        if not wanted:
            return []
        sql = (
            f"SELECT DISTINCT thread_id FROM {self._table('context_checkpoints')} "
            f"WHERE data ? 'kind' AND metadata->>'run_id' = ANY($1::text[]) AND data->>'kind' = '{LANGGRAPH_KIND}' "
            "ORDER BY thread_id"
        )
        rows = await self._call("threads of runs", lambda conn: conn.fetch(sql, wanted))
        return [row[0] for row in rows]

    async def count_events(self, table: str, key: str | None = None) -> int:
        """Rows in ``table`` (for ``key`` when given); each event is one row, whatever the retries."""
        qualified = self._table(table)
        args: tuple[str, ...]
        if key is None:
            sql, args = f"SELECT count(*) FROM {qualified}", ()
        else:
            sql, args = f"SELECT count(*) FROM {qualified} WHERE {KEY_COLUMNS[table]} = $1", (key,)
        return int(await self._call(f"count {table}", lambda conn: conn.fetchval(sql, *args)))

    async def drop_schema(self) -> None:
        """Drop this store's schema and everything in it (tests and ``contextkit`` maintenance; irreversible)."""
        await self._call("drop schema", lambda conn: conn.execute(f"DROP SCHEMA IF EXISTS {self._schema_q} CASCADE"))
