"""``RedisHotStore``: the hot tier on plain Redis (6/7, no modules) and on Redis Cluster, with the same code.

Layout (see :mod:`contextkit_redis.keys`): every key of one session, one history stream or one checkpoint thread
carries the owner's hash tag, and every change to an owner is one Lua script in its slot, so it is atomic and
cluster-safe. Sessions are HASHes updated with HINCRBY / HINCRBYFLOAT and a forward-only ``last_activity``;
histories are LISTs (RPUSH, ``LTRIM -cap -1``, ``LRANGE -N -1``) with a per-stream seq counter bumped in the same
script; TTLs are per owner key, refreshed on activity.

Index and consistency. Listing and idle cleanup read ``index_shards`` sorted sets per namespace (by last
activity, by id, and of active sessions), never the keyspace. On plain Redis the index update runs inside the
same script as the session write (atomic). On a cluster the shard lives in another slot, so it is a second
command right after the write: a crash between the two leaves the index behind by one update, which the next
update of that session repairs (index scores only move forward), and ``idle_sessions`` re-checks each candidate
against the session record. A session that expired by TTL leaves index entries behind; ``scan_sessions`` and
``idle_sessions`` drop them when they meet them. Seed checkpoint threads have an index of the same kind (a
``cpthreads`` sorted set per shard, for ``scan_checkpoint_threads``), added to by the put scripts (a separate ZADD
on a cluster) and pruned by the scan when it meets a thread whose keys are gone.

Stats: ``messages`` and ``checkpoints`` are counters (per index shard, summed) changed in the same script as the
data on plain Redis: appends add what they keep after trimming, ``replace_history`` adds the change in length,
``delete_session`` subtracts what it removes. They are exact except for data that expired by TTL (never
subtracted) and, on a cluster, a crash between a write and its counter update. ``sessions`` and
``active_sessions`` are the sizes of the index sets: exact once expired sessions have been met by
``scan_sessions`` / ``idle_sessions`` (the kit's cleanup), an over-count by the sessions expired since then.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from redis.exceptions import ResponseError

from contextkit.archiver import message_event_heads
from contextkit.backend.documents import dump_document, load_document, load_object
from contextkit.errors import (
    BackendUnavailable,
    ConfigError,
    ContextKitError,
    CorruptData,
    InvalidInput,
    OwnerUnknown,
    SerializationError,
)
from contextkit.masking import mask_secrets
from contextkit.records import ArchiveEvent, Message, Session, new_event_id, to_iso
from contextkit.stores import ArchiveSpec, Capability, EventHead, OwnerState, SessionUpdate, StoreSettings, StoreStats
from contextkit.tiered.events import (
    checkpoint_document_event,
    conversation_session_event,
    task_context_event,
    writes_document_event,
)
from contextkit_redis.checkpoints import RedisCheckpoints
from contextkit_redis.connection import Connected, Gate, RedisOptions, close, connect
from contextkit_redis.entries import as_hash, event_head, session_from_hash, text, versionless_event
from contextkit_redis.keys import DEFAULT_INDEX_SHARDS, IndexKeys, KeyLayout
from contextkit_redis.outbox import RedisStreamOutbox, slot_of
from contextkit_redis.scripts import ALL_SCRIPTS, EPOCH, ScriptSet

__all__ = ["RedisHotStore", "dumps", "to_micros"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)
_UPDATABLE_FIELDS = ("status", "user_id", "metadata")
# Health counts the namespace's keys with SCAN only while that stays cheap.
_HEALTH_SCAN_ROUNDS = 10
_HEALTH_SCAN_COUNT = 1000


def dumps(value: Any) -> str:
    """Compact JSON (UTF-8 kept as is; the archive's codec); a value JSON cannot hold raises SerializationError."""
    return dump_document(value)


def to_micros(moment: datetime) -> int:
    """Integer microseconds since the epoch (exact, unlike ``timestamp()``); naive values are UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _MICRO


def _run_id(info: Any) -> str | None:
    """The ``run_id`` of an INFO reply (parsed dict, or raw text)."""
    if isinstance(info, Mapping):
        value = info.get("run_id") or info.get(b"run_id")
        return None if value is None else text(value)
    for line in text(info).splitlines():
        if line.startswith("run_id:"):
            return line[len("run_id:") :].strip()
    return None


def _session_values(session: Session) -> list[Any]:
    """The values PUT_SESSION stores, in its ARGV order."""
    return [
        session.session_id,
        session.user_id,
        to_iso(session.created_at),
        to_iso(session.last_activity),
        to_micros(session.last_activity),
        int(session.request_count),
        int(session.error_count),
        repr(float(session.total_processing_time)),
        session.status,
        dumps(dict(session.metadata)),
    ]


def _session_args(session: Session) -> list[Any]:
    """The session hash as field/value pairs (HSET), version included."""
    names = (
        "session_id",
        "user_id",
        "created_at",
        "last_activity",
        "last_activity_us",
        "request_count",
        "error_count",
        "total_processing_time",
        "status",
        "metadata",
    )
    pairs: list[Any] = []
    for name, value in zip(names, _session_values(session), strict=True):
        pairs += [name, value]
    return [*pairs, "version", session.version]


def _message(raw: Any) -> Message:
    return Message.from_dict(load_object(raw, "message"))


def _document(raw: Any, what: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    return load_object(raw, what)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisHotStore(RedisCheckpoints):
    """The Redis hot tier (:class:`contextkit.stores.HotStore`).

    Built by :meth:`from_options` without I/O; :meth:`open` connects, PINGs and detects
    cluster mode. The attributes :attr:`client`, :attr:`keys`, :attr:`scripts` and :attr:`gate` are shared
    with the LangGraph checkpointer mixin.
    """

    name = "redis"
    #: Seconds an archiver's drain lease on the outbox lasts without renewal (see :mod:`contextkit_redis.outbox`).
    outbox_lease: float = 5.0

    @classmethod
    def from_options(cls, settings: StoreSettings, options: Mapping[str, Any]) -> RedisHotStore:
        """The factory registered as the hot tier ``redis``: validates ``options``
        (:class:`~contextkit_redis.options.RedisOptions`), does no I/O; ``await store.open()`` connects."""
        return cls(settings, options)

    def __init__(self, settings: StoreSettings, options: Mapping[str, Any]) -> None:
        self.settings = settings
        self.options = RedisOptions.parse(settings, options)
        self.keys = KeyLayout(settings.namespace, self.options.index_shards or DEFAULT_INDEX_SHARDS)
        self.gate = Gate(self.options.describe_target(), settings.timeout, self.options.secrets)
        self._connected: Connected | None = None
        self._scripts: ScriptSet | None = None
        self._outbox: RedisStreamOutbox | None = None
        # The run id of the server this store last checked its epoch against (see _check_server).
        self._run_id: str | None = None
        # The server's maxmemory-policy, read once at open when it matters (see _check_eviction): a policy name,
        # "unknown" when CONFIG GET is refused or renamed (managed services), None when it was not read.
        self._eviction_policy: str | None = None
        self._eviction_note = ""
        caps = {
            Capability.TTL.value,
            Capability.DURABLE.value,
            Capability.SHARED.value,
            Capability.OUTBOX.value,
            Capability.ATOMIC_OUTBOX.value,
        }
        # The RedisCheckpoints mixin implements contextkit.stores.CheckpointStore, with checked puts (a Redis
        # without persistence loses everything on a restart, maybe under a running graph).
        caps.update((Capability.CHECKPOINTS.value, Capability.CHECKED_PUTS.value))
        self.capabilities: frozenset[str] = frozenset(caps)

    def __repr__(self) -> str:
        return f"RedisHotStore(target={self.gate.target!r}, namespace={self.settings.namespace!r})"

    # -- connection -------------------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The live redis.asyncio client (``Redis`` or ``RedisCluster``); raises if the store is not open."""
        if self._connected is None:
            raise BackendUnavailable(f"redis store on {self.gate.target} is not open")
        return self._connected.client

    @property
    def cluster(self) -> bool:
        """True when connected to a Redis Cluster."""
        return self._connected is not None and self._connected.cluster

    @property
    def scripts(self) -> ScriptSet:
        """The registered Lua scripts."""
        if self._scripts is None:
            raise BackendUnavailable(f"redis store on {self.gate.target} is not open")
        return self._scripts

    async def open(self) -> None:
        """Connect, PING and detect cluster mode within ``settings.timeout``; BackendUnavailable otherwise."""
        if self._connected is not None:
            return
        hook = self._check_server if self.settings.archived and self.options.cluster is not True else None
        connected = await self.gate("connect", connect(self.options, hook))
        self._connected = connected
        self._scripts = ScriptSet(connected.client, ALL_SCRIPTS)
        if connected.cluster:
            self.gate = Gate(self.gate.target, self.settings.timeout, self.options.secrets, limit=self.options.max_connections)
            self.capabilities = self.capabilities | {Capability.CLUSTER.value}
        elif self.settings.archived and self._run_id is None:
            # a caller's client may have connected before the hook was installed: check this server once here
            info = await self.gate("connect", self.client.execute_command("INFO", "server"))
            run_id = _run_id(info)
            if run_id is not None:
                await self.gate("connect", self.client.execute_command("EVAL", EPOCH, 1, self.keys.epoch(), run_id))
                self._run_id = run_id
        if self.settings.archived or self.options.require_noeviction:
            try:
                await self._check_eviction()
            except BaseException:
                await self.aclose()
                raise

    async def _check_eviction(self) -> None:
        """Read ``maxmemory-policy`` once (every master of a cluster) and keep it for :meth:`health`; with
        ``require_noeviction``, refuse a server that may evict keys. A Redis that evicts can drop the outbox
        streams (and the owners' meta) under memory pressure: acknowledged writes would never reach the archive,
        and nothing would say so."""
        policies, refused = await self.gate("config", self._read_eviction_policies())
        if refused:
            self._eviction_policy = "unknown"
            self._eviction_note = f"CONFIG GET maxmemory-policy was refused ({refused[:200]})"
        else:
            evicting = sorted(p for p in policies if p != "noeviction")
            self._eviction_policy = evicting[0] if evicting else "noeviction" if policies else "unknown"
            self._eviction_note = "" if policies else "CONFIG GET maxmemory-policy gave no answer"
        if self.options.require_noeviction and self._eviction_policy != "noeviction":
            found = self._eviction_note or f"maxmemory-policy is {self._eviction_policy}"
            raise ConfigError(
                f"redis option require_noeviction is set and {found} on {self.gate.target}: a Redis that may evict "
                "keys can drop the archive outbox silently; set maxmemory-policy to noeviction (CONFIG SET "
                "maxmemory-policy noeviction, or in redis.conf), or unset require_noeviction"
            )

    async def _read_eviction_policies(self) -> tuple[list[str], str]:
        """The ``maxmemory-policy`` of the server (of every master on a cluster), or the error text of a CONFIG
        command the server refuses (renamed or disabled, or denied by an ACL)."""
        client = self.client
        try:
            if self.cluster:
                reply = await client.execute_command(
                    "CONFIG", "GET", "maxmemory-policy", target_nodes=client.PRIMARIES
                )
            else:
                reply = await client.execute_command("CONFIG", "GET", "maxmemory-policy")
        except ResponseError as exc:
            return [], str(exc)
        return _policies_of(reply), ""

    async def aclose(self) -> None:
        """Close the client if this store built it; idempotent."""
        connected, self._connected, scripts = self._connected, None, self._scripts
        self._scripts = None
        lg_state, self._lg_state = self._lg_state, None
        if connected is not None:
            try:
                # connections the script runners keep go back to the pool first: a caller's client stays usable
                for held in (scripts, lg_state[1] if lg_state else None):
                    if held is not None:
                        await held.release()
                await close(connected)
            except Exception:  # closing a dead connection must not fail shutdown
                pass

    def outbox(self, max_pending: int = 10_000_000) -> RedisStreamOutbox:
        """The archiver's durable outbox: the Redis streams of this namespace (the store must be open). Built once;
        the write scripts XADD to it."""
        if self._outbox is None:
            self._outbox = RedisStreamOutbox(self, max_pending=max_pending, lease=self.outbox_lease)
        return self._outbox

    def describe(self) -> dict[str, Any]:
        """Backend, target (no password), cluster flag, namespace and pool settings; no I/O."""
        return {
            "backend": "redis",
            "target": self.gate.target,
            "cluster": self.cluster if self._connected is not None else self.options.cluster,
            "namespace": self.settings.namespace,
            "index_shards": self.keys.shards,
            "max_connections": self.options.max_connections,
            "owns_client": self.options.client is None,
            "timeout": self.settings.timeout,
        }

    async def drop_namespace(self, batch: int = 500) -> int:
        """Delete every key of the namespace (SCAN MATCH prefix* + UNLINK, in batches); returns the count.

        Meant for tests and ``contextkit`` maintenance commands: it walks the keyspace, unlike the data path.
        """
        removed = 0
        pending: list[Any] = []

        async def flush() -> None:
            nonlocal removed
            if not pending:
                return
            pipe = self.client.pipeline(transaction=False)
            for key in pending:
                pipe.execute_command("UNLINK", key)
            removed += sum(int(n) for n in await self.gate("drop_namespace", pipe.execute()))
            pending.clear()

        async def walk() -> None:
            async for key in self.client.scan_iter(match=self.keys.scan_pattern(), count=1000):
                pending.append(key)
                if len(pending) >= batch:
                    await flush()

        await self.gate("drop_namespace", walk())
        await flush()
        return removed

    # -- index helpers ----------------------------------------------------------------------------------------
    def _inline_index(self, owner_id: str) -> tuple[str, list[str]]:
        """The script flag and index keys: inline on plain Redis, none on a cluster (separate command)."""
        if self.cluster:
            return "0", []
        return "1", self.keys.index_for(owner_id).all()

    async def _side(
        self, owner_id: str, mode: str, score: Any = 0, status: str = "", messages: int = 0, checkpoints: int = 0
    ) -> None:
        """The index/stats update of ``owner_id`` as its own command (cluster mode)."""
        args = [mode, owner_id, score, status, messages, checkpoints]
        await self.gate("index", self.scripts.run("side", self.keys.index_for(owner_id).all(), args))

    async def _prune(self, shard: IndexKeys, session_id: str) -> None:
        keys = shard.all()
        if not self.cluster:
            keys.append(self.keys.owner(session_id).session)
        await self.gate("index", self.scripts.run("prune", keys, [session_id]))

    async def _fetch_sessions(self, ids: Sequence[str], fields: Sequence[str] | None = None) -> list[Any]:
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for sid in ids:
            key = self.keys.owner(sid).session
            if fields is None:
                pipe.hgetall(key)
            else:
                pipe.hmget(key, list(fields))
        return list(await self.gate("read sessions", pipe.execute()))

    # -- tiering helpers --------------------------------------------------------------------------------------
    @property
    def _archived(self) -> str:
        """The archived flag of the scripts: "0", "1" (a cluster: no epoch), or the key of the namespace's epoch."""
        if not self.settings.archived:
            return "0"
        return "1" if self.cluster else self.keys.epoch()

    async def _check_server(self, connection: Any) -> None:
        """Runs on every new connection, before it serves a command: a server run this store has not seen (a
        restart, maybe from an older snapshot, or a failover) moves the namespace's epoch forward first, so every
        owner written before is checked against the archive at its next use (see scripts.EPOCH)."""
        if not self.settings.archived:
            return
        await connection.send_command("INFO", "server")
        info = await connection.read_response()
        run_id = _run_id(info)
        if run_id is None or run_id == self._run_id or "redis_mode:cluster" in text(info):
            return  # (a cluster node, met while cluster mode is being detected: clusters keep no epoch)
        await connection.send_command("EVAL", EPOCH, 1, self.keys.epoch(), run_id)
        await connection.read_response()
        self._run_id = run_id

    def _outbox_key(self, owner_id: str) -> str:
        """The outbox stream a write of ``owner_id`` XADDs its event to, in the same script (the one stream of
        plain Redis; on a cluster, the stream of the owner's slot)."""
        if self.cluster:
            return self.keys.outbox_for_slot(slot_of(self.keys.encoded(owner_id)))
        return self.keys.outbox_stream(0)

    async def _run(
        self, op: str, owner_id: str, name: str, keys: Sequence[str], args: Sequence[Any], *, stream: str | None = None
    ) -> Any:
        """Run script ``name`` of ``owner_id``: its "owner unknown" reply becomes OwnerUnknown(owner_id); a script
        that XADDed to ``stream`` is reported to the outbox (which then reads that stream)."""
        try:
            result = await self.gate(op, self.scripts.run(name, keys, args))
        except OwnerUnknown as exc:
            raise OwnerUnknown(owner_id, stale=exc.stale) from None
        if stream is not None and self._outbox is not None:
            self._outbox.written(stream)
        return result

    async def _read(self, op: str, owner_id: str, key: str, *command: Any) -> Any:
        """A read of one key of ``owner_id``: a plain command, or (archived) one that checks the meta when the
        answer is empty."""
        if not self.settings.archived:
            return await self.gate(op, self.client.execute_command(command[0], key, *command[1:]))
        meta = self.keys.owner(owner_id).meta
        return await self._run(op, owner_id, "read", [meta, key], ["1", *command])

    async def restore_owner(self, state: OwnerState) -> None:
        """See :meth:`contextkit.stores.HotStore.restore_owner`: one script, a no-op when the meta exists."""
        owner = self.keys.owner(state.owner)
        flag, index = self._inline_index(state.owner)
        fields: list[Any] = [] if state.session is None else _session_args(state.session)
        task = "" if state.task_context is None else dumps(dict(state.task_context.document))
        conversation = "" if state.conversation is None else dumps(dict(state.conversation.document))
        history = [dumps(m.to_dict()) for m in state.history[-max(1, self.settings.history_cap) :]]
        args = [
            flag,
            _ms(self.settings.session_ttl),
            _ms(self.settings.tombstone_ttl),
            max(1, self.settings.history_cap),
            state.version,
            state.last_seq,
            "1" if state.deleted else "0",
            len(fields),
            task,
            0 if state.task_context is None else state.task_context.version,
            conversation,
            0 if state.conversation is None else state.conversation.version,
            len(history),
            self._archived,
            *fields,
            *history,
        ]
        keys = [*owner.session_family(), owner.meta, *index]
        done = int(await self.gate("restore_owner", self.scripts.run("restore_owner", keys, args)))
        if done and self.cluster and state.session is not None:
            la_us = to_micros(state.session.last_activity)
            await self._side(state.owner, "set", la_us, state.session.status)
        if done and state.conversation is not None:
            await self._register(state.owner, state.conversation.document)

    async def _register(self, session_key: str, document: Mapping[str, Any]) -> None:
        """Register a conversation key in its session's registry (another slot, so its own command)."""
        parent = document.get("session_id")
        if isinstance(parent, str) and parent and parent != session_key:
            registry = self.keys.owner(parent).conversations
            pipe = self.client.pipeline(transaction=False)
            pipe.sadd(registry, session_key)
            pipe.pexpire(registry, _ms(self.settings.session_ttl))
            await self.gate("register conversation", pipe.execute())

    # -- sessions ---------------------------------------------------------------------------------------------
    async def put_session(
        self, session: Session, *, task_context: Mapping[str, Any] | None = None, archive: EventHead | None = None
    ) -> Session:
        """Store ``session`` whole (and ``task_context``) under the owner's next versions, start its TTL and index
        it; with ``archive``, XADD their events in the same script."""
        sid = session.session_id
        owner = self.keys.owner(sid)
        flag, index = self._inline_index(sid)
        task = "" if task_context is None else dumps(dict(task_context))
        args = [flag, _ms(self.settings.session_ttl), self._archived, "1" if archive else "0", *_session_values(session)]
        head = task_event = ""
        keys = [*owner.session_family(), owner.meta, *index]
        stream: str | None = None
        if archive is not None:
            head = event_head(archive)
            if task_context is not None:
                task_head = replace(archive, event_id=new_event_id())
                task_event = versionless_event(task_context_event(sid, task_context, 0, task_head))
            stream = self._outbox_key(sid)
            keys.append(stream)
        args += [task, head, task_event]
        version = int(await self._run("put_session", sid, "put_session", keys, args, stream=stream))
        if self.cluster:
            await self._side(sid, "set", to_micros(session.last_activity), session.status)
        return replace(session, version=version)

    async def get_session(self, session_id: str) -> Session | None:
        """The session, or None when it does not exist, expired or was deleted."""
        raw = await self._read("get_session", session_id, self.keys.owner(session_id).session, "HGETALL")
        return session_from_hash(as_hash(raw)) if raw else None

    async def update_session(
        self, session_id: str, update: SessionUpdate, *, archive: EventHead | None = None
    ) -> Session | None:
        """Apply counters, fields and activity under the owner's next version in one script (with its event);
        refresh the TTL; None if the session is missing."""
        pairs: list[Any] = []
        for name, value in update.fields.items():
            if name not in _UPDATABLE_FIELDS:
                raise InvalidInput(f"session field {name!r} cannot be updated (updatable: {_UPDATABLE_FIELDS})")
            pairs += [name, dumps(dict(value)) if name == "metadata" else str(value)]
        flag, index = self._inline_index(session_id)
        processing = float(update.processing_time)
        owner = self.keys.owner(session_id)
        keys = [*owner.session_family(), owner.meta, *index]
        stream: str | None = None
        if archive is not None:
            stream = self._outbox_key(session_id)
            keys.append(stream)
        args = [
            flag,
            _ms(self.settings.session_ttl),
            self._archived,
            "1" if archive else "0",
            int(update.requests),
            int(update.errors),
            "0" if processing == 0 else repr(processing),
            to_iso(update.activity),
            to_micros(update.activity),
            "" if archive is None else event_head(archive),
            len(pairs) // 2,
            *pairs,
        ]
        try:
            raw = await self._run("update_session", session_id, "update_session", keys, args, stream=stream)
        except SerializationError as exc:  # the script's range check (scripts.RANGE_REPLY): nothing was written
            raise SerializationError(f"session {session_id[:200]!r}: {exc}") from None
        if raw is None:
            return None
        fields = as_hash(raw)
        session = session_from_hash(fields)
        if self.cluster:
            await self._side(session_id, "max", fields["last_activity_us"], session.status)
        return session

    async def delete_session(
        self, session_id: str, *, archive: EventHead | None = None, evict: bool = False
    ) -> bool:
        """Remove (or, ``evict``, forget) every key family of the owner and of the conversation sessions registered
        under it, each owner in one script (tombstone and delete event included when archived)."""
        registry = self.keys.owner(session_id).conversations
        members = await self.gate("delete_session", self.client.smembers(registry))
        for key in sorted({text(m) for m in members} - {session_id}):
            head = None if archive is None else replace(archive, event_id=new_event_id())
            await self._delete_owner(key, head, evict)
        return await self._delete_owner(session_id, archive, evict)

    async def _delete_owner(self, owner_id: str, archive: EventHead | None, evict: bool) -> bool:
        owner = self.keys.owner(owner_id)
        flag, index = self._inline_index(owner_id)
        keys = [*owner.all(), owner.meta, *index]
        stream: str | None = None
        if archive is not None and not evict:
            stream = self._outbox_key(owner_id)
            keys.append(stream)
        args = [
            flag,
            owner_id,
            self._archived,
            "1" if archive is not None and not evict else "0",
            "evict" if evict else "delete",
            _ms(self.settings.tombstone_ttl),
            "" if archive is None else event_head(archive, owner_id),
        ]
        existed, messages, checkpoints = await self._run("delete_session", owner_id, "delete_owner", keys, args, stream=stream)
        if self.cluster:
            await self._side(owner_id, "del", messages=-int(messages), checkpoints=-int(checkpoints))
        return int(existed) == 1


    async def scan_sessions(self, cursor: str | None, count: int) -> tuple[list[Session], str | None]:
        """Walk the index shards in id order; the cursor is ``"<shard>:<last id>"``."""
        shard, after = 0, ""
        if cursor:
            head, _, after = cursor.partition(":")
            try:
                shard = int(head)
            except ValueError:
                raise InvalidInput(f"malformed session scan cursor {cursor[:80]!r}") from None
        count = max(1, count)
        page: list[Session] = []
        rounds = 0
        while shard < self.keys.shards and len(page) < count and rounds < self.keys.shards + 16:
            rounds += 1
            index = self.keys.index(shard)
            want = count - len(page)
            low = "(" + after if after else "-"
            raw_ids = await self.gate("scan_sessions", self.client.zrangebylex(index.by_id, low, "+", 0, want))
            ids = [text(x) for x in raw_ids]
            if not ids:
                shard, after = shard + 1, ""
                continue
            for sid, raw in zip(ids, await self._fetch_sessions(ids), strict=True):
                if raw:
                    page.append(session_from_hash(as_hash(raw)))
                else:
                    await self._prune(index, sid)
            after = ids[-1]
            if len(ids) < want:
                shard, after = shard + 1, ""
        if shard >= self.keys.shards:
            return page, None
        return page, f"{shard}:{after}"

    async def idle_sessions(self, before: datetime, limit: int) -> list[str]:
        """Up to ``limit`` ids whose last activity is older than ``before``, oldest first, from the index.

        Each candidate is checked against its record: an expired session's entries are dropped, and an entry
        behind the record (cluster mode, see the module docstring) is moved forward.
        """
        if limit <= 0:
            return []
        before_us = to_micros(before)
        for _ in range(8):
            pipe = self.client.pipeline(transaction=False)
            for shard in range(self.keys.shards):
                pipe.zrangebyscore(
                    self.keys.index(shard).by_activity, "-inf", f"({before_us}", start=0, num=limit, withscores=True
                )
            per_shard = await self.gate("idle_sessions", pipe.execute())
            candidates = sorted(
                ((float(score), text(member)) for rows in per_shard for member, score in rows),
            )[:limit]
            if not candidates:
                return []
            ids = [sid for _, sid in candidates]
            records = await self._fetch_sessions(ids, ["last_activity_us", "status"])
            found: list[tuple[int, str]] = []
            repaired = False
            for sid, (la_raw, status_raw) in zip(ids, records, strict=True):
                if la_raw is None:
                    await self._prune(self.keys.index_for(sid), sid)
                    repaired = True
                    continue
                la_us = int(text(la_raw))
                if la_us >= before_us:
                    await self._side(sid, "max", la_us, text(status_raw or b""))
                    repaired = True
                    continue
                found.append((la_us, sid))
            if not repaired or len(found) >= limit:
                return [sid for _, sid in sorted(found)[:limit]]
        return [sid for _, sid in sorted(found)[:limit]]

    # -- history streams --------------------------------------------------------------------------------------
    async def append_messages(
        self, key: str, messages: Sequence[Message], *, archive: ArchiveSpec | None = None
    ) -> list[Message]:
        """RPUSH with consecutive seqs from the owner's meta, trim to the cap, move the session's last activity
        forward and refresh the TTL, in one script; with ``archive``, XADD the messages' archive events to the
        outbox stream in the same script."""
        if not messages:
            return []
        bodies = []
        for message in messages:
            data = message.to_dict()
            del data["seq"]
            # the script prepends '{"seq":N,' so the seq is assigned inside the atomic step
            bodies.append(dumps(data)[1:])
        newest = max(m.timestamp for m in messages)
        flag, index = self._inline_index(key)
        owner = self.keys.owner(key)
        args = [
            flag,
            max(1, self.settings.history_cap),
            _ms(self.settings.session_ttl),
            key,
            to_iso(newest),
            to_micros(newest),
            self._archived,
            len(bodies),
            *bodies,
        ]
        keys = [*owner.session_family(), owner.meta, *index]
        stream: str | None = None
        if archive is not None:
            args += message_event_heads(key, archive, len(messages))
            stream = self._outbox_key(key)
            keys.append(stream)
        first, kept, _, status, la_us = await self._run("append_messages", key, "append", keys, args, stream=stream)
        first = int(first)
        if self.cluster:
            if status is None:
                await self._side(key, "none", messages=int(kept))
            else:
                await self._side(key, "max", text(la_us), text(status), messages=int(kept))
        return [message.with_seq(first + i) for i, message in enumerate(messages)]

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        """LRANGE of the newest ``limit`` (O(limit)), oldest first."""
        if limit is not None and limit <= 0:
            if self.settings.archived:
                await self.history_bounds(key)  # an unknown owner still raises
            return []
        start = 0 if limit is None else -limit
        history = self.keys.owner(key).history
        if self.settings.archived:
            raw = await self._run("read_history", key, "read", [self.keys.owner(key).meta, history], ["1", "LRANGE", start, -1])
        else:
            raw = await self.gate("read_history", self.scripts.read("LRANGE", history, start, -1))
        return [_message(item) for item in raw]

    async def history_length(self, key: str) -> int:
        """LLEN of the stream."""
        return int(await self._read("history_length", key, self.keys.owner(key).history, "LLEN"))

    async def history_bounds(self, key: str) -> tuple[int, int]:
        """Seq of the oldest kept message (0 when none is kept) and the stream's highest seq."""
        owner = self.keys.owner(key)
        keys = [owner.history, owner.seq, owner.meta]
        first_raw, last_raw = await self._run("history_bounds", key, "bounds", keys, [self._archived])
        first = 0 if first_raw is None else _message(first_raw).seq
        return (first, max(first, int(last_raw or 0)))

    async def delete_mark(self, owner: str) -> tuple[int, int]:
        """See :meth:`contextkit.stores.HotStore.delete_mark` (fields ``dv`` / ``ds`` of the meta)."""
        version, seq = await self._run("delete_mark", owner, "delete_mark", [self.keys.owner(owner).meta], [self._archived])
        return int(version), int(seq)

    async def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Replace the list in one script; the owner's highest seq never moves backward."""
        owner = self.keys.owner(key)
        flag, index = self._inline_index(key)
        top = max((m.seq for m in messages), default=0)
        args = [flag, max(1, self.settings.history_cap), _ms(self.settings.session_ttl), self._archived, top]
        args += [dumps(m.to_dict()) for m in messages]
        keys = [*owner.session_family(), owner.meta, *index]
        delta = await self._run("replace_history", key, "replace_history", keys, args)
        if self.cluster and int(delta):
            await self._side(key, "none", messages=int(delta))

    async def backfill_history(self, key: str, older: Sequence[Message]) -> int:
        """Insert archived messages older than every kept one at the head, up to the cap, in one script."""
        if not older:
            return 0
        owner = self.keys.owner(key)
        flag, index = self._inline_index(key)
        args: list[Any] = [flag, max(1, self.settings.history_cap), _ms(self.settings.session_ttl), self._archived]
        for message in older:
            args += [message.seq, dumps(message.to_dict())]
        keys = [*owner.session_family(), owner.meta, *index]
        inserted = int(await self._run("backfill_history", key, "backfill", keys, args))
        if self.cluster and inserted:
            await self._side(key, "none", messages=inserted)
        return inserted

    # -- task contexts and conversation sessions --------------------------------------------------------------
    async def _put_document(
        self, owner_id: str, family: str, document: Mapping[str, Any], event: ArchiveEvent | None, register: str
    ) -> None:
        owner = self.keys.owner(owner_id)
        keys = [*owner.session_family(), owner.meta]
        inline = bool(register) and not self.cluster
        if inline:
            parent = document.get("session_id")
            keys.append(self.keys.owner(str(parent)).conversations)
        stream: str | None = None
        if event is not None:
            stream = self._outbox_key(owner_id)
            keys.append(stream)
        args = [
            _ms(self.settings.session_ttl),
            self._archived,
            "0" if event is None else "1",
            family,
            dumps(dict(document)),
            "" if event is None else versionless_event(event),
            register if inline else "",
        ]
        await self._run(f"put_{family}", owner_id, "put_document", keys, args, stream=stream)
        if register and not inline:
            await self._register(owner_id, document)

    async def put_task_context(
        self, session_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """SET the JSON document with the session TTL under the owner's next version (with its event)."""
        event = None if archive is None else task_context_event(session_id, document, 0, archive)
        await self._put_document(session_id, "task", document, event, "")

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The stored document, or None."""
        raw = await self._read("get_task_context", session_id, self.keys.owner(session_id).task, "GET")
        return _document(raw, "task context")

    async def put_conversation_session(
        self, session_key: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """SET the document under its key (the owner's next version, with its event) and register the key in its
        session's set (in the same script on plain Redis; another slot, so a second command, on a cluster)."""
        event = None if archive is None else conversation_session_event(session_key, document, 0, archive)
        parent = document.get("session_id")
        register = session_key if isinstance(parent, str) and parent and parent != session_key else ""
        await self._put_document(session_key, "conversation", document, event, register)

    async def get_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The stored document, or None."""
        raw = await self._read(
            "get_conversation_session", session_key, self.keys.owner(session_key).conversation, "GET"
        )
        return _document(raw, "conversation session")

    # -- seed checkpoints -------------------------------------------------------------------------------------
    async def put_checkpoint_document(
        self, thread_id: str, checkpoint_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """HSET the document; a new id is appended to the thread's order list; thread TTL refreshed."""
        owner = self.keys.owner(thread_id)
        flag, index = self._inline_index(thread_id)
        if index:
            index.append(self.keys.seed_threads_for(thread_id))
        keys = [*owner.session_family(), owner.meta, *owner.checkpoint_family(), *index]
        event = ""
        stream: str | None = None
        if archive is not None:
            event = versionless_event(checkpoint_document_event(thread_id, checkpoint_id, document, 0, archive))
            stream = self._outbox_key(thread_id)
            keys.append(stream)
        args = [
            flag,
            _ms(self.settings.session_ttl),
            _ms(self.settings.checkpoint_ttl),
            self._archived,
            "0" if archive is None else "1",
            checkpoint_id,
            dumps(dict(document)),
            thread_id,
            event,
        ]
        new = await self._run("put_checkpoint", thread_id, "put_checkpoint", keys, args, stream=stream)
        if self.cluster:
            if int(new) == 1:
                await self._side(thread_id, "none", checkpoints=1)
            await self._index_seed_thread(thread_id)

    async def get_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That checkpoint, or the most recently inserted one."""
        owner = self.keys.owner(thread_id)
        args = ["0", ""] if checkpoint_id is None else ["1", checkpoint_id]
        keys = [owner.cp_docs, owner.cp_order, owner.meta]
        raw = await self._run("get_checkpoint", thread_id, "get_checkpoint", keys, [*args, self._archived])
        return _document(raw, "checkpoint")

    async def list_checkpoint_documents(self, thread_id: str, limit: int) -> list[dict[str, Any]]:
        """Newest first, O(limit)."""
        owner = self.keys.owner(thread_id)
        keys = [owner.cp_docs, owner.cp_order, owner.meta]
        raw = await self._run("list_checkpoints", thread_id, "list_checkpoints", keys, [max(1, limit), self._archived])
        if limit <= 0:
            return []
        return [doc for doc in (_document(item, "checkpoint") for item in raw) if doc is not None]

    async def put_writes_document(
        self,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[Any],
        *,
        archive: EventHead | None = None,
    ) -> None:
        """Append ``[task_id, write]`` items to the checkpoint's JSON array in one script (with its event)."""
        if not writes:
            return
        owner = self.keys.owner(thread_id)
        items = ",".join(dumps([task_id, write]) for write in writes)
        keys = [*owner.session_family(), owner.meta, owner.cp_writes, owner.cp_docs, owner.cp_order]
        indexed = not self.cluster
        if indexed:
            keys.append(self.keys.seed_threads_for(thread_id))
        event = ""
        stream: str | None = None
        if archive is not None:
            event = versionless_event(writes_document_event(thread_id, checkpoint_id, task_id, list(writes), 0, archive))
            stream = self._outbox_key(thread_id)
            keys.append(stream)
        args = [
            _ms(self.settings.session_ttl),
            _ms(self.settings.checkpoint_ttl),
            self._archived,
            "0" if archive is None else "1",
            checkpoint_id,
            items,
            thread_id,
            event,
            "1" if indexed else "0",
        ]
        await self._run("put_writes", thread_id, "put_writes", keys, args, stream=stream)
        if self.cluster:
            await self._index_seed_thread(thread_id)

    async def get_writes_documents(self, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        """``(task_id, write)`` pairs in the order they were put."""
        raw = await self._read("get_writes", thread_id, self.keys.owner(thread_id).cp_writes, "HGET", checkpoint_id)
        if raw is None:
            return []
        items = load_document(raw, "checkpoint writes")
        try:
            return [(str(task), write) for task, write in items]
        except (TypeError, ValueError) as exc:
            raise CorruptData(f"stored checkpoint writes are malformed: {exc!r}") from exc

    # -- enumeration ------------------------------------------------------------------------------------------
    async def _index_seed_thread(self, thread_id: str) -> None:
        """Cluster mode: add the thread to its shard's seed thread index (another slot, so its own command)."""
        await self.gate("index", self.client.zadd(self.keys.seed_threads_for(thread_id), {thread_id: 0}))

    async def list_conversation_sessions(self, session_id: str) -> list[tuple[str, dict[str, Any]]]:
        """The session's registry SET plus the document under its own id, read in one pipeline, sorted by key.

        A key whose document expired, or was registered again under another session, is left out.
        """
        owner = self.keys.owner(session_id)
        members = await self.gate("list_conversation_sessions", self.client.smembers(owner.conversations))
        keys = sorted({session_id, *(text(m) for m in members)})
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.get(self.keys.owner(key).conversation)
        raws = await self.gate("list_conversation_sessions", pipe.execute())
        found = []
        for key, raw in zip(keys, raws, strict=True):
            document = _document(raw, "conversation session")
            if document is not None and document.get("session_id", key) == session_id:
                found.append((key, document))
        return found

    async def iter_data_owners(self) -> AsyncIterator[str]:
        """See :meth:`contextkit.stores.HotStore.iter_data_owners`: a SCAN of the namespace's owner keys (every
        master of a cluster), keeping the owners of a history, task context or conversation session key."""
        pattern = self.keys.owner_scan_pattern()
        found: set[str] = set()

        async def walk() -> None:
            async for raw in self.client.scan_iter(match=pattern, count=1000):
                owner = self.keys.data_owner(text(raw))
                if owner is not None:
                    found.add(owner)

        await self.gate("iter_data_owners", walk())
        for owner in found:  # a set: each owner once, though it may hold all three families
            yield owner

    async def scan_checkpoint_threads(self, cursor: str | None, count: int) -> tuple[list[str], str | None]:
        """Walk the seed thread index of each shard in id order; the cursor is ``"<shard>:<last id>"``.

        A thread whose keys expired or were deleted is dropped from the index when the scan meets it.
        """
        shard, after = 0, ""
        if cursor:
            head, _, after = cursor.partition(":")
            try:
                shard = int(head)
            except ValueError:
                raise InvalidInput(f"malformed checkpoint thread scan cursor {cursor[:80]!r}") from None
        count = max(1, count)
        page: list[str] = []
        rounds = 0
        while shard < self.keys.shards and len(page) < count and rounds < self.keys.shards + 16:
            rounds += 1
            index = self.keys.seed_threads(shard)
            want = count - len(page)
            low = "(" + after if after else "-"
            ids = [text(x) for x in await self.gate("scan_threads", self.client.zrangebylex(index, low, "+", 0, want))]
            if not ids:
                shard, after = shard + 1, ""
                continue
            pipe = self.client.pipeline(transaction=False)
            for tid in ids:
                owner = self.keys.owner(tid)
                pipe.exists(owner.cp_docs, owner.cp_writes)  # one slot: the keys share the thread's tag
            flags = await self.gate("scan_threads", pipe.execute())
            for tid, present in zip(ids, flags, strict=True):
                if int(present):
                    page.append(tid)
                else:
                    owner = self.keys.owner(tid)
                    keys = [index] if self.cluster else [index, owner.cp_docs, owner.cp_writes]
                    await self.gate("scan_threads", self.scripts.run("prune_thread", keys, [tid]))
            after = ids[-1]
            if len(ids) < want:
                shard, after = shard + 1, ""
        if shard >= self.keys.shards:
            return page, None
        return page, f"{shard}:{after}"

    async def read_checkpoint_thread(
        self, thread_id: str
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, list[tuple[str, Any]]]]]:
        """The thread's order list, documents and writes, read by one script (one consistent view)."""
        owner = self.keys.owner(thread_id)
        order, docs_raw, writes_raw = await self.gate(
            "read_checkpoint_thread", self.scripts.run("read_thread", [owner.cp_docs, owner.cp_order, owner.cp_writes], [])
        )
        docs = as_hash(docs_raw)
        documents = []
        for cid in (text(x) for x in order):
            document = _document(docs.get(cid), "checkpoint")
            if document is not None:
                documents.append((cid, document))
        writes = []
        for cid, raw in sorted(as_hash(writes_raw).items()):
            items = load_document(raw, "checkpoint writes")
            try:
                pairs = [(str(task), write) for task, write in items]
            except (TypeError, ValueError) as exc:
                raise CorruptData(f"stored checkpoint writes are malformed: {exc!r}") from exc
            if pairs:
                writes.append((cid, pairs))
        return documents, writes

    # -- stats and health -------------------------------------------------------------------------------------
    async def stats(self) -> StoreStats:
        """Sums over the index shards (see the module docstring for what is exact)."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            index = self.keys.index(shard)
            pipe.zcard(index.by_activity)
            pipe.zcard(index.active)
            pipe.hmget(index.stats, ["messages", "checkpoints"])
        rows = await self.gate("stats", pipe.execute())
        sessions = active = messages = checkpoints = 0
        for i in range(0, len(rows), 3):
            sessions += int(rows[i])
            active += int(rows[i + 1])
            msg_raw, cp_raw = rows[i + 2]
            messages += int(text(msg_raw)) if msg_raw is not None else 0
            checkpoints += int(text(cp_raw)) if cp_raw is not None else 0
        return StoreStats(sessions=sessions, active_sessions=active, messages=messages, checkpoints=checkpoints)

    async def health(self) -> dict[str, Any]:
        """Ping latency, server version, cluster state, memory used and the namespace's key count; never raises.

        With a cold tier (or ``require_noeviction``), ``maxmemory_policy`` as read at open: an evicting policy makes
        the status ``degraded`` with a ``reason`` (the outbox may be evicted), and ``unknown`` (CONFIG refused) adds a
        ``warning`` and a ``maxmemory_policy_note``.

        ``prefix_keys`` is exact when ``prefix_keys_exact`` is true (a SCAN of at most
        10 x 1000 keys finished); otherwise it is the count seen so far, a lower bound.
        """
        report: dict[str, Any] = {
            "status": "unhealthy",
            "backend": "redis",
            "target": self.gate.target,
            "namespace": self.settings.namespace,
            "cluster": self.cluster,
        }
        if self._connected is None:
            report["error"] = "store is not open"
            return report
        try:
            started = time.perf_counter()
            await self.gate("ping", self.client.ping())
            report["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
            report.update(await self.gate("health", self._server_facts()))
            report["status"] = "healthy"
            if self._eviction_policy is not None:
                report["maxmemory_policy"] = self._eviction_policy
                if self._eviction_note:
                    report["maxmemory_policy_note"] = self._eviction_note
            if self.settings.archived and self._eviction_policy == "unknown":
                report["warning"] = (
                    f"maxmemory-policy is unknown ({self._eviction_note}): whether this Redis may evict the archive "
                    "outbox cannot be checked"
                )
            if self.settings.archived and self._eviction_policy not in (None, "noeviction", "unknown"):
                report["status"] = "degraded"
                report["reason"] = (
                    f"maxmemory-policy is {self._eviction_policy}: this Redis may evict keys, the archive outbox "
                    "streams included, and lose acknowledged writes before they reach the archive; set it to "
                    "noeviction (or require it with the redis option require_noeviction)"
                )
            if self.cluster and report.get("cluster_state") != "ok":
                report["status"] = "unhealthy"
        except (ContextKitError, Exception) as exc:
            report["error"] = mask_secrets(str(exc), self.options.secrets)
        return report

    async def _server_facts(self) -> dict[str, Any]:
        client = self.client
        facts: dict[str, Any] = {}
        if self.cluster:
            server = await client.info("server", target_nodes=client.RANDOM)
            memory = await client.info("memory", target_nodes=client.PRIMARIES)
            facts["redis_version"] = _first_value(server, "redis_version")
            facts["used_memory"] = _sum_values(memory, "used_memory")
            cluster_info = await client.cluster_info()
            facts["cluster_state"] = text(_first_value(cluster_info, "cluster_state"))
            facts["cluster_nodes"] = len(client.get_primaries())
        else:
            server = await client.info("server")
            memory = await client.info("memory")
            facts["redis_version"] = server.get("redis_version")
            facts["used_memory"] = memory.get("used_memory")
        count, exact = 0, True
        cursor: Any = 0
        if self.cluster:
            seen = 0
            exact = False
            async for _ in client.scan_iter(match=self.keys.scan_pattern(), count=_HEALTH_SCAN_COUNT):
                seen += 1
                if seen >= _HEALTH_SCAN_ROUNDS * _HEALTH_SCAN_COUNT:
                    break
            else:
                exact = True
            count = seen
        else:
            for _ in range(_HEALTH_SCAN_ROUNDS):
                cursor, batch = await client.scan(cursor, match=self.keys.scan_pattern(), count=_HEALTH_SCAN_COUNT)
                count += len(batch)
                if int(cursor) == 0:
                    break
            else:
                exact = False
        facts["prefix_keys"] = count
        facts["prefix_keys_exact"] = exact
        return facts


def _policies_of(reply: Any) -> list[str]:
    """The maxmemory-policy values of a CONFIG GET reply: a flat ``[name, value]`` list or a dict (RESP2/3, parsed
    or not), or, from a cluster, one of those per node."""
    if isinstance(reply, Mapping):
        if any(text(k) == "maxmemory-policy" for k in reply):
            return [text(v) for k, v in reply.items() if text(k) == "maxmemory-policy"]
        return [policy for value in reply.values() for policy in _policies_of(value)]
    if isinstance(reply, (list, tuple)):
        items = list(reply)
        return [text(items[i + 1]) for i in range(0, len(items) - 1, 2) if text(items[i]) == "maxmemory-policy"]
    return []


def _first_value(info: Any, field: str) -> Any:
    """A field of an INFO reply that may be per node (``{node: {...}}``) or flat."""
    if isinstance(info, Mapping):
        if field in info:
            return info[field]
        for value in info.values():
            if isinstance(value, Mapping) and field in value:
                return value[field]
    return None


def _sum_values(info: Any, field: str) -> int | None:
    if isinstance(info, Mapping) and field in info:
        return int(info[field])
    if isinstance(info, Mapping):
        values = [int(v[field]) for v in info.values() if isinstance(v, Mapping) and field in v]
        return sum(values) if values else None
    return None
