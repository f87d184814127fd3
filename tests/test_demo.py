"""``contextkit demo`` run twice in separate processes: the second run resumes the thread the first left."""

import json
import subprocess
import sys
from pathlib import Path


def _demo(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contextkit.cli", *extra, "demo", "--path", str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=path.parent,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


def test_second_run_resumes_the_thread_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.sqlite3"
    first = _demo(path)
    assert first.returncode == 0, first.stderr
    assert "on the sqlite hot tier" in first.stdout
    assert "starting thread demo-thread" in first.stdout
    assert "waiting at approve" in first.stdout

    second = _demo(path)
    assert second.returncode == 0, second.stderr
    assert "resuming thread demo-thread" in second.stdout
    assert "done: answer to 'sales last quarter' (3 sources)" in second.stdout
    assert "approved" in second.stdout  # the history table shows the approval message
    assert second.stdout.count("plan: split") == 1  # each step enters the history once, in the run that made it
    assert "events per table" in second.stdout  # the archive counts events (one per write), not records


def test_json_summary_reports_resume_and_archive(tmp_path: Path) -> None:
    path = tmp_path / "demo.sqlite3"
    first = json.loads(_demo(path, "--json").stdout)
    second = json.loads(_demo(path, "--json").stdout)
    assert (first["resumed"], second["resumed"]) == (False, True)
    assert first["waiting_at"] == ["approve"] and second["waiting_at"] == []
    assert second["answer"] == "answer to 'sales last quarter' (3 sources)"
    assert second["archive"]["context_conversations"] == second["messages"]
    assert second["archive"]["context_sessions"] >= 3
