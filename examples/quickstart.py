"""contextkit quickstart: a LangGraph graph that stops for a human's approval, then resumes in a new saver.

    python quickstart.py                                  # SQLite: ./quickstart.db, no server
    python quickstart.py redis://localhost:6379/0 postgresql://postgres@localhost:5432/postgres
                                                          # Redis hot tier, PostgreSQL archive
"""

import operator
import sys
import uuid
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from contextkit.langgraph import ContextKitSaver


class State(TypedDict):
    order: str
    steps: Annotated[list[str], operator.add]


def plan(state: State) -> dict[str, Any]:
    return {"steps": [f"plan: refund order {state['order']}"]}


def approve(state: State) -> dict[str, Any]:
    decision = interrupt({"question": "approve the refund?", "plan": state["steps"][-1]})
    return {"steps": [f"approve: {decision}"]}


def act(state: State) -> dict[str, Any]:
    return {"steps": ["act: refund sent"]}


builder = StateGraph(State)
builder.add_node("plan", plan)
builder.add_node("approve", approve)
builder.add_node("act", act)
builder.add_edge(START, "plan")
builder.add_edge("plan", "approve")
builder.add_edge("approve", "act")
builder.add_edge("act", END)


def main(url: str = "sqlite:///quickstart.db", cold: str | None = None) -> None:
    thread = {"configurable": {"thread_id": f"order-{uuid.uuid4().hex[:8]}"}}

    # Run until the interrupt; the checkpoints are stored when the block ends.
    with ContextKitSaver.from_conn_string(url, cold=cold) as saver:
        graph = builder.compile(checkpointer=saver)
        paused = graph.invoke({"order": "A-1001", "steps": []}, thread)
        print("paused:", paused["__interrupt__"][0].value["question"])

    # Later, in another process or after a restart: a new saver on the same storage resumes the thread.
    with ContextKitSaver.from_conn_string(url, cold=cold) as saver:
        graph = builder.compile(checkpointer=saver)
        done = graph.invoke(Command(resume="approved"), thread)
        print("resumed:", done["steps"])
        stored = len(list(graph.get_state_history(thread)))
        where = url.split("://")[0] + (f" (archived to {cold.split('://')[0]})" if cold else "")
        print(f"{stored} checkpoints of {thread['configurable']['thread_id']} in {where}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
