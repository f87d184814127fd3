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
from datetime import datetime, timedelta, timezone
from typing import Any

from contextkit.archiver import message_event_heads
from contextkit.codec import archive_json, archive_loads
from contextkit.errors import BackendUnavailable, ContextKitError, InvalidInput, SerializationError
from contextkit.records import Message, Session, from_iso, to_iso
from contextkit.stores import ArchiveSpec, Capability, SessionUpdate, StoreSettings, StoreStats
from contextkit_redis.checkpoints import RedisCheckpoints
from contextkit_redis.connection import Connected, Gate, RedisOptions, close, connect
from contextkit_redis.keys import DEFAULT_INDEX_SHARDS, IndexKeys, KeyLayout
from contextkit_redis.outbox import CLUSTER_SHARDS, RedisStreamOutbox
from contextkit_redis.scripts import ALL_SCRIPTS, ScriptSet

__all__ = ["RedisHotStore", "dumps", "to_micros"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)
_UPDATABLE_FIELDS = ("status", "user_id", "metadata")
# Health counts the namespace's keys with SCAN only while that stays cheap.
_HEALTH_SCAN_ROUNDS = 10
_HEALTH_SCAN_COUNT = 1000


def dumps(value: Any) -> str:
    """Compact JSON (UTF-8 kept as is; the archive's codec); a value JSON cannot hold raises SerializationError."""
    try:
        return archive_json(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"value cannot be stored as JSON: {exc}") from exc


def _loads(raw: Any, what: str) -> Any:
    try:
        return archive_loads(raw)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"stored {what} is not valid JSON: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def to_micros(moment: datetime) -> int:
    """Integer microseconds since the epoch (exact, unlike ``timestamp()``); naive values are UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // _MICRO


def _as_hash(raw: Any) -> dict[str, str]:
    if isinstance(raw, Mapping):
        return {_text(k): _text(v) for k, v in raw.items()}
    items = list(raw)
    return {_text(items[i]): _text(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _session_from_hash(fields: Mapping[str, str]) -> Session:
    try:
        metadata = archive_loads(fields["metadata"])
        if not isinstance(metadata, dict):
            raise TypeError("metadata is not an object")
        return Session(
            session_id=fields["session_id"],
            user_id=fields["user_id"],
            created_at=from_iso(fields["created_at"]),
            last_activity=from_iso(fields["last_activity"]),
            request_count=int(fields["request_count"]),
            error_count=int(fields["error_count"]),
            total_processing_time=float(fields["total_processing_time"]),
            status=fields["status"],
            metadata=metadata,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SerializationError(f"stored session is malformed: {exc!r}") from exc


def _message(raw: Any) -> Message:
    data = _loads(raw, "message")
    if not isinstance(data, dict):
        raise SerializationError("stored message is not a JSON object")
    return Message.from_dict(data)


def _document(raw: Any, what: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    data = _loads(raw, what)
    if not isinstance(data, dict):
        raise SerializationError(f"stored {what} is not a JSON object")
    return data


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisHotStore(RedisCheckpoints):
    """The Redis hot tier (:class:`contextkit.stores.HotStore`).

    Built by :func:`contextkit_redis.create_store` without I/O; :meth:`open` connects, PINGs and detects
    cluster mode. The attributes :attr:`client`, :attr:`keys`, :attr:`scripts` and :attr:`gate` are shared
    with the LangGraph checkpointer mixin.
    """

    name = "redis"
    #: Seconds an archiver's drain lease on the outbox lasts without renewal (see :mod:`contextkit_redis.outbox`).
    outbox_lease: float = 5.0

    def __init__(self, settings: StoreSettings, options: Mapping[str, Any]) -> None:
        self.settings = settings
        self.options = RedisOptions.parse(settings, options)
        self.keys = KeyLayout(settings.namespace, self.options.index_shards or DEFAULT_INDEX_SHARDS)
        self.gate = Gate(self.options.describe_target(), settings.timeout, self.options.secrets())
        self._connected: Connected | None = None
        self._scripts: ScriptSet | None = None
        caps = {
            Capability.TTL.value,
            Capability.DURABLE.value,
            Capability.SHARED.value,
            Capability.OUTBOX.value,
            Capability.ATOMIC_OUTBOX.value,
        }
        if hasattr(RedisCheckpoints, "cp_put"):
            caps.add(Capability.CHECKPOINTS.value)
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
        connected = await self.gate("connect", connect(self.options))
        self._connected = connected
        self._scripts = ScriptSet(connected.client, ALL_SCRIPTS)
        if connected.cluster:
            self.gate = Gate(self.gate.target, self.settings.timeout, self.options.secrets(), limit=self.options.max_connections)
            self.capabilities = self.capabilities | {Capability.CLUSTER.value}

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
        """The archiver's durable outbox: a Redis stream of this namespace (the store must be open)."""
        return RedisStreamOutbox(self, max_pending=max_pending, lease=self.outbox_lease)

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

    # -- sessions ---------------------------------------------------------------------------------------------
    async def put_session(self, session: Session) -> None:
        """Store ``session`` whole and start its TTL (and index it)."""
        sid = session.session_id
        flag, index = self._inline_index(sid)
        la_us = to_micros(session.last_activity)
        args = [
            flag,
            _ms(self.settings.session_ttl),
            sid,
            session.user_id,
            to_iso(session.created_at),
            to_iso(session.last_activity),
            la_us,
            int(session.request_count),
            int(session.error_count),
            repr(float(session.total_processing_time)),
            session.status,
            dumps(dict(session.metadata)),
        ]
        family = self.keys.owner(sid).session_family()
        await self.gate("put_session", self.scripts.run("put_session", family + index, args))
        if self.cluster:
            await self._side(sid, "set", la_us, session.status)

    async def get_session(self, session_id: str) -> Session | None:
        """The session, or None when it does not exist or expired."""
        raw = await self.gate("get_session", self.client.hgetall(self.keys.owner(session_id).session))
        return _session_from_hash(_as_hash(raw)) if raw else None

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session | None:
        """Apply counters, fields and activity in one script; refresh the TTL; None if the session is missing."""
        pairs: list[Any] = []
        for name, value in update.fields.items():
            if name not in _UPDATABLE_FIELDS:
                raise InvalidInput(f"session field {name!r} cannot be updated (updatable: {_UPDATABLE_FIELDS})")
            pairs += [name, dumps(dict(value)) if name == "metadata" else str(value)]
        flag, index = self._inline_index(session_id)
        processing = float(update.processing_time)
        args = [
            flag,
            _ms(self.settings.session_ttl),
            int(update.requests),
            int(update.errors),
            "0" if processing == 0 else repr(processing),
            to_iso(update.activity),
            to_micros(update.activity),
            len(pairs) // 2,
            *pairs,
        ]
        family = self.keys.owner(session_id).session_family()
        raw = await self.gate("update_session", self.scripts.run("update_session", family + index, args))
        if raw is None:
            return None
        fields = _as_hash(raw)
        session = _session_from_hash(fields)
        if self.cluster:
            await self._side(session_id, "max", fields["last_activity_us"], session.status)
        return session

    async def delete_session(self, session_id: str) -> bool:
        """Remove every key family of the session, its conversation sessions and its index entries."""
        owner = self.keys.owner(session_id)
        flag, index = self._inline_index(session_id)
        raw = await self.gate("delete_session", self.scripts.run("delete_owner", owner.all() + index, [flag, session_id]))
        existed = int(raw[0]) == 1
        removed_messages, removed_checkpoints = int(raw[2]), int(raw[3])
        conversation_messages = 0
        for key in (c for c in (_text(x) for x in raw[1]) if c != session_id):
            conv = self.keys.owner(key)
            keys = [conv.conversation, conv.history, conv.seq]
            conversation_messages += int(await self.gate("delete_session", self.scripts.run("drop_stream", keys, [])))
        if self.cluster:
            await self._side(
                session_id,
                "del",
                messages=-(removed_messages + conversation_messages),
                checkpoints=-removed_checkpoints,
            )
        elif conversation_messages:
            await self._side(session_id, "none", messages=-conversation_messages)
        return existed

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
            ids = [_text(x) for x in raw_ids]
            if not ids:
                shard, after = shard + 1, ""
                continue
            for sid, raw in zip(ids, await self._fetch_sessions(ids), strict=True):
                if raw:
                    page.append(_session_from_hash(_as_hash(raw)))
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
                ((float(score), _text(member)) for rows in per_shard for member, score in rows),
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
                la_us = int(_text(la_raw))
                if la_us >= before_us:
                    await self._side(sid, "max", la_us, _text(status_raw or b""))
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
        """RPUSH with consecutive seqs from the stream's counter, trim to the cap, move the session's last
        activity forward and refresh the TTL, in one script; with ``archive``, XADD the messages' archive events
        to the outbox stream in the same script (plain Redis) or right after it (cluster: the stream is in
        another slot)."""
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
        args = [
            flag,
            max(1, self.settings.history_cap),
            _ms(self.settings.session_ttl),
            key,
            to_iso(newest),
            to_micros(newest),
            len(bodies),
            *bodies,
        ]
        keys = self.keys.owner(key).session_family() + index
        heads: list[str] = []
        if archive is not None:
            heads = message_event_heads(key, archive, len(messages))
            if not self.cluster:
                args += heads
                keys.append(self.keys.outbox_stream(0))
        first, kept, _, status, la_us = await self.gate("append_messages", self.scripts.run("append", keys, args))
        first = int(first)
        if self.cluster:
            if status is None:
                await self._side(key, "none", messages=int(kept))
            else:
                await self._side(key, "max", _text(la_us), _text(status), messages=int(kept))
            if heads and first > 1:
                stream = self.keys.outbox_stream(self.keys.outbox_shard(key, CLUSTER_SHARDS))
                pipe = self.client.pipeline(transaction=False)
                for i, (head, body) in enumerate(zip(heads, bodies, strict=True)):
                    pipe.xadd(stream, {"e": f'{head}{{"seq":{first + i},{body}}}}}'})
                await self.gate("outbox push", pipe.execute())
        return [message.with_seq(first + i) for i, message in enumerate(messages)]

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        """LRANGE of the newest ``limit`` (O(limit)), oldest first."""
        if limit is not None and limit <= 0:
            return []
        start = 0 if limit is None else -limit
        raw = await self.gate("read_history", self.scripts.read("LRANGE", self.keys.owner(key).history, start, -1))
        return [_message(item) for item in raw]

    async def history_length(self, key: str) -> int:
        """LLEN of the stream."""
        return int(await self.gate("history_length", self.client.llen(self.keys.owner(key).history)))

    async def history_bounds(self, key: str) -> tuple[int, int]:
        """Seq of the oldest kept message and the stream's seq counter; ``(0, 0)`` when empty."""
        owner = self.keys.owner(key)
        first_raw, last_raw = await self.gate("history_bounds", self.scripts.run("bounds", [owner.history, owner.seq], []))
        if first_raw is None:
            return (0, 0)
        first = _message(first_raw).seq
        return (first, max(first, int(_text(last_raw)) if last_raw is not None else first))

    async def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Replace the list in one script; the seq counter never moves backward."""
        owner = self.keys.owner(key)
        flag, index = self._inline_index(key)
        top = max((m.seq for m in messages), default=0)
        args = [flag, max(1, self.settings.history_cap), _ms(self.settings.session_ttl), top]
        args += [dumps(m.to_dict()) for m in messages]
        delta = await self.gate("replace_history", self.scripts.run("replace_history", [owner.history, owner.seq, *index], args))
        if self.cluster and int(delta):
            await self._side(key, "none", messages=int(delta))

    # -- task contexts and conversation sessions --------------------------------------------------------------
    async def put_task_context(self, session_id: str, document: Mapping[str, Any]) -> None:
        """SET the JSON document with the session TTL."""
        key = self.keys.owner(session_id).task
        await self.gate("put_task_context", self.client.set(key, dumps(dict(document)), px=_ms(self.settings.session_ttl)))

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The stored document, or None."""
        raw = await self.gate("get_task_context", self.client.get(self.keys.owner(session_id).task))
        return _document(raw, "task context")

    async def put_conversation_session(self, session_key: str, document: Mapping[str, Any]) -> None:
        """SET the document under its key and register the key in its session's set (two slots, one pipeline)."""
        ttl = _ms(self.settings.session_ttl)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.keys.owner(session_key).conversation, dumps(dict(document)), px=ttl)
        owner_id = document.get("session_id")
        if isinstance(owner_id, str) and owner_id:
            registry = self.keys.owner(owner_id).conversations
            pipe.sadd(registry, session_key)
            pipe.pexpire(registry, ttl)
        await self.gate("put_conversation_session", pipe.execute())

    async def get_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The stored document, or None."""
        raw = await self.gate("get_conversation_session", self.client.get(self.keys.owner(session_key).conversation))
        return _document(raw, "conversation session")

    # -- seed checkpoints -------------------------------------------------------------------------------------
    async def put_checkpoint_document(self, thread_id: str, checkpoint_id: str, document: Mapping[str, Any]) -> None:
        """HSET the document; a new id is appended to the thread's order list; thread TTL refreshed."""
        owner = self.keys.owner(thread_id)
        flag, index = self._inline_index(thread_id)
        if index:
            index.append(self.keys.seed_threads_for(thread_id))
        args = [flag, _ms(self.settings.checkpoint_ttl), checkpoint_id, dumps(dict(document)), thread_id]
        new = await self.gate("put_checkpoint", self.scripts.run("put_checkpoint", owner.checkpoint_family() + index, args))
        if self.cluster:
            if int(new) == 1:
                await self._side(thread_id, "none", checkpoints=1)
            await self._index_seed_thread(thread_id)

    async def get_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That checkpoint, or the most recently inserted one."""
        owner = self.keys.owner(thread_id)
        args = ["0", ""] if checkpoint_id is None else ["1", checkpoint_id]
        raw = await self.gate("get_checkpoint", self.scripts.run("get_checkpoint", [owner.cp_docs, owner.cp_order], args))
        return _document(raw, "checkpoint")

    async def list_checkpoint_documents(self, thread_id: str, limit: int) -> list[dict[str, Any]]:
        """Newest first, O(limit)."""
        if limit <= 0:
            return []
        owner = self.keys.owner(thread_id)
        raw = await self.gate("list_checkpoints", self.scripts.run("list_checkpoints", [owner.cp_docs, owner.cp_order], [limit]))
        return [doc for doc in (_document(item, "checkpoint") for item in raw) if doc is not None]

    async def put_writes_document(self, thread_id: str, checkpoint_id: str, task_id: str, writes: Sequence[Any]) -> None:
        """Append ``[task_id, write]`` items to the checkpoint's JSON array in one script."""
        if not writes:
            return
        owner = self.keys.owner(thread_id)
        items = ",".join(dumps([task_id, write]) for write in writes)
        args = [_ms(self.settings.checkpoint_ttl), checkpoint_id, items, thread_id]
        keys = [owner.cp_writes, owner.cp_docs, owner.cp_order]
        if not self.cluster:
            keys.append(self.keys.seed_threads_for(thread_id))
        await self.gate("put_writes", self.scripts.run("put_writes", keys, args))
        if self.cluster:
            await self._index_seed_thread(thread_id)

    async def get_writes_documents(self, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        """``(task_id, write)`` pairs in the order they were put."""
        raw = await self.gate("get_writes", self.client.hget(self.keys.owner(thread_id).cp_writes, checkpoint_id))
        if raw is None:
            return []
        items = _loads(raw, "checkpoint writes")
        try:
            return [(str(task), write) for task, write in items]
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"stored checkpoint writes are malformed: {exc!r}") from exc

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
        keys = sorted({session_id, *(_text(m) for m in members)})
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
                owner = self.keys.data_owner(_text(raw))
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
            ids = [_text(x) for x in await self.gate("scan_threads", self.client.zrangebylex(index, low, "+", 0, want))]
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
        docs = _as_hash(docs_raw)
        documents = []
        for cid in (_text(x) for x in order):
            document = _document(docs.get(cid), "checkpoint")
            if document is not None:
                documents.append((cid, document))
        writes = []
        for cid, raw in sorted(_as_hash(writes_raw).items()):
            items = _loads(raw, "checkpoint writes")
            try:
                pairs = [(str(task), write) for task, write in items]
            except (TypeError, ValueError) as exc:
                raise SerializationError(f"stored checkpoint writes are malformed: {exc!r}") from exc
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
            messages += int(_text(msg_raw)) if msg_raw is not None else 0
            checkpoints += int(_text(cp_raw)) if cp_raw is not None else 0
        return StoreStats(sessions=sessions, active_sessions=active, messages=messages, checkpoints=checkpoints)

    async def health(self) -> dict[str, Any]:
        """Ping latency, server version, cluster state, memory used and the namespace's key count; never raises.

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
            if self.cluster and report.get("cluster_state") != "ok":
                report["status"] = "unhealthy"
        except (ContextKitError, Exception) as exc:
            report["error"] = self.gate.scrub(str(exc))
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
            facts["cluster_state"] = _text(_first_value(cluster_info, "cluster_state"))
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
