"""The ``contextkit`` command line: plugins, doctor, demo, sessions, history.

Output is rich text for people and JSON with ``--json`` for scripts. Errors print one clear line and exit with 2
(bad usage or configuration) or 1 (a runtime failure); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from contextkit.errors import ConfigError, ContextKitError, InvalidInput
from contextkit.plugins import get_plugin_manager

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
        click.echo(f"error: {self.message}", err=True)


def _run(ctx: click.Context, factory: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except (ConfigError, InvalidInput) as exc:
        if ctx.obj.get("debug"):
            raise
        raise _Failure(str(exc), 2) from None
    except ContextKitError as exc:
        if ctx.obj.get("debug"):
            raise
        raise _Failure(str(exc), 1) from None


def _kit_config(ctx: click.Context) -> Mapping[str, Any] | str | None:
    path = ctx.obj.get("config")
    return str(path) if path else None


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
@click.option("--strict", is_flag=True, help="Exit non-zero when degraded, not only when unhealthy.")
@click.pass_context
def doctor(ctx: click.Context, strict: bool) -> None:
    """Check the health of the configured tiers; exit 1 when unhealthy."""
    from contextkit.kit import ContextKit

    async def check() -> dict[str, Any]:
        async with ContextKit.from_config(_kit_config(ctx)) as kit:
            report = await kit.health_check()
            report["describe"] = kit.describe()
            return report

    report = _run(ctx, check)
    if ctx.obj["json"]:
        _echo_json(report)
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        table = Table(title=f"contextkit doctor: {report['status']}")
        table.add_column("tier")
        table.add_column("status")
        table.add_column("details")
        for tier in ("hot", "cold"):
            health = report.get(tier)
            if health:
                details = ", ".join(f"{k}={v}" for k, v in health.items() if k != "status")
                table.add_row(tier, str(health.get("status")), details)
        if report.get("archiver"):
            arch = report["archiver"]
            table.add_row("archiver", "ok" if not arch["consecutive_failures"] else "failing",
                          f"queue_depth={arch['queue_depth']}, rows={arch['rows']}, last_error={arch['last_error']}")
        console.print(table)
        for issue in report["issues"]:
            console.print(f"[yellow]issue:[/] {issue}")
    if report["status"] == "unhealthy" or (strict and report["status"] != "healthy"):
        sys.exit(1)


@cli.group()
def sessions() -> None:
    """Inspect sessions."""


@sessions.command("list")
@click.option("--limit", type=int, default=100, show_default=True)
@click.pass_context
def sessions_list(ctx: click.Context, limit: int) -> None:
    """List sessions of the hot tier."""
    from contextkit.kit import ContextKit

    async def fetch() -> list[dict[str, Any]]:
        async with ContextKit.from_config(_kit_config(ctx.find_root())) as kit:
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
    Console().print(table)


@sessions.command("show")
@click.argument("session_id")
@click.pass_context
def sessions_show(ctx: click.Context, session_id: str) -> None:
    """Show one session."""
    from contextkit.kit import ContextKit

    root = ctx.find_root()

    async def fetch() -> dict[str, Any] | None:
        async with ContextKit.from_config(_kit_config(root)) as kit:
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
    from contextkit.kit import ContextKit

    async def fetch() -> list[dict[str, Any]] | None:
        async with ContextKit.from_config(_kit_config(ctx)) as kit:
            if await kit.get_session(session_id) is None and not await kit.get_conversation_history(session_id, 1):
                return None
            return [m.to_dict() for m in await kit.get_conversation_history(session_id, limit)]

    rows = _run(ctx, fetch)
    if rows is None:
        raise _Failure(f"session {session_id!r} does not exist", 1)
    if ctx.obj["json"]:
        _echo_json(rows)
        return
    from rich.console import Console

    console = Console()
    for row in rows:
        console.print(f"[dim]{row['seq']:>5} {row['timestamp']}[/] [bold]{row['role']}[/]: {row['content']}")


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
