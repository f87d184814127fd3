"""The cold-tier format of LangGraph checkpoints: the archive payloads the saver writes and how cold reads rebuild
:class:`~contextkit.stores.CheckpointBundle` values from them.

:class:`contextkit.langgraph.ContextKitSaver` archives through the kit's archiver into the two seed tables, told
apart from the seed's own documents by ``payload["kind"]`` (seed payloads have no ``kind``):

* ``context_checkpoints`` (key: thread id), one event per ``aput``::

      {"kind": "langgraph", "checkpoint_ns": str, "checkpoint_id": str, "parent_checkpoint_id": str | None,
       "checkpoint": [type, base64], "metadata": {...}, "channel_versions": {channel: version},
       "blobs": {channel: [type, base64]}}

  ``blobs`` holds the value of *every* channel the checkpoint references, not only the changed ones. A list
  value that :mod:`contextkit.checkpoint_lists` shares is archived as its record (a type ending in ``+list``)
  with its nodes beside it, in two optional keys::

       "nodes": {channel: {node version: [type, base64]}}, "base": str

  A row without ``base`` holds every node its records reach, so it rebuilds its checkpoint alone (a *full*
  row). A row with ``base`` (a *linked* row) holds only the nodes that are new since the rows before it: its
  records are rebuilt from the nodes of the namespace's rows whose checkpoint id lies from ``base`` (the chain's
  full row) to its own (:func:`linked_span` names the ids to fetch, :func:`bundles_from_payloads` takes them as
  ``linked``). The saver writes a full row when its chain's linked rows hold more node bytes than the full
  row did, after 1,000 rows or an hour (and whenever it does not know the chain): the archive of a growing list grows
  linearly, not with its square, and a retention that drops rows by age (ClickHouse ``ttl_days``) leaves a
  linked row without its full row for at most that hour (it then reads as ``CorruptData``). Rows written
  before (whole values, no ``nodes``) read as they always did.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from contextkit.backend.tables import ArchiveTables
from contextkit.checkpoint_lists import LIST_MARK, rebuild_record
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
    "linked_span",
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


def checkpoint_payload(
    row: CheckpointRow,
    blobs: Mapping[str, Typed],
    *,
    nodes: Mapping[str, Mapping[str, Typed]] | None = None,
    base: str | None = None,
) -> dict[str, Any]:
    """The ``context_checkpoints`` payload of a checkpoint and the blobs of all its channels; ``nodes``
    (``{channel: {version: typed}}``) the shared list nodes stored beside their records, ``base`` the id of the
    chain's full row for a linked row (see the module docstring)."""
    payload = {
        "kind": LANGGRAPH_KIND,
        "checkpoint_ns": row.checkpoint_ns,
        "checkpoint_id": row.checkpoint_id,
        "parent_checkpoint_id": row.parent_checkpoint_id,
        "checkpoint": typed_to_json(row.checkpoint),
        "metadata": dict(row.metadata),
        "channel_versions": dict(row.channel_versions),
        "blobs": {channel: typed_to_json(blob) for channel, blob in blobs.items()},
    }
    if nodes:
        payload["nodes"] = {
            channel: {version: typed_to_json(node) for version, node in found.items()}
            for channel, found in nodes.items()
            if found
        }
    if base is not None:
        payload["base"] = base
    return payload


def linked_span(payloads: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """``(lowest base, highest id)`` of the linked rows among ``payloads``: the checkpoint ids whose rows (of the
    thread; any namespace) a reader passes as ``linked`` to :func:`bundles_from_payloads`; None when every row is
    full."""
    spans = [
        (str(p["base"]), str(p.get("checkpoint_id", "")))
        for p in payloads
        if payload_kind(p) == LANGGRAPH_KIND and isinstance(p.get("base"), str)
    ]
    if not spans:
        return None
    return min(low for low, _ in spans), max(high for _, high in spans)


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


class _Nodes:
    """The shared list nodes of a thread's archive rows, per ``(namespace, channel)``, decoded when asked."""

    def __init__(self, payloads: Iterable[Mapping[str, Any]]) -> None:
        self._json: dict[tuple[str, str], dict[str, Any]] = {}
        for payload in payloads:
            found = payload.get("nodes") if payload_kind(payload) == LANGGRAPH_KIND else None
            if not isinstance(found, Mapping):
                continue
            ns = str(payload.get("checkpoint_ns", ""))
            for channel, nodes in found.items():
                if isinstance(nodes, Mapping):
                    self._json.setdefault((ns, str(channel)), {}).update(nodes)

    def lookup(self, checkpoint_ns: str, channel: str) -> Callable[[str], Typed | None]:
        known = self._json.get((checkpoint_ns, channel), {})

        def get(version: str) -> Typed | None:
            found = known.get(version)
            return None if found is None else typed_from_json(found)

        return get


def bundle_from_payloads(
    thread_id: str,
    checkpoint: Mapping[str, Any],
    writes: Iterable[Mapping[str, Any]],
    linked: Iterable[Mapping[str, Any]] = (),
) -> CheckpointBundle:
    """Rebuild a checkpoint from its archived payload and its writes payloads (in archive order; payloads of
    other checkpoints or namespaces are skipped); ``linked``: the rows :func:`linked_span` names, when the
    payload is a linked row."""
    return _bundle(thread_id, checkpoint, writes, _Nodes([checkpoint, *linked]))


def _bundle(
    thread_id: str, checkpoint: Mapping[str, Any], writes: Iterable[Mapping[str, Any]], nodes: _Nodes
) -> CheckpointBundle:
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
        stored: dict[str, int] | None = None
        for channel, blob in blobs.items():
            if blob[0].endswith(LIST_MARK):
                if stored is None:
                    stored = {ch: len(b[0]) + len(b[1]) for ch, b in blobs.items()}
                own = (checkpoint.get("nodes") or {}).get(channel) or {}
                stored[channel] += sum(len(node[0]) + len(node[1]) for node in map(typed_from_json, own.values()))
                where = f"channel {channel!r} of archived checkpoint {cid!r} (thread {thread_id!r}, namespace {ns!r})"
                if checkpoint.get("base") is not None:
                    where += (
                        f", whose archive row relies on the rows from checkpoint {checkpoint['base']!r} on "
                        "(removed by a retention?)"
                    )
                blobs[channel] = rebuild_record(blob, nodes.lookup(ns, channel), where)
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
    return CheckpointBundle(row, blobs, list(kept.values()), stored)


def bundles_from_payloads(
    thread_id: str,
    checkpoints: Sequence[Mapping[str, Any]],
    writes: Iterable[Mapping[str, Any]],
    linked: Iterable[Mapping[str, Any]] = (),
) -> list[CheckpointBundle]:
    """:func:`bundle_from_payloads` for each checkpoint payload (in order), the writes payloads (in archive
    order, any checkpoint of the thread) grouped once; ``linked``: the rows :func:`linked_span` names."""
    nodes = _Nodes([*checkpoints, *linked])
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for payload in writes:
        if payload_kind(payload) == LANGGRAPH_KIND:
            key = (str(payload.get("checkpoint_ns", "")), str(payload.get("checkpoint_id")))
            grouped.setdefault(key, []).append(payload)
    return [
        _bundle(thread_id, p, grouped.get((str(p.get("checkpoint_ns", "")), str(p.get("checkpoint_id"))), ()), nodes)
        for p in checkpoints
    ]
