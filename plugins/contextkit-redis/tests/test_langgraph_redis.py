"""Real LangGraph graphs checkpointed on Redis through a kit: async with interrupt and resume, sync
``graph.invoke`` with no event loop, and a second Python process resuming a thread the first one left."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.stores import CheckpointStore, StoreSettings
from contextkit_redis import RedisHotStore

pytest.importorskip("langgraph.graph")

# The graph both the tests and the child processes build: write a draft, then ask a human to review it.
_GRAPH = textwrap.dedent(
    """
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt


    class Review(TypedDict, total=False):
        topic: str
        draft: str
        verdict: str


    def write(state):
        return {"draft": f"a draft about {state['topic']}"}


    def review(state):
        return {"verdict": interrupt({"please review": state["draft"]})}


    def build(checkpointer):
        builder = StateGraph(Review)
        builder.add_node("write", write)
        builder.add_node("review", review)
        builder.add_edge(START, "write")
        builder.add_edge("write", "review")
        builder.add_edge("review", END)
        return builder.compile(checkpointer=checkpointer)
    """
)
_namespace: dict[str, Any] = {}
# the tests run the very source the child processes run
exec(compile(_GRAPH, "<review graph>", "exec"), _namespace)
build_graph = _namespace["build"]


@pytest.fixture
def namespace() -> str:
    return f"ckredis-lg-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def kit(redis_url: str, namespace: str) -> AsyncIterator[ContextKit]:
    opened = await ContextKit.from_config({"hot": {"backend": "redis", "url": redis_url}, "namespace": namespace}, env={}).open()
    try:
        yield opened
    finally:
        hot = opened.hot
        assert isinstance(hot, RedisHotStore)
        await hot.drop_namespace()
        await opened.aclose()


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


@pytest.mark.redis
async def test_async_graph_interrupts_and_resumes_through_the_kit_checkpointer(kit: ContextKit) -> None:
    """``kit.checkpointer()`` on Redis: the run stops at ``interrupt()``, the state says what runs next, and
    ``Command(resume=...)`` finishes it; the history lists every step newest first."""
    from langgraph.types import Command

    graph = build_graph(kit.checkpointer())
    config = _config("review:{1}")
    first = await graph.ainvoke({"topic": "otters"}, config)
    assert first["__interrupt__"][0].value == {"please review": "a draft about otters"}
    assert (await graph.aget_state(config)).next == ("review",)
    final = await graph.ainvoke(Command(resume="approved"), config)
    assert final == {"topic": "otters", "draft": "a draft about otters", "verdict": "approved"}
    history = [s async for s in graph.aget_state_history(config)]
    steps = [s.metadata["step"] for s in history]
    assert steps == sorted(steps, reverse=True) and len(history) >= 4


@pytest.mark.redis
def test_sync_graph_invoke_runs_on_redis_without_an_event_loop(redis_url: str, namespace: str) -> None:
    """Plain sync code: ``ContextKitSaver.in_background`` opens the Redis store on its own loop thread, and
    ``graph.invoke`` / ``get_state`` / resume work; closing the saver closes the store."""
    from langgraph.types import Command

    from contextkit.langgraph import ContextKitSaver

    async def open_store() -> CheckpointStore:
        store = RedisHotStore.from_options(StoreSettings(namespace=namespace), {"url": redis_url})
        await store.open()
        return store

    with ContextKitSaver.in_background(open_store) as saver:
        graph = build_graph(saver)
        config = _config("sync-thread")
        graph.invoke({"topic": "sync"}, config)
        assert graph.get_state(config).next == ("review",)
        assert graph.invoke(Command(resume="ok"), config)["verdict"] == "ok"
        assert len(list(saver.list(config, limit=2))) == 2
        store = saver.store
        assert isinstance(store, RedisHotStore)
        assert saver.loop is not None
        asyncio.run_coroutine_threadsafe(store.drop_namespace(), saver.loop).result(30)


_CHILD = _GRAPH + textwrap.dedent(
    """
    import asyncio, json, sys

    from langgraph.types import Command

    from contextkit import ContextKit


    async def main(step, url, namespace, thread_id):
        config = {"configurable": {"thread_id": thread_id}}
        kit = await ContextKit.from_config({"hot": {"backend": "redis", "url": url}, "namespace": namespace}, env={}).open()
        try:
            graph = build(kit.checkpointer())
            if step == "start":
                result = await graph.ainvoke({"topic": "crossing processes"}, config)
                out = {"interrupt": result["__interrupt__"][0].value}
            else:
                before = await graph.aget_state(config)
                result = await graph.ainvoke(Command(resume="approved by process 2"), config)
                out = {"next_before": list(before.next), "result": result}
            out["next"] = list((await graph.aget_state(config)).next)
            print(json.dumps(out), flush=True)
        finally:
            await kit.aclose()


    asyncio.run(main(*sys.argv[1:]))
    """
)


def _child(tmp_path: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.redis
@pytest.mark.slow
async def test_a_second_process_resumes_the_thread_the_first_process_left(
    kit: ContextKit, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    """Process 1 runs the graph to its interrupt and exits. Process 2 opens a new kit on the same namespace,
    sees the pending ``review`` step, resumes with ``Command(resume=...)`` and finishes; this process then reads
    the finished state too."""
    thread_id = f"handoff {uuid.uuid4().hex[:6]}"
    first = _child(tmp_path, "start", redis_url, namespace, thread_id)
    assert first == {"interrupt": {"please review": "a draft about crossing processes"}, "next": ["review"]}
    second = _child(tmp_path, "resume", redis_url, namespace, thread_id)
    assert second["next_before"] == ["review"] and second["next"] == []
    assert second["result"]["verdict"] == "approved by process 2"
    state = await build_graph(kit.checkpointer()).aget_state(_config(thread_id))
    assert state.values["verdict"] == "approved by process 2" and state.next == ()
