"""LangGraph checkpoint storage of the memory tier: the :class:`MemoryCheckpoints` mixin.

It implements :class:`contextkit.stores.CheckpointStore` with plain dicts, for one process and one event loop.
Per ``(thread, namespace)`` the checkpoint ids are kept in a sorted list next to the rows, so the newest is
O(1) and ``list(limit=n)`` is O(n) (a bisect for ``before``, then a slice). Stored values are immutable
(frozen rows, ``(type, bytes)`` tuples), so nothing is copied on the way in or out.

The rules every tier shares (tombstones, the DeltaChannel ancestors prune keeps) live in :mod:`contextkit.stores`
and are re-exported here for compatibility.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from contextkit.backend.tables import ArchiveTables
from contextkit.checkpoint_archive import delete_payload
from contextkit.checkpoint_lists import LIST_MARK, is_node_version, reachable_nodes
from contextkit.errors import ContextKitError, MissingBlobs
from contextkit.records import ArchiveEvent
from contextkit.stores import (
    EMPTY_BLOB_TYPE,
    KEEP_NEWEST,
    CheckpointBundle,
    CheckpointRow,
    DeltaStep,
    DeltaWalk,
    EventHead,
    RetentionPolicy,
    StoreSettings,
    Tombstone,
    Typed,
    WriteRow,
    checkpoint_id_floor,
    delta_ancestors,
    delta_seed,
    missing_blobs_message,
)

__all__ = [
    "EMPTY_BLOB_TYPE",
    "MemoryCheckpoints",
    "Tombstone",
    "checkpoint_id_floor",
    "delta_ancestors",
]

# How many writes between two sweeps of expired threads (lazy expiry covers the threads that are read).
_SWEEP_EVERY = 1024


class _Namespace:
    """The checkpoints of one ``(thread, checkpoint_ns)``."""

    __slots__ = ("blobs", "ids", "rows", "writes")

    def __init__(self) -> None:
        self.ids: list[str] = []  # sorted ascending; the newest is ids[-1]
        self.rows: dict[str, CheckpointRow] = {}
        self.writes: dict[str, dict[tuple[str, int], WriteRow]] = {}
        self.blobs: dict[tuple[str, str], Typed] = {}

    def add(self, row: CheckpointRow) -> CheckpointRow | None:
        cid = row.checkpoint_id
        previous = self.rows.get(cid)
        self.rows[cid] = row
        if previous is None:
            ids = self.ids
            if not ids or cid > ids[-1]:
                ids.append(cid)  # LangGraph ids grow with time: the common case is an append
            else:
                bisect.insort(ids, cid)
        return previous

    def remove(self, cid: str) -> CheckpointRow | None:
        row = self.rows.pop(cid, None)
        self.writes.pop(cid, None)
        if row is not None:
            i = bisect.bisect_left(self.ids, cid)
            if i < len(self.ids) and self.ids[i] == cid:
                del self.ids[i]
        return row

    def has_value(self, row: CheckpointRow, channel: str) -> bool:
        version = row.channel_versions.get(channel)
        if version is None:
            return False
        blob = self.blobs.get((channel, version))
        return blob is not None and blob[0] != EMPTY_BLOB_TYPE

    def collect_blobs(self) -> None:
        """Drop blobs no remaining checkpoint points at, and the shared list nodes (versions ``#...``) no remaining
        record reaches (:class:`~contextkit.stores.SharedBlobStore`)."""
        blobs = self.blobs
        referenced = {(ch, v) for row in self.rows.values() for ch, v in row.channel_versions.items()}
        for key in [k for k in blobs if k not in referenced and not is_node_version(k[1])]:
            del blobs[key]
        nodes: dict[str, list[str]] = {}
        records: dict[str, list[Typed]] = {}
        for (channel, version), blob in blobs.items():
            if is_node_version(version):
                nodes.setdefault(channel, []).append(version)
            elif blob[0].endswith(LIST_MARK):
                records.setdefault(channel, []).append(blob)
        for channel, versions in nodes.items():
            reached = reachable_nodes(records.get(channel, ()), lambda v, ch=channel: blobs.get((ch, v)))  # type: ignore[misc]
            if reached is not None:
                for version in versions:
                    if version not in reached:
                        del blobs[(channel, version)]

    def bundle(self, row: CheckpointRow) -> CheckpointBundle:
        blobs = self.blobs
        found = {}
        for channel, version in row.channel_versions.items():
            blob = blobs.get((channel, version))
            if blob is not None:
                found[channel] = blob
        stored = self.writes.get(row.checkpoint_id)
        return CheckpointBundle(row, found, list(stored.values()) if stored else [])

    def newest_first(self, checkpoint_id: str | None, before: str | None, limit: int | None) -> list[str]:
        """Ids to visit, newest first: a slice of the sorted ids, never a scan of the namespace."""
        ids = self.ids
        if checkpoint_id is not None:
            return [checkpoint_id] if checkpoint_id in self.rows and (before is None or checkpoint_id < before) else []
        end = bisect.bisect_left(ids, before) if before is not None else len(ids)
        start = max(0, end - limit) if limit is not None else 0
        return ids[start:end][::-1]


class _Thread:
    __slots__ = ("expires_at", "namespaces")

    def __init__(self, expires_at: float) -> None:
        self.namespaces: dict[str, _Namespace] = {}
        self.expires_at = expires_at


class _CheckpointState:
    __slots__ = ("last_sweep", "ops", "runs", "threads", "tombstones")

    def __init__(self, now: float) -> None:
        self.threads: dict[str, _Thread] = {}
        self.tombstones: dict[str, Tombstone] = {}
        # run_id -> {(thread, ns, checkpoint_id)}: delete_for_runs without a scan of every thread
        self.runs: dict[str, set[tuple[str, str, str]]] = {}
        self.ops = 0
        self.last_sweep = now


def _run_id(row: CheckpointRow) -> str | None:
    value = row.metadata.get("run_id")
    return value if isinstance(value, str) else None


def _matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    missing = object()
    return all(metadata.get(key, missing) == value for key, value in wanted.items())


class MemoryCheckpoints:
    """Mixin implementing :class:`contextkit.stores.CheckpointStore` in memory.

    The host class sets ``self.settings`` (a :class:`~contextkit.stores.StoreSettings`); the state is created
    on first use, so the host's ``__init__`` need not call this one. Threads expire ``settings.checkpoint_ttl``
    seconds after their last write (checked when a thread is read, and swept every ~1,000 writes).
    """

    settings: StoreSettings

    # -- state ----------------------------------------------------------------------------------------------------
    @property
    def _cp(self) -> _CheckpointState:
        try:
            return self._cp_state
        except AttributeError:
            self._cp_state: _CheckpointState = _CheckpointState(self._cp_now())
            return self._cp_state

    def _cp_now(self) -> float:
        """The clock of thread TTLs (monotonic seconds); tests may replace it on an instance."""
        return time.monotonic()

    def _cp_ttl(self) -> float:
        return float(self.settings.checkpoint_ttl)

    def _cp_thread(self, thread_id: str, now: float) -> _Thread | None:
        """The live thread, expiring it first when its TTL has passed."""
        thread = self._cp.threads.get(thread_id)
        if thread is not None and thread.expires_at <= now:
            self._cp_drop(thread_id)
            return None
        return thread

    def _cp_tombstone(self, thread_id: str, now: float) -> Tombstone | None:
        tombstones = self._cp.tombstones
        tomb = tombstones.get(thread_id)
        if tomb is not None and tomb.expires_at <= now:
            del tombstones[thread_id]
            return None
        return tomb

    def _cp_drop(self, thread_id: str) -> _Thread | None:
        """Remove a thread and its run index entries (no tombstone)."""
        state = self._cp
        thread = state.threads.pop(thread_id, None)
        if thread is not None:
            for ns_name, ns in thread.namespaces.items():
                for cid, row in ns.rows.items():
                    self._cp_unindex(row, thread_id, ns_name, cid)
        return thread

    def _cp_unindex(self, row: CheckpointRow, thread_id: str, ns_name: str, cid: str) -> None:
        run_id = _run_id(row)
        if run_id is not None:
            runs = self._cp.runs
            refs = runs.get(run_id)
            if refs is not None:
                refs.discard((thread_id, ns_name, cid))
                if not refs:
                    del runs[run_id]

    def _cp_touch(self, thread_id: str, now: float) -> _Thread:
        """The thread, created if needed, with its TTL refreshed."""
        thread = self._cp_thread(thread_id, now)
        expires_at = now + self._cp_ttl()
        if thread is None:
            thread = self._cp.threads[thread_id] = _Thread(expires_at)
        else:
            thread.expires_at = expires_at
        state = self._cp
        state.ops += 1
        if state.ops % _SWEEP_EVERY == 0:
            self.cp_sweep_expired(now)
        return thread

    def cp_sweep_expired(self, now: float | None = None) -> int:
        """Remove every expired thread and tombstone; the number of threads removed."""
        state = self._cp
        now = self._cp_now() if now is None else now
        state.last_sweep = now
        expired = [tid for tid, thread in state.threads.items() if thread.expires_at <= now]
        for tid in expired:
            self._cp_drop(tid)
        for tid in [tid for tid, tomb in state.tombstones.items() if tomb.expires_at <= now]:
            del state.tombstones[tid]
        return len(expired)

    def cp_count(self) -> int:
        """Number of live checkpoints (for ``stats()``)."""
        now = self._cp_now()
        return sum(
            len(ns.rows) for thread in self._cp.threads.values() if thread.expires_at > now for ns in thread.namespaces.values()
        )

    # -- CheckpointStore --------------------------------------------------------------------------------------
    def _push(self, events: Sequence[ArchiveEvent]) -> None:
        """Put events into the host store's outbox in the critical section of the write (MemoryHotStore)."""
        raise ContextKitError("this checkpoint store has no outbox to archive to")

    async def cp_put(
        self,
        row: CheckpointRow,
        new_blobs: Mapping[tuple[str, str], Typed],
        *,
        archive: ArchiveEvent | None = None,
        requires: Collection[tuple[str, str]] = (),
    ) -> None:
        """Store a checkpoint and the blobs of its changed channels (and ``archive``, in the same step); a late
        put to a deleted thread is dropped; a put relying on a blob that is gone (``requires``: the thread
        expired under a run) raises ``MissingBlobs`` and writes nothing."""
        now = self._cp_now()
        thread_id, ns_name, cid = row.thread_id, row.checkpoint_ns, row.checkpoint_id
        tomb = self._cp_tombstone(thread_id, now)
        if tomb is not None and tomb.stale_put(cid, row.parent_checkpoint_id):
            tomb.dead.add(cid)
            # Writes that raced ahead of this put were kept for it; they go with it.
            thread = self._cp_thread(thread_id, now)
            ns = thread.namespaces.get(ns_name) if thread is not None else None
            if ns is not None:
                ns.writes.pop(cid, None)
            return
        if requires:
            thread = self._cp_thread(thread_id, now)
            ns = thread.namespaces.get(ns_name) if thread is not None else None
            stored = ns.blobs if ns is not None else {}
            missing = [key for key in requires if key not in stored]
            if missing:
                raise MissingBlobs(missing_blobs_message(row, missing), missing)
        if archive is not None:
            self._push([archive])
        thread = self._cp_touch(thread_id, now)
        ns = thread.namespaces.get(ns_name)
        if ns is None:
            ns = thread.namespaces[ns_name] = _Namespace()
        if new_blobs:
            ns.blobs.update(new_blobs)
        previous = ns.add(row)
        if previous is not None:
            self._cp_unindex(previous, thread_id, ns_name, cid)
        run_id = _run_id(row)
        if run_id is not None:
            self._cp.runs.setdefault(run_id, set()).add((thread_id, ns_name, cid))

    async def cp_get_blobs(
        self, thread_id: str, checkpoint_ns: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Typed]:
        """See :meth:`contextkit.stores.SharedBlobStore.cp_get_blobs`."""
        thread = self._cp_thread(thread_id, self._cp_now())
        ns = thread.namespaces.get(checkpoint_ns) if thread is not None else None
        if ns is None:
            return {}
        blobs = ns.blobs
        return {key: blob for key in keys if (blob := blobs.get(key)) is not None}

    async def cp_put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        writes: Sequence[WriteRow],
        upsert: bool,
        *,
        archive: ArchiveEvent | None = None,
    ) -> None:
        """Store pending writes keyed ``(task_id, idx)``: replaced when ``upsert``, otherwise kept if present (and
        ``archive``, in the same step).

        Writes may arrive before their checkpoint (LangGraph saves both in the background), so they are kept
        for a checkpoint not stored yet, except on a deleted thread for a checkpoint of the deleted run.
        """
        now = self._cp_now()
        thread = self._cp_thread(thread_id, now)
        ns = thread.namespaces.get(checkpoint_ns) if thread is not None else None
        if ns is None or checkpoint_id not in ns.rows:
            tomb = self._cp_tombstone(thread_id, now)
            if tomb is not None and tomb.stale_id(checkpoint_id):
                return
        if archive is not None:
            self._push([archive])
        thread = self._cp_touch(thread_id, now)
        if ns is None:
            ns = thread.namespaces.get(checkpoint_ns)
            if ns is None:
                ns = thread.namespaces[checkpoint_ns] = _Namespace()
        bucket = ns.writes.get(checkpoint_id)
        if bucket is None:
            bucket = ns.writes[checkpoint_id] = {}
        for write in writes:
            key = (write.task_id, write.idx)
            if upsert or key not in bucket:
                bucket[key] = write

    async def cp_get(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> CheckpointBundle | None:
        """That checkpoint, or the newest of ``(thread, ns)`` when ``checkpoint_id`` is None."""
        thread = self._cp_thread(thread_id, self._cp_now())
        if thread is None:
            return None
        ns = thread.namespaces.get(checkpoint_ns)
        if ns is None:
            return None
        if checkpoint_id is None:
            if not ns.ids:
                return None
            checkpoint_id = ns.ids[-1]
        row = ns.rows.get(checkpoint_id)
        return ns.bundle(row) if row is not None else None

    async def cp_delta_history(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str | None,
        channels: Sequence[str],
        *,
        inclusive: bool = False,
        stop_at: str | None = None,
    ) -> DeltaWalk | None:
        """See :meth:`contextkit.stores.DeltaHistoryStore.cp_delta_history`: a direct walk of the rows."""
        thread = self._cp_thread(thread_id, self._cp_now())
        ns = thread.namespaces.get(checkpoint_ns) if thread is not None else None
        if ns is None:
            return None
        if checkpoint_id is None:
            if not ns.ids:
                return None
            checkpoint_id = ns.ids[-1]
        start = ns.rows.get(checkpoint_id)
        if start is None:
            return None
        remaining = set(channels)
        steps: list[DeltaStep] = []
        seen: set[str] = set()
        cursor: str | None = checkpoint_id
        if not inclusive:
            seen.add(checkpoint_id)
            cursor = start.parent_checkpoint_id
        while cursor is not None and remaining and cursor not in seen:
            row = ns.rows.get(cursor)
            if row is None:
                return DeltaWalk(checkpoint_id, steps, cursor)
            seen.add(cursor)
            stored = ns.writes.get(cursor)
            writes = [w for w in stored.values() if w.channel in remaining] if stored else []
            seeds = {}
            for channel in remaining:
                version = row.channel_versions.get(channel)
                blob = ns.blobs.get((channel, version)) if version is not None else None
                if delta_seed(blob):
                    assert blob is not None
                    seeds[channel] = blob
            remaining.difference_update(seeds)
            steps.append(DeltaStep(cursor, writes, seeds))
            if cursor == stop_at and remaining:
                return DeltaWalk(checkpoint_id, steps, stopped=True)
            cursor = row.parent_checkpoint_id
        return DeltaWalk(checkpoint_id, steps)

    async def cp_thread_ids(self) -> list[str]:
        """See :class:`contextkit.stores.CheckpointThreadsStore`: the live threads holding a checkpoint, sorted."""
        now = self._cp_now()
        return sorted(
            tid
            for tid, thread in self._cp.threads.items()
            if thread.expires_at > now and any(ns.rows for ns in thread.namespaces.values())
        )

    async def cp_list(
        self,
        thread_id: str | None,
        checkpoint_ns: str | None,
        *,
        checkpoint_id: str | None = None,
        before: str | None = None,
        limit: int | None = None,
        metadata_filter: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[CheckpointBundle]:
        """Matching checkpoints, newest first (across threads and namespaces too)."""
        if limit is not None and limit <= 0:
            return
        now = self._cp_now()
        thread_ids = list(self._cp.threads) if thread_id is None else [thread_id]
        # Without a filter, each namespace contributes at most `limit` ids.
        per_ns_limit = limit if not metadata_filter else None
        sources: list[Iterator[tuple[str, _Namespace]]] = []
        for tid in thread_ids:
            thread = self._cp_thread(tid, now)
            if thread is None:
                continue
            if checkpoint_ns is None:
                namespaces = list(thread.namespaces.values())
            else:
                one = thread.namespaces.get(checkpoint_ns)
                namespaces = [one] if one is not None else []
            for ns in namespaces:
                ids = ns.newest_first(checkpoint_id, before, per_ns_limit)
                if ids:
                    sources.append(zip(ids, itertools.repeat(ns)))
        merged: Iterator[tuple[str, _Namespace]] = (
            sources[0] if len(sources) == 1 else heapq.merge(*sources, key=lambda item: item[0], reverse=True)
        )
        remaining = limit
        for cid, ns in merged:
            row = ns.rows.get(cid)  # may have been deleted while the caller awaited between items
            if row is None or (metadata_filter and not _matches(row.metadata, metadata_filter)):
                continue
            yield ns.bundle(row)
            if remaining is not None:
                remaining -= 1
                if remaining <= 0:
                    return

    async def cp_delete_thread(self, thread_id: str, *, archive: EventHead | None = None) -> None:
        """Remove the thread in every namespace and leave a tombstone that drops late writes of its runs (and the
        tombstone's event, with ``archive``, in the same step)."""
        now = self._cp_now()
        floor = checkpoint_id_floor(time.time())
        thread = self._cp.threads.get(thread_id)
        if thread is not None:
            for ns in thread.namespaces.values():
                if ns.ids and ns.ids[-1] > floor:
                    floor = ns.ids[-1]
        previous = self._cp_tombstone(thread_id, now)
        if previous is not None:
            floor = max(floor, previous.floor)
        if archive is not None:
            payload = delete_payload(floor)
            self._push([ArchiveEvent(ArchiveTables.CHECKPOINTS, thread_id, payload, archive.created_at, archive.event_id)])
        self._cp_drop(thread_id)
        tomb = Tombstone(floor, now + self._cp_ttl())
        if previous is not None:
            tomb.dead = previous.dead
        self._cp.tombstones[thread_id] = tomb

    async def cp_deleted_floor(self, thread_id: str) -> str | None:
        """See :meth:`contextkit.stores.CheckpointStore.cp_deleted_floor`."""
        tomb = self._cp_tombstone(thread_id, self._cp_now())
        return None if tomb is None else tomb.floor

    async def cp_delete_for_runs(self, run_ids: Sequence[str]) -> list[str]:
        """Remove the checkpoints (and their writes) whose ``metadata["run_id"]`` is in ``run_ids``; the ids of the
        threads that lost some."""
        state = self._cp
        touched: dict[tuple[str, str], _Namespace] = {}
        for run_id in run_ids:
            for thread_id, ns_name, cid in state.runs.pop(run_id, ()):
                thread = state.threads.get(thread_id)
                ns = thread.namespaces.get(ns_name) if thread is not None else None
                if ns is not None and ns.remove(cid) is not None:
                    touched[(thread_id, ns_name)] = ns
        for ns in touched.values():
            ns.collect_blobs()
        return sorted({thread_id for thread_id, _ in touched})

    async def cp_copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of a thread, in every namespace, to another thread id."""
        now = self._cp_now()
        source = self._cp_thread(source_thread_id, now)
        if source is None or source_thread_id == target_thread_id:
            return
        self._cp.tombstones.pop(target_thread_id, None)  # a copy is a deliberate write, not a late one
        target = self._cp_touch(target_thread_id, now)
        runs = self._cp.runs
        for ns_name, src in list(source.namespaces.items()):
            dst = target.namespaces.get(ns_name)
            if dst is None:
                dst = target.namespaces[ns_name] = _Namespace()
            dst.blobs.update(src.blobs)
            for cid, stored in src.writes.items():
                dst.writes.setdefault(cid, {}).update(stored)
            for cid in src.ids:
                row = replace(src.rows[cid], thread_id=target_thread_id)
                previous = dst.add(row)
                if previous is not None:
                    self._cp_unindex(previous, target_thread_id, ns_name, cid)
                run_id = _run_id(row)
                if run_id is not None:
                    runs.setdefault(run_id, set()).add((target_thread_id, ns_name, cid))

    async def cp_prune(
        self, thread_ids: Sequence[str], keep_latest: bool, *, policy: RetentionPolicy | None = None
    ) -> None:
        """Keep what ``policy`` retains per namespace (by default the newest checkpoint and the ancestors its
        ``DeltaChannel`` state is rebuilt from), with their writes and blobs; or delete the threads (as
        ``cp_delete_thread``).

        A subgraph call's namespace (``node:task_id``) goes with the root checkpoint it started from, once
        that one is pruned. A kept checkpoint whose parent is pruned is left without a parent.
        """
        now = self._cp_now()
        policy = policy or KEEP_NEWEST
        wall = time.time()
        for thread_id in thread_ids:
            if not keep_latest:
                await self.cp_delete_thread(thread_id)
                continue
            thread = self._cp_thread(thread_id, now)
            if thread is None:
                continue
            root = thread.namespaces.get("")
            saved_root: set[str] = set()
            kept_root: set[str] = set()
            if root is not None:
                saved_root = set(root.rows)  # before pruning: was the call's root checkpoint saved at all?
                kept_root = self._cp_prune_namespace(thread_id, "", root, policy, wall)
            for ns_name, ns in list(thread.namespaces.items()):
                if ns_name == "" or not ns.ids:
                    continue
                started_from = (ns.rows[ns.ids[-1]].metadata.get("parents") or {}).get("")
                if ":" in ns_name and started_from is not None and started_from in saved_root and started_from not in kept_root:
                    for cid in list(ns.ids):
                        self._cp_unindex(ns.rows[cid], thread_id, ns_name, cid)
                    del thread.namespaces[ns_name]
                    continue
                self._cp_prune_namespace(thread_id, ns_name, ns, policy, wall)

    def _cp_prune_namespace(
        self, thread_id: str, ns_name: str, ns: _Namespace, policy: RetentionPolicy, wall: float
    ) -> set[str]:
        if not ns.ids:
            return set()
        newest = ns.rows[ns.ids[-1]]
        keep = policy.retained(ns.rows, ns.has_value, wall)
        for cid in [c for c in ns.ids if c not in keep]:
            row = ns.remove(cid)
            if row is not None:
                self._cp_unindex(row, thread_id, ns_name, cid)
        newest_id = newest.checkpoint_id
        # Writes of pruned checkpoints go; writes ahead of the newest wait for a checkpoint still being saved.
        for cid in [c for c in ns.writes if c not in keep and c < newest_id]:
            del ns.writes[cid]
        for cid in keep:
            row = ns.rows[cid]
            if row.parent_checkpoint_id is not None and row.parent_checkpoint_id not in keep:
                ns.rows[cid] = replace(row, parent_checkpoint_id=None)
        ns.collect_blobs()
        return keep
