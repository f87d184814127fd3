"""``ContextKit.from_url`` and ``ContextKitSaver.from_conn_string``: every URL kind against the real servers, the
sync (``with``) and async (``async with``) forms, and the errors of bad URLs (typed, passwords masked)."""

from __future__ import annotations

import operator
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import urlsplit

import asyncpg
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from contextkit import ContextKit
from contextkit.errors import BackendNotFound, BackendUnavailable, ConfigError, ContextKitError
from contextkit.langgraph import ContextKitSaver
from contextkit.testing.services import env_url, missing_service

RUN = f"ckurl{uuid.uuid4().hex[:8]}"
SECRET = "s3cr3t-Pw"


class State(TypedDict):
    steps: Annotated[list[str], operator.add]


def _approve(state: State) -> dict[str, list[str]]:
    answer = interrupt("approve?")
    return {"steps": [f"approved={answer}"]}


def _graph() -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("approve", _approve)
    builder.add_edge(START, "approve")
    builder.add_edge("approve", END)
    return builder


def _thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def namespace() -> str:
    """A namespace (Redis key prefix, PostgreSQL schema) of this test alone."""
    return f"{RUN}_{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def redis_url(namespace: str) -> AsyncIterator[str]:
    """The machine's Redis; the test's namespace is removed afterwards."""
    url = env_url("redis") or "redis://127.0.0.1:6379/0"
    if not _reachable(url, 6379):
        missing_service("redis", f"nothing answers at {urlsplit(url).netloc}")
    yield url
    async with ContextKit.from_url(url, namespace=namespace, env={}) as kit:
        await kit.hot.drop_namespace()  # type: ignore[attr-defined]


@pytest.fixture
async def postgres_url(namespace: str) -> AsyncIterator[str]:
    """The machine's PostgreSQL; the schema of the test's namespace is dropped afterwards."""
    url = env_url("postgres") or "postgresql://postgres@127.0.0.1:5432/test"
    if not _reachable(url, 5432):
        missing_service("postgres", f"nothing answers at {urlsplit(url).netloc}")
    yield url
    from contextkit_postgres.options import schema_from_namespace

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_from_namespace(namespace)}" CASCADE')
    finally:
        await conn.close()


async def _interrupt_and_resume_async(saver: ContextKitSaver, thread: str) -> None:
    graph = _graph().compile(checkpointer=saver)
    first = await graph.ainvoke({"steps": ["start"]}, _thread(thread))
    assert first["__interrupt__"][0].value == "approve?"
    done = await graph.ainvoke(Command(resume="yes"), _thread(thread))
    assert done == {"steps": ["start", "approved=yes"]}


def _interrupt_sync(saver: ContextKitSaver, thread: str) -> None:
    graph = _graph().compile(checkpointer=saver)
    first = graph.invoke({"steps": ["start"]}, _thread(thread))
    assert first["__interrupt__"][0].value == "approve?"


def _resume_sync(saver: ContextKitSaver, thread: str) -> None:
    graph = _graph().compile(checkpointer=saver)
    assert graph.invoke(Command(resume="yes"), _thread(thread)) == {"steps": ["start", "approved=yes"]}


# -- every URL kind -------------------------------------------------------------------------------------------------
async def test_memory_url_opens_a_kit_and_an_async_saver() -> None:
    """``memory://`` is the in-process tier; the kit and the saver both work on it."""
    async with ContextKit.from_url("memory://", env={}) as kit:
        assert kit.hot.name == "memory" and kit.cold is None
        await kit.create_session("s1", "u1")
        assert (await kit.get_session("s1")) is not None
    async with ContextKitSaver.from_conn_string("memory://", env={}) as saver:
        await _interrupt_and_resume_async(saver, "t-memory")


def test_sqlite_url_sync_saver_resumes_an_interrupt_after_a_reopen(tmp_path: Path) -> None:
    """The sync form needs no event loop; a second ``with`` on the same file resumes the interrupted thread."""
    url = f"sqlite:///{tmp_path / 'graph.db'}"  # an absolute path: sqlite:////tmp/...
    with ContextKitSaver.from_conn_string(url, env={}) as saver:
        assert saver.store.name == "sqlite"  # type: ignore[attr-defined]
        _interrupt_sync(saver, "t-sqlite")
    assert (tmp_path / "graph.db").is_file()
    with ContextKitSaver.from_conn_string(url, env={}) as saver:
        _resume_sync(saver, "t-sqlite")
    assert not [t for t in threading.enumerate() if t.name == "contextkit-saver"], "the loop thread was not joined"


def test_the_sync_delete_for_runs_copy_thread_and_prune_do_what_their_async_forms_do() -> None:
    """BaseCheckpointSaver's sync ``delete_for_runs``, ``copy_thread`` and ``prune``, from code with no event loop:
    each runs its async form on the saver's loop."""
    counter = StateGraph(State)
    counter.add_node("step", lambda state: {"steps": ["s"]})
    counter.add_edge(START, "step")
    counter.add_edge("step", END)
    with ContextKitSaver.from_conn_string("memory://", env={}) as saver:
        graph = counter.compile(checkpointer=saver)
        dropped, kept = str(uuid.uuid4()), str(uuid.uuid4())
        graph.invoke({"steps": []}, {"configurable": {"thread_id": "t-runs", "run_id": dropped}})
        graph.invoke({"steps": []}, {"configurable": {"thread_id": "t-runs", "run_id": kept}})

        def runs(thread: str) -> set[str]:
            return {c.metadata["run_id"] for c in saver.list(_thread(thread))}

        assert runs("t-runs") == {dropped, kept}
        saver.delete_for_runs([dropped])
        assert runs("t-runs") == {kept}

        before = [c.checkpoint["id"] for c in saver.list(_thread("t-runs"))]
        saver.copy_thread("t-runs", "t-copy")
        assert [c.checkpoint["id"] for c in saver.list(_thread("t-copy"))] == before
        assert graph.get_state(_thread("t-copy")).values == {"steps": ["s", "s"]}

        saver.prune(["t-copy"])  # keep_latest: only the newest checkpoint of the thread stays
        assert [c.checkpoint["id"] for c in saver.list(_thread("t-copy"))] == before[:1]
        assert graph.get_state(_thread("t-copy")).values == {"steps": ["s", "s"]}
        assert [c.checkpoint["id"] for c in saver.list(_thread("t-runs"))] == before  # the source is untouched


async def test_sqlite_url_async_saver(tmp_path: Path) -> None:
    """``sqlite:///relative`` is relative to the working directory (SQLAlchemy's convention)."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        async with ContextKitSaver.from_conn_string("sqlite:///relative.db", env={}) as saver:
            await _interrupt_and_resume_async(saver, "t-sqlite-async")
        assert (tmp_path / "relative.db").is_file()
    finally:
        os.chdir(cwd)


@pytest.mark.redis
async def test_redis_url_async_saver(redis_url: str, namespace: str) -> None:
    """``redis://`` selects the Redis hot tier, under the given namespace."""
    async with ContextKitSaver.from_conn_string(redis_url, namespace=namespace, env={}) as saver:
        await _interrupt_and_resume_async(saver, "t-redis")
    async with ContextKit.from_url(redis_url, namespace=namespace, env={}) as kit:
        assert kit.hot.name == "redis"
        assert [b.row.thread_id async for b in kit.hot.cp_list("t-redis", None, limit=1)] == ["t-redis"]  # type: ignore[attr-defined]


@pytest.mark.redis
def test_redis_url_sync_saver(redis_url: str, namespace: str) -> None:
    """The sync form on Redis: interrupt in one ``with``, resume in the next."""
    with ContextKitSaver.from_conn_string(redis_url, namespace=namespace, env={}) as saver:
        _interrupt_sync(saver, "t-redis-sync")
    with ContextKitSaver.from_conn_string(redis_url, namespace=namespace, env={}) as saver:
        _resume_sync(saver, "t-redis-sync")


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_with_postgres_cold_archives_and_reads_back(
    redis_url: str, postgres_url: str, namespace: str
) -> None:
    """``cold="postgresql://..."`` archives every checkpoint; a kit whose hot tier has none of them (here a fresh
    memory tier over the same archive) reads the thread back from PostgreSQL."""
    async with ContextKitSaver.from_conn_string(redis_url, cold=postgres_url, namespace=namespace, env={}) as saver:
        await _interrupt_and_resume_async(saver, "t-archived")
        newest = await saver.aget_tuple(_thread("t-archived"))
        assert newest is not None
    # Closing drained the archiver: the archive alone answers now.
    async with ContextKitSaver.from_conn_string("memory://", cold=postgres_url, namespace=namespace, env={}) as saver:
        back = await saver.aget_tuple(_thread("t-archived"))
        assert back is not None
        assert back.checkpoint["id"] == newest.checkpoint["id"]
        assert back.checkpoint["channel_values"]["steps"] == ["start", "approved=yes"]


# -- errors ---------------------------------------------------------------------------------------------------------
def test_a_postgres_url_alone_names_the_form_to_use_with_the_password_masked() -> None:
    """PostgreSQL is an archive tier: alone it is refused, and the message shows the hot + cold form."""
    with pytest.raises(ConfigError) as caught:
        ContextKitSaver.from_conn_string(f"postgresql://app:{SECRET}@db.example/app", env={})
    message = str(caught.value)
    assert SECRET not in message
    assert "cold=" in message and "sqlite:///" in message


@pytest.mark.parametrize(
    ("url", "error", "shown"),
    [
        ("localhost:6379", ConfigError, "is not a URL"),
        (f"redis://:{SECRET}@localhost:notaport/0", ConfigError, "invalid host or port"),
        ("reddis://localhost:6379/0", BackendNotFound, "did you mean 'redis'"),
        ("mysql://localhost/app", BackendNotFound, "no hot tier backend named 'mysql'"),
    ],
)
def test_bad_urls_raise_typed_errors_before_anything_opens(url: str, error: type[Exception], shown: str) -> None:
    """A bad URL raises a :class:`ConfigError` (or its :class:`BackendNotFound`) at the call, password masked."""
    with pytest.raises(error) as caught:
        ContextKitSaver.from_conn_string(url, env={})
    assert shown in str(caught.value) and SECRET not in str(caught.value)
    with pytest.raises(error):
        ContextKit.from_url(url, env={})


def test_a_hot_url_given_as_cold_and_tiers_given_as_settings_are_refused() -> None:
    """``cold=`` takes an archive URL; the tiers are never taken from keyword settings."""
    with pytest.raises(ConfigError, match="hot tier, not an archive"):
        ContextKit.from_url("memory://", cold="redis://localhost:6379/0", env={})
    with pytest.raises(ConfigError, match="from_url takes the tiers from its URLs"):
        ContextKit.from_url("memory://", hot="redis", env={})
    with pytest.raises(ConfigError, match="must be a string"):
        ContextKit.from_url(None, env={})  # type: ignore[arg-type]


def test_an_unreachable_redis_fails_the_with_and_leaves_no_thread() -> None:
    """The sync form raises :class:`BackendUnavailable` from ``with`` and stops its loop thread."""
    with pytest.raises(BackendUnavailable), ContextKitSaver.from_conn_string("redis://127.0.0.1:1/0", env={}, timeout=2):
        pass
    assert not [t for t in threading.enumerate() if t.name == "contextkit-saver"]


async def test_a_connection_opens_once() -> None:
    """A :class:`SaverConnection` is single-use, like the savers LangGraph's ``from_conn_string`` returns."""
    connection = ContextKitSaver.from_conn_string("memory://", env={})
    async with connection:
        pass
    with pytest.raises(ContextKitError, match="opens once"):
        async with connection:
            pass


def test_cold_urls_name_their_archive_backend_without_io(tmp_path: Path) -> None:
    """``cold=`` builds the archive its scheme names (no I/O until open): SQLite, PostgreSQL, ClickHouse; the hot
    tier is built for archiving."""
    kit = ContextKit.from_url("memory://", cold=f"sqlite:///{tmp_path / 'archive.db'}", env={})
    assert kit.cold is not None and kit.cold.name == "sqlite"
    kit = ContextKit.from_url("memory://", cold=f"postgresql://app:{SECRET}@db.example:5432/app", env={})
    assert kit.cold is not None and kit.cold.name == "postgres"
    assert SECRET not in repr(kit.describe())
    pytest.importorskip("contextkit_clickhouse")
    kit = ContextKit.from_url("memory://", cold="clickhouse://default@127.0.0.1:8123/archive", env={})
    assert kit.cold is not None and kit.cold.name == "clickhouse"
