"""The benchmark harness (``python -m benchmarks``) keeps running: a tiny run produces every expected row, a JSON
report and no exception. Nothing here asserts a timing; the figures themselves belong to ``docs/benchmarks.md``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.markdown import to_markdown
from benchmarks.measure import Timing
from benchmarks.report import Report, Row, Target
from contextkit.testing.services import missing_service

ROOT = Path(__file__).resolve().parent.parent


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _run_benchmarks(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTEXTKIT_BENCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--size", "smoke", "--no-launch", "--json", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env=env,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert "targets" in result.stdout  # the tables were printed
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert not report["notes"], report["notes"]  # no group failed
    return report


def _rows(report: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["group"], r["case"], r["subject"]): r for r in report["rows"]}


def _measured(row: dict[str, Any] | None) -> bool:
    return row is not None and "skipped" not in row and (row.get("median_ns") is not None or "value" in row)


def test_smoke_run_reports_every_memory_and_redis_row_and_judges_every_target(tmp_path: Path) -> None:
    """history, sessions, checkpointer and memory at smoke size on the memory and Redis tiers: every memory-tier row
    is measured, every Redis row is measured or skipped with a reason, and each target is PASS, MISS or n/a."""
    report = _run_benchmarks(
        tmp_path, "--only", "history,sessions,checkpointer,memory", "--tiers", "memory,redis", "--peers", "plainredis"
    )
    rows = _rows(report)
    assert report["machine"]["cpu_count"] and report["machine"]["packages"]["contextkit"]
    for length in ("10", "100"):
        assert _measured(rows.get(("history", f"last-50 read @ {length} msgs", "contextkit memory")))
    for case in ("update_session", "update_session, concurrent writers", "append + last-50 read"):
        assert _measured(rows.get(("sessions", case, "contextkit memory")))
    for case in ("aput", "aput_writes", "aget_tuple (latest)", "alist(limit=10)", "aput, concurrent threads",
                 "graph ainvoke (3 nodes)"):
        assert _measured(rows.get(("checkpointer", case, "InMemorySaver"))), case
        assert _measured(rows.get(("checkpointer", case, "ContextKitSaver memory"))), case
        saver_row = rows.get(("checkpointer", case, "ContextKitSaver redis"))
        assert saver_row is not None and (_measured(saver_row) or saver_row["skipped"])
    assert _measured(rows.get(("checkpointer", "graph ainvoke (3 nodes)", "no checkpointer")))
    assert rows[("memory", "300 sessions", "contextkit memory")]["value"] > 0
    assert rows[("memory", "300 messages (1 session)", "contextkit memory")]["value"] > 0

    redis_rows = [r for key, r in rows.items() if "redis" in key[2] and "ContextKitSaver" not in key[2]]
    assert redis_rows
    if _reachable(6379):
        skipped = [r for r in redis_rows if not _measured(r)]
        assert not skipped, skipped
    else:
        assert all(r.get("skipped") for r in redis_rows)
        missing_service("redis", "127.0.0.1:6379 does not answer; the Redis rows were only checked as skipped")

    labels = {t["label"]: t for t in report["targets"]}
    assert "memory: aput >= InMemorySaver" in labels
    assert "redis: update_session within 1.5x of raw redis-py" in labels
    assert {t["verdict"] for t in report["targets"]} <= {"PASS", "MISS", "n/a"}

    # The markdown of the run (what docs/benchmarks.md shows): a table per group, every row, every target.
    markdown = to_markdown(report)
    for group in ("history", "sessions", "checkpointer", "memory"):
        assert f"### {group}\n" in markdown
    assert markdown.count("\n| ") == len(report["rows"]) + len(report["targets"]) + 4 + 1  # + a header per table
    assert "| memory: aput >= InMemorySaver |" in markdown


@pytest.mark.postgres
@pytest.mark.slow
def test_smoke_run_of_raw_floors_and_archiver_measures_postgres_and_skips_clickhouse_without_url(tmp_path: Path) -> None:
    """raw and archiver at smoke size: the asyncpg COPY floor and the archiver's drain into PostgreSQL are measured;
    without CONTEXTKIT_TEST_CLICKHOUSE_URL (and with --no-launch) the ClickHouse rows say why they were skipped."""
    if not _reachable(5432):
        missing_service("postgres", "127.0.0.1:5432 does not answer")
    report = _run_benchmarks(tmp_path, "--only", "raw,archiver", "--tiers", "memory")
    rows = _rows(report)
    assert _measured(rows.get(("raw", "bulk insert 200 rows", "asyncpg COPY")))
    assert _measured(rows.get(("archiver", "drain 200 messages", "asyncpg COPY (same rows)")))
    assert _measured(rows.get(("archiver", "drain 200 messages", "contextkit -> postgres")))
    assert _measured(rows.get(("archiver", "add_conversation_message", "memory, cold postgres")))
    clickhouse = rows[("archiver", "drain 200 messages", "contextkit -> clickhouse")]
    assert _measured(clickhouse) or "CLICKHOUSE" in clickhouse["skipped"]


def test_targets_compare_with_the_fastest_peer_and_say_na_for_skipped_rows() -> None:
    """A bound on a time ratio is judged against the fastest of the compared rows; a skipped row gives n/a."""
    report = Report()

    def row(subject: str, ns: float) -> Row:
        return report.add(Row("g", "op", subject, Timing([ns] * 3, ops=3, wall_ns=int(ns * 3))))

    row("ours", 100.0)
    row("slow peer", 2000.0)
    row("fast peer", 500.0)
    report.skip("g", "op", "absent", "no server")
    faster = report.judge(Target("g", "5x faster than every peer", "op / ours", ("op / slow peer", "op / fast peer"), 0.2))
    assert faster.verdict == "PASS" and faster.value == pytest.approx(0.2)
    tenfold = report.judge(Target("g", "10x", "op / ours", ("op / slow peer", "op / fast peer"), 0.1))
    assert tenfold.verdict == "MISS"
    assert report.judge(Target("g", "vs absent", "op / ours", ("op / absent",), 1.0)).verdict == "n/a"
    assert report.judge(Target("g", "absent vs", "op / absent", ("op / ours",), 1.0)).verdict == "n/a"
    rate = report.judge(Target("g", "rate", "op / ours", min_rate=1e6))
    assert rate.verdict == "PASS"  # 100 ns per op is 10 million per second
    # a context row's ratio to the same peer is shown, not judged; a context row not measured is left out
    shown = report.judge(
        Target("g", "10x", "op / ours", ("op / slow peer", "op / fast peer"), 0.1, context=("op / slow peer", "op / absent"))
    )
    assert shown.verdict == "MISS" and shown.detail.endswith("; slow peer 4x")


def test_targets_on_value_rows_compare_the_values() -> None:
    """A row holding a value (bytes) is judged by its value against the compared rows' values (issue 19's bytes
    bars: bytes against the text floor, 1,000-turn bytes against 100-turn bytes)."""
    report = Report()
    report.add(Row("g", "text", "floor", value=1_000.0, unit="B"))
    report.add(Row("g", "bytes", "ours", value=4_000.0, unit="B"))
    report.skip("g", "bytes", "absent", "no server")
    assert report.judge(Target("g", "<= 5x the text", "bytes / ours", ("text / floor",), 5.0)).verdict == "PASS"
    assert report.judge(Target("g", "<= 3x the text", "bytes / ours", ("text / floor",), 3.0)).verdict == "MISS"
    assert report.judge(Target("g", "absent", "bytes / absent", ("text / floor",), 3.0)).verdict == "n/a"


def test_smoke_run_of_the_storage_group_measures_bytes_and_time_of_both_graph_kinds(tmp_path: Path) -> None:
    """storage at smoke size on the memory and SQLite tiers with the SQLite peer: the text floor, and bytes and time
    rows for MessagesState and DeltaChannel per saver (each run checks its thread reads back whole)."""
    report = _run_benchmarks(tmp_path, "--only", "storage", "--tiers", "memory,sqlite", "--peers", "sqlite")
    rows = _rows(report)
    assert rows[("storage", "message text of 5 turns", "message text (floor)")]["value"] > 0
    for kind in ("MessagesState", "DeltaChannel"):
        for subject in ("InMemorySaver", "ContextKitSaver memory", "ContextKitSaver sqlite", "AsyncSqliteSaver"):
            assert rows[("storage", f"bytes after 5 turns, {kind}", subject)]["value"] > 0, (kind, subject)
            assert _measured(rows.get(("storage", f"run of 5 turns, {kind}", subject))), (kind, subject)
