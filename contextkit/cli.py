"""The ``contextkit`` command line: plugins, doctor, demo, sessions, history, checkpoints (list, du, prune), export,
import, migrate, cleanup, hot-restored, dead-letters.

Output is rich text for people and JSON with ``--json`` for scripts. Errors print one clear line and exit with 2
(bad usage or configuration) or 1 (a runtime failure); ``--debug`` shows the traceback instead. The commands that
read or write data (sessions, history, checkpoints, export, import, migrate, cleanup) never fall back to the memory
tier, whatever the configuration says: an unreachable tier is an error there, not an empty store. ``doctor`` exits
1 unless every tier is healthy. Export, import and migrate are :mod:`contextkit.transfer`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from contextkit.errors import BackendUnavailable, ConfigError, ContextKitError, InvalidInput
from contextkit.masking import mask_secrets
from contextkit.plugins import get_plugin_manager

if TYPE_CHECKING:
    from contextkit.kit import ContextKit
    from contextkit.stores import RetentionPolicy, StoreStats
    from contextkit.transfer import MigrationProgress

__all__ = ["main"]

T = TypeVar("T")


class _Failure(click.ClickException):
    """A one-line error with its exit code (2: usage or configuration, 1: runtime)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return self.code

    def show(self, file: Any = None) -> None:
        click.echo(mask_secrets(f"error: {self.message}"), err=True)


def _run(ctx: click.Context, factory: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except (ConfigError, InvalidInput) as exc:
        _fail(ctx, exc, str(exc), 2)
    except ContextKitError as exc:
        _fail(ctx, exc, str(exc), 1)
    except Exception as exc:
        # Not one of ours (a bug, or a driver error a backend did not translate): one masked line, since a
        # traceback would print its message and chained causes unmasked; --debug still shows the traceback.
        _fail(ctx, exc, f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)


def _fail(ctx: click.Context, exc: BaseException, message: str, code: int) -> NoReturn:
    """Exit with ``code`` after one error line; with ``--debug`` the traceback first (same exit code, so a script
    that checks for 2 on a configuration error sees 2 with or without ``--debug``)."""
    if ctx.find_root().obj.get("debug"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    raise _Failure(message, code) from None


def _say(text: str, *, err: bool = False) -> None:
    """Print a line of the CLI's own (a summary, a warning) through :func:`contextkit.masking.mask_secrets`."""
    click.echo(mask_secrets(text), err=err)


def _shown(value: Any) -> str:
    """A health value for people: floats (latencies in ms) with two decimals, not seventeen digits."""
    if isinstance(value, float):
        return "<0.01" if 0 < value < 0.01 else f"{value:.2f}"
    return str(value)


def _kit_config(ctx: click.Context) -> Mapping[str, Any] | str | None:
    path = ctx.obj.get("config")
    return str(path) if path else None


def _data_kit(ctx: click.Context) -> ContextKit:
    """The configured kit for a command that reads or writes data: no fallback to an empty memory tier, even with
    ``fallback = true`` in the configuration (0 sessions listed from process memory would be a wrong answer)."""
    from contextkit.kit import ContextKit

    return ContextKit.from_config(_kit_config(ctx.find_root()), fallback=False)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="A contextkit TOML file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, as_json: bool, debug: bool) -> None:
    """contextkit: context storage for AI applications."""
    if config_path is not None and not config_path.is_file():
        raise _Failure(f"configuration file {config_path} does not exist", 2)
    ctx.ensure_object(dict)
    ctx.obj.update(config=config_path, json=as_json, debug=debug)


@cli.command()
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List the installed plugins with their distribution, version, hooks and the tiers they register (JSON)."""
    manager = get_plugin_manager()
    backends = manager.backends.all()
    rows = []
    for info in manager.plugins():
        tiers: dict[str, list[str]] = {"hot": [], "cold": []}
        for backend in backends:
            if backend.plugin == info.name:
                tiers[backend.tier].append(backend.name)
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "hooks": list(info.hooks),
                "tiers": tiers,
            }
        )
    _echo_json(rows)


@cli.command()
# Kept so that scripts passing it keep working: doctor now always exits 1 unless every tier is healthy.
@click.option("--strict", is_flag=True, hidden=True)
@click.pass_context
def doctor(ctx: click.Context, strict: bool) -> None:
    """Check the health of the configured tiers; exit 1 when any tier is degraded or down."""
    from contextkit.kit import ContextKit

    async def check() -> dict[str, Any]:
        kit = ContextKit.from_config(_kit_config(ctx))
        try:
            await kit.open()
        except BackendUnavailable as exc:
            # The hot tier is down and the configuration does not fall back: a report saying so (and exit 1),
            # like any other unhealthy tier, rather than only an error line.
            await kit.aclose()
            return {
                "status": "unhealthy",
                "storage_backend": kit.config.hot,
                "issues": [f"hot tier {kit.config.hot} is unreachable: {exc}"],
                "hot": {"status": "down", "error": str(exc)},
                "cold": None,
                "archiver": None,
                "describe": kit.describe(),
            }
        try:
            report = await kit.health_check()
            report["describe"] = kit.describe()
            return report
        finally:
            await kit.aclose()

    report = _run(ctx, check)
    if ctx.obj["json"]:
        # health and describe are masked where they are built; the report is masked again as a whole because it
        # gathers text from every tier (errors of drivers included) into the one output most often pasted around.
        click.echo(mask_secrets(json.dumps(report, indent=2, default=str, ensure_ascii=False)))
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = Console()
        table = Table(title=f"contextkit doctor: {report['status']}")
        table.add_column("tier")
        table.add_column("status")
        table.add_column("details")
        for tier in ("hot", "cold"):
            health = report.get(tier)
            if health:
                details = ", ".join(f"{k}={_shown(v)}" for k, v in health.items() if k != "status")
                table.add_row(tier, str(health.get("status")), escape(mask_secrets(details)))
        if report.get("archiver"):
            arch = report["archiver"]
            table.add_row("archiver", "ok" if not arch["consecutive_failures"] else "failing",
                          escape(mask_secrets(f"queue_depth={arch['queue_depth']}, rows={arch['rows']}, "
                                              f"last_error={arch['last_error']}")))
        console.print(table)
        for issue in report["issues"]:
            console.print(f"[yellow]issue:[/] {escape(mask_secrets(str(issue)))}")
    if report["status"] != "healthy":
        sys.exit(1)


@cli.group()
def sessions() -> None:
    """Inspect sessions."""


@sessions.command("list")
@click.option("--limit", type=int, default=100, show_default=True)
@click.pass_context
def sessions_list(ctx: click.Context, limit: int) -> None:
    """List sessions of the hot tier."""

    async def fetch() -> list[dict[str, Any]]:
        async with _data_kit(ctx.find_root()) as kit:
            rows = []
            async for session in kit.iter_sessions():
                rows.append(session.to_dict())
                if len(rows) >= limit:
                    break
            return rows

    rows = _run(ctx.find_root(), fetch)
    if ctx.find_root().obj["json"]:
        _echo_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} session(s)")
    for column in ("session_id", "user_id", "status", "request_count", "last_activity"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("session_id", "user_id", "status", "request_count", "last_activity")))
    Console(markup=False).print(table)  # ids are data: "[red]" in one is shown, not applied


@sessions.command("show")
@click.argument("session_id")
@click.pass_context
def sessions_show(ctx: click.Context, session_id: str) -> None:
    """Show one session."""
    root = ctx.find_root()

    async def fetch() -> dict[str, Any] | None:
        async with _data_kit(root) as kit:
            session = await kit.get_session(session_id)
            return None if session is None else session.to_dict()

    row = _run(root, fetch)
    if row is None:
        raise _Failure(f"session {session_id!r} does not exist", 1)
    _echo_json(row)


@cli.command()
@click.argument("session_id")
@click.option("--limit", type=int, default=50, show_default=True)
@click.pass_context
def history(ctx: click.Context, session_id: str, limit: int) -> None:
    """Show the newest messages of a session, oldest first."""

    async def fetch() -> list[dict[str, Any]] | None:
        async with _data_kit(ctx) as kit:
            if await kit.get_session(session_id) is None and not await kit.get_conversation_history(session_id, 1):
                return None
            return [m.to_dict() for m in await kit.get_conversation_history(session_id, limit)]

    rows = _run(ctx, fetch)
    if rows is None:
        raise _Failure(f"no history for {session_id!r}: no message was added under that id and no session has it", 1)
    if ctx.obj["json"]:
        _echo_json(rows)
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    for row in rows:
        # the content is the user's text: "[/]" in it would stop the command and "[link=...]" make a link
        console.print(
            f"[dim]{row['seq']:>5} {escape(str(row['timestamp']))}[/] [bold]{escape(row['role'])}[/]: {escape(row['content'])}"
        )


class _CheckpointsGroup(click.Group):
    """``contextkit checkpoints THREAD`` lists a thread, as it did before the group had subcommands; ``prune`` and
    ``du`` are subcommands, and ``checkpoints list THREAD`` lists a thread whose id is one of their names."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_CheckpointsGroup)
def checkpoints() -> None:
    """LangGraph checkpoints: list a thread (checkpoints THREAD), its bytes (du), retention (prune)."""


def _policy_from(
    kit: ContextKit, keep_latest: int | None, max_age: str | None, keep_first: bool | None
) -> RetentionPolicy:
    """The configured ``[checkpoints]`` retention with the command line's options over it."""
    from contextkit.config import parse_duration
    from contextkit.stores import RetentionPolicy

    base = kit.config.checkpoints.retention
    return RetentionPolicy(
        keep_latest=base.keep_latest if keep_latest is None else keep_latest,
        max_age=base.max_age if max_age is None else parse_duration(max_age, "--max-age"),
        keep_first=base.keep_first if keep_first is None else keep_first,
    )


_RETENTION_OPTIONS = [
    click.option("--keep-latest", type=click.IntRange(min=1), default=None,
                 help="Keep the newest N checkpoints per thread and namespace (default: [checkpoints] keep_latest)."),
    click.option("--max-age", default=None, metavar="AGE",
                 help="Remove checkpoints older than AGE: seconds or 30d, 12h, 15m (default: [checkpoints] max_age)."),
    click.option("--keep-first/--no-keep-first", default=None,
                 help="Keep each namespace's first checkpoint (default: [checkpoints] keep_first)."),
]


def _retention_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_RETENTION_OPTIONS):
        command = option(command)
    return command


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


@checkpoints.command("prune")
@click.argument("thread_id", required=False)
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@_retention_options
@click.pass_context
def checkpoints_prune(
    ctx: click.Context,
    thread_id: str | None,
    dry_run: bool,
    keep_latest: int | None,
    max_age: str | None,
    keep_first: bool | None,
) -> None:
    """Apply the retention policy to THREAD, or to every thread of the hot tier: per namespace the newest
    checkpoints (--keep-latest) younger than --max-age stay, with the first (--keep-first), the newest always,
    and the ancestors their DeltaChannel values are rebuilt from. The archive keeps its copies."""
    root = ctx.find_root()

    async def run() -> list[dict[str, Any]]:
        async with _data_kit(root) as kit:
            policy = _policy_from(kit, keep_latest, max_age, keep_first)
            plans = await kit.prune_checkpoints(None if thread_id is None else [thread_id], policy=policy, dry_run=dry_run)
            return [plan.as_dict() for plan in plans]

    plans = _run(root, run)
    if thread_id is not None and not plans:
        raise _Failure(f"thread {thread_id!r} has no checkpoints in the hot tier", 1)
    if root.obj["json"]:
        _echo_json({"dry_run": dry_run, "threads": plans})
        return
    verb = "would remove" if dry_run else "removed"
    for plan in plans:
        _say(f"{plan['thread_id']}: {verb} {plan['pruned']} checkpoint(s), kept {plan['kept']}, "
             f"{'would free' if dry_run else 'freed'} {_size(plan['freed_bytes'])}")
    pruned = sum(p["pruned"] for p in plans)
    freed = sum(p["freed_bytes"] for p in plans)
    _say(f"{verb} {pruned} checkpoint(s) of {len(plans)} thread(s), {_size(freed)}")


@checkpoints.command("du")
@click.argument("thread_id", required=False)
@_retention_options
@click.pass_context
def checkpoints_du(
    ctx: click.Context, thread_id: str | None, keep_latest: int | None, max_age: str | None, keep_first: bool | None
) -> None:
    """Bytes of THREAD (or of every thread of the hot tier, largest first) per tier and channel, the growth per
    checkpoint, and what the retention policy would free."""
    root = ctx.find_root()

    async def run() -> list[dict[str, Any]]:
        async with _data_kit(root) as kit:
            policy = _policy_from(kit, keep_latest, max_age, keep_first)
            threads = await kit.checkpoint_threads() if thread_id is None else [thread_id]
            reports = []
            for tid in threads:
                usage = await kit.checkpoint_usage(tid, policy=policy)
                if usage is not None:
                    reports.append(usage.as_dict())
            reports.sort(key=lambda r: -r["hot"]["bytes"])
            return reports

    reports = _run(root, run)
    if thread_id is not None and not reports:
        raise _Failure(f"thread {thread_id!r} has no checkpoints", 1)
    if root.obj["json"]:
        _echo_json(reports if thread_id is None else reports[0])
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # thread ids, channel names and errors are shown as they are
    if thread_id is None:
        table = Table(title=f"{len(reports)} thread(s)")
        for column in ("thread", "checkpoints", "hot", "archive", "per checkpoint", "retention frees"):
            table.add_column(column)
        for report in reports:
            archive = report["archive"]
            retention = report["retention"]
            table.add_row(
                report["thread_id"],
                str(report["hot"]["checkpoints"]),
                _size(report["hot"]["bytes"]),
                "" if archive is None else _size(archive["bytes"]),
                _size(report["mean_growth_bytes"]),
                "" if retention is None else f"{_size(retention['freed_bytes'])} ({retention['pruned']} checkpoints)",
            )
        console.print(table)
        return
    report = reports[0]
    hot, archive = report["hot"], report["archive"]
    console.print(f"thread {report['thread_id']}: {hot['checkpoints']} checkpoint(s) in the hot tier, "
                  f"{_size(hot['bytes'])}; {_size(report['mean_growth_bytes'])} per checkpoint")
    table = Table(title="bytes per part and tier")
    table.add_column("part")
    table.add_column("hot")
    table.add_column("archive")
    parts = ["rows", "writes"]
    channels = list(hot["channels"]) + [c for c in (archive or {}).get("channels", {}) if c not in hot["channels"]]
    for part in parts:
        table.add_row(part, _size(hot[part]), "" if archive is None else _size(archive[part]))
    for channel in channels:
        table.add_row(
            f"channel {channel}",
            _size(hot["channels"].get(channel, 0)),
            "" if archive is None else _size(archive["channels"].get(channel, 0)),
        )
    table.add_row("total", _size(hot["bytes"]), "" if archive is None else _size(archive["bytes"]))
    console.print(table)
    if report["archive_error"]:
        console.print(f"archive not counted: {report['archive_error']}")
    growth = Table(title="growth of the newest checkpoints")
    for column in ("checkpoint_id", "ns", "bytes added"):
        growth.add_column(column)
    for entry in report["growth"]:
        growth.add_row(entry["checkpoint_id"], entry["checkpoint_ns"], _size(entry["bytes"]))
    console.print(growth)
    retention = report["retention"]
    if retention is None:
        console.print("retention: no limit configured ([checkpoints] keep_latest / max_age)")
    else:
        console.print(f"retention would remove {retention['pruned']} checkpoint(s) and free "
                      f"{_size(retention['freed_bytes'])} of the hot tier")


@checkpoints.command("list")
@click.argument("thread_id")
@click.option("--limit", type=int, default=20, show_default=True, help="Most checkpoints to list, newest first.")
@click.pass_context
def checkpoints_list(ctx: click.Context, thread_id: str, limit: int) -> None:
    """List the LangGraph checkpoints of a thread, newest first (and its seed checkpoint documents, if any)."""
    from contextkit.stores import Capability, CheckpointStore
    from contextkit.validation import check_id, check_limit

    root = ctx.find_root()

    async def fetch() -> list[dict[str, Any]]:
        check_id(thread_id, "thread id")
        check_limit(limit, "--limit")
        rows: list[dict[str, Any]] = []
        async with _data_kit(root) as kit:
            hot = kit.hot
            if Capability.CHECKPOINTS.value in hot.capabilities and isinstance(hot, CheckpointStore):
                async for bundle in hot.cp_list(thread_id, None, limit=limit):
                    row = bundle.row
                    rows.append(
                        {
                            "kind": "langgraph",
                            "checkpoint_id": row.checkpoint_id,
                            "checkpoint_ns": row.checkpoint_ns,
                            "step": row.metadata.get("step"),
                            "source": row.metadata.get("source"),
                            "parent_checkpoint_id": row.parent_checkpoint_id,
                            "writes": len(bundle.writes),
                        }
                    )
            # Through the tiered layer: with a cold tier, the hot tier answers only for owners it knows.
            documents = await kit.tiered.call(lambda: hot.list_checkpoint_documents(thread_id, limit))
            for document in documents:
                cid = document.get("checkpoint_id")
                rows.append(
                    {
                        "kind": "seed",
                        "checkpoint_id": cid,
                        "checkpoint_ns": "",
                        "step": None,
                        "source": None,
                        "parent_checkpoint_id": None,
                        "writes": len(await kit.get_writes(thread_id, str(cid))) if cid is not None else 0,
                        "created_at": document.get("created_at"),
                    }
                )
        return rows

    rows = _run(root, fetch)
    if not rows:
        raise _Failure(f"thread {thread_id!r} has no checkpoints", 1)
    if root.obj["json"]:
        _echo_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} checkpoint(s) of thread {thread_id}")
    for column in ("kind", "checkpoint_id", "ns", "step", "source", "parent", "writes"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["kind"],
            str(row["checkpoint_id"]),
            row["checkpoint_ns"],
            "" if row["step"] is None else str(row["step"]),
            row["source"] or "",
            row["parent_checkpoint_id"] or "",
            str(row["writes"]),
        )
    Console(markup=False).print(table)


@cli.command("export")
@click.option("--output", "-o", default="-", show_default=True, help="The JSONL file to write; - for stdout.")
@click.option("--session", "session_ids", multiple=True, help="Export only this session (repeatable).")
@click.pass_context
def export_command(ctx: click.Context, output: str, session_ids: tuple[str, ...]) -> None:
    """Export every record of the hot tier as JSONL, one record per line, streamed, in a deterministic order."""
    import io
    import os

    from contextkit.transfer import TransferSummary, export_jsonl

    root = ctx.find_root()

    async def run() -> TransferSummary:
        async with _data_kit(root) as kit:
            selected = list(session_ids) or None
            if output == "-":
                raw = getattr(sys.stdout, "buffer", None)
                if raw is None:  # a text-only stdout (an embedding application): write to it as it is
                    return await export_jsonl(kit.hot, sys.stdout, session_ids=selected)
                stream = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
                try:
                    return await export_jsonl(kit.hot, stream, session_ids=selected)
                finally:
                    stream.flush()
                    stream.detach()
            target = Path(output)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                with tmp.open("w", encoding="utf-8", newline="\n") as handle:
                    summary = await export_jsonl(kit.hot, handle, session_ids=selected)
                os.replace(tmp, target)  # a failed export never leaves half a file under the wanted name
            finally:
                tmp.unlink(missing_ok=True)
            return summary

    if output != "-" and not Path(output).parent.is_dir():
        raise _Failure(f"cannot write {output}: directory {Path(output).parent} does not exist", 2)
    summary = _run(root, run)
    if output == "-":
        click.echo(f"exported {summary.describe()}", err=True)
    elif root.obj["json"]:
        _echo_json({"output": output, **summary.to_dict()})
    else:
        click.echo(f"exported {summary.describe()} to {output}")


@cli.command("import")
@click.argument("file")
@click.pass_context
def import_command(ctx: click.Context, file: str) -> None:
    """Import a JSONL export (- for stdin) into the configured tiers; importing twice gives the same state."""
    import io

    from contextkit.transfer import TransferSummary, import_jsonl

    root = ctx.find_root()
    if file != "-" and not Path(file).is_file():
        raise _Failure(f"file {file} does not exist", 2)

    # Opened here, not in the coroutine: the file is closed below, once the event loop is done with it.
    stdin = file == "-"
    raw = getattr(sys.stdin, "buffer", None) if stdin else None
    handle: Any = open(file, encoding="utf-8") if not stdin else sys.stdin  # noqa: SIM115
    if raw is not None:
        handle = io.TextIOWrapper(raw, encoding="utf-8")

    async def run() -> tuple[TransferSummary, dict[str, int]]:
        async with _data_kit(root) as kit:
            before = await kit.hot.stats()
            summary = await import_jsonl(handle, kit)
            return summary, _added(before, await kit.hot.stats())

    try:
        summary, added = _run(root, run)
    finally:
        if raw is not None:
            handle.detach()
        elif not stdin:
            handle.close()
    if root.obj["json"]:
        _echo_json({**summary.to_dict(), "new": added})
    else:
        if added and not any(added.values()):
            novelty = "0 new: the target already held every record"
        else:
            novelty = ", ".join(f"{count} new {kind}" for kind, count in added.items()) or "new records not counted"
        click.echo(f"imported {summary.describe()} ({novelty})")
        for conflict in summary.conflicts:
            _say(f"warning: {conflict}", err=True)


def _added(before: StoreStats, after: StoreStats) -> dict[str, int]:
    """Records an import added, per kind the tier counts (``-1``: it cannot count that kind cheaply)."""
    added: dict[str, int] = {}
    for kind, field in (("sessions", "sessions"), ("messages", "messages"), ("LangGraph checkpoints", "checkpoints")):
        old, new = getattr(before, field), getattr(after, field)
        if old >= 0 and new >= 0:
            added[kind] = max(0, new - old)
    return added


@cli.command()
@click.option("--from", "source", default=None, help="TOML configuration of the tiers to copy from.")
@click.option("--from-aiecs", "aiecs", default=None, metavar="REDIS_URL",
              help="Import instead a Redis dataset written by the original ContextEngine (AIECS).")
@click.option("--to", "target", required=True, help="TOML configuration of the tiers to copy into.")
@click.option("--state", "state", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Progress file for resuming (default: <target config>.migrate-state.json).")
@click.option("--restart", is_flag=True, help="Ignore the progress of an interrupted run and start over.")
@click.option("--stop-after-records", type=int, default=None, hidden=True)
@click.pass_context
def migrate(
    ctx: click.Context,
    source: str | None,
    aiecs: str | None,
    target: str,
    state: Path | None,
    restart: bool,
    stop_after_records: int | None,
) -> None:
    """Copy sessions, history, task contexts, conversation sessions and checkpoints between two configured tiers.

    Each file alone configures its side (the environment is not read, so both sides are exactly what the files
    say). Interrupted, it resumes after the last recorded session or thread when run again; rerunning a finished
    migration copies everything again and gives the same result. A cold tier in the target receives the records.
    With --from-aiecs redis://... the source is a dataset the original ContextEngine wrote (its Redis layout).
    """
    from contextkit.kit import ContextKit
    from contextkit.transfer import TransferSummary, default_state_path
    from contextkit.transfer import migrate as run_migration

    root = ctx.find_root()
    if (source is None) == (aiecs is None):
        raise _Failure("give exactly one of --from (a configuration file) and --from-aiecs (a redis:// URL)", 2)
    for label, path in (("--from", source), ("--to", target)):
        if path is not None and not Path(path).is_file():
            raise _Failure(f"{label} configuration file {path} does not exist", 2)
    state_path = state or default_state_path(target)
    console = _stderr_console()
    show_progress = console.is_terminal and not root.obj["json"]

    async def run() -> TransferSummary:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if aiecs is not None:
            from contextkit.compat.aiecs_source import AiecsRedisSource

            source_kit: Any = AiecsRedisSource(aiecs)
        else:
            source_kit = ContextKit.from_config(source, env={}, fallback=False)
        target_kit = ContextKit.from_config(target, env={}, fallback=False)
        async with source_kit, target_kit:
            progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[detail]}"), console=console, disable=not show_progress, transient=True,
            )
            task = progress.add_task("migrating", total=None, detail="")

            def report(update: MigrationProgress) -> None:
                progress_seen[0] = update
                detail = f"{update.counts.get('session', 0)} sessions, {update.counts.get('message', 0)} messages"
                progress.update(task, total=update.total, completed=update.done,
                                description=f"migrating {update.phase}", detail=detail)

            with progress:
                return await run_migration(
                    source_kit, target_kit, state_path=state_path, restart=restart, on_progress=report,
                    stop_after_records=stop_after_records,
                )

    progress_seen: list[MigrationProgress | None] = [None]
    try:
        summary = _run(root, run)
    except KeyboardInterrupt:
        origin = f"--from {source}" if source is not None else f"--from-aiecs {mask_secrets(str(aiecs))}"
        _interrupted_migration(progress_seen[0], state_path, origin, target)
    if root.obj["json"]:
        _echo_json(summary.to_dict())
        return
    resumed = ""
    if summary.resumed_after is not None:
        phase, unit = summary.resumed_after
        resumed = f" (resumed after {phase} {unit!r}, {summary.skipped_units} unit(s) skipped)"
    click.echo(f"migrated {summary.describe()}{resumed}")
    for conflict in summary.conflicts:
        _say(f"warning: {conflict}", err=True)


def _interrupted_migration(update: MigrationProgress | None, state_path: Path, origin: str, target: str) -> NoReturn:
    """Ctrl-C during ``migrate``: say what was copied and how to resume, exit 130 (the shell's code for SIGINT)."""
    if update is None:
        done = "nothing was copied yet"
    else:
        counts = ", ".join(f"{n} {kind}(s)" for kind, n in update.counts.items() if n) or "no records"
        of_total = f"{update.done}/{update.total}" if update.total else str(update.done)
        done = f"{of_total} unit(s) copied ({counts}), last in phase {update.phase}"
    if state_path.is_file():
        resume = (
            f"progress is saved in {state_path}: run `contextkit migrate {origin} --to {target}` again to "
            "resume after the last recorded unit (--restart starts over)"
        )
    else:
        resume = "no progress was recorded yet: run the same command again to start over (it is idempotent)"
    _say(f"interrupted: {done}; {resume}", err=True)
    sys.exit(130)


@cli.command()
@click.option("--max-idle-hours", type=float, required=True, help="Remove sessions idle for longer than this.")
@click.pass_context
def cleanup(ctx: click.Context, max_idle_hours: float) -> None:
    """Remove sessions idle for more than --max-idle-hours (every key family of each) and print how many."""
    root = ctx.find_root()

    async def run() -> int:
        async with _data_kit(root) as kit:
            removed: int = await kit.cleanup_expired_sessions(max_idle_hours)
            return removed

    removed = _run(root, run)
    if root.obj["json"]:
        _echo_json({"removed": removed})
    else:
        click.echo(f"removed {removed} idle session(s)")


@cli.command("hot-restored")
@click.option("--from", "backup", default=None, metavar="BACKUP",
              help="Copy this backup of the hot tier back first (a SQLite file), with the declaration in one step.")
@click.pass_context
def hot_restored(ctx: click.Context, backup: str | None) -> None:
    """Declare that the hot tier was put back to an older copy of itself (a SQLite file copied back from a backup):
    every owner written before is reconciled with the archive at its next use. Run it right after the copy, or
    let it copy the backup itself with --from."""
    root = ctx.find_root()

    async def run() -> int:
        async with _data_kit(root) as kit:
            epoch: int = await kit.hot_restored(backup)
            return epoch

    epoch = _run(root, run)
    if root.obj["json"]:
        _echo_json({"epoch": epoch, "backup": backup})
    else:
        copied = f"copied {backup} back into the hot tier; " if backup else ""
        click.echo(
            f"{copied}hot tier restore declared (epoch {epoch}): every owner written before is reconciled with the "
            "archive at its next use"
        )


@cli.group("dead-letters")
def dead_letters() -> None:
    """Archive events the cold tier refused as data (dead letters): list them, replay them once the cause is fixed.

    They are kept where the outbox is: in Redis or the SQLite file (durable, shared by every process of the
    namespace); an in-process outbox (the memory hot tier) keeps them in the application's own process, where this
    command cannot see them (use ``kit.archiver.list_dead_letters()`` there).
    """


async def _open_archiver(kit: ContextKit) -> Any:
    await kit.open()
    archiver = kit.archiver
    if archiver is None:
        await kit.aclose(0.0)
        raise ConfigError("no cold tier is configured: nothing is archived, so there are no dead letters")
    return archiver


@dead_letters.command("list")
@click.option("--limit", type=int, default=100, show_default=True, help="Most letters to show, oldest first.")
@click.pass_context
def dead_letters_list(ctx: click.Context, limit: int) -> None:
    """List the dead letters (event id, table, key, when and why it was refused)."""
    root = ctx.find_root()
    if limit <= 0:
        raise _Failure("--limit must be positive", 2)

    async def fetch() -> tuple[int, list[dict[str, Any]]]:
        kit = _data_kit(root)
        try:
            archiver = await _open_archiver(kit)
            total = await archiver.dead_letter_count()
            letters = await archiver.list_dead_letters(limit)
        finally:
            await kit.aclose(0.0)
        return total, [
            {"event_id": letter.event.event_id, "table": letter.event.table, "key": letter.event.key,
             "at": letter.at.isoformat(), "reason": letter.reason}
            for letter in letters
        ]

    total, rows = _run(root, fetch)
    if root.obj["json"]:
        _echo_json({"total": total, "letters": rows})
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{total} dead letter(s)" + (f", the oldest {len(rows)} shown" if len(rows) < total else ""))
    for column in ("event_id", "table", "key", "at", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape(mask_secrets(str(row[c])[:300])) for c in ("event_id", "table", "key", "at", "reason")))
    Console().print(table)


@dead_letters.command("replay")
@click.option("--id", "event_ids", multiple=True, help="Replay only this event (repeatable); default: every letter.")
@click.option("--wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for the archiver to write them before exiting (a running app archives them anyway).")
@click.pass_context
def dead_letters_replay(ctx: click.Context, event_ids: tuple[str, ...], wait: float) -> None:
    """Put dead letters back into the outbox (after fixing what made the cold tier refuse them); a letter refused
    again becomes a dead letter again."""
    root = ctx.find_root()
    if wait < 0:
        raise _Failure("--wait must not be negative", 2)

    async def replay() -> dict[str, Any]:
        kit = _data_kit(root)
        left = None
        try:
            archiver = await _open_archiver(kit)
            replayed = await archiver.replay_dead_letters(list(event_ids) or None)
        finally:
            left = await kit.aclose(wait)
        return {"replayed": replayed, "left_in_outbox": left, "dead_letters": archiver.dead_lettered}

    result = _run(root, replay)
    if root.obj["json"]:
        _echo_json(result)
    else:
        _say(f"replayed {result['replayed']} dead letter(s) into the outbox")
        if result["dead_letters"]:
            _say(f"warning: {result['dead_letters']} of them were refused again and are dead letters again", err=True)


@cli.command()
@click.option("--path", "path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The demo's SQLite file (default ./.contextkit/demo.sqlite3).")
@click.pass_context
def demo(ctx: click.Context, path: Path | None) -> None:
    """Run a small agent-like LangGraph graph on the embedded tier; run it twice to see it resume."""
    from contextkit.demo import run_demo

    _run(ctx, lambda: run_demo(path, as_json=ctx.obj["json"]))


def main() -> None:
    """Entry point of the ``contextkit`` command."""
    cli(obj={})


if __name__ == "__main__":  # pragma: no cover
    main()
