"""An application process for the crash tests: opens a kit from a JSON config and writes, or drains its outbox.

Usage (the config is the JSON text of a ``ContextKit.from_config`` mapping)::

    python kit_process.py write <config-json> <session-id> <count>
        creates the session, writes <count> messages ("crash message <seq>"), prints "written <depth>" (the
        outbox depth) and sleeps until killed (at most 300 s).
    python kit_process.py drain <config-json> <timeout> <session-id>
        opens a kit on the same outbox, flushes it within <timeout> seconds, prints one JSON line with
        {"flushed", "metrics", "hot_messages"} (messages of <session-id> in the hot tier) and closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
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


def main(argv: list[str]) -> None:
    """Run the ``write`` or ``drain`` command."""
    command, config = argv[1], json.loads(argv[2])
    if command == "write":
        asyncio.run(write(config, argv[3], int(argv[4])))
    elif command == "drain":
        asyncio.run(drain(config, float(argv[3]), argv[4]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv)
