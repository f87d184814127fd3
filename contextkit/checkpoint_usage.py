"""Where a LangGraph thread's bytes go, and what a retention policy would remove: the logic behind
``contextkit checkpoints du`` and ``contextkit checkpoints prune --dry-run`` (and
:meth:`contextkit.kit.ContextKit.checkpoint_usage` / :meth:`~contextkit.kit.ContextKit.prune_checkpoints`).

Bytes are the payload a tier stores for a checkpoint, counted the same way on every tier: the serialized
checkpoint and its type tag, the metadata and channel versions as JSON, each blob once per
``(namespace, channel, version)`` in the hot tier (where checkpoints share the versions they did not change),
each pending write's value and keys. A tier's own overhead (Redis keys and hash fields, SQLite pages and indexes,
PostgreSQL TOAST compression) is not in them: they compare threads, channels and tiers, and tell what a prune frees.
In the archive each checkpoint row carries the blobs of every channel it references (see
:mod:`contextkit.langgraph`), so an archived channel that never changes is counted in every row, as it is stored;
a shared list counts as its row stores it: its record and the nodes new in that row
(:mod:`contextkit.checkpoint_archive`).

A store may count a thread itself (:class:`~contextkit.stores.CheckpointUsageStore`); the generic count reads the
thread's checkpoints with :meth:`~contextkit.stores.CheckpointStore.cp_list`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from contextkit.checkpoint_lists import LIST_MARK, collected_node_bytes, shared_node_bytes
from contextkit.stores import (
    CheckpointBundle,
    CheckpointRow,
    CheckpointStore,
    CheckpointThreadsStore,
    CheckpointUsageStore,
    ColdStore,
    RetentionPolicy,
    SharedBlobStore,
    ThreadBytes,
    Typed,
    WriteRow,
    delta_seed,
)

__all__ = [
    "PrunePlan",
    "ThreadUsage",
    "plan_prune",
    "planned_prune",
    "scanned_thread_ids",
    "thread_bytes",
    "thread_ids",
    "thread_usage",
]

#: How many of the newest checkpoints' growth a usage report lists.
GROWTH_SHOWN = 10


def _row_bytes(row: CheckpointRow) -> int:
    metadata = json.dumps(row.metadata, separators=(",", ":"), ensure_ascii=False)
    versions = json.dumps(row.channel_versions, separators=(",", ":"), ensure_ascii=False)
    parent = row.parent_checkpoint_id or ""
    return (
        len(row.checkpoint[1])
        + len(row.checkpoint[0])
        + len(metadata.encode())
        + len(versions.encode())
        + len(row.checkpoint_id)
        + len(parent)
        + len(row.checkpoint_ns.encode())
    )


def _write_bytes(write: WriteRow) -> int:
    return len(write.value[1]) + len(write.value[0]) + len(write.channel.encode()) + len(write.task_id.encode()) + len(
        write.task_path.encode()
    )


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """What a retention policy keeps and removes of one thread, per namespace (``{ns: [checkpoint ids]}``, newest
    first), and the hot bytes the removal frees (rows, their writes, blobs no kept checkpoint points at and, from
    :func:`planned_prune`, the shared list elements the prune collects with them: those no kept list holds)."""

    thread_id: str
    kept: Mapping[str, Sequence[str]]
    pruned: Mapping[str, Sequence[str]]
    freed_bytes: int

    @property
    def pruned_count(self) -> int:
        """How many checkpoints the policy removes."""
        return sum(len(ids) for ids in self.pruned.values())

    @property
    def kept_count(self) -> int:
        """How many checkpoints the policy keeps."""
        return sum(len(ids) for ids in self.kept.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "thread_id": self.thread_id,
            "kept": self.kept_count,
            "pruned": self.pruned_count,
            "freed_bytes": self.freed_bytes,
            "pruned_ids": {ns: list(ids) for ns, ids in self.pruned.items() if ids},
        }


def plan_prune(thread_id: str, bundles: Iterable[CheckpointBundle], policy: RetentionPolicy, now: float) -> PrunePlan:
    """The rule every tier's :meth:`~contextkit.stores.CheckpointStore.cp_prune` applies, over bundles already
    read: per namespace :meth:`RetentionPolicy.retained`, and a subgraph call's namespace goes whole with the
    root checkpoint it started from."""
    by_ns: dict[str, dict[str, CheckpointBundle]] = {}
    for bundle in bundles:
        by_ns.setdefault(bundle.row.checkpoint_ns, {})[bundle.row.checkpoint_id] = bundle

    def retained(ns_bundles: Mapping[str, CheckpointBundle]) -> set[str]:
        rows = {cid: b.row for cid, b in ns_bundles.items()}

        def has_value(row: CheckpointRow, channel: str) -> bool:
            found = ns_bundles.get(row.checkpoint_id)
            return found is not None and delta_seed(found.blobs.get(channel))

        return policy.retained(rows, has_value, now)

    root = by_ns.get("", {})
    kept_root = retained(root) if root else set()
    keep: dict[str, set[str]] = {"": kept_root}
    for ns, ns_bundles in by_ns.items():
        if ns == "":
            continue
        newest = ns_bundles[max(ns_bundles)].row
        started_from = (newest.metadata.get("parents") or {}).get("")
        if ":" in ns and started_from is not None and started_from in root and started_from not in kept_root:
            keep[ns] = set()
        else:
            keep[ns] = retained(ns_bundles)
    kept: dict[str, list[str]] = {}
    pruned: dict[str, list[str]] = {}
    freed = 0
    for ns, ns_bundles in by_ns.items():
        stay = keep.get(ns, set())
        kept[ns] = sorted(stay, reverse=True)
        pruned[ns] = sorted((cid for cid in ns_bundles if cid not in stay), reverse=True)
        needed = {(ch, v) for cid in stay for ch, v in ns_bundles[cid].row.channel_versions.items()}
        for cid in stay:
            parent = ns_bundles[cid].row.parent_checkpoint_id
            if parent is not None and parent not in stay:
                freed += len(parent)  # the prune unlinks a kept checkpoint from its pruned parent
        dropped: set[tuple[str, str]] = set()
        for cid in pruned[ns]:
            bundle = ns_bundles[cid]
            freed += _row_bytes(bundle.row) + sum(_write_bytes(w) for w in bundle.writes)
            for channel, blob in bundle.blobs.items():
                key = (channel, bundle.row.channel_versions.get(channel, ""))
                if key not in needed and key not in dropped:
                    dropped.add(key)
                    freed += len(blob[1]) + len(blob[0])
    return PrunePlan(thread_id, kept, pruned, freed)


async def planned_prune(
    store: CheckpointStore, thread_id: str, bundles: Sequence[CheckpointBundle], policy: RetentionPolicy, now: float
) -> PrunePlan:
    """:func:`plan_prune` over ``bundles`` (the thread's ``cp_list``), its freed bytes counting the shared list
    nodes the prune collects (:func:`contextkit.checkpoint_lists.collected_node_bytes`) when the store holds
    shared lists."""
    plan = plan_prune(thread_id, bundles, policy, now)
    if not isinstance(store, SharedBlobStore) or not plan.pruned_count:
        return plan
    kept = {(ns, cid) for ns, ids in plan.kept.items() for cid in ids}
    records: dict[tuple[str, str], tuple[list[Typed], list[Typed]]] = {}
    for bundle in bundles:
        row = bundle.row
        for channel, blob in bundle.blobs.items():
            if blob[0].endswith(LIST_MARK):
                every, staying = records.setdefault((row.checkpoint_ns, channel), ([], []))
                every.append(blob)
                if (row.checkpoint_ns, row.checkpoint_id) in kept:
                    staying.append(blob)
    collected = 0
    for (ns, channel), (every, staying) in records.items():
        collected += await collected_node_bytes(store, thread_id, ns, channel, every, staying)
    return replace(plan, freed_bytes=plan.freed_bytes + collected)


def thread_bytes(bundles: Iterable[CheckpointBundle], *, archived: bool = False) -> ThreadBytes:
    """The generic count of one thread's bytes over its bundles (see the module docstring). ``archived``: the
    bundles are archive rows, each storing every blob it references (no sharing between rows), or what
    :attr:`~contextkit.stores.CheckpointBundle.stored` says it stores."""
    rows = writes = checkpoints = 0
    channels: dict[str, int] = {}
    seen: set[tuple[str, str, str]] = set()
    for bundle in bundles:
        row = bundle.row
        checkpoints += 1
        rows += _row_bytes(row)
        writes += sum(_write_bytes(w) for w in bundle.writes)
        for channel, blob in bundle.blobs.items():
            key = (row.checkpoint_ns, channel, row.channel_versions.get(channel, ""))
            if not archived:
                if key in seen:
                    continue
                seen.add(key)
            size = len(blob[1]) + len(blob[0])
            if archived and bundle.stored is not None:
                size = bundle.stored.get(channel, size)
            channels[channel] = channels.get(channel, 0) + size
    return ThreadBytes(checkpoints=checkpoints, rows=rows, writes=writes, channels=channels)


def _growth(bundles: Sequence[CheckpointBundle]) -> list[tuple[str, str, int]]:
    """``(ns, checkpoint id, bytes)`` each checkpoint added, oldest first: its row, its writes, and the blobs of
    the versions it introduced (those no older checkpoint of its namespace points at)."""
    seen: set[tuple[str, str, str]] = set()
    out: list[tuple[str, str, int]] = []
    for bundle in sorted(bundles, key=lambda b: (b.row.checkpoint_id, b.row.checkpoint_ns)):
        row = bundle.row
        added = _row_bytes(row) + sum(_write_bytes(w) for w in bundle.writes)
        for channel, blob in bundle.blobs.items():
            key = (row.checkpoint_ns, channel, row.channel_versions.get(channel, ""))
            if key not in seen:
                seen.add(key)
                added += len(blob[1]) + len(blob[0])
        out.append((row.checkpoint_ns, row.checkpoint_id, added))
    return out


@dataclass(frozen=True, slots=True)
class ThreadUsage:
    """One thread's bytes per tier and channel, its growth per checkpoint, and what retention would free.

    ``archive`` is None without a cold tier; ``archive_error`` says why the archive could not be counted.
    ``growth`` lists the newest checkpoints' ``(ns, checkpoint id, bytes added)``, newest first; ``mean_growth``
    is the hot bytes per checkpoint over the whole thread. ``retention`` is None without a policy limit.
    """

    thread_id: str
    hot: ThreadBytes
    archive: ThreadBytes | None
    growth: Sequence[tuple[str, str, int]]
    mean_growth: float
    retention: PrunePlan | None
    archive_error: str | None = None
    namespaces: Sequence[str] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "thread_id": self.thread_id,
            "namespaces": list(self.namespaces),
            "hot": self.hot.as_dict(),
            "archive": None if self.archive is None else self.archive.as_dict(),
            "archive_error": self.archive_error,
            "mean_growth_bytes": round(self.mean_growth, 1),
            "growth": [{"checkpoint_ns": ns, "checkpoint_id": cid, "bytes": size} for ns, cid, size in self.growth],
            "retention": None if self.retention is None else self.retention.as_dict(),
        }


async def thread_usage(
    store: CheckpointStore,
    thread_id: str,
    *,
    cold: ColdStore | None = None,
    policy: RetentionPolicy | None = None,
    now: float | None = None,
) -> ThreadUsage | None:
    """The usage report of one thread (None when the hot tier and the archive hold nothing of it)."""
    from contextkit.errors import BackendUnavailable

    bundles = [b async for b in store.cp_list(thread_id, None)]
    if isinstance(store, CheckpointUsageStore):
        hot = await store.cp_usage(thread_id)
    else:
        hot = thread_bytes(bundles)
        if isinstance(store, SharedBlobStore):
            hot = await _with_shared_nodes(store, thread_id, bundles, hot)
    archive: ThreadBytes | None = None
    error: str | None = None
    if cold is not None:
        try:
            archive = thread_bytes(await cold.list_langgraph_checkpoints(thread_id, None), archived=True)
        except BackendUnavailable as exc:
            error = str(exc)
    if not bundles and (archive is None or not archive.checkpoints):
        return None
    growth = _growth(bundles)
    plan = None
    if policy is not None and policy.limits:
        plan = await planned_prune(store, thread_id, bundles, policy, time.time() if now is None else now)
    return ThreadUsage(
        thread_id=thread_id,
        hot=hot,
        archive=archive,
        growth=growth[::-1][:GROWTH_SHOWN],
        mean_growth=hot.total / len(bundles) if bundles else 0.0,
        retention=plan,
        archive_error=error,
        namespaces=sorted({b.row.checkpoint_ns for b in bundles}),
    )


async def _with_shared_nodes(
    store: SharedBlobStore, thread_id: str, bundles: Sequence[CheckpointBundle], counted: ThreadBytes
) -> ThreadBytes:
    """``counted`` plus the shared list nodes the thread's records reach (:mod:`contextkit.checkpoint_lists`),
    in their channels."""
    records: dict[tuple[str, str], list[Typed]] = {}
    for bundle in bundles:
        for channel, blob in bundle.blobs.items():
            if blob[0].endswith(LIST_MARK):
                records.setdefault((bundle.row.checkpoint_ns, channel), []).append(blob)
    if not records:
        return counted
    channels = dict(counted.channels)
    for (_, channel), size in (await shared_node_bytes(store, thread_id, records)).items():
        channels[channel] = channels.get(channel, 0) + size
    return replace(counted, channels=channels)


async def thread_ids(store: CheckpointStore) -> list[str]:
    """Every thread the hot tier holds checkpoints of, sorted: from the tier's index of threads
    (:class:`~contextkit.stores.CheckpointThreadsStore`), else a scan of every checkpoint (for maintenance
    commands)."""
    if isinstance(store, CheckpointThreadsStore):
        return await store.cp_thread_ids()
    return await scanned_thread_ids(store)


async def scanned_thread_ids(store: CheckpointStore) -> list[str]:
    """:func:`thread_ids` by a scan of every checkpoint (:meth:`~contextkit.stores.CheckpointStore.cp_list` of
    every thread), whatever the tier implements."""
    found: set[str] = set()
    async for bundle in store.cp_list(None, None):
        found.add(bundle.row.thread_id)
    return sorted(found)
