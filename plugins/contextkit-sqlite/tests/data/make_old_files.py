"""Write the hot files of older schema versions that the migration tests open (run from the repository root).

``hot-v3.sqlite3.gz`` and ``hot-v4.sqlite3.gz`` were written by this script at commit 12aa8a9, the last code of
schema version 4 (version 3: the same code with the migrations cut at 3), and ``hot-old.json.gz`` holds what their
threads read back then (gzip: the files are mostly empty pages of the other tables). Each file holds the same
LangGraph thread ``t`` in two namespaces (different text in each): eight turns of a graph whose list channel is
stored as a shared list, then a fork from the fourth checkpoint; and a thread ``d`` of six chat turns whose
messages are a ``DeltaChannel``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import operator
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from contextkit.stores import StoreSettings
from contextkit_sqlite import SqliteHotStore
from contextkit_sqlite.schema import HOT_MIGRATIONS

NAMESPACES = ("app-a", "app-b")
HERE = Path(__file__).parent


class LogState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def graph(saver: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(LogState)
    builder.add_node("step", lambda state: {"log": [f"step {len(state['log'])}: " + "x" * 200]})
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile(checkpointer=saver)


def delta_graph(saver: Any) -> Any:
    """A chat graph whose ``messages`` channel is a LangGraph ``DeltaChannel`` (its history is a walk of writes)."""
    from langchain_core.messages import AIMessage
    from langgraph.channels.delta import DeltaChannel
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import _messages_delta_reducer

    state: Any = TypedDict("DeltaState", {"messages": Annotated[list, DeltaChannel(_messages_delta_reducer)]})
    builder = StateGraph(state)
    builder.add_node("reply", lambda s: {"messages": [AIMessage(f"reply {len(s['messages'])}", id=f"a{len(s['messages'])}")]})
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)


async def history(compiled: Any, thread_id: str = "t") -> list[list[Any]]:
    """Every checkpoint of the thread, newest first: its id, its values (messages as [type, text, id]), next."""
    config = {"configurable": {"thread_id": thread_id}}
    states = compiled.aget_state_history(config)
    return [[s.config["configurable"]["checkpoint_id"], _plain(s.values), list(s.next)] async for s in states]


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    if "messages" not in values:
        return values
    return {**values, "messages": [[m.type, m.content, m.id] for m in values["messages"]]}


async def write(path: Path, migrations: int) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage

    import contextkit_sqlite.hot as hot_module
    from contextkit.langgraph import ContextKitSaver

    hot_module.HOT_MIGRATIONS = HOT_MIGRATIONS[:migrations]  # type: ignore[attr-defined]
    expected: dict[str, Any] = {}
    for ns in NAMESPACES:
        store = SqliteHotStore(StoreSettings(namespace=ns), {"path": str(path)})
        await store.open()
        try:
            compiled = graph(ContextKitSaver(store))
            config = {"configurable": {"thread_id": "t"}}
            for turn in range(8):
                await compiled.ainvoke({"log": [f"{ns} turn {turn}"]}, config)
            fork_from = (await history(compiled))[-4][0]
            fork = {"configurable": {"thread_id": "t", "checkpoint_id": fork_from}}
            await compiled.ainvoke({"log": [f"{ns} fork"]}, fork)
            expected[ns] = await history(compiled)
            chat = delta_graph(ContextKitSaver(store))
            for turn in range(6):
                message = HumanMessage(f"{ns} question {turn}", id=f"u{turn}")
                await chat.ainvoke({"messages": [message]}, {"configurable": {"thread_id": "d"}})
            expected[f"{ns}/d"] = await history(chat, "d")
        finally:
            await store.aclose()
    return expected


def pack(path: Path) -> None:
    """Leave ``path`` as one self-contained, gzipped file."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("VACUUM")
        conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no WAL beside it
    finally:
        conn.close()
    packed = path.with_name(path.name + ".gz")
    packed.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    path.unlink()


def main() -> None:
    expected = {}
    for name, migrations in (("hot-v3.sqlite3", 3), ("hot-v4.sqlite3", 4)):
        path = HERE / name
        path.unlink(missing_ok=True)
        expected[name] = asyncio.run(write(path, migrations))
        pack(path)
    text = json.dumps(expected)
    (HERE / "hot-old.json.gz").write_bytes(gzip.compress(text.encode(), mtime=0))


if __name__ == "__main__":
    sys.exit(main())
