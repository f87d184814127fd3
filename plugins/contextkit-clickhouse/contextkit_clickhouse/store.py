"""The ClickHouse cold tier: :class:`ClickHouseColdStore`, an archive of the six context tables with reads.

Writes are batched (one insert per table per batch, thousands of rows each) into ReplacingMergeTree tables whose
sorting key ends with the event id, so a retried batch collapses to one row per event; reads deduplicate
themselves (``LIMIT 1 BY``) because ClickHouse merges duplicates only eventually. The schema comes from the
versioned migration files (see :mod:`contextkit_clickhouse.schema`).

LangGraph checkpoints (:mod:`contextkit.checkpoint_archive`) share the checkpoint tables with the seed's documents:
their whole payload goes in ``data`` / ``writes_data`` and ``JSONExtractString(..., 'kind')`` tells them apart.
Reads scan the thread's rows (the sorting key starts with ``thread_id``) newest id first, in pages; a thread's
delete tombstones have an empty ``checkpoint_id``.

Naming: tables live in the configured database (``default`` unless set) and are prefixed with the store's
namespace (``<namespace>_context_sessions`` ...); ``table_prefix`` overrides the prefix (``""`` gives the bare
names). Prefixing also keeps these tables apart from the original system's ``context_*`` tables, whose columns
differ.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from contextkit.checkpoint_archive import (
    DELETE_KIND,
    LANGGRAPH_KIND,
    bundles_from_payloads,
    delete_floor,
    deleted_runs,
    newest_distinct,
    payload_kind,
)
from contextkit.codec import archive_json
from contextkit.errors import BackendUnavailable, ConfigError, ContextKitError, InvalidInput, SerializationError
from contextkit.records import ARCHIVE_TABLES, ArchiveEvent, Message, Session, from_iso
from contextkit.stores import Capability, CheckpointBundle, StoreSettings
from contextkit_clickhouse.schema import (
    KEY_COLUMNS,
    TABLE_COLUMNS,
    SchemaTarget,
    load_migrations,
    migrations_table_ddl,
    quote_identifier,
    table_prefix_for,
)

__all__ = ["ClickHouseColdStore", "ClickHouseOptions", "parse_options"]

logger = logging.getLogger("contextkit.clickhouse")

T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_SCHEMES = {"http": False, "clickhouse": False, "https": True, "clickhouses": True}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_KNOWN_OPTIONS = frozenset(
    {
        "url",
        "host",
        "port",
        "username",
        "user",
        "password",
        "database",
        "secure",
        "cluster",
        "ttl_days",
        "client",
        "table_prefix",
        "compress",
        "ddl_timeout",
    }
)
# When several events of one session carry the same created_at, the later lifecycle step wins.
_EVENT_RANK = {"create": 0, "update": 1, "end": 2, "delete": 3}
_CHECKPOINT_PAGE = 64
_NOT_LANGGRAPH = " AND NOT JSONHas(data, 'kind')"


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"clickhouse option {name!r} must be true or false, got {value!r}")


def _as_int(name: str, value: Any, *, minimum: int = 1) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    except ValueError:
        raise ConfigError(f"clickhouse option {name!r} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or number < minimum:
        raise ConfigError(f"clickhouse option {name!r} must be a whole number >= {minimum}, got {value!r}")
    return number


class ClickHouseOptions:
    """Connection and schema options of the ClickHouse cold tier, parsed and validated (no I/O).

    :param host: server host name; ``localhost`` by default.
    :param port: HTTP(S) port; 8123, or 8443 when ``secure``.
    :param username: ClickHouse user (``default``).
    :param password: its password; never shown by ``repr``, ``describe()`` or error messages.
    :param database: database holding the tables (created when missing).
    :param secure: use HTTPS.
    :param cluster: a cluster name: Replicated engines, ``ON CLUSTER`` DDL and Distributed tables.
    :param ttl_days: retention in days (a table TTL on ``created_at``), or None to keep everything.
    :param table_prefix: table name prefix; derived from the namespace when None.
    :param compress: compress HTTP bodies (clickhouse-connect's ``compress``).
    :param ddl_timeout: seconds a migration statement may take (``ON CLUSTER`` DDL waits for every node).
    """

    __slots__ = (
        "cluster",
        "compress",
        "database",
        "ddl_timeout",
        "host",
        "password",
        "port",
        "secure",
        "table_prefix",
        "ttl_days",
        "username",
    )

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int | None = None,
        username: str = "default",
        password: str = "",
        database: str = "default",
        secure: bool = False,
        cluster: str | None = None,
        ttl_days: int | None = None,
        table_prefix: str | None = None,
        compress: bool = True,
        ddl_timeout: float = 180.0,
    ) -> None:
        self.host = host
        self.port = port if port is not None else (8443 if secure else 8123)
        self.username = username
        self.password = password
        self.database = database
        self.secure = secure
        self.cluster = cluster
        self.ttl_days = ttl_days
        self.table_prefix = table_prefix
        self.compress = compress
        self.ddl_timeout = ddl_timeout

    def __repr__(self) -> str:
        return f"ClickHouseOptions(target={self.target!r}, cluster={self.cluster!r}, ttl_days={self.ttl_days!r})"

    @property
    def target(self) -> str:
        """The server URL without the password: ``http://user@host:port/database``."""
        scheme = "https" if self.secure else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{self.username}@{host}:{self.port}/{self.database}"


def parse_options(options: Mapping[str, Any]) -> ClickHouseOptions:
    """Validate the factory options (``url`` or ``host``/``port``/...; explicit keys override the URL's parts).

    Raises :class:`~contextkit.errors.ConfigError` for unknown keys and bad values; the message never holds the
    password.
    """
    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown clickhouse option(s) {unknown}; known: {sorted(_KNOWN_OPTIONS)}")
    values: dict[str, Any] = {}
    url = options.get("url")
    if url:
        parts = urlsplit(str(url))
        if parts.scheme not in _SCHEMES:
            raise ConfigError(f"clickhouse url scheme must be one of {sorted(_SCHEMES)}, got {parts.scheme!r}")
        values["secure"] = _SCHEMES[parts.scheme]
        try:
            port = parts.port
        except ValueError:
            raise ConfigError("clickhouse url has an invalid port") from None
        if parts.hostname:
            values["host"] = parts.hostname
        if port:
            values["port"] = port
        if parts.username:
            values["username"] = unquote(parts.username)
        if parts.password:
            values["password"] = unquote(parts.password)
        database = parts.path.strip("/")
        if database:
            values["database"] = unquote(database)
    for key in ("host", "username", "password", "database", "cluster", "table_prefix"):
        if options.get(key) is not None:
            values[key] = str(options[key])
    if options.get("user") is not None and options.get("username") is None:
        values["username"] = str(options["user"])
    if options.get("port") not in (None, ""):
        values["port"] = _as_int("port", options["port"])
    if options.get("secure") is not None:
        values["secure"] = _as_bool("secure", options["secure"])
    if options.get("compress") is not None:
        values["compress"] = _as_bool("compress", options["compress"])
    if options.get("ttl_days") not in (None, ""):
        values["ttl_days"] = _as_int("ttl_days", options["ttl_days"])
    if options.get("ddl_timeout") is not None:
        try:
            values["ddl_timeout"] = float(options["ddl_timeout"])
        except (TypeError, ValueError):
            raise ConfigError(f"clickhouse option 'ddl_timeout' must be seconds, got {options['ddl_timeout']!r}") from None
    if values.get("cluster") == "":
        values["cluster"] = None
    parsed = ClickHouseOptions(**values)
    quote_identifier(parsed.database)
    return parsed


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
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"archived {what} is not valid JSON: {exc}") from exc


def _micros(value: datetime) -> int:
    """Microseconds since the epoch (DateTime64(6) ticks), exact: no float round trip."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (value - _EPOCH) // _MICROSECOND


def _from_micros(ticks: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(ticks))


class ClickHouseColdStore:
    """The cold tier on ClickHouse (clickhouse-connect's async HTTP client).

    Built by the ``clickhouse`` factory (``contextkit_clickhouse.create_cold_store``) without I/O; :meth:`open`
    connects and applies pending migrations. A client passed in ``client`` is used as is and never closed.
    """

    name = "clickhouse"

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
        caps = {Capability.DURABLE.value, Capability.SHARED.value}
        if self.options.cluster:
            caps.add(Capability.CLUSTER.value)
        self.capabilities: frozenset[str] = frozenset(caps)
        self._client: Any = None
        self._server_version: str | None = None
        self._tables = {name: self.target.table(name) for name in ARCHIVE_TABLES}

    def __repr__(self) -> str:
        return f"ClickHouseColdStore(target={self._target_text()!r}, prefix={self.target.table_prefix!r})"

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect (unless a client was handed in) and apply the migrations not yet recorded."""
        if self._client is None:
            if self._external_client is not None:
                self._client = self._external_client
            else:
                self._client = await self._connect()
        await self.migrate()

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
        """Every DDL statement :meth:`open` may run, in order (no I/O): database, migrations table, migrations."""
        statements = [self._database_ddl()] if self.options.database != "default" else []
        statements.append(migrations_table_ddl(self.target))
        for migration in load_migrations():
            statements.extend(migration.statements(self.target))
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
        migrations_table = self.target.table("schema_migrations")
        result = await self._call(
            "read migrations",
            client.query(f"SELECT version, argMax(checksum, applied_at) FROM {migrations_table} GROUP BY version"),
            self.settings.timeout,
        )
        applied = {int(row[0]): str(row[1]) for row in result.result_rows}
        done = []
        for migration in load_migrations():
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    logger.warning(
                        "ClickHouse migration %03d_%s changed after it was applied; it is not re-run",
                        migration.version,
                        migration.name,
                    )
                continue
            for statement in migration.statements(self.target):
                await self._call(f"migration {migration.version:03d}", client.command(statement), ddl_timeout)
            await self._call(
                "record migration",
                client.insert(
                    migrations_table,
                    [[migration.version, migration.name, migration.checksum, _micros(datetime.now(timezone.utc)) // 1000]],
                    column_names=["version", "name", "checksum", "applied_at"],
                    column_type_names=["UInt32", "String", "String", "DateTime64(3, 'UTC')"],
                ),
                self.settings.timeout,
            )
            done.append(migration.version)
        return done

    async def drop_tables(self) -> None:
        """Drop this store's tables (the six and the migrations table); for tests and ``contextkit`` tooling."""
        client = self._require_client()
        on_cluster = f" {self.target.on_cluster}" if self.target.cluster else ""
        names = [self.target.table(name) for name in ARCHIVE_TABLES]
        if self.target.cluster:
            names += [self.target.table(name + "_local") for name in ARCHIVE_TABLES]
        names.append(self.target.table("schema_migrations"))
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
            return str(getattr(self._external_client, "url", "external client"))
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
                self.settings.timeout,
            )

    def _row(self, event: ArchiveEvent) -> list[Any]:
        table = event.table
        if table not in TABLE_COLUMNS:
            raise InvalidInput(f"unknown archive table {table!r}; expected one of {sorted(TABLE_COLUMNS)}")
        payload = event.payload
        created = _micros(event.created_at)
        try:
            if table == "context_conversations":
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
                ]
            if table == "context_sessions":
                session = payload["session"]
                return [
                    event.key,
                    str(session.get("user_id", "")),
                    str(payload.get("event_type", "update")),
                    _dumps(session),
                    created,
                    event.event_id,
                ]
            if table == "context_task_contexts":
                return [event.key, _dumps(payload["context"]), created, event.event_id]
            kind = payload_kind(payload)
            if table == "context_checkpoints" and kind in (LANGGRAPH_KIND, DELETE_KIND):
                metadata = payload.get("metadata")
                return [
                    event.key,
                    str(payload.get("checkpoint_id") or ""),
                    _dumps(dict(payload)),
                    _dumps(metadata if isinstance(metadata, Mapping) else {}),
                    created,
                    event.event_id,
                ]
            if table == "context_checkpoint_writes" and kind == LANGGRAPH_KIND:
                return [
                    event.key,
                    str(payload["checkpoint_id"]),
                    str(payload["task_id"]),
                    _dumps(dict(payload)),
                    created,
                    event.event_id,
                ]
            if table == "context_checkpoints":
                document = payload["document"]
                metadata = document.get("metadata", {}) if isinstance(document, Mapping) else {}
                return [
                    event.key,
                    str(payload["checkpoint_id"]),
                    _dumps(document),
                    _dumps(metadata),
                    created,
                    event.event_id,
                ]
            if table == "context_checkpoint_writes":
                return [
                    event.key,
                    str(payload["checkpoint_id"]),
                    str(payload["task_id"]),
                    _dumps(list(payload.get("writes") or [])),
                    created,
                    event.event_id,
                ]
            return [event.key, _dumps(payload["session"]), created, event.event_id]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, SerializationError):
                raise
            raise SerializationError(f"archive event {event.event_id} for {table} is malformed: {exc!r}") from exc

    # -- reads -------------------------------------------------------------------------------------------------
    async def read_session(self, session_id: str) -> Session | None:
        """The session as of its newest archived event, or None when that event is a ``delete``.

        Events with the same ``created_at`` (to the microsecond) are told apart by the session itself: the later
        ``last_activity``, then the higher counters, then the later lifecycle step (create < update < end < delete).
        """
        rows = await self._query(
            f"SELECT payload, event_type FROM {self._tables['context_sessions']} "
            "WHERE session_id = {key:String} ORDER BY created_at DESC LIMIT 1 WITH TIES",
            {"key": session_id},
        )
        if not rows:
            return None
        candidates = [(Session.from_dict(_loads(row[0], "session")), str(row[1])) for row in rows]

        def rank(item: tuple[Session, str]) -> tuple[Any, ...]:
            session, event_type = item
            return (
                session.last_activity,
                session.request_count + session.error_count,
                session.total_processing_time,
                _EVENT_RANK.get(event_type, 1),
            )

        newest, event_type = max(candidates, key=rank)
        # a deleted session must not come back through read-through
        return None if event_type == "delete" else newest

    async def read_history(self, key: str, limit: int | None, before_seq: int | None = None) -> list[Message]:
        """The newest ``limit`` messages (``seq < before_seq`` when given), oldest first, each message id once."""
        if limit is not None and limit <= 0:
            return []
        where = "session_id = {key:String}"
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
                raise SerializationError("archived message metadata is not an object")
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
        """The newest archived task context document, or None."""
        return await self._newest_document("context_task_contexts", "context_data", session_id)

    async def read_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The newest archived conversation session document, or None."""
        return await self._newest_document("context_conversation_sessions", "session_data", session_key)

    async def read_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That archived checkpoint document (its newest version), or the thread's newest when the id is None."""
        extra, params = _NOT_LANGGRAPH, {}
        if checkpoint_id is not None:
            extra, params = " AND checkpoint_id = {checkpoint:String}" + _NOT_LANGGRAPH, {"checkpoint": checkpoint_id}
        return await self._newest_document("context_checkpoints", "data", thread_id, extra, params)

    async def read_langgraph_checkpoint(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointBundle | None:
        """An archived LangGraph checkpoint (the newest of the namespace for None), or None; see
        :meth:`contextkit.stores.ColdStore.read_langgraph_checkpoint`."""
        found = await self._langgraph(thread_id, checkpoint_ns, checkpoint_id, None, 1)
        return found[0] if found else None

    async def list_langgraph_checkpoints(
        self, thread_id: str, checkpoint_ns: str | None, *, before: str | None = None, limit: int | None = None
    ) -> list[CheckpointBundle]:
        """Archived LangGraph checkpoints newest first; see
        :meth:`contextkit.stores.ColdStore.list_langgraph_checkpoints`."""
        if limit is not None and limit <= 0:
            return []
        return await self._langgraph(thread_id, checkpoint_ns, None, before, limit)

    async def _langgraph(
        self, thread_id: str, checkpoint_ns: str | None, checkpoint_id: str | None, before: str | None, limit: int | None
    ) -> list[CheckpointBundle]:
        checkpoints = self._tables["context_checkpoints"]
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
        return bundles_from_payloads(thread_id, chosen, [_loads(row[0], "archived writes") for row in rows])

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
        rows = await self._query(
            f"SELECT {column} FROM {self._tables[table]} WHERE {KEY_COLUMNS[table]} = {{key:String}}{extra} "
            "ORDER BY created_at DESC, event_id DESC LIMIT 1",
            {"key": key, **(params or {})},
        )
        if not rows:
            return None
        document = _loads(rows[0][0], table)
        if not isinstance(document, dict):
            raise SerializationError(f"archived {table} document is not an object")
        return document

    # -- plumbing ----------------------------------------------------------------------------------------------
    async def _query(self, sql: str, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        client = self._require_client()
        result = await self._call("query", client.query(sql, parameters=dict(params)), self.settings.timeout)
        return list(result.result_rows)

    def _require_client(self) -> Any:
        if self._client is None:
            raise BackendUnavailable("the ClickHouse cold store is not open (await store.open() first)")
        return self._client

    async def _call(self, what: str, call: Awaitable[T], timeout: float) -> T:
        """Await a driver call within ``timeout`` and translate its failures into ``BackendUnavailable``."""
        import aiohttp
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            return await asyncio.wait_for(call, timeout)
        except asyncio.TimeoutError:
            raise BackendUnavailable(f"ClickHouse {what} at {self._target_text()} timed out after {timeout:g}s") from None
        except (ClickHouseError, aiohttp.ClientError, OSError) as exc:
            raise BackendUnavailable(f"ClickHouse {what} at {self._target_text()} failed: {self._scrub(exc)}") from None

    def _scrub(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        if self.options.password:
            text = text.replace(self.options.password, "***")
        return text[:600]
