"""``contextkit demo``: a small agent-like LangGraph graph on the embedded SQLite tier, resumable across runs.

The graph is deterministic (no LLM): ``plan`` -> ``approve`` (a human-in-the-loop interrupt) -> ``act`` ->
``report``. The first run stops at the approval and leaves the thread in the SQLite file; the second run (a new
process) finds the thread, resumes it with the approval and finishes. Session, history, checkpoints and the
archive are shown as tables. Without the SQLite plugin or langgraph installed, it runs on the memory tier and says
what is missing.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

from contextkit.kit import ContextKit
from contextkit.plugins import get_plugin_manager
from contextkit.records import ARCHIVE_TABLES
from contextkit.stores import Capability

__all__ = ["run_demo"]

SESSION = "demo-session"
THREAD = "demo-thread"


class _State(TypedDict):
    question: str
    steps: Annotated[list[str], operator.add]
    answer: str


def _build_graph(saver: Any) -> Any:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    def plan(state: _State) -> dict[str, Any]:
        return {"steps": [f"plan: split {state['question']!r} into lookup + summary"]}

    def approve(state: _State) -> dict[str, Any]:
        decision = interrupt({"ask": "approve the plan?", "plan": state["steps"][-1]})
        return {"steps": [f"approve: human said {decision!r}"]}

    def act(state: _State) -> dict[str, Any]:
        return {"steps": ["act: looked up 3 documents"]}

    def report(state: _State) -> dict[str, Any]:
        return {"steps": ["report: wrote the answer"], "answer": f"answer to {state['question']!r} (3 sources)"}

    builder = StateGraph(_State)
    for name, node in (("plan", plan), ("approve", approve), ("act", act), ("report", report)):
        builder.add_node(name, node)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "approve")
    builder.add_edge("approve", "act")
    builder.add_edge("act", "report")
    builder.add_edge("report", END)
    return builder.compile(checkpointer=saver)


def _config(path: Path) -> dict[str, Any]:
    names = get_plugin_manager().backends
    if "sqlite" in names.names("hot"):
        config: dict[str, Any] = {
            "hot": {"backend": "sqlite", "path": str(path)},
            "namespace": "demo",
        }
        if "sqlite" in names.names("cold"):
            config["cold"] = {"backend": "sqlite", "path": str(path.with_name(path.stem + "-archive.sqlite3"))}
        return config
    return {"hot": "memory", "namespace": "demo", "cold": "memory" if "memory" in names.names("cold") else None}


async def run_demo(path: Path | None = None, *, as_json: bool = False) -> dict[str, Any]:
    """Run (or resume) the demo and print what is stored; returns the summary it printed."""
    from rich.console import Console
    from rich.table import Table

    console = Console(quiet=as_json)
    path = path or Path(".contextkit") / "demo.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"file": str(path)}
    async with ContextKit.from_config(_config(path), env={}) as kit:
        summary["hot"] = kit.hot.name
        summary["cold"] = kit.cold.name if kit.cold else None
        console.print(f"[bold]contextkit demo[/] on the [cyan]{kit.hot.name}[/] hot tier ({path})")
        if await kit.get_session(SESSION) is None:
            await kit.create_session(SESSION, "demo-user", {"source": "contextkit demo"})
        await kit.update_session(SESSION, increment_requests=True)
        graph_ran = False
        try:
            import langgraph  # noqa: F401
        except ImportError:
            console.print("[yellow]langgraph is not installed (pip install 'contextkit[langgraph]'): no graph run[/]")
        else:
            if Capability.CHECKPOINTS in kit.hot.capabilities:
                summary.update(await _run_graph(kit, console))
                graph_ran = True
        if not graph_ran:
            await kit.add_conversation_message(SESSION, "user", "hello from the demo")
            summary["resumed"] = False
        if kit.archiver is not None:
            await kit.archiver.flush(10)
        session = await kit.get_session(SESSION)
        history = await kit.get_conversation_history(SESSION, limit=20)
        assert session is not None
        table = Table(title=f"session {SESSION}")
        for column in ("user", "status", "requests", "messages kept", "last activity"):
            table.add_column(column)
        table.add_row(session.user_id, session.status, str(session.request_count), str(len(history)),
                      session.last_activity.isoformat(timespec="seconds"))
        console.print(table)
        table = Table(title="history (newest 20, oldest first)")
        for column in ("seq", "role", "content"):
            table.add_column(column)
        for message in history:
            table.add_row(str(message.seq), message.role, message.content)
        console.print(table)
        summary["requests"] = session.request_count
        summary["messages"] = len(history)
        if kit.cold is not None:
            # The archive keeps every write as an event (a session created, then updated on each run, has one
            # event per write), so its counts are events, not records.
            table = Table(title=f"archive ({kit.cold.name}): events per table",
                          caption="one event per write: the session's creation and its update on each run")
            table.add_column("table")
            table.add_column("events")
            counts = {}
            for name in ARCHIVE_TABLES:
                counts[name] = await kit.cold.count_events(name)
                table.add_row(name, str(counts[name]))
            console.print(table)
            summary["archive"] = counts
    if as_json:
        import json

        print(json.dumps(summary, default=str))
    return summary


async def _run_graph(kit: ContextKit, console: Any) -> dict[str, Any]:
    from langgraph.types import Command
    from rich.table import Table

    saver = kit.checkpointer()
    graph = _build_graph(saver)
    config = {"configurable": {"thread_id": THREAD}}
    state = await graph.aget_state(config)
    # The steps list grows across runs (operator.add): only the steps of this run go into the history.
    steps_before = len(state.values.get("steps", []))
    result: dict[str, Any] = {}
    if state.next:
        console.print(
            f"[green]resuming[/] thread {THREAD} from checkpoint {state.config['configurable']['checkpoint_id']} "
            f"(waiting at {', '.join(state.next)}): approving the plan"
        )
        await kit.add_conversation_message(SESSION, "user", "approved")
        out = await graph.ainvoke(Command(resume="approved"), config)
        result["resumed"] = True
    elif state.values.get("answer"):
        console.print(f"[green]resuming[/] thread {THREAD}: it finished in an earlier run; asking a new question")
        await kit.add_conversation_message(SESSION, "user", "and what about next quarter?")
        out = await graph.ainvoke({"question": "next quarter"}, config)
        result["resumed"] = True
    else:
        console.print(f"starting thread {THREAD}; the graph will stop and wait for approval (run the demo again)")
        await kit.add_conversation_message(SESSION, "user", "what were the sales last quarter?")
        out = await graph.ainvoke({"question": "sales last quarter", "steps": []}, config)
        result["resumed"] = False
    for step in out.get("steps", [])[steps_before:]:
        await kit.add_conversation_message(SESSION, "assistant", step)
    if out.get("answer"):
        await kit.add_conversation_message(SESSION, "assistant", out["answer"])
    state = await graph.aget_state(config)
    result["waiting_at"] = list(state.next)
    result["answer"] = state.values.get("answer")
    table = Table(title=f"checkpoints of {THREAD} (newest 8)")
    for column in ("checkpoint id", "step", "source", "next"):
        table.add_column(column)
    count = 0
    async for snapshot in graph.aget_state_history(config, limit=8):
        table.add_row(snapshot.config["configurable"]["checkpoint_id"], str(snapshot.metadata.get("step")),
                      str(snapshot.metadata.get("source")), ", ".join(snapshot.next))
        count += 1
    console.print(table)
    result["checkpoints_shown"] = count
    if state.next:
        console.print(f"[yellow]the graph is waiting at {', '.join(state.next)}[/]: run `contextkit demo` again to resume")
    else:
        console.print(f"[bold green]done:[/] {state.values.get('answer')}")
    return result
