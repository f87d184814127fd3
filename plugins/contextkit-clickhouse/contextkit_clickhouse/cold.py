"""The ClickHouse cold tier: :class:`ClickHouseColdStore`, an archive of the six context tables with reads.

Writes are batched (one insert per table per batch, thousands of rows each) into ReplacingMergeTree tables whose
sorting key ends with the event id, so a retried batch collapses to one row per event; reads deduplicate
themselves (``LIMIT 1 BY``, or a pick among identical rows) because ClickHouse merges duplicates only eventually;
no read uses ``FINAL``. The schema comes from the versioned migration files (see :mod:`contextkit_clickhouse.schema`).

Versions and deletes (migration 002) follow :mod:`contextkit.tiered.cold_rules`: every row carries the ``version``
its hot tier gave the write, the row of a record with the highest ``(version, created_at, tie-breaker)`` answers,
and an owner's delete (a ``context_sessions`` row with ``event_type = 'delete'``, ``last_seq`` in a column of its
own) hides the older rows of its key and the messages up to its ``last_seq``. Each read fetches the candidate rows
and the key's newest deletes in one query and decides in Python, so every read applies the same order (only
``read_history`` filters in SQL, on the newest delete's ``last_seq``).

LangGraph checkpoints (:mod:`contextkit.checkpoint_archive`) share the checkpoint tables with the seed's documents:
their whole payload goes in ``data`` / ``writes_data`` and ``JSONExtractString(..., 'kind')`` tells them apart.
Reads scan the thread's rows (the sorting key starts with ``thread_id``) newest id first, in pages; a thread's
delete tombstones have an empty ``checkpoint_id``.

Naming: tables live in the configured database (``default`` unless set) and are prefixed with the percent name
of the store's namespace (``<namespace>_context_sessions`` ..., see
:func:`contextkit_clickhouse.schema.table_prefix_for`); ``table_prefix`` overrides the prefix (``""`` gives the bare
names). Prefixing also keeps these tables apart from the original system's ``context_*`` tables, whose columns
differ. The comment of ``<prefix>namespace_owner`` names the namespace owning the prefix; a store of another
namespace refuses to open there (``ConfigError``). A namespace whose archive an earlier version wrote under its
old prefix (``my_app_<hash>_`` for ``my-app``) keeps using it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from contextkit.archiver import write_timeout
from contextkit.backend.archive_reads import ArchiveCheckpointReads
from contextkit.backend.documents import load_document, load_object
from contextkit.backend.migrations import apply_migrations
from contextkit.backend.tables import ArchiveTables
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
from contextkit.errors import (
    BackendUnavailable,
    ConfigError,
    ContextKitError,
    CorruptData,
    EventRefused,
    InvalidInput,
    SerializationError,
)
from contextkit.masking import SECRET_FILTER, mask_secrets
from contextkit.naming import percent_name, unescape_percent_name
from contextkit.records import ARCHIVE_TABLES, ArchiveEvent, Message, Session, from_iso
from contextkit.stores import Capability, CheckpointBundle, OwnerState, StoreSettings
from contextkit.tiered.cold_rules import DeleteMark, RowOrder, build_owner_state, delete_mark, hides, row_order
from contextkit_clickhouse.options import ClickHouseOptions, parse_options
from contextkit_clickhouse.schema import (
    AIECS_BACKUP_SUFFIX,
    KEY_COLUMNS,
    OWNER_TABLE,
    TABLE_COLUMNS,
    Migration,
    SchemaTarget,
    aiecs_copy_statements,
    legacy_table_prefix_for,
    load_migrations,
    migrations_table_ddl,
    owner_table_ddl,
    quote_identifier,
    table_prefix_for,
)

__all__ = ["ClickHouseColdStore", "ClickHouseOptions", "parse_options"]

logger = logging.getLogger("contextkit.clickhouse")
logger.addFilter(SECRET_FILTER)

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# When several events of one session carry the same created_at, the later lifecycle step wins.
_EVENT_RANK = {"create": 0, "update": 1, "end": 2, "delete": 3}
_CHECKPOINT_PAGE = 64
_NOT_LANGGRAPH = " AND NOT JSONHas(data, 'kind')"


def _dumps(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"
    try:
        # The archive's shared codec (orjson when installed), with json.dumps' meaning and errors.
        return archive_json(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"archive payload is not JSON-compatible: {exc}") from exc


_UTC = timezone.utc
_fromisoformat = datetime.fromisoformat


def _iso_micros(value: Any) -> int:
    """DateTime64(6) ticks of an ISO-8601 timestamp as ``to_iso`` writes it (UTC), or of anything ``from_iso``
    takes; the common case skips the conversion to UTC."""
    parsed = _fromisoformat(value) if type(value) is str else None
    if parsed is None or parsed.tzinfo is not _UTC:
        parsed = from_iso(value)
    return (parsed - _EPOCH) // _MICROSECOND


def _loads(text: str, what: str) -> Any:
    return load_document(text, f"archived {what}")


def _micros(value: datetime) -> int:
    """Microseconds since the epoch (DateTime64(6) ticks), exact: no float round trip."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (value - _EPOCH) // _MICROSECOND


def _from_micros(ticks: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(ticks))


def _last_seq(value: Any, event_id: str) -> int:
    """The ``last_seq`` of a delete event (0 when absent: such a delete hides no message)."""
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise SerializationError(f"archive event {event_id}: a delete's last_seq must be a whole number >= 0, got {value!r}")
    return value


def _session_from(text: str) -> Session:
    return Session.from_dict(load_object(text, "archived session"))  # raises CorruptData itself


def _document(text: str, table: str) -> dict[str, Any]:
    return load_object(text, f"archived {table} document")


# The columns every branch of a read selects (positionally: UNION ALL takes the names of its first branch, and
# an alias that reuses a column's name would leak into that branch's WHERE): part, key, then these, then
# event_type, data and last_seq. See _Row.
_ROW_COLUMNS = "version, toUnixTimestamp64Micro(created_at), event_id"
_NEWEST_DELETE = "maxIf((version, created_at), event_type = 'delete')"

# ClickHouse keeps no write order, so after (version, created_at) a row is placed by a tie-breaker fixed per row
# (contextkit.tiered.cold_rules.row_order): a context_sessions row by the state it carries (the later
# last_activity, the higher counters, the later lifecycle step: how ties were read before versions existed), and
# a row of another table below every context_sessions row (a delete hides what ties with it); then the event id.
# Only rows archived before versions existed can tie: the hot tier gives every write of an owner its own version.
_BELOW_SESSIONS: tuple[int, int, float, int] = (-1, -1, -1.0, -1)


def _session_rank(text: str, event_type: str) -> tuple[int, int, float, int]:
    step = _EVENT_RANK.get(event_type, 1)
    if text == "null":  # an owner's delete without a session
        return (0, 0, 0.0, step)
    session = _session_from(text)
    return (
        _micros(session.last_activity),
        session.request_count + session.error_count,
        session.total_processing_time,
        step,
    )


@dataclass(frozen=True, slots=True)
class _Row:
    """One row a read selected: which branch of the query found it (``part``), its key, its place in the order of
    its record and its stored text (``data``: the payload / document column)."""

    part: str
    key: str
    version: int
    created_at: datetime
    event_id: str
    event_type: str
    data: str
    last_seq: int

    @property
    def is_delete(self) -> bool:
        return self.event_type == "delete"

    @property
    def order(self) -> RowOrder:
        """The row's :func:`~contextkit.tiered.cold_rules.row_order` (see ``_BELOW_SESSIONS`` for the tie-breaker)."""
        rank = _session_rank(self.data, self.event_type) if self.part in ("session", "delete") else _BELOW_SESSIONS
        return row_order(self.version, self.created_at, (rank, self.event_id))


def _newest(rows: Sequence[_Row]) -> _Row | None:
    return max(rows, key=lambda row: row.order) if rows else None


def _mark(deletes: Sequence[_Row]) -> DeleteMark | None:
    """The mark of the newest of an owner's delete rows, or None."""
    newest = _newest(deletes)
    if newest is None:
        return None
    return delete_mark(newest.version, newest.created_at, newest.order[2], {"last_seq": newest.last_seq})



# Server error codes that refuse the data itself, not the connection: the same rows are refused on any retry.
# CANNOT_PARSE_* (6, 26, 27, 38, 41, 72), TYPE_MISMATCH (53), ARGUMENT_OUT_OF_BOUND (69), CANNOT_CONVERT_TYPE
# (70), INCORRECT_DATA (117), TOO_LARGE_ARRAY_SIZE (128), TOO_LARGE_STRING_SIZE (131),
# VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE (321), CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN (349). Resource errors
# (MEMORY_LIMIT_EXCEEDED, TOO_MANY_PARTS) are not among them: they pass, so they are retried.
_REFUSED_CODES = frozenset({6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 128, 131, 321, 349})
_CODE = re.compile(r"\bCode:\s*(\d+)")


def _refuses_data(exc: BaseException) -> bool:
    """Whether a driver error refuses the rows themselves (retrying them is useless) rather than the server or
    the network failing (retry the batch)."""
    from clickhouse_connect.driver.exceptions import DatabaseError, DataError, ProgrammingError

    if isinstance(exc, (DataError, ProgrammingError)) and getattr(exc, "code", None) is None:
        # Raised by the driver itself while it encodes the rows (a value its column type cannot hold).
        return True
    if not isinstance(exc, DatabaseError):
        return False
    code = getattr(exc, "code", None)
    if code is None:
        found = _CODE.search(str(exc))
        code = int(found.group(1)) if found else None
    return code in _REFUSED_CODES


class _Ledger:
    """The migrations of one store (:class:`contextkit.backend.migrations.MigrationLedger`), recorded in
    ``<prefix>schema_migrations`` with their checksums. ClickHouse has no transactions: every statement is
    ``IF NOT EXISTS`` (or the like), so two stores migrating at once do the same work twice, harmlessly."""

    def __init__(self, store: ClickHouseColdStore, client: Any) -> None:
        self.store = store
        self.client = client
        self.table = store.target.table("schema_migrations")

    async def applied(self) -> dict[int, str]:
        result = await self.store._call(
            "read migrations",
            self.client.query(f"SELECT version, argMax(checksum, applied_at) FROM {self.table} GROUP BY version"),
            self.store.settings.timeout,
        )
        return {int(row[0]): str(row[1]) for row in result.result_rows}

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        yield  # nothing to hold (see the class docstring)

    async def apply(self, migration: Migration) -> None:
        store, ddl_timeout = self.store, self.store.options.ddl_timeout
        # A prefix never migrated may hold the original ContextEngine's tables: set aside, then copied over.
        adopting = await store._set_aside_aiecs_tables() if migration.version == 1 and not store.target.cluster else []
        for statement in migration.statements(store.target):
            await store._call(f"migration {migration.version:03d}", self.client.command(statement), ddl_timeout)
        if adopting:
            # Before 001 is recorded: a crash here leaves it unrecorded, and the next open copies again.
            await store._copy_aiecs_rows(adopting)
        await store._call(
            "record migration",
            self.client.insert(
                self.table,
                [[migration.version, migration.name, migration.checksum, _micros(datetime.now(timezone.utc)) // 1000]],
                column_names=["version", "name", "checksum", "applied_at"],
                column_type_names=["UInt32", "String", "String", "DateTime64(3, 'UTC')"],
            ),
            store.settings.timeout,
        )


class ClickHouseColdStore(ArchiveCheckpointReads):
    """The cold tier on ClickHouse (clickhouse-connect's async HTTP client).

    Built by :meth:`from_options` (the ``clickhouse`` factory) without I/O; :meth:`open`
    connects and applies pending migrations. A client passed in ``client`` is used as is and never closed.
    """

    name = "clickhouse"

    @classmethod
    def from_options(cls, settings: StoreSettings, options: Mapping[str, Any]) -> ClickHouseColdStore:
        """The factory registered as the cold tier ``clickhouse``: validates ``options``
        (:func:`~contextkit_clickhouse.options.parse_options`), does no I/O; ``await store.open()`` connects."""
        return cls(settings, options)

    def __init__(self, settings: StoreSettings, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.settings = settings
        self._external_client: Any = options.pop("client", None)
        self.options = parse_options(options)
        prefix = self.options.table_prefix
        self.target = SchemaTarget(
            database=self.options.database,
            table_prefix=table_prefix_for(settings.namespace) if prefix is None else prefix,
            cluster=self.options.cluster,
            ttl_days=self.options.ttl_days,
        )
        # The prefix an earlier version gave the namespace, when it differs (never with an explicit table_prefix):
        # open() keeps using it if it holds this namespace's archive.
        legacy = legacy_table_prefix_for(settings.namespace)
        self._legacy_prefix = legacy if prefix is None and legacy != self.target.table_prefix else None
        caps = {Capability.DURABLE.value, Capability.SHARED.value}
        if self.options.cluster:
            caps.add(Capability.CLUSTER.value)
        self.capabilities: frozenset[str] = frozenset(caps)
        # contextkit.stores.max_key_bytes: a MergeTree sorting key has no size limit of its own (a String key
        # column takes any length), so ClickHouse declares none below Limits.max_id_length.
        self.max_key_bytes: int | None = None
        self._client: Any = None
        self._server_version: str | None = None
        self._tables = {name: self.target.table(name) for name in ARCHIVE_TABLES}

    def __repr__(self) -> str:
        return f"ClickHouseColdStore(target={self._target_text()!r}, prefix={self.target.table_prefix!r})"

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect (unless a client was handed in), find the prefix of the namespace's archive, apply the
        migrations not yet recorded and claim the prefix for the namespace (``ConfigError`` when another
        namespace owns it)."""
        if self._client is None:
            if self._external_client is not None:
                self._client = self._external_client
            else:
                self._client = await self._connect()
        if self._legacy_prefix is not None:
            await self._find_legacy_prefix(self._legacy_prefix)
        await self.migrate()
        await self._claim_prefix()

    async def _tables_with_comments(self, names: Sequence[str]) -> dict[str, str]:
        result = await self._call(
            "read tables",
            self._require_client().query(
                "SELECT name, comment FROM system.tables WHERE database = {db:String} AND name IN {names:Array(String)}",
                parameters={"db": self.options.database, "names": list(names)},
            ),
            self.settings.timeout,
        )
        return {str(row[0]): str(row[1]) for row in result.result_rows}

    async def _find_legacy_prefix(self, legacy: str) -> None:
        """Switch to ``legacy`` (the prefix an earlier version gave the namespace) when the namespace's own prefix
        has no tables yet and ``legacy`` holds an archive no other namespace owns: it stays readable in place."""
        current = self.target.table_prefix
        found = await self._tables_with_comments(
            [current + "schema_migrations", legacy + "schema_migrations", legacy + OWNER_TABLE]
        )
        if current + "schema_migrations" in found or legacy + "schema_migrations" not in found:
            return
        owner_comment = found.get(legacy + OWNER_TABLE)
        if owner_comment is not None and owner_comment != percent_name(self.settings.namespace):
            return
        logger.info("ClickHouse cold tier: namespace %r keeps its archive under the prefix %r", self.settings.namespace, legacy)
        self.target = replace(self.target, table_prefix=legacy)
        self._tables = {name: self.target.table(name) for name in ARCHIVE_TABLES}

    async def _claim_prefix(self) -> None:
        """Record the namespace as the owner of the prefix (the comment of ``<prefix>namespace_owner``, set by the
        first ``CREATE``) and raise ``ConfigError`` when another namespace owns it."""
        namespace = self.settings.namespace
        owner_table = self.target.table_prefix + OWNER_TABLE
        comment = (await self._tables_with_comments([owner_table])).get(owner_table)
        if comment is None:
            ddl = owner_table_ddl(self.target, namespace)
            await self._call("claim table prefix", self._require_client().command(ddl), self.options.ddl_timeout)
            comment = (await self._tables_with_comments([owner_table])).get(owner_table, "")
        if comment != percent_name(namespace):
            try:
                owner = repr(unescape_percent_name(comment))
            except UnicodeDecodeError:
                owner = "another namespace"
            raise ConfigError(
                f"the ClickHouse table prefix {self.target.table_prefix!r} in database {self.options.database!r} holds "
                f"the archive of namespace {owner}, not of {namespace!r}; give this namespace a prefix of its own "
                "([clickhouse] table_prefix = ...) or use another namespace"
            )

    async def aclose(self) -> None:
        """Close the client this store created; idempotent. A client handed in stays open."""
        client, self._client = self._client, None
        if client is not None and client is not self._external_client:
            try:
                await client.close()
            except Exception as exc:  # closing a pool to a dead server must not fail shutdown
                logger.debug("closing the ClickHouse client failed: %s", self._scrub(exc))

    async def __aenter__(self) -> ClickHouseColdStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _connect(self) -> Any:
        import clickhouse_connect

        opts = self.options
        timeout = self.settings.timeout
        return await self._call(
            "connect",
            clickhouse_connect.get_async_client(
                host=opts.host,
                port=opts.port,
                username=opts.username,
                password=opts.password,
                secure=opts.secure,
                compress=opts.compress,
                connect_timeout=timeout,
                send_receive_timeout=max(timeout, opts.ddl_timeout),
                client_name="contextkit",
                autogenerate_session_id=False,
                query_retries=0,
            ),
            timeout,
        )

    # -- schema ------------------------------------------------------------------------------------------------
    def ddl(self) -> list[str]:
        """Every DDL statement :meth:`open` may run, in order (no I/O): database, migrations table, migrations, and
        the table claiming the prefix for the namespace."""
        statements = [self._database_ddl()] if self.options.database != "default" else []
        statements.append(migrations_table_ddl(self.target))
        for migration in load_migrations():
            statements.extend(migration.statements(self.target))
        statements.append(owner_table_ddl(self.target, self.settings.namespace))
        return statements

    def _database_ddl(self) -> str:
        on_cluster = f" {self.target.on_cluster}" if self.target.cluster else ""
        return f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.options.database)}{on_cluster}"

    async def migrate(self) -> list[int]:
        """Apply the migrations not recorded in ``<prefix>schema_migrations``; returns the versions applied."""
        client = self._require_client()
        ddl_timeout = self.options.ddl_timeout
        if self.options.database != "default":
            await self._call("create database", client.command(self._database_ddl()), ddl_timeout)
        await self._call("create migrations table", client.command(migrations_table_ddl(self.target)), ddl_timeout)

        def changed(migration: Migration) -> None:
            logger.warning(
                "ClickHouse migration %03d_%s changed after it was applied; it is not re-run",
                migration.version,
                migration.name,
            )

        return await apply_migrations(_Ledger(self, client), load_migrations(), on_changed=changed)

    async def _set_aside_aiecs_tables(self) -> list[str]:
        """Tables the original ContextEngine (AIECS) created under this store's names (no ``event_id`` column):
        each is renamed to ``<name>__aiecs_original`` (kept, never dropped) so migration 001 creates contextkit's,
        and :meth:`_copy_aiecs_rows` copies its rows over. Returns the tables to copy: those renamed now and those
        a previous, interrupted open renamed."""
        client = self._require_client()
        prefix = self.target.table_prefix
        result = await self._call(
            "find AIECS tables",
            client.query(
                "SELECT table, countIf(name = 'event_id') FROM system.columns WHERE database = {db:String} "
                "AND table IN {names:Array(String)} GROUP BY table",
                parameters={
                    "db": self.options.database,
                    "names": [prefix + n for n in ARCHIVE_TABLES] + [prefix + n + AIECS_BACKUP_SUFFIX for n in ARCHIVE_TABLES],
                },
            ),
            self.settings.timeout,
        )
        found = {str(row[0]): int(row[1]) for row in result.result_rows}
        adopting = []
        for name in ARCHIVE_TABLES:
            if found.get(prefix + name) == 0:  # the original's table: no event ids
                await self._call(
                    "set aside AIECS table",
                    client.command(f"RENAME TABLE {self.target.table(name)} TO {self.target.table(name + AIECS_BACKUP_SUFFIX)}"),
                    self.options.ddl_timeout,
                )
                logger.info("clickhouse cold tier: adopting the original ContextEngine's table %s", prefix + name)
                adopting.append(name)
            elif prefix + name + AIECS_BACKUP_SUFFIX in found:
                adopting.append(name)
        return adopting

    async def _copy_aiecs_rows(self, tables: list[str]) -> None:
        client = self._require_client()
        statements = aiecs_copy_statements(self.target)
        for name in tables:
            # Idempotent: an interrupted copy is redone from the kept original table.
            await self._call("clear adopted table", client.command(f"TRUNCATE TABLE {self.target.table(name)}"),
                             self.options.ddl_timeout)
            await self._call("copy AIECS rows", client.command(statements[name]), self.options.ddl_timeout)

    async def drop_tables(self) -> None:
        """Drop this store's tables (the six, the migrations and the owner table); for tests and ``contextkit``
        tooling."""
        client = self._require_client()
        on_cluster = f" {self.target.on_cluster}" if self.target.cluster else ""
        names = [self.target.table(name) for name in ARCHIVE_TABLES]
        if self.target.cluster:
            names += [self.target.table(name + "_local") for name in ARCHIVE_TABLES]
        names += [self.target.table("schema_migrations"), self.target.table(OWNER_TABLE)]
        for name in names:
            await self._call(
                "drop table", client.command(f"DROP TABLE IF EXISTS {name}{on_cluster} SYNC"), self.options.ddl_timeout
            )

    # -- status ------------------------------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        """``SELECT version()`` with its latency; ``unhealthy`` with a reason when it fails. Never raises."""
        report: dict[str, Any] = {"backend": self.name, "target": self._target_text()}
        started = time.perf_counter()
        try:
            client = self._require_client()
            result = await self._call("health check", client.query("SELECT version()"), self.settings.timeout)
            version = str(result.result_rows[0][0])
        except ContextKitError as exc:
            report.update(status="unhealthy", latency_ms=(time.perf_counter() - started) * 1000, error=str(exc))
            return report
        self._server_version = version
        report.update(status="healthy", latency_ms=(time.perf_counter() - started) * 1000, version=version)
        return report

    def describe(self) -> dict[str, Any]:
        """Backend, target (no password), database, table prefix, cluster and retention; no I/O."""
        return {
            "backend": self.name,
            "tier": "cold",
            "target": self._target_text(),
            "database": self.options.database,
            "table_prefix": self.target.table_prefix,
            "cluster": self.options.cluster,
            "ttl_days": self.options.ttl_days,
            "owns_client": self._external_client is None,
            "server_version": self._server_version,
        }

    def _target_text(self) -> str:
        if self._external_client is not None:
            return mask_secrets(str(getattr(self._external_client, "url", "external client")), self.options.secrets)
        return self.options.target

    # -- writes ------------------------------------------------------------------------------------------------
    async def write_events(self, events: Sequence[ArchiveEvent]) -> None:
        """Insert the batch, one insert per table; idempotent on ``event_id`` (retries collapse).

        Every row is built before anything is sent, so a malformed event raises ``SerializationError`` /
        ``InvalidInput`` with nothing written; a server or network failure raises ``BackendUnavailable`` and the
        whole batch may be retried.
        """
        if not events:
            return
        client = self._require_client()
        rows: dict[str, list[list[Any]]] = {}
        for event in events:
            rows.setdefault(event.table, []).append(self._row(event))
        settings = {"distributed_foreground_insert": 1} if self.target.cluster else None
        # A big batch (many events, or big ones) may legitimately take longer than one call's timeout.
        budget = write_timeout(self.settings.timeout, events)
        for table, table_rows in rows.items():
            columns = TABLE_COLUMNS[table]
            await self._call(
                f"insert into {table}",
                client.insert(
                    self._tables[table],
                    table_rows,
                    column_names=[c[0] for c in columns],
                    column_type_names=[c[1] for c in columns],
                    settings=settings,
                ),
                budget,
                refusable=True,
            )

    def _row(self, event: ArchiveEvent) -> list[Any]:
        table = event.table
        if table not in TABLE_COLUMNS:
            raise InvalidInput(f"unknown archive table {table!r}; expected one of {sorted(TABLE_COLUMNS)}")
        payload = event.payload
        created = _micros(event.created_at)
        version = event.version
        if type(version) is not int or version < 0:
            raise SerializationError(f"archive event {event.event_id} has an invalid version {version!r}")
        try:
            if table == ArchiveTables.CONVERSATIONS:
                message = payload["message"]
                seq, message_id = message.get("seq", 0), message["id"]
                role, content = message["role"], message["content"]
                metadata = message.get("metadata")
                # Conversions only for values that lack their type (the kit's events never do): the hot loop of a
                # drain.
                return [
                    event.key,
                    seq if type(seq) is int else int(seq),
                    message_id if type(message_id) is str else str(message_id),
                    role if type(role) is str else str(role),
                    content if type(content) is str else str(content),
                    _dumps(metadata) if metadata else "{}",
                    _iso_micros(message["timestamp"]),
                    created,
                    event.event_id,
                    version,
                ]
            if table == ArchiveTables.SESSIONS:
                event_type = str(payload.get("event_type", "update"))
                if event_type == "delete":
                    # An owner's delete: any owner may be deleted, so there may be no session ("null", no user).
                    session = payload.get("session")
                    last_seq = _last_seq(payload.get("last_seq"), event.event_id)
                else:
                    session, last_seq = payload["session"], 0
                    if not isinstance(session, Mapping):
                        raise SerializationError(f"archive event {event.event_id}: a {event_type} event needs a session")
                return [
                    event.key,
                    "" if session is None else str(session.get("user_id", "")),
                    event_type,
                    "null" if session is None else _dumps(session),
                    created,
                    event.event_id,
                    version,
                    last_seq,
                ]
            if table == ArchiveTables.TASK_CONTEXTS:
                return [event.key, _dumps(payload["context"]), created, event.event_id, version]
            kind = payload_kind(payload)
            if table == ArchiveTables.CHECKPOINTS and kind in (LANGGRAPH_KIND, DELETE_KIND):
                metadata = payload.get("metadata")
                return [
                    event.key,
                    str(payload.get("checkpoint_id") or ""),
                    _dumps(dict(payload)),
                    _dumps(metadata if isinstance(metadata, Mapping) else {}),
                    created,
                    event.event_id,
                    version,
                ]
            if table == ArchiveTables.CHECKPOINT_WRITES and kind == LANGGRAPH_KIND:
                return [
                    event.key,
                    str(payload["checkpoint_id"]),
                    str(payload["task_id"]),
                    _dumps(dict(payload)),
                    created,
                    event.event_id,
                    version,
                ]
            if table == ArchiveTables.CHECKPOINTS:
                document = payload["document"]
                metadata = document.get("metadata", {}) if isinstance(document, Mapping) else {}
                return [
                    event.key,
                    str(payload["checkpoint_id"]),
                    _dumps(document),
                    _dumps(metadata),
                    created,
                    event.event_id,
                    version,
                ]
            if table == ArchiveTables.CHECKPOINT_WRITES:
                return [
                    event.key,
                    str(payload["checkpoint_id"]),
                    str(payload["task_id"]),
                    _dumps(list(payload.get("writes") or [])),
                    created,
                    event.event_id,
                    version,
                ]
            return [event.key, _dumps(payload["session"]), created, event.event_id, version]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, SerializationError):
                raise
            raise SerializationError(f"archive event {event.event_id} for {table} is malformed: {exc!r}") from exc

    # -- reads -------------------------------------------------------------------------------------------------
    # Which row of a record answers, and what an owner's delete hides, follow contextkit.tiered.cold_rules. Each
    # read is one query: the record's candidate rows and the key's newest delete rows come back together (UNION
    # ALL), and _Row.order / cold_rules decide in Python, so every read applies the same order. No read uses FINAL:
    # unmerged duplicates of an event are identical rows, so whichever of them a LIMIT keeps is the same answer.

    def _sessions_branch(self, part: str, newest: str) -> str:
        """The key's ``context_sessions`` rows whose ``(version, created_at)`` is one of ``newest`` (aggregates over
        the key's rows), so every row tied there comes back: their tie-breaker is applied in Python (see
        ``_BELOW_SESSIONS``). The subquery reads only the small columns of the key's rows and the payload is read
        for the matching rows only, so a session with 100,000 archived snapshots costs little more than one with
        ten. GLOBAL: on a cluster the subquery runs once, not once per shard (and a plain IN over a Distributed
        table is refused)."""
        sessions = self._tables[ArchiveTables.SESSIONS]
        return (
            f"(SELECT '{part}', session_id, {_ROW_COLUMNS}, toString(event_type), payload, last_seq FROM {sessions} "
            "WHERE session_id = {key:String} AND (version, created_at) GLOBAL IN "
            f"(SELECT arrayJoin([{newest}]) FROM {sessions} WHERE session_id = {{key:String}}))"
        )

    def _deletes_branch(self) -> str:
        """The key's newest delete rows. Without a delete, maxIf gives (0, 1970-01-01): only a row of that very
        time could match, and the callers keep the delete rows among what comes back, so it would change nothing."""
        return self._sessions_branch("delete", _NEWEST_DELETE)

    def _newest_branch(self, part: str, table: str, column: str, extra: str = "") -> str:
        """The newest row of a record of ``table`` (not ``context_sessions``): ties are broken by event id here."""
        key_column = KEY_COLUMNS[table]
        return (
            f"(SELECT '{part}', {key_column}, {_ROW_COLUMNS}, '', {column}, toUInt64(0) "
            f"FROM {self._tables[table]} WHERE {key_column} = {{key:String}}{extra} "
            "ORDER BY version DESC, created_at DESC, event_id DESC LIMIT 1)"
        )

    async def _rows(self, branches: Sequence[str], params: Mapping[str, Any]) -> list[_Row]:
        rows = await self._query(" UNION ALL ".join(branches), params)
        return [
            _Row(str(r[0]), str(r[1]), int(r[2]), _from_micros(r[3]), str(r[4]), str(r[5]), str(r[6]), int(r[7]))
            for r in rows
        ]

    async def read_owner(self, owner: str) -> OwnerState:
        """See :meth:`contextkit.stores.ColdStore.read_owner`: one query (a UNION ALL of lookups on each table's
        sorting key prefix) for the newest rows of the owner's session, task context and conversation session
        document, its newest delete, the highest version of its seed checkpoints and writes, and its stream's
        highest seq."""
        branches = [
            # the newest rows and the newest delete rows, in one branch (see _deletes_branch for the maxIf)
            self._sessions_branch("session", f"max((version, created_at)), {_NEWEST_DELETE}"),
            self._newest_branch("task", ArchiveTables.TASK_CONTEXTS, "context_data"),
            self._newest_branch("conversation", ArchiveTables.CONVERSATION_SESSIONS, "session_data"),
            # Versions only: version > 0 comes first so that the JSON of version-0 rows (LangGraph's, and seed rows
            # archived before versions existed) is never parsed; a row with a "kind" is LangGraph's and excluded.
            f"(SELECT 'versions', '', max(version), toInt64(0), '', '', '', toUInt64(0) "
            f"FROM {self._tables['context_checkpoints']} "
            "WHERE thread_id = {key:String} AND version > 0 AND NOT JSONHas(data, 'kind'))",
            f"(SELECT 'versions', '', max(version), toInt64(0), '', '', '', toUInt64(0) "
            f"FROM {self._tables['context_checkpoint_writes']} "
            "WHERE thread_id = {key:String} AND version > 0 AND NOT JSONHas(writes_data, 'kind'))",
            # Messages carry version 0 (their seq orders them): only the highest seq, read backwards on the key.
            "(SELECT 'seq', '', toUInt64(0), toInt64(0), '', '', '', seq "
            f"FROM {self._tables['context_conversations']} WHERE session_id = {{key:String}} ORDER BY seq DESC LIMIT 1)",
        ]
        rows = await self._rows(branches, {"key": owner})
        version = last_seq = 0
        session_rows: list[_Row] = []
        delete_rows: list[_Row] = []
        task: _Row | None = None
        conversation: _Row | None = None
        for row in rows:
            version = max(version, row.version)
            if row.part == "seq":
                last_seq = max(last_seq, row.last_seq)
            elif row.part == "session":
                session_rows.append(row)
                if row.is_delete:
                    delete_rows.append(row)
            elif row.part == "task":
                task = row
            elif row.part == "conversation":
                conversation = row
        newest = _newest(session_rows)
        session = None
        if newest is not None and not newest.is_delete:
            session = (newest.order, _session_from(newest.data))
        return build_owner_state(
            owner,
            version=version,
            last_seq=last_seq,
            mark=_mark(delete_rows),
            session=session,
            task_context=None if task is None else (task.order, _document(task.data, ArchiveTables.TASK_CONTEXTS)),
            conversation=None
            if conversation is None
            else (conversation.order, _document(conversation.data, ArchiveTables.CONVERSATION_SESSIONS)),
        )

    async def read_session(self, session_id: str) -> Session | None:
        """The session as of its newest archived row by ``(version, created_at)`` (``version`` set), or None when
        that row is a delete.

        Rows with the same version and ``created_at`` (only rows archived before versions existed can tie) are told
        apart by the session itself: the later ``last_activity``, then the higher counters, then the later lifecycle
        step (create < update < end < delete), then the event id.
        """
        rows = await self._rows([self._sessions_branch("session", "max((version, created_at))")], {"key": session_id})
        newest = _newest(rows)
        # a deleted session must not come back through read-through
        if newest is None or newest.is_delete:
            return None
        return replace(_session_from(newest.data), version=newest.version)

    async def read_history(self, key: str, limit: int | None, before_seq: int | None = None) -> list[Message]:
        """The newest ``limit`` messages (``seq < before_seq`` when given), oldest first, each message id once,
        without those the key's newest delete hides (``seq <= last_seq``; a delete archived before ``last_seq``
        existed hides none)."""
        if limit is not None and limit <= 0:
            return []
        # The newest delete's last_seq, in the same query (0 without a delete: argMax of no row). It picks among
        # deletes tied on (version, created_at) by event id, not by _Row.order: only deletes archived before
        # versions existed can tie, and their last_seq is 0.
        hidden = (
            f"(SELECT argMax(last_seq, (version, created_at, event_id)) FROM {self._tables['context_sessions']} "
            "WHERE session_id = {key:String} AND event_type = 'delete')"
        )
        where = f"session_id = {{key:String}} AND seq > {hidden}"
        params: dict[str, Any] = {"key": key}
        if before_seq is not None:
            where += " AND seq < {before:UInt64}"
            params["before"] = max(int(before_seq), 0)
        limit_clause = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = await self._query(
            "SELECT message_id, seq, role, content, metadata, toUnixTimestamp64Micro(timestamp) "
            f"FROM {self._tables['context_conversations']} WHERE {where} "
            f"ORDER BY seq DESC, created_at DESC, event_id DESC LIMIT 1 BY message_id{limit_clause}",
            params,
        )
        messages = []
        for message_id, seq, role, content, metadata, ticks in reversed(rows):
            meta = _loads(metadata, "message metadata")
            if not isinstance(meta, dict):
                raise CorruptData("archived message metadata is not an object")
            messages.append(
                Message(
                    role=str(role),
                    content=str(content),
                    timestamp=_from_micros(ticks),
                    metadata=meta,
                    id=str(message_id),
                    seq=int(seq),
                )
            )
        return messages

    async def read_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The newest archived task context document, or None (also when a later delete hides it)."""
        return await self._newest_document(ArchiveTables.TASK_CONTEXTS, "context_data", session_id)

    async def read_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The newest archived conversation session document, or None (also when a later delete hides it)."""
        return await self._newest_document(ArchiveTables.CONVERSATION_SESSIONS, "session_data", session_key)

    async def conversation_keys_of(self, session_id: str) -> list[str]:
        """See :meth:`contextkit.stores.ColdStore.conversation_keys_of`: the keys with a document naming the
        session, their newest documents and their deletes, in one query.

        Finding the keys reads the ``session_id`` of every archived conversation session document (a scan of
        that table: it is keyed by session key); it runs when a session is deleted, not on reads.
        """
        conversations = self._tables[ArchiveTables.CONVERSATION_SESSIONS]
        # GLOBAL: on a cluster the key list is gathered once by the initiator and sent to every shard.
        candidates = (
            f"GLOBAL IN (SELECT session_key FROM {conversations} "
            "WHERE JSONExtractString(session_data, 'session_id') = {session:String})"
        )
        rows = await self._rows(
            [
                f"(SELECT 'conversation', session_key, {_ROW_COLUMNS}, '', session_data, toUInt64(0) "
                f"FROM {conversations} WHERE session_key {candidates} "
                "ORDER BY version DESC, created_at DESC, event_id DESC LIMIT 1 BY session_key)",
                # every delete of those keys (few per key): the newest of each is picked in Python
                f"(SELECT 'delete', session_id, {_ROW_COLUMNS}, toString(event_type), payload, last_seq "
                f"FROM {self._tables['context_sessions']} WHERE event_type = 'delete' AND session_id {candidates})",
            ],
            {"session": session_id},
        )
        newest: dict[str, _Row] = {}
        deletes: dict[str, list[_Row]] = {}
        for row in rows:
            if row.part == "delete":
                deletes.setdefault(row.key, []).append(row)
            else:
                newest[row.key] = row
        found = []
        for key, row in newest.items():
            if hides(_mark(deletes.get(key, [])), row.order):
                continue
            if _document(row.data, ArchiveTables.CONVERSATION_SESSIONS).get("session_id") == session_id:
                found.append(key)
        return sorted(found)

    async def read_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That archived checkpoint document (its newest version), or the thread's newest when the id is None;
        None if absent or hidden by a later delete of the thread's owner."""
        extra, params = _NOT_LANGGRAPH, {}
        if checkpoint_id is not None:
            extra, params = " AND checkpoint_id = {checkpoint:String}" + _NOT_LANGGRAPH, {"checkpoint": checkpoint_id}
        return await self._newest_document(ArchiveTables.CHECKPOINTS, "data", thread_id, extra, params)

    async def _langgraph_bundles(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None, before: str | None, limit: int | None
    ) -> list[CheckpointBundle]:
        checkpoints = self._tables[ArchiveTables.CHECKPOINTS]
        tombstones = await self._query(
            f"SELECT data FROM {checkpoints} WHERE thread_id = {{key:String}} AND checkpoint_id = '' "
            f"AND JSONExtractString(data, 'kind') = '{DELETE_KIND}'",
            {"key": thread_id},
        )
        tomb_payloads = [_loads(row[0], "checkpoint tombstone") for row in tombstones]
        floor, runs = delete_floor(tomb_payloads), deleted_runs(tomb_payloads)
        where = (
            "thread_id = {key:String} AND checkpoint_id > {floor:String} "
            f"AND JSONExtractString(data, 'kind') = '{LANGGRAPH_KIND}'"
        )
        params: dict[str, Any] = {"key": thread_id, "floor": floor or ""}
        if checkpoint_id is not None:
            where += " AND checkpoint_id = {checkpoint:String}"
            params["checkpoint"] = checkpoint_id
        if before is not None:
            where += " AND checkpoint_id < {before:String}"
            params["before"] = before
        if checkpoint_ns is not None:
            where += " AND JSONExtractString(data, 'checkpoint_ns') = {ns:String}"
            params["ns"] = checkpoint_ns
        payloads: list[Any] = []
        chosen: list[Any] = []
        offset = 0
        while True:
            # Unmerged duplicates of an event and re-puts of an id come out next to each other, newest first.
            rows = await self._query(
                f"SELECT data FROM {checkpoints} WHERE {where} "
                f"ORDER BY checkpoint_id DESC, created_at DESC, event_id DESC LIMIT {_CHECKPOINT_PAGE} OFFSET {offset}",
                params,
            )
            payloads.extend(_loads(row[0], "archived checkpoint") for row in rows)
            chosen = newest_distinct(
                payloads, checkpoint_ns=checkpoint_ns, before=before, floor=floor, limit=limit, runs=runs
            )
            if len(rows) < _CHECKPOINT_PAGE or (limit is not None and len(chosen) >= limit):
                break
            offset += _CHECKPOINT_PAGE
        if not chosen:
            return []
        rows = await self._query(
            f"SELECT writes_data FROM {self._tables['context_checkpoint_writes']} "
            "WHERE thread_id = {key:String} AND checkpoint_id IN {ids:Array(String)} "
            f"AND JSONExtractString(writes_data, 'kind') = '{LANGGRAPH_KIND}' "
            "ORDER BY created_at, event_id LIMIT 1 BY event_id",
            {"key": thread_id, "ids": sorted({str(p["checkpoint_id"]) for p in chosen})},
        )
        writes = [_loads(row[0], "archived writes") for row in rows]
        span = linked_span(chosen)
        linked: list[Any] = []
        if span is not None:
            found = await self._query(
                f"SELECT data FROM {checkpoints} WHERE thread_id = {{key:String}} AND checkpoint_id >= {{low:String}} "
                f"AND checkpoint_id <= {{high:String}} AND JSONExtractString(data, 'kind') = '{LANGGRAPH_KIND}'",
                {"key": thread_id, "low": span[0], "high": span[1]},
            )
            linked = [_loads(row[0], "archived checkpoint") for row in found]
        return bundles_from_payloads(thread_id, chosen, writes, linked)

    async def langgraph_threads_of_runs(self, run_ids: Sequence[str]) -> list[str]:
        """See :meth:`contextkit.stores.ColdStore.langgraph_threads_of_runs` (a scan of the checkpoints' metadata:
        ``adelete_for_runs`` is rare)."""
        wanted = sorted({str(r) for r in run_ids})
        if not wanted:
            return []
        rows = await self._query(
            f"SELECT DISTINCT thread_id FROM {self._tables['context_checkpoints']} "
            f"WHERE JSONExtractString(data, 'kind') = '{LANGGRAPH_KIND}' "
            "AND JSONExtractString(metadata, 'run_id') IN {runs:Array(String)} ORDER BY thread_id",
            {"runs": wanted},
        )
        return [str(row[0]) for row in rows]

    async def count_events(self, table: str, key: str | None = None) -> int:
        """Distinct event ids in ``table`` (for ``key`` when given): duplicates not yet merged count once."""
        if table not in KEY_COLUMNS:
            raise InvalidInput(f"unknown archive table {table!r}; expected one of {sorted(KEY_COLUMNS)}")
        sql = f"SELECT uniqExact(event_id) FROM {self._tables[table]}"
        params: dict[str, Any] = {}
        if key is not None:
            sql += f" WHERE {KEY_COLUMNS[table]} = {{key:String}}"
            params["key"] = key
        rows = await self._query(sql, params)
        return int(rows[0][0]) if rows else 0

    async def _newest_document(
        self, table: str, column: str, key: str, extra: str = "", params: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The document of the newest row of a record and the key's newest deletes, in one query; None when
        there is no row or a delete hides it."""
        rows = await self._rows(
            [self._newest_branch("row", table, column, extra), self._deletes_branch()], {"key": key, **(params or {})}
        )
        record = next((row for row in rows if row.part == "row"), None)
        if record is None or hides(_mark([row for row in rows if row.part == "delete"]), record.order):
            return None
        return _document(record.data, table)

    # -- plumbing ----------------------------------------------------------------------------------------------
    async def _query(self, sql: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        client = self._require_client()
        result = await self._call("query", client.query(sql, parameters=dict(params)), self.settings.timeout)
        return list(result.result_rows)

    def _require_client(self) -> Any:
        if self._client is None:
            raise BackendUnavailable("the ClickHouse cold store is not open (await store.open() first)")
        return self._client

    async def _call(self, what: str, call: Awaitable[T], timeout: float, *, refusable: bool = False) -> T:
        """Await a driver call within ``timeout`` and translate its failures into ``BackendUnavailable`` or, for an
        insert of archive rows (``refusable``) that the server or the driver refuses as data, ``EventRefused``."""
        import aiohttp
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            return await asyncio.wait_for(call, timeout)
        except asyncio.TimeoutError:
            raise BackendUnavailable(f"ClickHouse {what} at {self._target_text()} timed out after {timeout:g}s") from None
        except (ClickHouseError, aiohttp.ClientError, OSError) as exc:
            if refusable and _refuses_data(exc):
                raise EventRefused(f"ClickHouse {what} at {self._target_text()} refused the data: {self._scrub(exc)}") from None
            raise BackendUnavailable(f"ClickHouse {what} at {self._target_text()} failed: {self._scrub(exc)}") from None

    def _scrub(self, exc: BaseException) -> str:
        """A driver error as a short line, through :func:`contextkit.masking.mask_secrets` (the cut comes after
        masking, so it can never leave half a secret behind)."""
        return mask_secrets(f"{type(exc).__name__}: {exc}", self.options.secrets)[:600]
