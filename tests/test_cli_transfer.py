"""``contextkit export / import / migrate / checkpoints / cleanup``: JSONL round trips, idempotent imports, resumable
migrations, checkpoint listings, cleanup counts, and one clear line with exit code 2 (usage) or 1 (runtime) on bad
input, for every new command."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import operator
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from click.testing import CliRunner, Result

from contextkit import ContextKit
from contextkit.cli import cli
from contextkit.records import utcnow
from contextkit.transfer import RECORD_KINDS

pytest.importorskip("contextkit_sqlite", reason="needs the contextkit-sqlite plugin")

# The commands under test must see only the configuration the test gives them.
_CLEAN_ENV = {k: None for k in os.environ if k.startswith(("CONTEXTKIT_", "REDIS_", "CONTEXT_", "POSTGRES_"))}


class _State(TypedDict):
    steps: Annotated[list[str], operator.add]


def _invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    runner = CliRunner(env={**_CLEAN_ENV, **(env or {})})
    return runner.invoke(cli, list(args), obj={})


def _config(tmp_path: Path, name: str, text: str | None = None) -> Path:
    path = tmp_path / f"{name}.toml"
    if text is None:
        text = f'namespace = "cli"\nfallback = false\n[hot]\nbackend = "sqlite"\npath = "{tmp_path / name}.sqlite3"\n'
    path.write_text(text)
    return path


async def _fill(config: Path) -> None:
    from langgraph.graph import END, START, StateGraph

    async with ContextKit.from_config(str(config), env={}) as kit:
        for i in range(5):
            sid = f"s{i}"
            await kit.create_session(sid, f"u{i}", {"i": i})
            for j in range(4):
                await kit.add_message(sid, "user" if j % 2 == 0 else "assistant", f"{sid} says {j} 🙂")
            await kit.update_session(sid, increment_requests=True, add_processing_time=0.5)
        key = await kit.create_conversation_session(
            "s1", [{"id": "mc", "type": "master_controller"}, {"id": "a1", "type": "agent", "role": "coder"}], "mc_to_agent"
        )
        await kit.add_agent_communication_message(key, "mc", "master_controller", None, "a1", "agent", "coder", content="go")
        await kit.store_checkpoint("s2", "cp-1", {"x": 1})
        await kit.store_checkpoint("s2", "cp-0", {"x": 0})
        await kit.put_writes("s2", "cp-1", "task", [{"w": 1}, {"w": 2}])
        builder = StateGraph(_State)
        builder.add_node("plan", lambda state: {"steps": ["plan"]})
        builder.add_node("act", lambda state: {"steps": ["act"]})
        builder.add_edge(START, "plan")
        builder.add_edge("plan", "act")
        builder.add_edge("act", END)
        graph = builder.compile(checkpointer=kit.checkpointer())
        await graph.ainvoke({"steps": []}, {"configurable": {"thread_id": "graph-1"}})


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A sqlite-tier configuration holding 5 sessions, a conversation session, seed and LangGraph checkpoints."""
    config = _config(tmp_path, "source")
    asyncio.run(_fill(config))
    return config


def _export(config: Path, path: Path, *extra: str) -> bytes:
    result = _invoke("--config", str(config), "export", "--output", str(path), *extra)
    assert result.exit_code == 0, result.output
    return path.read_bytes()


def _one_error_line(result: Result, code: int, needle: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert needle in result.stderr, result.stderr
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- export / import ----------------------------------------------------------------------------------------------
def test_export_writes_every_record_kind_deterministically(filled: Path, tmp_path: Path) -> None:
    """Two exports of the same tier are byte-identical, hold every record kind between a header and an end record,
    and the stdout export is the same bytes as the file export."""
    first = _export(filled, tmp_path / "one.jsonl")
    second = _export(filled, tmp_path / "two.jsonl")
    assert first == second
    records = [json.loads(line) for line in first.decode("utf-8").splitlines()]
    assert records[0] == {"kind": "header", "format": "contextkit-export", "version": 1}
    assert records[-1]["kind"] == "end"
    assert {r["kind"] for r in records} == set(RECORD_KINDS)
    assert all(line.startswith(b'{"kind":') for line in first.splitlines())
    assert records[-1]["counts"]["session"] == 5 and records[-1]["counts"]["message"] == 21
    to_stdout = _invoke("--config", str(filled), "export")
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout_bytes == first
    assert "exported 5 sessions" in to_stdout.stderr


def test_import_reproduces_the_export_and_a_second_import_changes_nothing(filled: Path, tmp_path: Path) -> None:
    """An export imported into an empty tier exports byte for byte the same; importing it again gives the same
    state (no duplicated message, write or checkpoint)."""
    dump = tmp_path / "dump.jsonl"
    original = _export(filled, dump)
    target = _config(tmp_path, "target")
    for run in range(2):
        result = _invoke("--config", str(target), "import", str(dump))
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("imported 5 sessions, 5 task contexts, 21 messages")
        if run == 0:
            assert "(5 new sessions, 21 new messages" in result.stdout
        else:  # the second import says it added nothing, rather than repeating the first one's counts
            assert "(0 new: the target already held every record)" in result.stdout
        assert _export(target, tmp_path / "again.jsonl") == original


def test_export_and_import_through_a_pipe(filled: Path, tmp_path: Path) -> None:
    """``contextkit export`` to stdout piped into ``contextkit import -`` (real processes, UTF-8 on the wire)."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN_ENV}
    exported = subprocess.run(
        [sys.executable, "-m", "contextkit.cli", "--config", str(filled), "export"], capture_output=True, timeout=120, env=env
    )
    assert exported.returncode == 0, exported.stderr
    target = _config(tmp_path, "piped")
    imported = subprocess.run(
        [sys.executable, "-m", "contextkit.cli", "--config", str(target), "--json", "import", "-"],
        input=exported.stdout, capture_output=True, timeout=120, env=env,
    )
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["counts"]["message"] == 21
    assert _export(target, tmp_path / "piped.jsonl") == exported.stdout


def test_export_of_one_session_holds_only_its_records(filled: Path, tmp_path: Path) -> None:
    """``--session s2`` exports that session with its history and its seed checkpoint thread, nothing else."""
    records = [json.loads(line) for line in _export(filled, tmp_path / "s2.jsonl", "--session", "s2").splitlines()]
    assert [r["session"]["session_id"] for r in records if r["kind"] == "session"] == ["s2"]
    assert {r["stream"] for r in records if r["kind"] == "message"} == {"s2"}
    assert [r["checkpoint_id"] for r in records if r["kind"] == "seed_checkpoint"] == ["cp-1", "cp-0"]
    assert not [r for r in records if r["kind"] == "checkpoint"]


def test_import_refuses_a_truncated_file_and_a_file_without_header(filled: Path, tmp_path: Path) -> None:
    """A file cut before its end record, one that is not an export, or a message the kit would refuse (a NUL
    character) is bad input: one line, exit 2."""
    lines = _export(filled, tmp_path / "full.jsonl").splitlines(keepends=True)
    (tmp_path / "cut.jsonl").write_bytes(b"".join(lines[:-1]))
    target = _config(tmp_path, "target")
    _one_error_line(_invoke("--config", str(target), "import", str(tmp_path / "cut.jsonl")), 2, "truncated")
    (tmp_path / "other.jsonl").write_text('{"hello": 1}\n')
    _one_error_line(_invoke("--config", str(target), "import", str(tmp_path / "other.jsonl")), 2, "header")
    (tmp_path / "broken.jsonl").write_text(lines[0].decode() + "{not json\n")
    _one_error_line(_invoke("--config", str(target), "import", str(tmp_path / "broken.jsonl")), 2, "line 2")
    message = next(json.loads(line) for line in lines if b'"kind":"message"' in line)
    message["message"]["content"] = "nul \u0000 inside"
    (tmp_path / "nul.jsonl").write_text(lines[0].decode() + json.dumps(message) + "\n")
    _one_error_line(_invoke("--config", str(target), "import", str(tmp_path / "nul.jsonl")), 2, "NUL")


# -- migrate --------------------------------------------------------------------------------------------------------
def test_migrate_resumes_after_an_interruption_and_reports_it(filled: Path, tmp_path: Path) -> None:
    """Stopped after 16 records (inside s2), the state file remembers the last finished session; the rerun skips the
    two finished ones and the target ends byte-identical to the source; a state file of another migration is refused
    unless --restart."""
    target = _config(tmp_path, "migrated")
    state = tmp_path / "state.json"
    args = ("migrate", "--from", str(filled), "--to", str(target), "--state", str(state))
    stopped = _invoke(*args, "--stop-after-records", "16")
    _one_error_line(stopped, 1, "run it again to resume")
    saved = json.loads(state.read_text())
    assert saved["phase"] == "sessions" and saved["last"] == "s1"
    resumed = _invoke("--json", *args)
    assert resumed.exit_code == 0, resumed.output
    report = json.loads(resumed.stdout)
    assert report["resumed_after"] == {"phase": "sessions", "id": "s1"} and report["skipped_units"] == 2
    assert not state.exists()
    assert _export(target, tmp_path / "t.jsonl") == _export(filled, tmp_path / "s.jsonl")

    other = _config(tmp_path, "other")
    state.write_text(json.dumps({**saved}))
    _one_error_line(_invoke(*args[:4], str(other), "--state", str(state)), 2, "--restart")
    restarted = _invoke(*args[:4], str(other), "--state", str(state), "--restart")
    assert restarted.exit_code == 0, restarted.output
    assert restarted.stdout.startswith("migrated 5 sessions")


def test_ctrl_c_in_migrate_says_what_was_copied_and_how_to_resume(
    filled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (a KeyboardInterrupt, raised here from the progress callback after the second session) exits 130 with
    what was copied and the command that resumes; running it again resumes after the recorded sessions."""
    import contextkit.transfer

    real_migrate = contextkit.transfer.migrate

    async def interrupted(*args: Any, on_progress: Any = None, **kwargs: Any) -> Any:
        def progress(update: Any) -> None:
            on_progress(update)
            if update.done == 2:
                raise KeyboardInterrupt

        return await real_migrate(*args, on_progress=progress, **kwargs)

    target = _config(tmp_path, "ctrlc")
    state = tmp_path / "ctrlc-state.json"
    args = ("migrate", "--from", str(filled), "--to", str(target), "--state", str(state))
    monkeypatch.setattr(contextkit.transfer, "migrate", interrupted)
    stopped = _invoke(*args)
    assert stopped.exit_code == 130, stopped.output
    assert "Aborted!" not in stopped.output
    message = stopped.stderr.strip().splitlines()[-1]
    assert message.startswith("interrupted: 2/") and "session(s)" in message
    assert f"progress is saved in {state}" in message and "again to resume" in message
    monkeypatch.setattr(contextkit.transfer, "migrate", real_migrate)
    resumed = _invoke("--json", *args)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["skipped_units"] == 2
    assert _export(target, tmp_path / "t.jsonl") == _export(filled, tmp_path / "s.jsonl")


def test_migrate_draws_a_progress_bar_on_a_terminal(filled: Path, tmp_path: Path) -> None:
    """On a terminal (TTY_COMPATIBLE=1 tells rich it is one) migrate shows a progress bar on stderr."""
    target = _config(tmp_path, "bar")
    result = _invoke("migrate", "--from", str(filled), "--to", str(target), env={"TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0, result.output
    assert "migrating" in result.stderr and "/" in result.stderr
    assert result.stdout.startswith("migrated 5 sessions")


# -- checkpoints, cleanup -------------------------------------------------------------------------------------------
def test_checkpoints_lists_a_langgraph_thread_newest_first(filled: Path) -> None:
    """Each checkpoint of the thread with its step, source, parent and number of writes, newest first."""
    result = _invoke("--config", str(filled), "--json", "checkpoints", "graph-1")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["kind"] for row in rows] == ["langgraph"] * 4
    assert [row["step"] for row in rows] == [2, 1, 0, -1]
    assert [row["source"] for row in rows] == ["loop", "loop", "loop", "input"]
    for newer, older in itertools.pairwise(rows):
        assert newer["parent_checkpoint_id"] == older["checkpoint_id"]
    assert rows[-1]["parent_checkpoint_id"] is None
    assert all(isinstance(row["writes"], int) for row in rows)
    limited = json.loads(_invoke("--config", str(filled), "--json", "checkpoints", "graph-1", "--limit", "2").stdout)
    assert [row["checkpoint_id"] for row in limited] == [row["checkpoint_id"] for row in rows[:2]]
    table = _invoke("--config", str(filled), "checkpoints", "graph-1")
    assert table.exit_code == 0 and "4 checkpoint(s) of thread graph-1" in table.stdout


def test_checkpoints_lists_seed_checkpoint_documents_with_their_writes(filled: Path) -> None:
    """A thread of the seed's store_checkpoint: its documents, newest first, with their write counts."""
    rows = json.loads(_invoke("--config", str(filled), "--json", "checkpoints", "s2").stdout)
    assert [(row["kind"], row["checkpoint_id"], row["writes"]) for row in rows] == [("seed", "cp-0", 0), ("seed", "cp-1", 2)]


async def _age(config: Path, session_ids: list[str], hours: float) -> None:
    async with ContextKit.from_config(str(config), env={}) as kit:
        for sid in session_ids:
            session = await kit.hot.get_session(sid)
            assert session is not None
            old = utcnow() - timedelta(hours=hours)
            await kit.hot.put_session(dataclasses.replace(session, last_activity=old))


def test_cleanup_removes_idle_sessions_and_prints_the_count(filled: Path, tmp_path: Path) -> None:
    """Sessions idle for longer than --max-idle-hours go (with their history); the count is printed."""
    asyncio.run(_age(filled, ["s0", "s3"], 48))
    result = _invoke("--config", str(filled), "--json", "cleanup", "--max-idle-hours", "24")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"removed": 2}
    listed = json.loads(_invoke("--config", str(filled), "--json", "sessions", "list").stdout)
    assert sorted(row["session_id"] for row in listed) == ["s1", "s2", "s4"]
    again = _invoke("--config", str(filled), "cleanup", "--max-idle-hours", "24")
    assert again.stdout.strip() == "removed 0 idle session(s)"


# -- bad input ------------------------------------------------------------------------------------------------------
_UNKNOWN = 'hot = "nosuchdb"\n'
_UNREACHABLE = 'fallback = false\ntimeout = 0.5\n[hot]\nbackend = "redis"\nurl = "redis://127.0.0.1:1/0"\n'


@pytest.mark.parametrize(
    ("command", "config_text", "code", "needle"),
    [
        (["export"], None, 2, "does not exist"),
        (["export"], _UNKNOWN, 2, "not one of contextkit's own hot tier backends"),
        (["import", "{dump}"], _UNKNOWN, 2, "not one of contextkit's own hot tier backends"),
        (["checkpoints", "t"], _UNKNOWN, 2, "not one of contextkit's own hot tier backends"),
        (["cleanup", "--max-idle-hours", "1"], _UNKNOWN, 2, "not one of contextkit's own hot tier backends"),
        (["export"], _UNREACHABLE, 1, "127.0.0.1:1"),
        (["import", "{dump}"], _UNREACHABLE, 1, "127.0.0.1:1"),
        (["checkpoints", "t"], _UNREACHABLE, 1, "127.0.0.1:1"),
        (["cleanup", "--max-idle-hours", "1"], _UNREACHABLE, 1, "127.0.0.1:1"),
        (["export", "--session", "nobody"], "{sqlite}", 1, "session 'nobody' does not exist"),
        (["checkpoints", "no-such-thread"], "{sqlite}", 1, "has no checkpoints"),
        (["import", "{tmp}/missing.jsonl"], "{sqlite}", 2, "does not exist"),
        (["export", "--output", "{tmp}/no/dir/x.jsonl"], "{sqlite}", 2, "does not exist"),
        (["cleanup", "--max-idle-hours", "-1"], "{sqlite}", 2, "max_idle_hours"),
    ],
)
def test_bad_input_to_the_data_commands_gives_one_line_and_exit_code(
    tmp_path: Path, command: list[str], config_text: str | None, code: int, needle: str
) -> None:
    if config_text == _UNREACHABLE:
        pytest.importorskip("contextkit_redis", reason="needs the contextkit-redis plugin")
    dump = tmp_path / "dump.jsonl"
    dump.write_text('{"kind":"header","format":"contextkit-export","version":1}\n{"kind":"end","counts":{}}\n')
    args = [part.format(dump=dump, tmp=tmp_path) for part in command]
    if config_text is None:
        config = tmp_path / "missing.toml"
    else:
        sqlite = f'fallback = false\n[hot]\nbackend = "sqlite"\npath = "{tmp_path / "db.sqlite3"}"\n'
        config = _config(tmp_path, "bad", config_text.replace("{sqlite}", sqlite))
    _one_error_line(_invoke("--config", str(config), *args), code, needle)


@pytest.mark.parametrize(
    ("side", "config_text", "code", "needle"),
    [
        ("--from", None, 2, "--from configuration file"),
        ("--to", None, 2, "--to configuration file"),
        ("--to", _UNKNOWN, 2, "not one of contextkit's own hot tier backends"),
        ("--from", _UNREACHABLE, 1, "127.0.0.1:1"),
        ("--to", _UNREACHABLE, 1, "127.0.0.1:1"),
    ],
)
def test_bad_input_to_migrate_gives_one_line_and_exit_code(
    tmp_path: Path, side: str, config_text: str | None, code: int, needle: str
) -> None:
    if config_text == _UNREACHABLE:
        pytest.importorskip("contextkit_redis", reason="needs the contextkit-redis plugin")
    good = _config(tmp_path, "good")
    bad = tmp_path / "missing.toml" if config_text is None else _config(tmp_path, "bad", config_text)
    source, target = (bad, good) if side == "--from" else (good, bad)
    _one_error_line(_invoke("migrate", "--from", str(source), "--to", str(target)), code, needle)


def test_debug_shows_the_traceback_of_a_data_command_and_keeps_the_exit_code(tmp_path: Path) -> None:
    """With --debug the command's exception is shown with its traceback, for the new commands too, and the exit
    code stays the one without --debug (2 for a configuration error)."""
    config = _config(tmp_path, "bad", _UNKNOWN)
    result: Any = _invoke("--debug", "--config", str(config), "export")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "BackendNotFound" in result.stderr
