"""Rows, ratios and targets of one benchmark run, printed as rich tables and written as JSON.

Every ratio is a ratio of *time per operation*: ``row / baseline`` (below 1 means faster than the baseline). Both
come from the same run. A :class:`Target` restates a bar from the issues as a bound on such a ratio (or, for the
one absolute bar, on operations per second) and is judged PASS or MISS; a target whose rows were skipped is "n/a".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from benchmarks.measure import Timing

__all__ = ["Report", "Row", "Target", "TargetResult", "format_ns", "format_rate"]

Metric = Literal["median", "throughput"]


def format_ns(ns: float) -> str:
    """A duration in the unit that keeps 3 significant digits (ns, µs, ms, s)."""
    if ns != ns:  # NaN
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def format_rate(per_s: float) -> str:
    """Operations per second with thousands separators."""
    if per_s != per_s:
        return "-"
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.3g}"


@dataclass
class Row:
    """One figure: a subject (contextkit on a tier, a peer, a raw client) doing one case.

    :param group: the comparison group (checkpointer, history, ...).
    :param case: what is measured (``aput``, ``last-50 read @ 10,000``...).
    :param subject: who does it (``ContextKitSaver redis``, ``InMemorySaver``, ``redis-py SET``...).
    :param timing: the measured durations; None for a skipped row or a non-timing figure.
    :param value: a non-timing figure (bytes per session), shown with ``unit``.
    :param baseline: ``"case / subject"`` of the row of the same group this row's ratio is computed against.
    :param metric: ``median`` compares median times per op; ``throughput`` compares ``1 / ops_per_s`` (for
        concurrent and bulk cases, where the aggregate rate is the figure).
    :param skipped: why the row could not run (then nothing else is shown).
    """

    group: str
    case: str
    subject: str
    timing: Timing | None = None
    value: float | None = None
    unit: str = ""
    baseline: str | None = None
    metric: Metric = "median"
    note: str = ""
    skipped: str | None = None

    @property
    def key(self) -> str:
        """``"case / subject"``, unique within the group."""
        return f"{self.case} / {self.subject}"

    def time_per_op(self, metric: Metric | None = None) -> float | None:
        """Nanoseconds per operation by ``metric`` (the row's own by default); None when not measured."""
        if self.timing is None or self.skipped or not self.timing.samples_ns:
            return None
        if (metric or self.metric) == "throughput":
            rate = self.timing.ops_per_s
            return 1e9 / rate if rate and rate == rate else None
        return self.timing.median_ns


@dataclass(frozen=True)
class Target:
    """A bar from the issues, as a bound on a time ratio (or an absolute rate).

    :param group: the group holding the rows.
    :param label: the bar in the issue's words.
    :param row: key of the measured row.
    :param against: keys of the rows it is compared with; the *fastest* of them is used, so "faster than every
        peer" is one check.
    :param max_ratio: PASS when ``time(row) / time(fastest of against) <= max_ratio``.
    :param min_rate: PASS when ``ops_per_s(row) >= min_rate`` (absolute bars; ``against`` is then empty).
    :param metric: how times are read (see :class:`Row`).
    :param source: where the bar comes from (``issue 4``).
    :param context: keys of rows whose ratio to the same peer is printed beside the verdict, not judged (a bar on
        time is read against what a saver that stores nothing achieves in the same run).
    """

    group: str
    label: str
    row: str
    against: tuple[str, ...] = ()
    max_ratio: float | None = None
    min_rate: float | None = None
    metric: Metric = "median"
    source: str = ""
    context: tuple[str, ...] = ()


@dataclass
class TargetResult:
    """A judged :class:`Target`: the ratio (or rate) found, and PASS / MISS / n/a."""

    target: Target
    value: float | None
    verdict: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        t = self.target
        return {
            "group": t.group,
            "label": t.label,
            "source": t.source,
            "row": t.row,
            "against": list(t.against),
            "max_ratio": t.max_ratio,
            "min_rate": t.min_rate,
            "value": self.value,
            "verdict": self.verdict,
            "detail": self.detail,
        }


@dataclass
class Report:
    """Everything one run measured, in the order it was measured."""

    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        """Record a row (returned, for chaining)."""
        self.rows.append(row)
        return row

    def skip(self, group: str, case: str, subject: str, reason: str) -> Row:
        """Record a row that could not run, with its reason."""
        return self.add(Row(group, case, subject, skipped=reason))

    def expect(self, target: Target) -> None:
        """Register a target to judge once the run is over."""
        self.targets.append(target)

    def find(self, group: str, key: str) -> Row | None:
        """The row ``key`` (``"case / subject"``) of ``group``, or None."""
        for row in self.rows:
            if row.group == group and row.key == key:
                return row
        return None

    def ratio(self, row: Row) -> float | None:
        """Time per op of ``row`` over its baseline's (None without a measured baseline)."""
        if row.baseline is None:
            return None
        base = self.find(row.group, row.baseline)
        mine = row.time_per_op()
        theirs = base.time_per_op(row.metric) if base is not None else None
        if mine is None or not theirs:
            return None
        return mine / theirs

    def judge(self, target: Target) -> TargetResult:
        """PASS, MISS or n/a for ``target``, with the figure and the peer it was compared with (rows holding a
        value instead of a timing, such as bytes, compare their values)."""
        row = self.find(target.group, target.row)
        if row is None or _figure(row, target.metric) is None:
            reason = row.skipped if row is not None and row.skipped else "not measured"
            return TargetResult(target, None, "n/a", f"{target.row}: {reason}")
        if target.min_rate is not None:
            assert row.timing is not None
            rate = row.timing.ops_per_s
            verdict = "PASS" if rate >= target.min_rate else "MISS"
            return TargetResult(target, rate, verdict, f"{format_rate(rate)}/s vs >= {format_rate(target.min_rate)}/s")
        peers = [(key, self.find(target.group, key)) for key in target.against]
        measured: list[tuple[str, float]] = []
        for key, peer in peers:
            took = _figure(peer, target.metric) if peer is not None else None
            if took:
                measured.append((key, took))
        if not measured:
            return TargetResult(target, None, "n/a", "no comparison row was measured")
        fastest_key, fastest = min(measured, key=lambda item: item[1])
        mine = _figure(row, target.metric)
        assert mine is not None and target.max_ratio is not None
        ratio = mine / fastest
        verdict = "PASS" if ratio <= target.max_ratio else "MISS"
        missing = [key for key, p in peers if p is None or _figure(p, target.metric) is None]
        detail = f"{ratio:.3g}x of {fastest_key.split(' / ', 1)[1]} (bar <= {target.max_ratio:g}x)"
        if missing:
            detail += f"; not compared (skipped): {', '.join(k.split(' / ', 1)[1] for k in missing)}"
        for key in target.context:
            other = self.find(target.group, key)
            took = _figure(other, target.metric) if other is not None else None
            if took:
                detail += f"; {key.split(' / ', 1)[1]} {took / fastest:.3g}x"
        return TargetResult(target, ratio, verdict, detail)

    def results(self) -> list[TargetResult]:
        """Every registered target, judged."""
        return [self.judge(t) for t in self.targets]

    # -- output ---------------------------------------------------------------------------------------------------
    def render(self, console: Console, groups: Iterable[str]) -> None:
        """One table per group (in ``groups`` order), then the targets."""
        by_row: dict[tuple[str, str], list[TargetResult]] = {}
        results = self.results()
        for result in results:
            by_row.setdefault((result.target.group, result.target.row), []).append(result)
        for group in groups:
            rows = [r for r in self.rows if r.group == group]
            if not rows:
                continue
            table = Table(title=f"{group}", title_justify="left", show_lines=False, pad_edge=False)
            for column, justify in (
                ("case", "left"),
                ("subject", "left"),
                ("median", "right"),
                ("p90", "right"),
                ("ops/s", "right"),
                ("n", "right"),
                ("ratio", "right"),
                ("vs", "left"),
                ("target", "left"),
                ("note", "left"),
            ):
                table.add_column(column, justify=justify)  # type: ignore[arg-type]
            for row in rows:
                checks = " ".join(f"{r.verdict}" + (f" {r.value:.3g}x" if r.value is not None and r.target.max_ratio
                                                    else "") for r in by_row.get((group, row.key), []))
                if row.skipped:
                    reason = Text(f"skipped: {row.skipped}", style="yellow", justify="left")
                    table.add_row(row.case, row.subject, reason, "", "", "", "", "", checks, "")
                    continue
                if row.value is not None:
                    table.add_row(row.case, row.subject, f"{row.value:,.0f} {row.unit}", "", "", "", "", "", checks, row.note)
                    continue
                assert row.timing is not None
                ratio = self.ratio(row)
                basis = "" if row.baseline is None else row.baseline.split(" / ", 1)[1]
                if row.baseline is not None and row.baseline.split(" / ", 1)[0] != row.case:
                    base_case, base_subject = row.baseline.split(" / ", 1)
                    basis = base_case if base_subject == row.subject else row.baseline
                if row.metric == "throughput" and basis:
                    basis += " (rate)"
                table.add_row(
                    row.case,
                    row.subject,
                    format_ns(row.timing.median_ns),
                    format_ns(row.timing.p90_ns),
                    format_rate(row.timing.ops_per_s),
                    str(row.timing.ops),
                    "-" if ratio is None else f"{ratio:.3g}x",
                    basis,
                    _colour(checks),
                    row.note,
                )
            console.print(table)
            console.print()
        if results:
            table = Table(title="targets (ratios of time per operation, or of bytes; the bar is from the issue)",
                          title_justify="left")
            for column in ("group", "target", "source", "found", "verdict"):
                table.add_column(column)
            for result in results:
                table.add_row(
                    result.target.group, result.target.label, result.target.source, result.detail, _colour(result.verdict)
                )
            console.print(table)
        for note in self.notes:
            console.print(f"note: {note}")

    def to_json(self) -> dict[str, Any]:
        """The whole run as a JSON-ready dict (times in ns per operation)."""
        rows = []
        for row in self.rows:
            item: dict[str, Any] = {"group": row.group, "case": row.case, "subject": row.subject}
            if row.skipped:
                item["skipped"] = row.skipped
            elif row.value is not None:
                item.update(value=row.value, unit=row.unit, note=row.note)
            elif row.timing is not None:
                ratio = self.ratio(row)
                item.update(
                    median_ns=_finite(row.timing.median_ns),
                    p90_ns=_finite(row.timing.p90_ns),
                    ops_per_s=_finite(row.timing.ops_per_s),
                    n=row.timing.ops,
                    baseline=row.baseline,
                    metric=row.metric,
                    ratio=ratio,
                    note=row.note,
                )
            rows.append(item)
        return {
            "machine": self.machine,
            "rows": rows,
            "targets": [r.to_json() for r in self.results()],
            "notes": self.notes,
        }


def _figure(row: Row, metric: Metric) -> float | None:
    """What a target compares of ``row``: its value (bytes, ...) when it holds one, else its time per operation."""
    if row.value is not None and not row.skipped:
        return row.value
    return row.time_per_op(metric)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _colour(text: str) -> str:
    return text.replace("PASS", "[green]PASS[/]").replace("MISS", "[red]MISS[/]")
