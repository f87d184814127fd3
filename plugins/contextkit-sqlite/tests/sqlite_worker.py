"""A separate Python process working on a sqlite file, for the durability and multi-process tests.

Usage: ``python sqlite_worker.py COMMAND PATH NAMESPACE [ARGS...]``; prints one JSON document on stdout.

* ``append KEY BATCHES GO_FILE``: waits for GO_FILE to exist, then appends BATCHES batches of two messages to
  stream KEY and bumps session KEY's request counter once per batch; prints the seqs it was given, per batch.
* ``checkpoints THREADS ROUNDS GO_FILE``: waits for GO_FILE, then ROUNDS times, for each LangGraph thread of the
  JSON list THREADS, puts a checkpoint (a channel value of its own, the parent its previous one) and a pending
  write; prints the checkpoint ids it wrote, per thread.
* ``read SESSION THREAD``: prints the session, its history and the thread's graph state, then resumes the
  review graph (interrupted in the other process) with "approve" and prints the final state.

Through a whole kit (``PATH`` is then the JSON of a ``ContextKit.from_config`` mapping, ``NAMESPACE`` unused):

* ``kit-work OWNERS ROUNDS GO_FILE``: waits for GO_FILE, then ROUNDS times, for each owner of the JSON list
  OWNERS, bumps its request counter and appends one message; prints the seqs it was given and how many updates
  returned True, per owner.
* ``kit-update OWNER GO_FILE STOP_FILE``: waits for GO_FILE, then bumps OWNER's request counter until STOP_FILE
  exists (at most 3,000 calls); prints ``[started, returned, result]`` of every call (epoch seconds).
* ``kit-delete OWNER GO_FILE DELAY``: waits for GO_FILE and DELAY seconds, deletes OWNER and prints when the
  delete returned (epoch seconds).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any, TypedDict

from contextkit.records import Message, utcnow
from contextkit.stores import SessionUpdate, StoreSettings
from contextkit_sqlite import SqliteHotStore


class ReviewState(TypedDict, total=False):
    """State of the review graph: a topic, a draft and the reviewer's verdict."""

    topic: str
    draft: str
    approved: bool


def review_graph(checkpointer: Any) -> Any:
    """write -> review (interrupts for a human answer) -> END."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def write(state: ReviewState) -> ReviewState:
        return {"draft": f"a draft about {state['topic']}"}

    def review(state: ReviewState) -> ReviewState:
        return {"approved": interrupt({"please review": state["draft"]}) == "approve"}

    builder = StateGraph(ReviewState)
    builder.add_node("write", write)
    builder.add_node("review", review)
    builder.add_edge(START, "write")
    builder.add_edge("write", "review")
    builder.add_edge("review", END)
    return builder.compile(checkpointer=checkpointer)


def wait_for(go_file: str) -> None:
    """Block until ``go_file`` exists, so that both workers start appending at the same moment."""
    deadline = time.monotonic() + 30
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            raise SystemExit("the go file never appeared")
        time.sleep(0.002)


async def append(store: SqliteHotStore, key: str, batches: int) -> dict[str, Any]:
    seqs = []
    for i in range(batches):
        stored = await store.append_messages(key, [Message("user", f"{os.getpid()}-{i}-{j}", utcnow()) for j in range(2)])
        seqs.append([m.seq for m in stored])
        await store.update_session(key, SessionUpdate(activity=utcnow(), requests=1, processing_time=0.25))
    return {"pid": os.getpid(), "seqs": seqs}


async def checkpoints(store: SqliteHotStore, threads: list[str], rounds: int) -> dict[str, list[str]]:
    from contextkit.stores import CheckpointRow, WriteRow
    from contextkit.testing.checkpoints import make_checkpoint_id

    written: dict[str, list[str]] = {thread: [] for thread in threads}
    for i in range(rounds):
        for thread in threads:
            cid, parent = make_checkpoint_id(), (written[thread] or [None])[-1]
            version = f"{os.getpid()}.{i}"
            row = CheckpointRow(thread, "", cid, parent, ("json", b"{}"), {"pid": os.getpid()}, {"c": version})
            await store.cp_put(row, {("c", version): ("json", cid.encode())})
            write = WriteRow(f"task-{os.getpid()}", 0, "c", ("json", cid.encode()), "~__pregel_pull, node")
            await store.cp_put_writes(thread, "", cid, [write], upsert=False)
            written[thread].append(cid)
    return written


async def read(store: SqliteHotStore, session_id: str, thread_id: str) -> dict[str, Any]:
    from langgraph.types import Command

    from contextkit.langgraph import ContextKitSaver

    session = await store.get_session(session_id)
    history = await store.read_history(session_id, None)
    graph = review_graph(ContextKitSaver(store))
    config = {"configurable": {"thread_id": thread_id}}
    state = await graph.aget_state(config)
    final = await graph.ainvoke(Command(resume="approve"), config)
    return {
        "session": None if session is None else session.to_dict(),
        "history": [m.to_dict() for m in history],
        "next": list(state.next),
        "draft": state.values.get("draft"),
        "final": {"draft": final.get("draft"), "approved": final.get("approved")},
    }


async def kit_work(kit: Any, owners: list[str], rounds: int) -> dict[str, Any]:
    seqs: dict[str, list[int]] = {owner: [] for owner in owners}
    updates = dict.fromkeys(owners, 0)
    for i in range(rounds):
        for owner in owners:
            updates[owner] += bool(await kit.update_session(owner, increment_requests=True))
            message = await kit.add_message(owner, "user", f"{os.getpid()}-{i}")
            seqs[owner].append(message.seq)
    return {"pid": os.getpid(), "seqs": seqs, "updates": updates}


def stopped(stop_file: str) -> bool:
    """True once the test created ``stop_file``."""
    return os.path.exists(stop_file)


async def kit_update(kit: Any, owner: str, stop_file: str) -> list[list[Any]]:
    calls: list[list[Any]] = []
    while not stopped(stop_file) and len(calls) < 3000:
        started = time.time()
        result = await kit.update_session(owner, increment_requests=True)
        calls.append([started, time.time(), result])
    return calls


async def kit_main(command: str, config: dict[str, Any], args: list[str]) -> Any:
    from contextkit import ContextKit

    async with ContextKit.from_config(config, env={}) as kit:
        if command == "kit-work":
            wait_for(args[2])
            return await kit_work(kit, json.loads(args[0]), int(args[1]))
        if command == "kit-update":
            wait_for(args[1])
            return await kit_update(kit, args[0], args[2])
        if command == "kit-delete":
            wait_for(args[1])
            await asyncio.sleep(float(args[2]))
            await kit.delete_session(args[0])
            return {"returned": time.time()}
        raise SystemExit(f"unknown command {command!r}")


async def main(argv: list[str]) -> None:
    command, path, namespace, *args = argv
    if command.startswith("kit-"):
        print(json.dumps(await kit_main(command, json.loads(path), args)))
        return
    store = SqliteHotStore(StoreSettings(namespace=namespace), {"path": path, "busy_timeout": 20})
    await store.open()
    try:
        if command == "append":
            result = await append(store, args[0], int(args[1]))
        elif command == "checkpoints":
            wait_for(args[2])
            result = await checkpoints(store, json.loads(args[0]), int(args[1]))
        elif command == "read":
            result = await read(store, args[0], args[1])
        else:
            raise SystemExit(f"unknown command {command!r}")
    finally:
        await store.aclose()
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "append":
        wait_for(sys.argv[-1])
    asyncio.run(main(sys.argv[1:]))
