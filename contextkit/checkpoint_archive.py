"""The cold-tier format of LangGraph checkpoints: the archive payloads the saver writes and how cold reads rebuild
:class:`~contextkit.stores.CheckpointBundle` values from them.

:class:`contextkit.langgraph.ContextKitSaver` archives through the kit's archiver into the two seed tables, told
apart from the seed's own documents by ``payload["kind"]`` (seed payloads have no ``kind``):

* ``context_checkpoints`` (key: thread id), one event per ``aput``::

      {"kind": "langgraph", "checkpoint_ns": str, "checkpoint_id": str, "parent_checkpoint_id": str | None,
       "checkpoint": [type, base64], "metadata": {...}, "channel_versions": {channel: version},
       "blobs": {channel: [type, base64]}}

  ``blobs`` holds the value of *every* channel the checkpoint references, not only the changed ones, so one row
  rebuilds one checkpoint (no walk over older rows, no blob lost when an older row is unreadable).
* ``context_checkpoint_writes`` (key: thread id), one event per ``aput_writes``::

      {"kind": "langgraph", "checkpoint_ns": str, "checkpoint_id": str, "task_id": str, "upsert": bool,
       "writes": [[idx, channel, type, base64, task_path], ...]}

* ``context_checkpoints``, one event per ``adelete_thread``: ``{"kind": "langgraph-delete", "floor": str}``. Cold
  reads hide every checkpoint (and write) of the thread whose id is ``<= floor`` or whose parent's id is, so a
  deleted thread never comes back through read-through; a new run after the delete (ids above the floor, no
  parent) is visible. With several deletes, the highest floor counts.
* ``context_checkpoints``, one event per thread an ``adelete_for_runs`` removed checkpoints from:
  ``{"kind": "langgraph-delete", "runs": [run id, ...]}`` (no floor). Cold reads hide the thread's checkpoints
  whose ``metadata["run_id"]`` is one of them (every such tombstone of the thread counts).

Reads: a checkpoint archived twice (a re-put of the same id) reads back once, from its newest event; writes are
applied in archive order with the hot tier's key rules (``(task_id, idx)``; an ``upsert`` event replaces, any
other keeps the first). This module is pure Python (no langgraph import), shared by every cold store.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from contextkit.backend.tables import ArchiveTables
from contextkit.errors import CorruptData
from contextkit.stores import CheckpointBundle, CheckpointRow, Typed, WriteRow

__all__ = [
    "DELETE_KIND",
    "LANGGRAPH_KIND",
    "archive_payloads",
    "bundle_from_payloads",
    "bundles_from_payloads",
    "checkpoint_payload",
    "delete_payload",
    "delete_floor",
    "deleted_runs",
    "is_visible",
    "newest_distinct",
    "payload_kind",
    "typed_from_json",
    "typed_to_json",
    "writes_payload",
]

#: ``payload["kind"]`` of an archived LangGraph checkpoint or pending-writes event.
LANGGRAPH_KIND = "langgraph"
#: ``payload["kind"]`` of the tombstone an ``adelete_thread`` archives.
DELETE_KIND = "langgraph-delete"


def typed_to_json(value: Typed) -> list[str]:
    """``(type, bytes)`` as ``[type, base64 text]`` (archive payloads are JSON)."""
    return [value[0], base64.b64encode(value[1]).decode("ascii")]


def typed_from_json(value: Any) -> Typed:
    """The ``(type, bytes)`` of a :func:`typed_to_json` value; ``CorruptData`` when malformed."""
    try:
        kind, text = value
        return (str(kind), base64.b64decode(text, validate=True))
    except (TypeError, ValueError) as exc:
        raise CorruptData(f"archived checkpoint value is not [type, base64]: {exc}") from None


def checkpoint_payload(row: CheckpointRow, blobs: Mapping[str, Typed]) -> dict[str, Any]:
    """The ``context_checkpoints`` payload of a checkpoint and the blobs of all its channels."""
    return {
        "kind": LANGGRAPH_KIND,
        "checkpoint_ns": row.checkpoint_ns,
        "checkpoint_id": row.checkpoint_id,
        "parent_checkpoint_id": row.parent_checkpoint_id,
        "checkpoint": typed_to_json(row.checkpoint),
        "metadata": dict(row.metadata),
        "channel_versions": dict(row.channel_versions),
        "blobs": {channel: typed_to_json(blob) for channel, blob in blobs.items()},
    }


def writes_payload(
    checkpoint_ns: str, checkpoint_id: str, task_id: str, writes: Sequence[WriteRow], upsert: bool
) -> dict[str, Any]:
    """The ``context_checkpoint_writes`` payload of one task's pending writes."""
    return {
        "kind": LANGGRAPH_KIND,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "task_id": task_id,
        "upsert": bool(upsert),
        "writes": [[w.idx, w.channel, *typed_to_json(w.value), w.task_path] for w in writes],
    }


def archive_payloads(
    row: CheckpointRow, blobs: Mapping[str, Typed], writes: Iterable[WriteRow]
) -> list[tuple[str, dict[str, Any]]]:
    """``(table, payload)`` of one checkpoint and its pending writes, as they are archived whole (a copy, a
    migration): the ``context_checkpoints`` payload, then one upserting ``context_checkpoint_writes`` payload per
    task id (sorted; each task's writes in their order)."""
    out: list[tuple[str, dict[str, Any]]] = [(ArchiveTables.CHECKPOINTS, checkpoint_payload(row, blobs))]
    by_task: dict[str, list[WriteRow]] = {}
    for write in writes:
        by_task.setdefault(write.task_id, []).append(write)
    for task_id in sorted(by_task):
        payload = writes_payload(row.checkpoint_ns, row.checkpoint_id, task_id, by_task[task_id], True)
        out.append((ArchiveTables.CHECKPOINT_WRITES, payload))
    return out


def delete_payload(floor: str | None = None, runs: Iterable[str] = ()) -> dict[str, Any]:
    """A tombstone of a thread: checkpoints with an id (or parent id) ``<= floor`` are hidden (a deleted thread),
    and those whose ``metadata["run_id"]`` is in ``runs`` (deleted runs)."""
    payload: dict[str, Any] = {"kind": DELETE_KIND, "floor": floor}
    run_list = sorted({str(r) for r in runs})
    if run_list:
        payload["runs"] = run_list
    return payload


def payload_kind(payload: Any) -> str | None:
    """``payload["kind"]`` when ``payload`` is a mapping holding a string kind, else None (a seed payload)."""
    if isinstance(payload, Mapping):
        kind = payload.get("kind")
        return kind if isinstance(kind, str) else None
    return None


def delete_floor(payloads: Iterable[Mapping[str, Any]]) -> str | None:
    """The highest floor among the tombstone payloads (others are ignored), or None."""
    floors = [str(p["floor"]) for p in payloads if payload_kind(p) == DELETE_KIND and p.get("floor")]
    return max(floors) if floors else None


def deleted_runs(payloads: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The run ids named by the tombstone payloads (others are ignored)."""
    runs: set[str] = set()
    for p in payloads:
        if payload_kind(p) == DELETE_KIND and isinstance(p.get("runs"), list):
            runs.update(str(r) for r in p["runs"])
    return frozenset(runs)


def is_visible(checkpoint_id: str, parent_checkpoint_id: str | None, floor: str | None) -> bool:
    """Whether a checkpoint survives the thread's tombstone floor (see the module docstring)."""
    if floor is None:
        return True
    if checkpoint_id <= floor:
        return False
    return parent_checkpoint_id is None or parent_checkpoint_id > floor


def newest_distinct(
    payloads: Iterable[Mapping[str, Any]],
    *,
    checkpoint_ns: str | None,
    before: str | None,
    floor: str | None,
    limit: int | None,
    runs: frozenset[str] = frozenset(),
) -> list[Mapping[str, Any]]:
    """Checkpoint payloads in ``checkpoint_id`` descending order, each ``(ns, id)`` once, filtered and cut.

    ``payloads`` must come ordered by ``checkpoint_id`` descending and, for one id, newest event first: the
    first payload of an id wins. Non-LangGraph payloads, other namespaces, ids not below ``before``, ids hidden
    by ``floor`` and checkpoints of the deleted ``runs`` (:func:`deleted_runs`) are skipped.
    """
    seen: set[tuple[str, str]] = set()
    kept: list[Mapping[str, Any]] = []
    if limit is not None and limit <= 0:
        return kept
    for payload in payloads:
        if payload_kind(payload) != LANGGRAPH_KIND:
            continue
        ns = str(payload.get("checkpoint_ns", ""))
        cid = str(payload.get("checkpoint_id", ""))
        if checkpoint_ns is not None and ns != checkpoint_ns:
            continue
        if before is not None and cid >= before:
            continue
        if (ns, cid) in seen:
            continue
        seen.add((ns, cid))
        if not is_visible(cid, payload.get("parent_checkpoint_id"), floor):
            continue
        if runs:
            metadata = payload.get("metadata")
            if isinstance(metadata, Mapping) and metadata.get("run_id") in runs:
                continue
        kept.append(payload)
        if limit is not None and len(kept) >= limit:
            break
    return kept


def bundle_from_payloads(
    thread_id: str, checkpoint: Mapping[str, Any], writes: Iterable[Mapping[str, Any]]
) -> CheckpointBundle:
    """Rebuild a checkpoint from its archived payload and its writes payloads (in archive order; payloads of
    other checkpoints or namespaces are skipped)."""
    try:
        ns = str(checkpoint.get("checkpoint_ns", ""))
        cid = str(checkpoint["checkpoint_id"])
        parent = checkpoint.get("parent_checkpoint_id")
        row = CheckpointRow(
            thread_id=thread_id,
            checkpoint_ns=ns,
            checkpoint_id=cid,
            parent_checkpoint_id=None if parent is None else str(parent),
            checkpoint=typed_from_json(checkpoint["checkpoint"]),
            metadata=dict(checkpoint.get("metadata") or {}),
            channel_versions={str(k): str(v) for k, v in (checkpoint.get("channel_versions") or {}).items()},
        )
        blobs = {str(channel): typed_from_json(blob) for channel, blob in (checkpoint.get("blobs") or {}).items()}
        kept: dict[tuple[str, int], WriteRow] = {}
        for payload in writes:
            if payload_kind(payload) != LANGGRAPH_KIND:
                continue
            if str(payload.get("checkpoint_ns", "")) != ns or str(payload.get("checkpoint_id")) != cid:
                continue
            task_id = str(payload["task_id"])
            upsert = bool(payload.get("upsert"))
            for idx, channel, kind, text, task_path in payload["writes"]:
                key = (task_id, int(idx))
                if upsert or key not in kept:
                    kept[key] = WriteRow(task_id, int(idx), str(channel), typed_from_json([kind, text]), str(task_path))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CorruptData):
            raise
        raise CorruptData(f"archived LangGraph checkpoint of thread {thread_id!r} is malformed: {exc!r}") from None
    return CheckpointBundle(row, blobs, list(kept.values()))


def bundles_from_payloads(
    thread_id: str, checkpoints: Sequence[Mapping[str, Any]], writes: Iterable[Mapping[str, Any]]
) -> list[CheckpointBundle]:
    """:func:`bundle_from_payloads` for each checkpoint payload (in order), the writes payloads (in archive
    order, any checkpoint of the thread) grouped once."""
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for payload in writes:
        if payload_kind(payload) == LANGGRAPH_KIND:
            key = (str(payload.get("checkpoint_ns", "")), str(payload.get("checkpoint_id")))
            grouped.setdefault(key, []).append(payload)
    return [
        bundle_from_payloads(
            thread_id, p, grouped.get((str(p.get("checkpoint_ns", "")), str(p.get("checkpoint_id"))), ())
        )
        for p in checkpoints
    ]
