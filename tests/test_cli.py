"""The ``contextkit`` command: plugins, doctor, sessions, history, and one-line errors with exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from contextkit.cli import cli


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contextkit.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_plugins_lists_memory_with_distribution_version_hooks_and_tiers() -> None:
    result = CliRunner().invoke(cli, ["plugins"], obj={})
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    memory = rows["memory"]
    assert memory["distribution"] == "contextkit"  # the memory tier is built into the contextkit distribution
    assert memory["version"] == "0.1.0"
    assert "contextkit_register_backends" in memory["hooks"]
    assert memory["tiers"] == {"hot": ["memory"], "cold": ["memory"]}


def test_doctor_reports_healthy_memory_tier_as_json(tmp_path: Path) -> None:
    config = tmp_path / "ck.toml"
    config.write_text('hot = "memory"\ncold = "memory"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "--json", "doctor"], obj={})
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "healthy" and report["hot"]["status"] == "healthy"


_UNREACHABLE_REDIS = 'hot = {backend = "redis", url = "redis://127.0.0.1:1/0"}\ntimeout = 0.5\n'


def test_doctor_exits_1_and_reports_the_hot_tier_down_when_redis_is_unreachable(tmp_path: Path) -> None:
    """An unreachable Redis (fallback off, the default): the report says the hot tier is down and why, exit 1."""
    pytest.importorskip("contextkit_redis", reason="needs the contextkit-redis plugin (service: redis)")
    config = tmp_path / "ck.toml"
    config.write_text(_UNREACHABLE_REDIS)
    result = _run("--config", str(config), "--json", "doctor")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "unhealthy"
    assert report["hot"]["status"] == "down" and "127.0.0.1:1" in report["hot"]["error"]
    table = _run("--config", str(config), "doctor")
    assert table.returncode == 1
    assert "unhealthy" in table.stdout and "down" in table.stdout and "Traceback" not in table.stderr


def test_doctor_exits_1_when_the_kit_runs_degraded_on_the_memory_fallback(tmp_path: Path) -> None:
    """fallback = true keeps an app running on memory, but the doctor does not call that fine: exit 1."""
    pytest.importorskip("contextkit_redis", reason="needs the contextkit-redis plugin (service: redis)")
    config = tmp_path / "ck.toml"
    config.write_text("fallback = true\n" + _UNREACHABLE_REDIS)
    result = _run("--config", str(config), "--json", "doctor")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "degraded" and report["storage_backend"] == "memory"


@pytest.mark.parametrize("args", [["sessions", "list"], ["sessions", "show", "s1"], ["history", "s1"]], ids=" ".join)
def test_read_commands_refuse_to_run_on_the_memory_fallback(tmp_path: Path, args: list[str]) -> None:
    """Even with fallback = true in the configuration, the commands that read data fail on an unreachable hot tier
    (one line, exit 1) instead of answering "0 session(s)" from an empty memory tier."""
    pytest.importorskip("contextkit_redis", reason="needs the contextkit-redis plugin (service: redis)")
    (tmp_path / "contextkit.toml").write_text("fallback = true\n" + _UNREACHABLE_REDIS)
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and "127.0.0.1:1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "session(s)" not in result.stdout


@pytest.mark.parametrize(
    ("args", "config_text", "code", "needle"),
    [
        (["--config", "missing.toml", "doctor"], None, 2, "does not exist"),
        (["doctor"], 'hot = "nosuchdb"\n', 2, "not one of contextkit's own hot tier backends"),
        (["doctor"], 'hot = "memroy"\n', 2, "did you mean 'memory'?"),
        (["doctor"], "hot = [\n", 2, "not valid TOML"),
        (["doctor"], "bogus = 1\n", 2, "unknown configuration key"),
        (["sessions", "show", "nobody"], 'hot = "memory"\n', 1, "does not exist"),
        (["history", "nobody"], 'hot = "memory"\n', 1, "no history for 'nobody': no message was added"),
    ],
)
def test_bad_input_gives_one_clear_line_and_exit_code(
    tmp_path: Path, args: list[str], config_text: str | None, code: int, needle: str
) -> None:
    if config_text is not None:
        (tmp_path / "contextkit.toml").write_text(config_text)
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_flag_shows_the_traceback_and_keeps_the_exit_code(tmp_path: Path) -> None:
    """``--debug`` adds the traceback; a configuration error still exits 2, as without it."""
    (tmp_path / "contextkit.toml").write_text('hot = "nosuchdb"\n')
    result = _run("--debug", "doctor", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: no hot tier backend named 'nosuchdb'")


def test_doctor_prints_latency_with_two_decimals(tmp_path: Path) -> None:
    """The table shows ``latency_ms=0.12`` (or ``<0.01``), not a float's seventeen digits."""
    import re

    (tmp_path / "contextkit.toml").write_text('hot = "memory"\n')
    result = subprocess.run(
        [sys.executable, "-m", "contextkit.cli", "doctor"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "300"},
    )
    assert result.returncode == 0, result.stderr
    shown = re.search(r"latency_ms=(\S+?)[,\s│]", result.stdout)
    assert shown is not None, result.stdout
    assert re.fullmatch(r"<0\.01|\d+\.\d\d", shown.group(1)), shown.group(1)


def test_sessions_list_and_history_on_a_durable_tier(tmp_path: Path) -> None:
    pytest.importorskip("contextkit_sqlite", reason="needs the contextkit-sqlite plugin")
    db = tmp_path / "cli.sqlite3"
    (tmp_path / "contextkit.toml").write_text(f'hot = {{backend = "sqlite", path = "{db}"}}\n')
    script = (
        "import asyncio\nfrom contextkit import ContextKit\n"
        "async def main():\n"
        "    async with ContextKit.from_config() as kit:\n"
        "        await kit.create_session('s1', 'u1')\n"
        "        for i in range(3): await kit.add_conversation_message('s1', 'user', f'm{i}')\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120)
    listed = json.loads(_run("--json", "sessions", "list", cwd=tmp_path).stdout)
    assert [row["session_id"] for row in listed] == ["s1"]
    history = json.loads(_run("--json", "history", "s1", "--limit", "2", cwd=tmp_path).stdout)
    assert [row["content"] for row in history] == ["m1", "m2"]


def test_text_output_shows_brackets_in_data_as_they_are(tmp_path: Path) -> None:
    """Ids, roles and message text are data: square brackets in them (rich's markup) are printed as they are.
    A message holding "[/]" stopped ``contextkit history`` with a traceback, "[bold]" and "[link=...]" were applied,
    and "[checkpoints]" vanished from du's hint."""
    pytest.importorskip("contextkit_sqlite", reason="needs the contextkit-sqlite plugin")
    import os

    db = tmp_path / "cli.sqlite3"
    (tmp_path / "contextkit.toml").write_text(f'hot = {{backend = "sqlite", path = "{db}"}}\n')
    texts = ["use arr[0] and [bold]x[/] then [/] done", "a [link=http://evil]click[/link] text"]
    script = (
        "import asyncio\nfrom contextkit import ContextKit\nfrom contextkit.langgraph import ContextKitSaver\n"
        "from langgraph.checkpoint.base import empty_checkpoint\n"
        "async def main():\n"
        "    async with ContextKit.from_config() as kit:\n"
        "        await kit.create_session('s[1]', 'u[red]x')\n"
        f"        for text in {texts!r}: await kit.add_conversation_message('s[1]', '[i]user', text)\n"
        "        saver = kit.checkpointer()\n"
        "        cfg = {'configurable': {'thread_id': 't[/]1', 'checkpoint_ns': ''}}\n"
        "        await saver.aput(cfg, empty_checkpoint(), {'source': '[b]input', 'step': -1}, {})\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120)
    env = {**os.environ, "COLUMNS": "400"}

    def text_of(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "contextkit.cli", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    history = text_of("history", "s[1]")
    for text in texts:
        assert f"[i]user: {text}" in history, history
    sessions = text_of("sessions", "list")
    assert "s[1]" in sessions and "u[red]x" in sessions, sessions
    assert "t[/]1" in text_of("checkpoints", "du")
    du = text_of("checkpoints", "du", "t[/]1")
    assert "thread t[/]1:" in du and "([checkpoints] keep_latest / max_age)" in du, du
    listed = text_of("checkpoints", "list", "t[/]1")
    assert "t[/]1" in listed and "[b]input" in listed, listed


def test_hot_restored_makes_a_sqlite_hot_file_copied_back_continue_above_the_archive(tmp_path: Path) -> None:
    """An older backup of a SQLite hot file copied back (``hot-restored --from``, or copied by hand and then
    ``hot-restored``): the next message continues above the archive's seqs, the session's counters go on from the
    archive's, and the reconcile is counted; without the declaration the copy would number from its own 3."""
    pytest.importorskip("contextkit_sqlite", reason="needs the contextkit-sqlite plugin")
    import asyncio

    from contextkit import ContextKit
    from contextkit_sqlite.testing import copy_database

    hot, backup = tmp_path / "hot.sqlite3", tmp_path / "backup.sqlite3"
    (tmp_path / "contextkit.toml").write_text(
        f'hot = {{backend = "sqlite", path = "{hot}"}}\ncold = {{backend = "sqlite", path = "{tmp_path / "cold.sqlite3"}"}}\n'
    )

    async def write(first: int, count: int) -> None:
        async with ContextKit.from_config(tmp_path / "contextkit.toml") as kit:
            if first == 0:
                await kit.create_session("s1", "u1")
            for i in range(first, first + count):
                await kit.update_session("s1", increment_requests=True)
                await kit.add_message("s1", "user", f"m{i}")

    async def next_seq() -> tuple[int, int, int]:
        async with ContextKit.from_config(tmp_path / "contextkit.toml") as kit:
            message = await kit.add_message("s1", "user", "after the restore")
            session = await kit.get_session("s1")
            assert session is not None
            return message.seq, session.request_count, (await kit.get_metrics())["tiering"]["reconciled"]

    asyncio.run(write(0, 3))
    copy_database(hot, backup)
    asyncio.run(write(3, 2))
    result = _run("--json", "hot-restored", "--from", str(backup), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["epoch"] == 1
    assert asyncio.run(next_seq()) == (6, 5, 1)

    # By hand: the file copied back, then the declaration (the epoch counts on from the backup's own, 0).
    copy_database(backup, hot)
    result = _run("hot-restored", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "epoch 1" in result.stdout
    assert asyncio.run(next_seq()) == (7, 5, 1)


@pytest.mark.parametrize(
    ("config_text", "args", "code", "needle"),
    [
        ('hot = "memory"\ncold = "memory"\n', [], 1, "takes no restore declaration"),
        ("sqlite", ["--from", "missing.sqlite3"], 2, "does not exist"),
        ("sqlite", ["--from", "contextkit.toml"], 2, "not a SQLite database"),
    ],
)
def test_hot_restored_refuses_what_it_cannot_do_in_one_line(
    tmp_path: Path, config_text: str, args: list[str], code: int, needle: str
) -> None:
    """A hot tier that takes no declaration, or a backup that is missing or is not a SQLite file: one line, the
    exit code of its kind, and the hot file unchanged."""
    if config_text == "sqlite":
        pytest.importorskip("contextkit_sqlite", reason="needs the contextkit-sqlite plugin")
        config_text = f'hot = {{backend = "sqlite", path = "{tmp_path / "hot.sqlite3"}"}}\n'
    (tmp_path / "contextkit.toml").write_text(config_text)
    result = _run("hot-restored", *args, cwd=tmp_path)
    assert result.returncode == code, result.stdout + result.stderr
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
