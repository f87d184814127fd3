"""Secrets never leak: passwords given in URLs (user info or ``?password=``), in options or in the environment never
appear in logs (captured at DEBUG from every logger), reprs, exceptions and their tracebacks, ``health_check()``,
``get_metrics()``, ``describe()`` or the CLI's output.

The tiers point at closed loopback ports, so every code path that reports a failure runs: the Redis hot tier
falls back to memory (degraded health), the PostgreSQL / ClickHouse cold tiers stay down while the archiver
retries. Each backend's part is skipped, with the reason, when its plugin is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.errors import BackendUnavailable, ContextKitError
from contextkit.testing.services import free_port

SECRET = f"S3cret-{uuid.uuid4().hex[:10]}"

needs_redis = pytest.mark.skipif(
    importlib.util.find_spec("contextkit_redis") is None, reason="contextkit_redis is not installed: Redis leaks untested"
)
needs_postgres = pytest.mark.skipif(
    importlib.util.find_spec("contextkit_postgres") is None,
    reason="contextkit_postgres is not installed: PostgreSQL leaks untested",
)
needs_clickhouse = pytest.mark.skipif(
    importlib.util.find_spec("contextkit_clickhouse") is None,
    reason="contextkit_clickhouse is not installed: ClickHouse leaks untested",
)


def _everything(value: Any) -> str:
    """Text of a value as any output would show it: str, repr and JSON."""
    return "\n".join([str(value), repr(value), json.dumps(value, default=repr, ensure_ascii=False)])


def _exception_text(exc: BaseException) -> str:
    """The message, repr and full traceback of ``exc`` with its chained causes and contexts."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(type(exc), exc, exc.__traceback__)])


def _assert_clean(text: str, where: str) -> None:
    assert SECRET not in text, f"the password appears in {where}:\n{text[:2000]}"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of every logger at DEBUG and above."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    _assert_clean("\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records), "logs")


def _closed_url(template: str) -> str:
    return template.format(port=free_port(), secret=SECRET)


REDIS_CONFIGS: dict[str, dict[str, Any]] = {
    "password in user info": {"redis": {"url": "redis://:{secret}@127.0.0.1:{port}/0"}},
    "user and password in user info": {"redis": {"url": "redis://app:{secret}@127.0.0.1:{port}/0"}},
    "password option": {"redis": {"url": "redis://127.0.0.1:{port}/0", "password": "{secret}"}},
    "password in the query string": {"redis": {"url": "redis://127.0.0.1:{port}/0?password={secret}"}},
}


def _redis_config(case: str, fallback: bool) -> dict[str, Any]:
    port = free_port()
    options = {k: v.format(port=port, secret=SECRET) for k, v in REDIS_CONFIGS[case]["redis"].items()}
    return {"hot": "redis", "redis": options, "fallback": fallback, "timeout": 1.0}


async def _inspect(kit: ContextKit) -> None:
    """Everything a kit shows about itself, checked for the password."""
    _assert_clean(_everything(repr(kit)), "repr(kit)")
    _assert_clean(_everything(repr(kit.hot)), "repr(kit.hot)")
    _assert_clean(_everything(kit.describe()), "kit.describe()")
    _assert_clean(_everything(kit.config.describe()), "kit.config.describe()")
    _assert_clean(_everything(kit.hot.describe()), "kit.hot.describe()")
    _assert_clean(_everything(await kit.health_check()), "kit.health_check()")
    _assert_clean(_everything(await kit.get_metrics()), "kit.get_metrics()")
    _assert_clean(_everything(kit.degraded), "kit.degraded")
    if kit.cold is not None:
        _assert_clean(_everything(repr(kit.cold)), "repr(kit.cold)")
        _assert_clean(_everything(kit.cold.describe()), "kit.cold.describe()")
        _assert_clean(_everything(await kit.cold.health()), "kit.cold.health()")


@needs_redis
@pytest.mark.parametrize("case", [c for c in sorted(REDIS_CONFIGS) if c != "password in the query string"])
async def test_redis_fallback_never_shows_the_password(logs: pytest.LogCaptureFixture, case: str) -> None:
    """A Redis hot tier with a password on a closed port falls back to memory: the degraded health, the reason,
    describe(), metrics, reprs and logs never show the password."""
    kit = ContextKit.from_config(_redis_config(case, fallback=True), env={})
    async with kit:
        assert kit.degraded is not None
        assert (await kit.health_check())["status"] == "degraded"
        await kit.create_session("s1", "u1")
        await _inspect(kit)


@needs_redis
async def test_redis_password_in_the_query_string_is_masked(logs: pytest.LogCaptureFixture) -> None:
    """A ``?password=`` query parameter is masked like a password in the user info."""
    kit = ContextKit.from_config(_redis_config("password in the query string", fallback=True), env={})
    async with kit:
        await _inspect(kit)


@needs_redis
@pytest.mark.parametrize("case", sorted(REDIS_CONFIGS))
async def test_redis_unreachable_without_fallback_raises_without_the_password(
    logs: pytest.LogCaptureFixture, case: str
) -> None:
    """With fallback off, BackendUnavailable's message, repr and traceback (chained driver errors included) never
    show the password."""
    kit = ContextKit.from_config(_redis_config(case, fallback=False), env={})
    with pytest.raises(BackendUnavailable) as raised:
        await kit.open()
    _assert_clean(_exception_text(raised.value), "the exception")
    await kit.aclose()


@needs_redis
async def test_redis_password_from_the_environment_is_never_shown(logs: pytest.LogCaptureFixture) -> None:
    """REDIS_URL / REDIS_PASSWORD from the environment (the seed's variables) are masked like config values."""
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(free_port()), "REDIS_PASSWORD": SECRET, "CONTEXTKIT_FALLBACK": "true"}
    kit = ContextKit.from_config(None, env=env)
    async with kit:
        assert kit.config.hot == "redis"
        await _inspect(kit)
    env = {"REDIS_URL": _closed_url("redis://:{secret}@127.0.0.1:{port}/0"), "CONTEXTKIT_FALLBACK": "true"}
    async with ContextKit.from_config(None, env=env) as kit:
        await _inspect(kit)


async def _build_and_open(config: dict[str, Any]) -> None:
    kit = ContextKit.from_config(config, env={})
    try:
        await kit.open()
    finally:
        await kit.aclose()


@needs_redis
@pytest.mark.parametrize(
    "options",
    [
        {"url": "redis://:{secret}@127.0.0.1:{port}/0", "no_such_option": 1},
        {"url": "redis://:{secret}@127.0.0.1:notaport/0"},
        {"url": "redis://:{secret}@[::1/0"},
    ],
    ids=["unknown option", "bad port", "unparsable url"],
)
async def test_bad_redis_settings_fail_without_showing_the_password(options: dict[str, Any]) -> None:
    """A bad Redis URL or option raises a contextkit error (ConfigError when building, or BackendUnavailable when
    opening) that names the problem without echoing the password."""
    filled = {k: v.format(port=free_port(), secret=SECRET) if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(ContextKitError) as raised:
        await _build_and_open({"hot": "redis", "redis": filled, "fallback": False})
    _assert_clean(_exception_text(raised.value), "the error")


def test_the_config_repr_never_shows_the_password() -> None:
    """repr(KitConfig) masks passwords like KitConfig.describe()."""
    config = {"hot": "redis", "redis": {"url": _closed_url("redis://:{secret}@127.0.0.1:{port}/0"), "password": SECRET}}
    kit = ContextKit.from_config(config, env={}) if importlib.util.find_spec("contextkit_redis") else None
    from contextkit.config import load_config

    _assert_clean(repr(load_config(config, env={})), "repr(KitConfig)")
    if kit is not None:
        _assert_clean(repr(kit.config), "repr(kit.config)")


# -- cold tiers ------------------------------------------------------------------------------------------------


async def _cold_down(config: dict[str, Any]) -> None:
    """Open a kit whose cold tier is unreachable, write, let the archiver fail, and inspect everything (new ids are
    taken as new while the archive cannot be asked, so the failed consults show in the logs too)."""
    config = {
        "hot": "memory",
        "archiver": {"drain_timeout": 0.2, "max_backoff": 0.1},
        "tiering": {"assume_new_when_unreachable": True, "consult_timeout": 1.0},
        "timeout": 1.0,
        **config,
    }
    kit = ContextKit.from_config(config, env={})
    async with kit:
        await kit.create_session("s1", "u1")
        await kit.add_message("s1", "user", "hello")
        assert kit.archiver is not None
        assert await kit.archiver.flush(0.5) is False  # the cold tier is down: events wait
        metrics = await kit.archiver.metrics()
        _assert_clean(_everything(metrics), "archiver metrics")
        health = await kit.health_check()
        assert health["status"] == "degraded"
        await _inspect(kit)


@needs_postgres
@pytest.mark.parametrize(
    "options",
    [
        {"url": "postgresql://app:{secret}@127.0.0.1:{port}/db"},
        {"url": "postgresql://app@127.0.0.1:{port}/db?password={secret}"},
    ],
    ids=["user info", "query string"],
)
async def test_postgres_cold_tier_down_never_shows_the_password(
    logs: pytest.LogCaptureFixture, options: dict[str, str]
) -> None:
    """A PostgreSQL cold tier with a password on a closed port: warnings, archiver errors, health, describe and
    reprs never show the password."""
    await _cold_down({"cold": "postgres", "postgres": {k: _closed_url(v) for k, v in options.items()}})


@needs_clickhouse
async def test_clickhouse_cold_tier_down_never_shows_the_password(logs: pytest.LogCaptureFixture) -> None:
    """A ClickHouse cold tier with a password option on a closed port never shows the password."""
    options = {"host": "127.0.0.1", "port": free_port(), "password": SECRET}
    await _cold_down({"cold": "clickhouse", "clickhouse": options})


# -- the CLI ---------------------------------------------------------------------------------------------------


@dataclass
class _Output:
    returncode: int
    stdout: str
    stderr: str


def _cli(config: Path, *args: str) -> _Output:
    """Run the ``contextkit`` command in process (click's runner) with a clean contextkit environment."""
    from click.testing import CliRunner

    from contextkit.cli import cli

    cleared = {name: None for name in os.environ if name.startswith(("CONTEXTKIT_", "REDIS_", "CONTEXT_", "POSTGRES_"))}
    result = CliRunner(env=cleared).invoke(cli, ["--config", str(config), *args])
    stderr = result.stderr if result.stderr_bytes is not None else ""
    trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info and result.exc_info[1] else ""
    return _Output(result.exit_code, result.stdout, stderr + trace)


def _write_config(tmp_path: Path, fallback: bool) -> Path:
    path = tmp_path / "contextkit.toml"
    url = _closed_url("redis://app:{secret}@127.0.0.1:{port}/0")
    path.write_text(
        f'hot = "redis"\nfallback = {"true" if fallback else "false"}\ntimeout = 1.0\n[redis]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path


@needs_redis
def test_doctor_json_on_the_memory_fallback_never_shows_the_password(tmp_path: Path) -> None:
    """`contextkit --json doctor` with a password in the Redis URL of a closed port, fallback on: the report is
    degraded and neither stdout nor stderr shows the password."""
    result = _cli(_write_config(tmp_path, fallback=True), "--json", "doctor")
    _assert_clean(result.stdout + result.stderr, "doctor output")
    report = json.loads(result.stdout)
    assert report["status"] == "degraded", result.stdout
    assert report["storage_backend"] == "memory"


@needs_redis
@pytest.mark.parametrize("args", [("doctor",), ("--debug", "doctor"), ("--json", "sessions", "list")], ids=" ".join)
def test_cli_failures_never_show_the_password(tmp_path: Path, args: tuple[str, ...]) -> None:
    """With fallback off, the CLI's error line, its --debug traceback and the rich table never show the password."""
    result = _cli(_write_config(tmp_path, fallback=False), *args)
    assert result.returncode != 0
    _assert_clean(result.stdout + result.stderr, f"`contextkit {' '.join(args)}` output")


@needs_redis
def test_doctor_table_on_the_memory_fallback_never_shows_the_password(tmp_path: Path) -> None:
    """The human (rich table) doctor output never shows the password."""
    result = _cli(_write_config(tmp_path, fallback=True), "doctor")
    _assert_clean(result.stdout + result.stderr, "doctor table")
