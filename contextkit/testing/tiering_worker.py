"""A worker process of :mod:`contextkit.testing.tiering`: one application process hitting a shared hot tier.

Run as ``python -m contextkit.testing.tiering_worker '<job json>'``. The job names a ``role``, the kit's
``config`` (a ``ContextKit.from_config`` mapping) and the ``key`` it works on. The worker opens its kit, prints
``ready`` and reads one JSON line from stdin with its ``start`` and ``until`` times (epoch seconds): the parent sends
it once every worker is ready, so they run at once however long each took to start (a loaded machine can take
seconds to import). It then prints one JSON line:

* ``update``: ``count`` calls of ``update_session(key, increment_requests=True)`` one after the other (``pause``
  seconds apart), or until ``until`` (epoch seconds); ``{"calls": [[started, ended, returned], ...]}``
  (``returned`` is True, False, or the error's class name);
* ``append``: ``count`` calls of ``add_message(key, ...)`` at once (``asyncio.gather``); ``{"stored": [[seq,
  id, content], ...]}`` in call order (an error fails the worker).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from contextkit import ContextKit
from contextkit.errors import ContextKitError

__all__ = ["run_job"]


async def _wait(start: float) -> None:
    delay = start - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _update(kit: ContextKit, job: dict[str, Any]) -> dict[str, Any]:
    calls: list[list[Any]] = []
    until = job.get("until")
    for _ in range(int(job["count"])):
        if until is not None and time.time() >= until:
            break
        started = time.time()
        try:
            result: Any = await kit.update_session(job["key"], increment_requests=True)
        except ContextKitError as exc:
            result = type(exc).__name__
        calls.append([started, time.time(), result])
        # A call on an in-process tier never yields: let the other workers (tasks of one process) run.
        await asyncio.sleep(float(job.get("pause", 0)))
    return {"calls": calls}


async def _append(kit: ContextKit, job: dict[str, Any]) -> dict[str, Any]:
    tag = job.get("tag", "w")
    stored = await asyncio.gather(
        *(kit.add_message(job["key"], "user", f"{tag}-{i}") for i in range(int(job["count"])))
    )
    return {"stored": [[m.seq, m.id, m.content] for m in stored]}


_ROLES = {"update": _update, "append": _append}


async def run_job(job: dict[str, Any], kit: ContextKit | None = None) -> dict[str, Any]:
    """Run one job (on ``kit``, or on a kit of its own built from ``job["config"]``) and return its result."""
    role = _ROLES[job["role"]]
    if kit is not None:
        await _wait(float(job.get("start", 0)))
        return await role(kit, job)
    async with ContextKit.from_config(job["config"], env={}) as own:
        if job.get("handshake"):
            print("ready", flush=True)
            times = json.loads(await asyncio.to_thread(sys.stdin.readline))
            job = {**job, **times}
        await _wait(float(job.get("start", 0)))
        return await role(own, job)


def main(argv: list[str]) -> None:
    """Run the job given as JSON in ``argv[1]`` and print its result as one JSON line."""
    result = asyncio.run(run_job({**json.loads(argv[1]), "handshake": True}))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
