"""``contextkit checkpoints du`` and ``contextkit checkpoints prune [--dry-run]`` on a SQLite hot tier with a SQLite
archive: the bytes a thread takes per tier and channel, its growth per checkpoint, what retention would free, and
a prune that removes exactly what its dry run announced (``contextkit checkpoints THREAD`` still lists)."""

from __future__ import annotations

import asyncio
import json
import operator
import os
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from click.testing import CliRunner, Result

from contextkit import ContextKit
from contextkit.checkpoint_usage import thread_bytes
from contextkit.cli import cli
from contextkit.errors import InvalidInput
from contextkit.stores import CheckpointUsageStore, RetentionPolicy

pytest.importorskip("contextkit_sqlite", reason="needs the contextkit-sqlite plugin")

_CLEAN_ENV = {k: None for k in os.environ if k.startswith(("CONTEXTKIT_", "REDIS_", "CONTEXT_", "POSTGRES_"))}
TURNS = 6


class _State(TypedDict):
    log: Annotated[list[str], operator.add]
    doc: str


def _invoke(*args: str) -> Result:
    return CliRunner(env=dict(_CLEAN_ENV)).invoke(cli, list(args), obj={})


def _config(tmp_path: Path, retention: str = "") -> Path:
    path = tmp_path / "kit.toml"
    path.write_text(
        'namespace = "ckdu"\nfallback = false\n'
        f'[hot]\nbackend = "sqlite"\npath = "{tmp_path / "hot.sqlite3"}"\n'
        f'[cold]\nbackend = "sqlite"\npath = "{tmp_path / "cold.sqlite3"}"\n'
        f"[checkpoints]\n{retention}"
    )
    return path


async def _fill(config: Path, threads: dict[str, int]) -> None:
    from langgraph.graph import END, START, StateGraph

    async with ContextKit.from_config(str(config), env={}) as kit:
        builder = StateGraph(_State)
        builder.add_node("reply", lambda state: {"log": [f"reply {len(state['log'])} " + "x" * 200]})
        builder.add_edge(START, "reply")
        builder.add_edge("reply", END)
        graph = builder.compile(checkpointer=kit.checkpointer())
        for thread_id, turns in threads.items():
            config = {"configurable": {"thread_id": thread_id}}
            await graph.ainvoke({"log": ["hello"], "doc": "d" * 500}, config)
            for turn in range(1, turns):
                await graph.ainvoke({"log": [f"turn {turn}"]}, config)
        assert kit.archiver is not None
        assert await kit.archiver.flush(timeout=20.0)


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    config = _config(tmp_path, "keep_latest = 4\n")
    asyncio.run(_fill(config, {"chat-1": TURNS, "chat-2": 2}))
    return config


def test_du_reports_bytes_per_tier_and_channel_growth_and_what_retention_frees(filled: Path) -> None:
    """One thread: hot and archive bytes per channel (the growing ``log`` list dominates; the archive repeats the
    unchanged ``doc`` in every row), the newest checkpoints' growth, and the configured retention's saving."""
    result = _invoke("--config", str(filled), "--json", "checkpoints", "du", "chat-1")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    hot, archive = report["hot"], report["archive"]
    assert hot["checkpoints"] == 3 * TURNS  # input, loop after the start, loop after reply: per invoke
    assert archive["checkpoints"] == hot["checkpoints"]
    assert set(hot["channels"]) >= {"log", "doc"}
    assert hot["bytes"] == hot["rows"] + hot["writes"] + sum(hot["channels"].values())
    assert hot["channels"]["log"] > hot["channels"]["doc"]
    # Every archived row carries the doc (500 bytes, compressed); the hot tier stores it once.
    assert archive["channels"]["doc"] >= hot["channels"]["doc"] * (archive["checkpoints"] - 2) > hot["channels"]["doc"]
    assert len(report["growth"]) == 10 and all(entry["bytes"] > 0 for entry in report["growth"])
    assert report["mean_growth_bytes"] == pytest.approx(hot["bytes"] / hot["checkpoints"], abs=0.1)
    retention = report["retention"]
    assert retention["kept"] == 4 and retention["pruned"] == 3 * TURNS - 4
    assert 0 < retention["freed_bytes"] < hot["bytes"]
    table = _invoke("--config", str(filled), "checkpoints", "du", "chat-1")
    assert table.exit_code == 0, table.output
    assert "channel log" in table.stdout and "retention would remove" in table.stdout
    every = json.loads(_invoke("--config", str(filled), "--json", "checkpoints", "du").stdout)
    assert [r["thread_id"] for r in every] == ["chat-1", "chat-2"]  # largest first
    missing = _invoke("--config", str(filled), "checkpoints", "du", "nobody")
    assert missing.exit_code == 1 and "no checkpoints" in missing.stderr


def test_prune_dry_run_removes_nothing_and_prune_removes_what_it_announced(filled: Path) -> None:
    """``--dry-run`` lists what would go; the prune then removes exactly that, the newest checkpoints stay and
    the state reads the same; options override the configured policy; ``checkpoints THREAD`` still lists."""
    before = json.loads(_invoke("--config", str(filled), "--json", "checkpoints", "chat-1", "--limit", "100").stdout)
    dry = _invoke("--config", str(filled), "--json", "checkpoints", "prune", "chat-1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True
    (thread,) = plan["threads"]
    assert thread["pruned"] == len(before) - 4
    still = json.loads(_invoke("--config", str(filled), "--json", "checkpoints", "chat-1", "--limit", "100").stdout)
    assert still == before
    done = json.loads(_invoke("--config", str(filled), "--json", "checkpoints", "prune", "chat-1").stdout)
    assert done["threads"][0]["pruned_ids"] == thread["pruned_ids"]
    after = json.loads(_invoke("--config", str(filled), "--json", "checkpoints", "chat-1", "--limit", "100").stdout)
    assert [row["checkpoint_id"] for row in after] == [row["checkpoint_id"] for row in before[:4]]
    pruned = {cid for ids in thread["pruned_ids"].values() for cid in ids}
    assert pruned == {row["checkpoint_id"] for row in before[4:]}
    # The command line's options override the configuration; every thread when none is named.
    text = _invoke("--config", str(filled), "checkpoints", "prune", "--keep-latest", "1", "--keep-first")
    assert text.exit_code == 0, text.output
    assert "removed" in text.stdout and "of 2 thread(s)" in text.stdout
    rows = json.loads(_invoke("--config", str(filled), "--json", "checkpoints", "chat-1").stdout)
    # keep_first keeps the oldest checkpoint left (the first prune removed the thread's real first one)
    assert [row["checkpoint_id"] for row in rows] == [before[0]["checkpoint_id"], before[3]["checkpoint_id"]]
    listed = _invoke("--config", str(filled), "checkpoints", "list", "chat-2")
    assert listed.exit_code == 0 and "checkpoint(s) of thread chat-2" in listed.stdout


def test_prune_without_a_limit_or_with_bad_options_is_a_usage_error(tmp_path: Path) -> None:
    """No ``keep_latest``/``max_age`` anywhere, or a bad ``--max-age``: exit 2 with one line, nothing removed."""
    config = _config(tmp_path)
    asyncio.run(_fill(config, {"chat-1": 2}))
    for args, needle in (
        (("checkpoints", "prune"), "no retention limit"),
        (("checkpoints", "prune", "--max-age", "soon"), "--max-age"),
        (("checkpoints", "prune", "--keep-latest", "0"), "--keep-latest"),
    ):
        result = _invoke("--config", str(config), *args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output
    rows = json.loads(_invoke("--config", str(config), "--json", "checkpoints", "chat-1").stdout)
    assert len(rows) == 6


async def test_sqlite_counts_a_thread_as_the_generic_count_does(tmp_path: Path) -> None:
    """The SQLite tier's own count (``cp_usage``) equals the count over ``cp_list`` byte for byte; a thread it
    does not hold counts zero; the kit refuses a policy without a limit."""
    config = _config(tmp_path)
    await _fill(config, {"chat-1": 3})
    async with ContextKit.from_config(str(config), env={}) as kit:
        store: Any = kit.hot
        assert isinstance(store, CheckpointUsageStore)
        native = await store.cp_usage("chat-1")
        generic = thread_bytes([b async for b in store.cp_list("chat-1", None)])
        assert native == generic
        assert (await store.cp_usage("nobody")).total == 0
        with pytest.raises(InvalidInput):
            await kit.prune_checkpoints(["chat-1"])
        plans = await kit.prune_checkpoints(["chat-1"], policy=RetentionPolicy(max_age=3600), dry_run=True)
        assert plans[0].pruned_count == 0
