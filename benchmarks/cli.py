"""The command: ``python -m benchmarks [--only GROUPS] [--size smoke|quick|full] [--json FILE] [--no-launch]``.

Groups run one after the other in this process, each with fresh data (own namespaces, schemas, files). Servers
that are not there turn their rows into "skipped: <reason>". What a run wrote to Redis / PostgreSQL / ClickHouse
is deleted at the end, and a ClickHouse this run started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

from benchmarks.context import HOT_TIERS, PEERS, BenchContext
from benchmarks.environment import Services, detect_services, machine_info, unlink_prefix
from benchmarks.groups import GROUPS, NEEDS_CLICKHOUSE
from benchmarks.measure import SIZES
from benchmarks.report import Report

__all__ = ["main"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help=f"comma-separated groups (default: all): {','.join(GROUPS)}")
    parser.add_argument("--size", choices=sorted(SIZES), default="quick", help="smoke (tests), quick (default), full")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--no-launch", action="store_true",
                        help="never start a server process (ClickHouse is used only from CONTEXTKIT_TEST_CLICKHOUSE_URL)")
    parser.add_argument("--tiers", default=",".join(HOT_TIERS), help="contextkit hot tiers to measure (default: all)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="LangGraph savers to compare with (default: all; InMemorySaver always runs)")
    parser.add_argument("--width", type=int, default=None, help="table width in columns (default: the terminal's)")
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()] or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    args.groups = groups
    for option, known in (("tiers", HOT_TIERS), ("peers", PEERS)):
        chosen = tuple(x.strip() for x in getattr(args, option).split(",") if x.strip())
        wrong = [x for x in chosen if x not in known]
        if wrong:
            parser.error(f"unknown {option} {', '.join(wrong)}; known: {', '.join(known)}")
        setattr(args, option, chosen)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected groups, print the tables, write the JSON; exit 0 unless the harness itself broke."""
    args = parse_args(argv)
    console = Console(width=args.width) if args.width else Console()
    if args.width is None and not console.is_terminal:
        console = Console(width=180)  # a file or a pipe: wide tables rather than wrapped cells
    progress = Console(stderr=True)
    return asyncio.run(_main(args, console, progress))


async def _main(args: argparse.Namespace, console: Console, progress: Console) -> int:
    services = await detect_services()
    report = Report()
    ctx = BenchContext(SIZES[args.size], services, report, progress, tiers=args.tiers, peers=args.peers)
    failed = False
    try:
        if NEEDS_CLICKHOUSE & set(args.groups):
            ctx_log(progress, "looking for ClickHouse" + ("" if args.no_launch else " (starting one from chdb-core if needed)"))
            await services.start_clickhouse(launch=not args.no_launch)
        report.machine = machine_info(services, args.size)
        _print_machine(console, report.machine)
        started = time.monotonic()
        for name in args.groups:
            t0 = time.monotonic()
            try:
                await GROUPS[name](ctx)
            except Exception as exc:  # the harness reports a broken group and goes on with the next
                failed = True
                report.notes.append(f"group {name} failed: {type(exc).__name__}: {exc}")
                progress.print_exception(max_frames=8)
            ctx_log(progress, f"{name}: {time.monotonic() - t0:.1f} s")
        report.machine["duration_s"] = round(time.monotonic() - started, 1)
        with contextlib.suppress(OSError):
            import os

            report.machine["load_average_at_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    finally:
        await _cleanup(services, ctx)
    report.render(console, args.groups)
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        ctx_log(progress, f"wrote {args.json_path}")
    return 1 if failed else 0


def ctx_log(console: Console, message: str) -> None:
    """A progress line on stderr."""
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)


def _print_machine(console: Console, machine: dict[str, object]) -> None:
    packages = machine.get("packages", {})
    servers = machine.get("servers", {})
    console.print(
        f"[bold]contextkit benchmarks[/] size={machine['size']}  {machine['cpu_count']} CPU ({machine['cpu']})  "
        f"load {machine['load_average_at_start']}  Python {machine['python']}"
    )
    assert isinstance(packages, dict) and isinstance(servers, dict)
    console.print("packages: " + ", ".join(f"{k} {v}" for k, v in packages.items()))
    console.print("servers: " + ", ".join(f"{k}: {v}" for k, v in servers.items()))
    console.print()


async def _cleanup(services: Services, ctx: BenchContext) -> None:
    """Delete the run's Redis keys, PostgreSQL schemas and ClickHouse databases; stop its ClickHouse."""
    if services.redis_url is not None:
        with contextlib.suppress(Exception):
            await unlink_prefix(services.redis_url, services.prefix)
    if services.postgres_url is not None:
        with contextlib.suppress(Exception):
            import asyncpg

            conn = await asyncpg.connect(services.postgres_url, timeout=5.0)
            try:
                names = await conn.fetch(
                    "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", services.schema.replace("_", r"\_") + "%"
                )
                for record in names:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{record["nspname"]}" CASCADE')
            finally:
                await conn.close()
    if services.clickhouse_url is not None and services.clickhouse_server is None:
        with contextlib.suppress(Exception):
            from benchmarks.environment import clickhouse_client

            client = await asyncio.to_thread(clickhouse_client, services.clickhouse_url)
            names = client.query(f"SELECT name FROM system.databases WHERE startsWith(name, '{services.schema}')")
            for (name,) in names.result_rows:
                client.command(f"DROP DATABASE IF EXISTS `{name}`")
            client.close()
    services.close()
    shutil.rmtree(ctx.scratch, ignore_errors=True)
    sys.stdout.flush()
