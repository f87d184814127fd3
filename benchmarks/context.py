"""The state one run shares between groups: sizes, servers, the report, a scratch directory, and building kits.

Kits are built with ``env={}`` (the caller's environment must not change what is measured) and ``fallback=False``
(a Redis that went away must skip the row, not silently measure the memory tier).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.environment import Services
from benchmarks.measure import Sizes
from benchmarks.report import Report
from contextkit import ContextKit

__all__ = ["BenchContext", "Unavailable"]

HOT_TIERS = ("memory", "redis", "sqlite")
#: The LangGraph savers the checkpointer group compares with (``--peers``).
PEERS = ("inmemory", "sqlite", "postgres", "plainredis")


class Unavailable(Exception):
    """A subject cannot run here; the message becomes the row's "skipped:" reason."""


@dataclass
class BenchContext:
    """What every group receives."""

    sizes: Sizes
    services: Services
    report: Report
    console: Console
    tiers: tuple[str, ...] = HOT_TIERS
    peers: tuple[str, ...] = PEERS
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ckbench-")))
    _counter: int = 0

    def progress(self, message: str) -> None:
        """A one-line progress message on stderr's console (not part of the tables)."""
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)

    def unique(self, stem: str) -> str:
        """A name unique within the run (namespaces, files, thread ids)."""
        self._counter += 1
        return f"{stem}-{self._counter}"

    def skip_rest(self, group: str, cases: Iterable[str], subject: str, exc: BaseException) -> None:
        """Record "skipped" rows for the ``cases`` of ``subject`` not measured yet (a subject that broke mid-run)."""
        reason = str(exc) if isinstance(exc, Unavailable) else f"failed: {type(exc).__name__}: {exc}"
        reason = " ".join(reason.split())[:160]
        for case in cases:
            if self.report.find(group, f"{case} / {subject}") is None:
                self.report.skip(group, case, subject, reason)

    def hot_config(self, tier: str) -> Any:
        """The ``hot`` value for ``tier``, or :class:`Unavailable` with the reason."""
        if tier == "memory":
            return "memory"
        if tier == "redis":
            if self.services.redis_url is None:
                raise Unavailable(self.services.redis_problem or "no Redis")
            _require("contextkit_redis", "contextkit-redis")
            return {"backend": "redis", "url": self.services.redis_url}
        if tier == "sqlite":
            _require("contextkit_sqlite", "contextkit-sqlite")
            return {"backend": "sqlite", "path": str(self.scratch / f"{self.unique('hot')}.sqlite3")}
        raise ValueError(f"unknown hot tier {tier!r}")

    def cold_config(self, tier: str) -> Any:
        """The ``cold`` value for ``tier`` (postgres / clickhouse), or :class:`Unavailable`."""
        if tier == "postgres":
            if self.services.postgres_url is None:
                raise Unavailable(self.services.postgres_problem or "no PostgreSQL")
            _require("contextkit_postgres", "contextkit-postgres")
            return {"backend": "postgres", "url": self.services.postgres_url, "schema": self.unique(self.services.schema)
                    .replace("-", "_")}
        if tier == "clickhouse":
            if self.services.clickhouse_url is None:
                raise Unavailable(self.services.clickhouse_problem or "no ClickHouse")
            _require("contextkit_clickhouse", "contextkit-clickhouse")
            return {"backend": "clickhouse", "url": self.services.clickhouse_url,
                    "database": self.unique(self.services.schema).replace("-", "_")}
        raise ValueError(f"unknown cold tier {tier!r}")

    @contextlib.asynccontextmanager
    async def kit(self, hot: str, cold: str | None = None, **settings: Any) -> AsyncIterator[ContextKit]:
        """An open kit on ``hot`` (and ``cold``) in a namespace of its own; raises :class:`Unavailable`."""
        config: dict[str, Any] = {
            "hot": self.hot_config(hot),
            "namespace": self.unique(self.services.prefix),
            "fallback": False,
            **settings,
        }
        if cold is not None:
            config["cold"] = self.cold_config(cold)
        kit = ContextKit.from_config(config, env={})
        try:
            await kit.open()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await kit.aclose()
            raise Unavailable(f"{hot} kit did not open: {type(exc).__name__}: {exc}"[:200]) from exc
        try:
            yield kit
        finally:
            await kit.aclose(drain_timeout=60.0)


def _require(module: str, distribution: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise Unavailable(f"{distribution} is not installed")
