"""An application process for the crash tests: opens a kit from a JSON config and writes, or drains its outbox.

Usage (the config is the JSON text of a ``ContextKit.from_config`` mapping)::

    python kit_process.py write <config-json> <session-id> <count>
        creates the session, writes <count> messages ("crash message <seq>"), prints "written <depth>" (the
        outbox depth) and sleeps until killed (at most 300 s).
    python kit_process.py drain <config-json> <timeout> <session-id>
        opens a kit on the same outbox, flushes it within <timeout> seconds, prints one JSON line with
        {"flushed", "metrics", "hot_messages"} (messages of <session-id> in the hot tier) and closes.
    python kit_process.py forker <config-json>
        imports everything once, prints "ready", then for each line "spawn <prefix>" read from stdin forks an app
        process that runs :func:`churn` (at most 60 s) and prints "pid <pid>"; the test SIGKILLs those processes.
        Forking skips the ~0.5 s of CPU each fresh interpreter spends importing, so 50 kills fit a short test on a
        small machine. Children are reaped by the forker; it exits at the end of its stdin.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

from contextkit import ContextKit
from contextkit.errors import OwnerUnknown


async def write(config: dict[str, Any], session_id: str, count: int) -> None:
    """Write ``count`` messages, report, then wait to be killed with the events still pending."""
    kit = await ContextKit.from_config(config, env={}).open()
    await kit.create_session(session_id, "crash-user")
    for seq in range(1, count + 1):
        await kit.add_message(session_id, "user" if seq % 2 else "assistant", f"crash message {seq}")
    assert kit.archiver is not None
    depth = (await kit.archiver.metrics())["queue_depth"]
    print(f"written {depth}", flush=True)
    await asyncio.sleep(300)  # the test SIGKILLs this process long before


async def drain(config: dict[str, Any], timeout: float, session_id: str) -> None:
    """Open a kit on the outbox left behind, flush it, and report."""
    kit = await ContextKit.from_config(config, env={}).open()
    try:
        assert kit.archiver is not None
        flushed = await kit.archiver.flush(timeout)
        metrics = await kit.archiver.metrics()
        try:
            hot_messages = len(await kit.hot.read_history(session_id, None))
        except OwnerUnknown:  # a hot tier that died with the process (memory) knows nothing of it
            hot_messages = 0
    finally:
        await kit.aclose(drain_timeout=5)
    print(json.dumps({"flushed": flushed, "metrics": metrics, "hot_messages": hot_messages}), flush=True)


#: The participants of the conversation sessions :func:`churn` creates.
PARTICIPANTS = [{"id": "u", "type": "user"}, {"id": "a", "type": "agent", "role": "worker"}]
#: Sessions every churn process also updates and appends to (created by the test): owners written by several
#: processes, some of them killed mid-write.
SHARED = ("shared-0", "shared-1", "shared-2")


async def churn(config: dict[str, Any], prefix: str, seconds: float) -> None:
    """Open a kit, create the file ``open-<prefix>`` in the working directory, then write owners ``<prefix>-0``,
    ``<prefix>-1``, ... two at a time until killed (or ``seconds`` passed): for each, a session, messages, a
    counter update, a task context, a conversation session with an agent message, and a LangGraph thread of two
    checkpoints with writes; and an update and a message on a shared session."""
    from langgraph.checkpoint.base import empty_checkpoint

    kit = ContextKit.from_config(config, env={})
    kit.hot.outbox_lease = 1.0  # type: ignore[attr-defined]  # the drain lease this process may die holding
    await kit.open()
    saver = kit.checkpointer()
    # tells the test the kit is open (its cwd is the test's directory): kill points are drawn from here
    os.close(os.open(f"open-{prefix}", os.O_CREAT | os.O_WRONLY, 0o644))
    stop = time.monotonic() + seconds

    async def owner(number: int) -> None:
        oid = f"{prefix}-{number}"
        await kit.create_session(oid, "crash-user", {"n": number})
        await kit.add_message(oid, "user", f"hello {number}")
        await kit.update_session(oid, increment_requests=True, add_processing_time=0.5)
        await kit.store_task_context(oid, {"step": number, "owner": oid})
        key = await kit.create_conversation_session(oid, PARTICIPANTS, "user_to_agent")
        await kit.add_agent_communication_message(key, "u", "user", None, content=f"to the agent {number}")
        config_: Any = {"configurable": {"thread_id": oid, "checkpoint_ns": ""}}
        version = None
        for step in range(2):
            version = saver.get_next_version(version, None)
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"messages": [f"{oid} step {step}"]}
            checkpoint["channel_versions"] = {"messages": version}
            config_ = await saver.aput(config_, checkpoint, {"source": "loop", "step": step}, {"messages": version})
            await saver.aput_writes(config_, [("messages", f"{oid} write {step}")], f"task-{step}")
        shared = SHARED[number % len(SHARED)]
        await kit.update_session(shared, increment_requests=True)
        await kit.add_message(shared, "assistant", f"{oid} was here")

    number = 0
    while time.monotonic() < stop:
        await asyncio.gather(*(owner(number + i) for i in range(2)))
        number += 2


def forker(config: dict[str, Any]) -> None:
    """See the module docstring (``forker``)."""
    import langgraph.checkpoint.base  # noqa: F401  # imported once here, not in each child

    import contextkit.langgraph  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped as they die
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, prefix = line.strip().partition(" ")
        if command != "spawn":
            continue
        pid = os.fork()
        if pid == 0:  # the app process
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = 0
            try:
                asyncio.run(churn(config, prefix, 60.0))
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        print(f"pid {pid}", flush=True)


def main(argv: list[str]) -> None:
    """Run the ``write`` or ``drain`` command."""
    command, config = argv[1], json.loads(argv[2])
    if command == "write":
        asyncio.run(write(config, argv[3], int(argv[4])))
    elif command == "drain":
        asyncio.run(drain(config, float(argv[3]), argv[4]))
    elif command == "forker":
        forker(config)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv)
