"""Markdown tables of a run's JSON (``--json FILE``), as docs/benchmarks.md shows them:
``python -m benchmarks.markdown FILE.json``. One table per group, then the targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.report import format_ns, format_rate

__all__ = ["to_markdown"]


def _basis(row: dict[str, Any]) -> str:
    baseline: str | None = row.get("baseline")
    if not baseline:
        return ""
    base_case, base_subject = baseline.split(" / ", 1)
    basis: str = base_subject if base_case == row["case"] else (base_case if base_subject == row["subject"] else baseline)
    return basis + (" (rate)" if row.get("metric") == "throughput" else "")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _time(value: float | None) -> str:
    return "-" if value is None else format_ns(value)


def to_markdown(data: dict[str, Any]) -> str:
    """The tables of one run (the dict ``--json`` wrote)."""
    out: list[str] = []
    groups: list[str] = []
    for row in data["rows"]:
        if row["group"] not in groups:
            groups.append(row["group"])
    for group in groups:
        out += [f"### {group}", "", "| case | subject | median | p90 | ops/s | n | ratio | vs | note |",
                "|---|---|---|---|---|---|---|---|---|"]
        for row in (r for r in data["rows"] if r["group"] == group):
            if "skipped" in row:
                cells = [row["case"], row["subject"], f"skipped: {row['skipped']}", "", "", "", "", "", ""]
            elif "value" in row:
                cells = [row["case"], row["subject"], f"{row['value']:,.0f} {row['unit']}", "", "", "", "", "",
                         row.get("note", "")]
            else:
                ratio = row.get("ratio")
                rate = row.get("ops_per_s")
                cells = [row["case"], row["subject"], _time(row.get("median_ns")), _time(row.get("p90_ns")),
                         "-" if rate is None else format_rate(rate), str(row.get("n", "")),
                         "-" if ratio is None else f"{ratio:.3g}x", _basis(row), row.get("note", "")]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    if data.get("targets"):
        # The target's own words name it; where a bar was first asked for is project history, not the reader's.
        out += ["### Targets", "", "| group | target | found | verdict |", "|---|---|---|---|"]
        for target in data["targets"]:
            cells = [target["group"], target["label"], target["detail"], f"**{target['verdict']}**"]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the markdown of the JSON file given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.markdown RUN.json", file=sys.stderr)
        return 2
    print(to_markdown(json.loads(Path(args[0]).read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
